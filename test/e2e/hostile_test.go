package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Hostile inputs, as the adversarial review found them: each reproduces
// the input and checks what a user would notice (an exit code, a message
// naming the offender, files outside left byte-identical, nothing pushed,
// nothing pinned, no secret in any output).

// TestHostileStateDir: a .shipit planted in the repository is refused
// before anything runs.
func TestHostileStateDir(t *testing.T) {
	t.Parallel()
	outsideFile := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		f := filepath.Join(dir, "precious")
		if err := os.WriteFile(f, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir, f
	}
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, a *app, outside string)
		want  string
	}{
		{"blobs linked outside", func(t *testing.T, a *app, outside string) {
			mkdir(t, filepath.Join(a.dir, ".shipit/images/web/blobs"))
			symlink(t, outside, filepath.Join(a.dir, ".shipit/images/web/blobs/sha256"))
		}, ".shipit/images/web/blobs/sha256 is a symbolic link"},
		{"index linked to the environment", func(t *testing.T, a *app, _ string) {
			mkdir(t, filepath.Join(a.dir, ".shipit/images/web"))
			symlink(t, "/proc/self/environ", filepath.Join(a.dir, ".shipit/images/web/index.json"))
		}, ".shipit/images/web/index.json is a symbolic link"},
		{"state directory linked outside", func(t *testing.T, a *app, outside string) {
			symlink(t, outside, filepath.Join(a.dir, ".shipit"))
		}, ".shipit is a symbolic link"},
		{"state directory tracked", func(t *testing.T, a *app, _ string) {
			writeFiles(t, a.dir, map[string]string{".shipit/build.json": `{"version":1}`})
			git(t, a.dir, "", "add", "-f", ".shipit/build.json")
			git(t, a.dir, "", "commit", "-qm", "planted")
		}, "is tracked by git"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t)
			outside, precious := outsideFile(t)
			tc.plant(t, a, outside)
			env := append(a.env(), "AWS_SECRET_ACCESS_KEY=aws-secret-in-env-"+a.fileSecret)
			r := shipitRun(t, a.dir, env, "build", "--progress", "plain")
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 1 naming %q:\n%s", r.code, tc.want, r.stderr)
			}
			if got, err := os.ReadFile(precious); err != nil || string(got) != "keep me" {
				t.Errorf("a file outside the repository changed: %q %v", got, err)
			}
			if left, _ := os.ReadDir(outside); len(left) != 1 {
				t.Errorf("something was written outside the repository: %v", left)
			}
			for _, out := range []string{r.stdout, r.stderr} {
				if strings.Contains(out, "aws-secret-in-env") || strings.Contains(out, a.envSecret) || strings.Contains(out, "PATH=") {
					t.Errorf("the environment leaked into the output: %s", out)
				}
			}
			r = shipitRun(t, a.dir, nil, "release")
			if r.code == 0 {
				t.Error("release over a planted state directory succeeded")
			}
		})
	}
}

