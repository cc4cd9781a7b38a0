package e2e

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faultyProxy sits in front of the real registry and misbehaves on a
// schedule: it answers 429 and 503, and drops connections mid-request.
type faultyProxy struct {
	host     string
	n        atomic.Int64
	faults   atomic.Int64
	every    int64         // misbehave on every n-th request (0: never)
	budget   int64         // at most this many faults (0: no limit)
	delay    time.Duration // before each blob upload
	uploadCh chan struct{} // receives when a blob upload starts
	once     sync.Once
}

func newFaultyProxy(t testing.TB, every int64) *faultyProxy {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &faultyProxy{every: every, uploadCh: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := p.n.Add(1)
		if strings.Contains(r.URL.Path, "/blobs/uploads") {
			p.once.Do(func() { close(p.uploadCh) })
			time.Sleep(p.delay)
		}
		if p.every > 0 && r.URL.Path != "/v2/" && i%p.every == 0 && (p.budget == 0 || p.faults.Load() < p.budget) {
			p.faults.Add(1)
			switch (i / p.every) % 3 {
			case 0:
				w.Header().Set("Retry-After", "0")
				http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			case 1:
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
			default: // drop the connection mid-request
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						_ = c.(*net.TCPConn).SetLinger(0)
						c.Close()
						return
					}
				}
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// TestReleaseThroughFaults: a registry that refuses and drops requests;
// the release retries and succeeds with exactly one pin commit.
func TestReleaseThroughFaults(t *testing.T) {
	t.Parallel()
	proxy := newFaultyProxy(t, 3)
	proxy.budget = 9 // three of each kind: 429, 503, a dropped connection
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	r := mustShipit(t, a.dir, nil, "release")
	if proxy.faults.Load() == 0 {
		t.Fatal("the proxy injected no fault")
	}
	if n := len(commits(t, bare)); n != 2 {
		t.Errorf("%d commits, want the seed and one pin commit", n)
	}
	t.Logf("%d faults injected over %d requests; stderr:\n%s", proxy.faults.Load(), proxy.n.Load(), r.stderr)
	// Every image is really there, under its tag.
	rec, _ := readRecord(t, a.dir)
	for _, im := range rec.Images {
		if _, err := gitMaybe(a.dir, "status"); err != nil {
			t.Fatal(err)
		}
		d := lookupDigest(t, strings.Replace(im.Repository, proxy.host, registry, 1)+":"+im.Tag)
		if d != im.Digest {
			t.Errorf("%s: registry has %s, want %s", im.Name, d, im.Digest)
		}
	}
}

// TestReleaseRegistryDown: a registry that always fails: a clear error,
// and git untouched.
func TestReleaseRegistryDown(t *testing.T) {
	t.Parallel()
	proxy := newFaultyProxy(t, 1)
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	start := time.Now()
	r := shipitRun(t, a.dir, nil, "release")
	if r.code != 1 || !strings.Contains(r.stderr, proxy.host) {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
	if n := len(commits(t, bare)); n != 1 {
		t.Errorf("a failed release committed")
	}
	t.Logf("gave up after %v: %s", time.Since(start).Round(time.Millisecond), r.stderr)
}

// TestGitOpsRemoteRejects: a remote whose hook refuses every push.
func TestGitOpsRemoteRejects(t *testing.T) {
	t.Parallel()
	bare := newGitOps(t, overlayYAML)
	writeFiles(t, bare, map[string]string{"hooks/pre-receive": "#!/bin/sh\necho 'pushes to main need review' >&2\nexit 1\n"})
	if err := os.Chmod(filepath.Join(bare, "hooks/pre-receive"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := newApp(t)
	withDeploy(t, a, registry, bare)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	r := shipitRun(t, a.dir, nil, "release")
	if r.code != 1 || !strings.Contains(r.stderr, bare) || !strings.Contains(r.stderr, "pushes to main need review") {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
	if n := len(commits(t, bare)); n != 1 {
		t.Errorf("%d commits on a remote that rejects", n)
	}
}

// TestEightConcurrentReleases: eight releases of different commits against
// one remote at once: all exit 0, the newest wins, history stays linear,
// no pin commit is lost or duplicated.
func TestEightConcurrentReleases(t *testing.T) {
	t.Parallel()
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, registry, bare)
	var dirs []string
	for i := 0; i < 8; i++ {
		writeFiles(t, a.dir, map[string]string{"worker/job.sh": fmt.Sprintf("#!/bin/sh\necho %d\n", i)})
		git(t, a.dir, "", "add", "-A")
		git(t, a.dir, fmt.Sprintf("2026-05-06T06:%02d:00Z", 10+i), "commit", "-qm", fmt.Sprint(i))
		sha := git(t, a.dir, "", "rev-parse", "HEAD")
		dir := filepath.Join(t.TempDir(), "app")
		git(t, "", "", "clone", "-q", a.dir, dir)
		git(t, dir, "", "checkout", "-q", sha)
		writeFiles(t, dir, map[string]string{"secrets/file_secret.txt": a.fileSecret})
		dirs = append(dirs, dir)
	}
	for _, d := range dirs {
		mustShipit(t, d, a.env(), "build", "--progress", "quiet")
	}
	results := make([]result, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = shipitRun(t, d, nil, "release") }()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("release %d: exit %d:\n%s", i, r.code, r.stderr)
		}
	}
	newest := strings.TrimSpace(mustShipit(t, dirs[7], nil, "tag").stdout)
	if k := showFile(t, bare, "overlays/prod/kustomization.yaml"); !strings.Contains(k, `newTag: "`+newest+`"`) {
		t.Errorf("the newest release did not win:\n%s", k)
	}
	if m := git(t, bare, "", "rev-list", "--merges", "main"); m != "" {
		t.Errorf("merges: %s", m)
	}
	// Each pin commit moved the pins forward: its tag is newer than the one before.
	pins := strings.Split(git(t, bare, "", "log", "--reverse", "--format=%s", "main"), "\n")[1:]
	seen := map[string]bool{}
	prev := ""
	for _, s := range pins {
		tg := strings.TrimPrefix(s, "shipit: release ")
		if seen[tg] || tg <= prev {
			t.Errorf("pin commits out of order or duplicated: %v", pins)
			break
		}
		seen[tg], prev = true, tg
	}
	if len(pins) < 1 || len(pins) > 8 {
		t.Errorf("%d pin commits for 8 releases", len(pins))
	}
}

// TestInterruptedRelease: Ctrl-C during the push, then a re-run: exactly
// one pin commit.
func TestInterruptedRelease(t *testing.T) {
	t.Parallel()
	proxy := newFaultyProxy(t, 0)
	proxy.delay = 3 * time.Second
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	cmd := exec.Command(shipit, "release")
	cmd.Dir = a.dir
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-proxy.uploadCh:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("no upload started")
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d after Ctrl-C, want 130: %s", code, stderr.String())
	}
	if n := len(commits(t, bare)); n != 1 {
		t.Error("an interrupted push committed pins")
	}
	proxy.delay = 0
	mustShipit(t, a.dir, nil, "release")
	mustShipit(t, a.dir, nil, "release")
	if n := len(commits(t, bare)); n != 2 {
		t.Errorf("%d commits after the re-runs, want exactly one pin commit", n-1)
	}
}

// TestDaemonKilledMidBuild: a clear error and no record.
func TestDaemonKilledMidBuild(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "bk.sock")
	startDaemon(t, "--addr", "unix://"+sock)
	a := newApp(t)
	writeFiles(t, a.dir, map[string]string{"worker/Dockerfile": "ARG BASE=busybox\nFROM ${BASE}\nRUN echo sleeping-now && sleep 60\n"})
	git(t, a.dir, "", "commit", "-qam", "slow")
	cmd := exec.Command(shipit, "build", "--progress", "plain")
	cmd.Dir = a.dir
	cmd.Env = append(os.Environ(), append(a.env(), "BUILDKIT_HOST=unix://"+sock)...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "sleeping-now") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// Kill the daemon: the one listening on our socket.
	out, _ := exec.Command("sh", "-c", "pgrep -f 'buildkitd.*"+sock+"'").Output()
	for _, pid := range strings.Fields(string(out)) {
		_ = exec.Command("kill", "-9", pid).Run()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("shipit ended: %v", err)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("shipit did not notice the daemon died")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "building worker") {
		t.Errorf("exit %d: %s", code, tail(stderr.String()))
	}
	if _, err := os.Stat(filepath.Join(a.dir, ".shipit", "build.json")); !os.IsNotExist(err) {
		t.Error("a build whose daemon died wrote a record")
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

func lookupDigest(t testing.TB, ref string) string {
	t.Helper()
	out, err := exec.Command("curl", "-fsSI", "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "-H", "Accept: application/vnd.oci.image.index.v1+json",
		"http://"+strings.Replace(strings.Replace(ref, "/", "/v2/", 1), ":"+ref[strings.LastIndex(ref, ":")+1:], "/manifests/"+ref[strings.LastIndex(ref, ":")+1:], 1)).Output()
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Docker-Content-Digest") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestInterruptedGitStep: Ctrl-C while the pin commit is being pushed
// (the remote's hook is slow), then a re-run: exactly one pin commit.
func TestInterruptedGitStep(t *testing.T) {
	t.Parallel()
	bare := newGitOps(t, overlayYAML)
	marker := filepath.Join(t.TempDir(), "hook-started")
	writeFiles(t, bare, map[string]string{"hooks/pre-receive": "#!/bin/sh\ncat >/dev/null\ntouch " + marker + "\nsleep 3\n"})
	if err := os.Chmod(filepath.Join(bare, "hooks/pre-receive"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := newApp(t)
	withDeploy(t, a, registry, bare)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	cmd := exec.Command(shipit, "release")
	cmd.Dir = a.dir
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the push never reached the remote: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d after Ctrl-C, want 130: %s", code, stderr.String())
	}
	time.Sleep(3 * time.Second) // let an orphaned hook finish, whatever it does
	mustShipit(t, a.dir, nil, "release")
	mustShipit(t, a.dir, nil, "release")
	if n := len(commits(t, bare)); n != 2 {
		t.Errorf("%d pin commits after an interrupted push and two re-runs, want exactly one", n-1)
	}
}