// TestTamperedRecords: a record edited after the build (it travels between
// CI jobs as an artifact) is refused with nothing pushed and nothing pinned.
func TestTamperedRecords(t *testing.T) {
	t.Parallel()
	proxy := newCountingProxy(t)
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	recPath := filepath.Join(a.dir, ".shipit", "build.json")
	orig := mustRead(t, recPath)
	before := commits(t, bare)
	outside := t.TempDir()

	for _, tc := range []struct {
		name   string
		tamper func(rec map[string]any)
		code   int
		want   string
	}{
		{"repository changed", func(rec map[string]any) { image(rec, 0)["repository"] = "127.0.0.1:5099/evil/web" }, 2, "images[0].repository"},
		{"layout out of the repository", func(rec map[string]any) { image(rec, 0)["layout"] = "../../../" + outside }, 2, "images[0].layout"},
		{"absolute layout", func(rec map[string]any) { image(rec, 0)["layout"] = outside }, 2, "images[0].layout"},
		{"an extra entry", func(rec map[string]any) {
			extra := map[string]any{}
			for k, v := range image(rec, 0) {
				extra[k] = v
			}
			extra["name"] = "evil"
			rec["images"] = append(rec["images"].([]any), extra)
		}, 2, "images[2].name"},
		{"a newline in a name", func(rec map[string]any) { image(rec, 0)["name"] = "web\nSigned-off-by: Mallory <m@example.com>" }, 2, "images[0].name"},
	} {
		var rec map[string]any
		if err := json.Unmarshal([]byte(orig), &rec); err != nil {
			t.Fatal(err)
		}
		tc.tamper(rec)
		data, _ := json.Marshal(rec)
		writeFiles(t, a.dir, map[string]string{".shipit/build.json": string(data)})
		proxy.reset()
		r := shipitRun(t, a.dir, nil, "release")
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, want %d naming %s:\n%s", tc.name, r.code, tc.code, tc.want, r.stderr)
		}
		if n := proxy.requests.Load(); n != 0 {
			t.Errorf("%s: %d registry requests: a refused record reached the registry", tc.name, n)
		}
		if got := commits(t, bare); len(got) != len(before) {
			t.Errorf("%s: something was pinned: %v", tc.name, got[0])
		}
	}

	// A layer whose bytes no longer match its digest.
	writeFiles(t, a.dir, map[string]string{".shipit/build.json": orig})
	layer := biggestBlob(t, filepath.Join(a.dir, ".shipit/images/worker/blobs/sha256"))
	data, _ := os.ReadFile(layer)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(layer, data, 0o644); err != nil {
		t.Fatal(err)
	}
	proxy.reset()
	r := shipitRun(t, a.dir, nil, "release")
	if r.code != 1 || !strings.Contains(r.stderr, "its bytes hash to") {
		t.Errorf("a tampered layer: exit %d:\n%s", r.code, r.stderr)
	}
	if got := commits(t, bare); len(got) != len(before) {
		t.Errorf("a tampered image was pinned: %v", got[0])
	}

	// The untampered build still releases, once the layout is built anew.
	if err := os.RemoveAll(filepath.Join(a.dir, ".shipit")); err != nil {
		t.Fatal(err)
	}
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	mustShipit(t, a.dir, nil, "release")
	if got := commits(t, bare); len(got) != len(before)+1 {
		t.Errorf("an untampered release made %d commits", len(got)-len(before))
	}
}

func image(rec map[string]any, i int) map[string]any {
	return rec["images"].([]any)[i].(map[string]any)
}

func biggestBlob(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	best, size := "", int64(-1)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Size() > size {
			best, size = filepath.Join(dir, e.Name()), info.Size()
		}
	}
	return best
}

// TestDeployRepoIsNoOption: a deploy.repo that git would read as an
// option is bad configuration, and git never runs it.
func TestDeployRepoIsNoOption(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	pwned := filepath.Join(t.TempDir(), "pwned")
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml")) + "deploy:\n  repo: \"--upload-pack=touch " + pwned + "\"\n  overlays: [k8s]\n"
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	for _, args := range [][]string{{"status"}, {"pin", "20260101-000000-aaaaaaa"}} {
		r := shipitRun(t, a.dir, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "deploy.repo") {
			t.Errorf("%v: exit %d, want 2 naming deploy.repo:\n%s", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("git ran the option")
	}
}

// stalledServer accepts connections and never answers.
func stalledServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// TestStalledRemotes: a registry or a git remote that accepts and then
// sends nothing ends the command, with --timeout or by itself.
func TestStalledRemotes(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	host := stalledServer(t)
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "registry: "+a.repo, "registry: "+host+"/team", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})

	start := time.Now()
	r := shipitRun(t, a.dir, nil, "history", "--timeout", "10s")
	if d := time.Since(start); r.code != 1 || d > 25*time.Second || !strings.Contains(r.stderr, host) || !strings.Contains(r.stderr, "--timeout 10s") {
		t.Errorf("--timeout 10s against a stalled registry: exit %d after %v:\n%s", r.code, d, r.stderr)
	}
	start = time.Now()
	r = shipitRun(t, a.dir, []string{"SHIPIT_STALL_TIMEOUT=2s"}, "history")
	if d := time.Since(start); r.code != 1 || d > 20*time.Second || !strings.Contains(r.stderr, host) || !strings.Contains(r.stderr, "sent nothing") {
		t.Errorf("a stalled registry without --timeout: exit %d after %v:\n%s", r.code, d, r.stderr)
	}

	// A git remote, with a token in its URL that must never be in ps.
	gitHost := stalledServer(t)
	token := randomSecret(t, "glpat")
	cfg += "deploy:\n  repo: http://oauth2:" + token + "@" + gitHost + "/acme/gitops.git\n  overlays: [k8s]\n"
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var inPS []string
	var psMu sync.Mutex
	go func() {
		for ctx.Err() == nil {
			if found := scanCmdlines(token); len(found) > 0 {
				psMu.Lock()
				inPS = append(inPS, found...)
				psMu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start = time.Now()
	r = shipitRun(t, a.dir, []string{"SHIPIT_STALL_TIMEOUT=3s"}, "status")
	cancel()
	if d := time.Since(start); r.code != 1 || d > 30*time.Second || !strings.Contains(r.stderr, gitHost) {
		t.Errorf("a stalled git remote: exit %d after %v:\n%s", r.code, d, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, token) {
		t.Errorf("the token is in shipit's output: %s", r.stderr)
	}
	psMu.Lock()
	if len(inPS) > 0 {
		t.Errorf("the token was in a process's arguments: %v", inPS)
	}
	psMu.Unlock()
}

// scanCmdlines returns the command lines of this machine's processes
// that hold s.
func scanCmdlines(s string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// TestSIGTERMDuringECRToken: the ECR token request hangs; SIGTERM ends
// shipit within seconds anyway.
func TestSIGTERMDuringECRToken(t *testing.T) {
	t.Parallel()
	reg := os.Getenv("SHIPIT_TEST_ECR_REGISTRY")
	if reg == "" {
		t.Fatal("no ECR test registry (SHIPIT_TEST_ECR_REGISTRY): run the tests through `make test`")
	}
	hang := make(chan struct{})
	var asked sync.Once
	askedCh := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Do(func() { close(askedCh) })
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang) // before Close, which waits for the handler
	a := newApp(t)
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "registry: "+a.repo, "registry: "+reg+"/team", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	cmd := exec.Command(shipit, "history")
	cmd.Dir = a.dir
	cmd.Env = append(os.Environ(), ecrEnv(t, srv.URL, true)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-askedCh:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("shipit never asked for an ECR token:\n%s", stderr.String())
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is read from ProcessState
		close(done)
	}()
	select {
	case <-done:
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("shipit took %v to end after SIGTERM", d)
		}
		if cmd.ProcessState.ExitCode() != 130 {
			t.Errorf("exit %d, want 130:\n%s", cmd.ProcessState.ExitCode(), stderr.String())
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("shipit outlived SIGTERM by 5 s during a hung ECR token request")
	}
}

// TestPrivateAddressesGetTLS runs shipit in a network namespace of its
// own, where 10.255.0.1 is on loopback and a plain-HTTP listener records
// what reaches it: nothing is ever sent there in plain HTTP, credentials
// least of all. A tcp:// builder there without TLS is refused before
// anything is sent.
func TestPrivateAddressesGetTLS(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is needed")
	}
	a := newApp(t)
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "registry: "+a.repo, "registry: 10.255.0.1:5000/team", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	dockerCfg := t.TempDir()
	writeFiles(t, dockerCfg, map[string]string{"config.json": `{"auths":{"10.255.0.1:5000":{"auth":"dXNlcjpwcml2YXRlLXBhc3N3b3Jk"}}}`})
	log := filepath.Join(t.TempDir(), "received")
	script := fmt.Sprintf(`set -e
ip link set lo up
ip addr add 10.255.0.1/32 dev lo
python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.255.0.1", 5000)); s.listen(16); s.settimeout(20)
open(%q, "w").close()
with open(%q, "ab") as f:
    while True:
        try:
            c, _ = s.accept()
        except OSError:
            break
        c.settimeout(2)
        try:
            f.write(c.recv(4096) + b"\n--\n"); f.flush()
        except OSError:
            pass
        c.close()
' &
srv=$!
for i in $(seq 100); do [ -e %q ] && break; sleep 0.1; done
set +e
%s history --timeout 15s; echo "history-exit=$?"
BUILDKIT_HOST=tcp://10.255.0.1:1234 %s build; echo "build-exit=$?"
kill $srv 2>/dev/null || true
`, log+".ready", log, log+".ready", shipit, shipit)
	cmd := exec.Command("unshare", "-n", "sh", "-c", script)
	cmd.Dir = a.dir
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerCfg, "BUILDKIT_HOST=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unshare: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "history-exit=1") {
		t.Errorf("history against a plain-HTTP listener on a private address: %s", out)
	}
	if !strings.Contains(string(out), "build-exit=2") || !strings.Contains(string(out), "builder.addr") {
		t.Errorf("a tcp:// builder on a private address without TLS: %s", out)
	}
	got, _ := os.ReadFile(log)
	if len(got) == 0 {
		t.Fatalf("nothing reached the listener: the test checks nothing\n%s", out)
	}
	if bytes.Contains(got, []byte("GET ")) || bytes.Contains(got, []byte("HTTP/1.1")) || bytes.Contains(got, []byte("cHJpdmF0ZS1wYXNzd29yZA")) {
		t.Errorf("plain HTTP reached a private address:\n%s", got)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, at string) {
	t.Helper()
	if err := os.Symlink(target, at); err != nil {
		t.Fatal(err)
	}
}
