package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingProxy sits in front of the test registry and counts requests.
type countingProxy struct {
	host     string // host:port to use as the registry
	requests atomic.Int64
	uploads  atomic.Int64 // blob upload requests (POST/PATCH/PUT under /blobs/uploads/)
	mu       sync.Mutex
	log      []string
	finished map[string]int // completed uploads (PUT ...?digest=) by digest
}

func newCountingProxy(t testing.TB) *countingProxy {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &countingProxy{finished: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			p.requests.Add(1)
		}
		if strings.Contains(r.URL.Path, "/blobs/uploads") {
			p.uploads.Add(1)
		}
		p.mu.Lock()
		p.log = append(p.log, r.Method+" "+r.URL.Path)
		if d := r.URL.Query().Get("digest"); r.Method == http.MethodPut && d != "" {
			p.finished[d]++
		}
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *countingProxy) reset() {
	p.requests.Store(0)
	p.uploads.Store(0)
	p.mu.Lock()
	p.log = nil
	p.mu.Unlock()
}

const overlayYAML = `# Production overlay: Argo CD syncs this directory.
resources:
  - ../../base

# Image pins. shipit release keeps them current.
images:
  # the web app (also runs the migration Job)
  - name: web
    newName: registry.example.com/old/web   # before shipit
    newTag: "20200101-000000-0000000"
`

// newGitOps makes a bare GitOps repository: a base with a Deployment
// (web and worker containers) and a migration Job from the web image, and
// a production overlay that pins web but not worker.
func newGitOps(t testing.TB, overlay string) string {
	t.Helper()
	return newGitOpsOverlays(t, map[string]string{"prod": overlay})
}

// newGitOpsOverlays is newGitOps with several overlays, by name.
func newGitOpsOverlays(t testing.TB, overlays map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	bare := filepath.Join(dir, "gitops.git")
	git(t, dir, "", "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(dir, "work")
	git(t, dir, "", "clone", "-q", bare, work)
	writeFiles(t, work, map[string]string{
		"base/kustomization.yaml": "resources: [deployment.yaml, job.yaml]\n",
		"base/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: web}
      - {name: worker, image: worker}
`,
		"base/job.yaml": `apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: migrate, image: web, command: [/app/app, migrate]}
`,
	})
	for name, k := range overlays {
		writeFiles(t, work, map[string]string{"overlays/" + name + "/kustomization.yaml": k})
	}
	git(t, work, "", "add", "-A")
	git(t, work, "", "commit", "-qm", "gitops")
	git(t, work, "", "push", "-q", "origin", "HEAD:main")
	return bare
}

// withDeploy points an app at a registry and a GitOps repository.
func withDeploy(t testing.TB, a *app, reg, bare string) {
	t.Helper()
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	cfg = strings.Replace(cfg, "registry: "+a.repo, "registry: "+strings.Replace(a.repo, registry, reg, 1), 1)
	cfg += "deploy:\n  repo: " + bare + "\n  branch: main\n  overlays: [overlays/prod]\n"
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	const date = "2026-05-06T07:09:00+02:00"
	git(t, a.dir, date, "commit", "-qam", "deploy")
	a.sha = git(t, a.dir, "", "rev-parse", "HEAD")
	a.commitTime, _ = time.Parse(time.RFC3339, date)
	a.repo = strings.Replace(a.repo, registry, reg, 1)
}

func commits(t testing.TB, bare string) []string {
	t.Helper()
	return strings.Split(git(t, bare, "", "log", "--format=%H %s", "main"), "\n")
}

func showFile(t testing.TB, bare, path string) string {
	t.Helper()
	return git(t, bare, "", "show", "main:"+path)
}

// render runs kubectl kustomize on the overlay at the GitOps head.
func render(t testing.TB, bare string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "r")
	git(t, "", "", "clone", "-q", bare, dir)
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(dir, "overlays/prod")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	return string(out)
}

func TestRelease(t *testing.T) {
	t.Parallel()
	proxy := newCountingProxy(t)
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	rec, _ := readRecord(t, a.dir)
	before := commits(t, bare)

	// A dry run shows the new tag and changes nothing.
	r := mustShipit(t, a.dir, nil, "release", "--dry-run")
	if !strings.Contains(r.stdout, "+    newTag: \""+a.tag()+"\"") || !strings.Contains(r.stdout, "+  - name: worker") {
		t.Errorf("dry run diff:\n%s", r.stdout)
	}
	if got := commits(t, bare); len(got) != len(before) {
		t.Errorf("a dry run committed: %v", got)
	}
	if _, err := os.Stat(filepath.Join(a.dir, ".shipit")); err != nil {
		t.Fatal(err)
	}
	if proxy.uploads.Load() != 0 {
		t.Errorf("a dry run uploaded %d blobs", proxy.uploads.Load())
	}

	r = mustShipit(t, a.dir, nil, "release")
	// web and worker share the base layer: it goes up once, and is
	// mounted into the other repository.
	proxy.mu.Lock()
	for d, n := range proxy.finished {
		if n > 1 {
			t.Errorf("blob %s was uploaded %d times", d, n)
		}
	}
	proxy.mu.Unlock()
	after := commits(t, bare)
	if len(after) != len(before)+1 {
		t.Fatalf("commits: %v, want exactly one new one", after)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	head := strings.Fields(after[0])[0]
	if len(lines) != 3 || lines[2] != head {
		t.Errorf("stdout:\n%s\nwant two refs and the commit %s", r.stdout, head)
	}
	msg := git(t, bare, "", "log", "-1", "--format=%B", "main")
	for _, want := range []string{a.tag(), "web: " + a.repo + "/web:" + a.tag(), "Source-Commit: " + a.sha} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "[skip ci]") {
		t.Error("[skip ci] in a commit to a separate GitOps repository")
	}
	k := showFile(t, bare, "overlays/prod/kustomization.yaml")
	digests := map[string]string{}
	for _, im := range rec.Images {
		digests[im.Name] = im.Digest
	}
	want := strings.Replace(overlayYAML, `    newName: registry.example.com/old/web   # before shipit
    newTag: "20200101-000000-0000000"
`, `    newName: `+a.repo+`/web   # before shipit
    newTag: "`+a.tag()+`"
    digest: `+digests["web"]+`
  - name: worker
    newName: `+a.repo+`/worker
    newTag: `+a.tag()+`
    digest: `+digests["worker"]+`
`, 1)
	if k != strings.TrimSpace(want) {
		t.Errorf("kustomization.yaml:\n%s\nwant:\n%s", k, want)
	}
	out := render(t, bare)
	webRef := a.repo + "/web:" + a.tag() + "@" + digests["web"]
	if strings.Count(out, "image: "+webRef) != 2 || !strings.Contains(out, "image: "+a.repo+"/worker:"+a.tag()+"@"+digests["worker"]) {
		t.Errorf("kubectl kustomize does not render the new references in the Deployment and the Job:\n%s", out)
	}

	// A repeat release: no commit, no blob upload, at most two registry
	// requests per image beyond authentication.
	proxy.reset()
	r = mustShipit(t, a.dir, nil, "release")
	if got := commits(t, bare); len(got) != len(after) {
		t.Errorf("a repeat release committed: %v", got)
	}
	if n := proxy.uploads.Load(); n != 0 {
		t.Errorf("a repeat release made %d blob upload requests", n)
	}
	if n := proxy.requests.Load(); n > 4 {
		t.Errorf("a repeat release made %d registry requests beyond auth, want at most 2 per image: %v", n, proxy.log)
	}
	if !strings.Contains(r.stderr, "nothing to change") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestReleaseConcurrent releases two newer commits at once from two
// clones, then an older one.
func TestReleaseConcurrent(t *testing.T) {
	t.Parallel()
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, registry, bare)
	shas := []string{}
	for i, date := range []string{"2026-05-06T06:00:00Z", "2026-05-06T06:01:00Z", "2026-05-06T06:02:00Z"} {
		writeFiles(t, a.dir, map[string]string{"worker/job.sh": fmt.Sprintf("#!/bin/sh\necho %d\n", i)})
		git(t, a.dir, "", "add", "-A")
		git(t, a.dir, date, "commit", "-qm", fmt.Sprintf("change %d", i))
		shas = append(shas, git(t, a.dir, "", "rev-parse", "HEAD"))
	}
	clone := func(sha string) string {
		dir := filepath.Join(t.TempDir(), "app")
		git(t, "", "", "clone", "-q", a.dir, dir)
		git(t, dir, "", "checkout", "-q", sha)
		writeFiles(t, dir, map[string]string{"secrets/file_secret.txt": a.fileSecret})
		mustShipit(t, dir, a.env(), "build", "--progress", "quiet")
		return dir
	}
	old, mid, newest := clone(shas[0]), clone(shas[1]), clone(shas[2])
	start := len(commits(t, bare))

	var wg sync.WaitGroup
	results := make([]result, 2)
	for i, dir := range []string{mid, newest} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = shipitRun(t, dir, nil, "release")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("release %d: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	newestTag := strings.TrimSpace(mustShipit(t, newest, nil, "tag").stdout)
	k := showFile(t, bare, "overlays/prod/kustomization.yaml")
	if !strings.Contains(k, `newTag: "`+newestTag+`"`) {
		t.Errorf("the newest release did not win:\n%s", k)
	}
	// Linear history, nothing lost or duplicated.
	if merges := git(t, bare, "", "rev-list", "--merges", "main"); merges != "" {
		t.Errorf("merge commits: %s", merges)
	}
	all := commits(t, bare)
	if n := len(all) - start; n < 1 || n > 2 {
		t.Errorf("%d pin commits for two releases: %v", n, all)
	}

	// An older commit released afterwards does not roll production back.
	r := mustShipit(t, old, nil, "release")
	if got := commits(t, bare); len(got) != len(all) {
		t.Errorf("an older release committed: %v", got)
	}
	if !strings.Contains(r.stderr, "releases only move forward") {
		t.Errorf("stderr does not say why the pin stays: %s", r.stderr)
	}
	if k2 := showFile(t, bare, "overlays/prod/kustomization.yaml"); k2 != k {
		t.Errorf("an older release changed the pins:\n%s", k2)
	}
}

func TestReleaseRefusals(t *testing.T) {
	t.Parallel()
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, registry, bare)
	start := commits(t, bare)

	r := shipitRun(t, a.dir, nil, "release")
	if r.code != 2 || !strings.Contains(r.stderr, "build.json") || !strings.Contains(r.stderr, "shipit build") {
		t.Errorf("no record: exit %d: %s", r.code, r.stderr)
	}
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")

	// A record of another commit.
	writeFiles(t, a.dir, map[string]string{"README": "more\n"})
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, "", "commit", "-qm", "newer")
	r = shipitRun(t, a.dir, nil, "release")
	if r.code != 2 || !strings.Contains(r.stderr, "was built from commit "+a.sha[:7]) {
		t.Errorf("stale record: exit %d: %s", r.code, r.stderr)
	}

	// A dirty build.
	writeFiles(t, a.dir, map[string]string{"README": "dirty\n"})
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	r = shipitRun(t, a.dir, nil, "release")
	if r.code != 2 || !strings.Contains(r.stderr, "-dirty") {
		t.Errorf("dirty record: exit %d: %s", r.code, r.stderr)
	}
	git(t, a.dir, "", "checkout", "-q", "README")

	// An overlay that does not render: kustomize's message, no commit.
	broken := newGitOps(t, "resources: [../../base, missing.yaml]\n")
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": strings.Replace(cfg, bare, broken, 1)})
	git(t, a.dir, "", "commit", "-qam", "broken overlay")
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	r = shipitRun(t, a.dir, nil, "release")
	if r.code != 1 || !strings.Contains(r.stderr, "overlays/prod") || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("broken overlay: exit %d: %s", r.code, r.stderr)
	}
	if n := len(commits(t, broken)); n != 1 {
		t.Errorf("broken overlay: %d commits", n)
	}

	// An unreachable GitOps remote is named.
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": strings.Replace(cfg, bare, "/nonexistent/gitops.git", 1)})
	git(t, a.dir, "", "commit", "-qam", "bad remote")
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	r = shipitRun(t, a.dir, nil, "release")
	if r.code != 1 || !strings.Contains(r.stderr, "/nonexistent/gitops.git") {
		t.Errorf("unreachable remote: exit %d: %s", r.code, r.stderr)
	}

	// The same tag on another digest: both digests named; --keep-existing goes on.
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "", "commit", "-qam", "good again")
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	rec, _ := readRecord(t, a.dir)
	other := newApp(t) // a different image under the same tag
	mustShipit(t, other.dir, append(other.env(), "SHIPIT_REGISTRY="+a.repo), "build", "worker", "--push", "--progress", "quiet", "--tag", rec.Tag)
	r = shipitRun(t, a.dir, nil, "release")
	var workerDigest string
	for _, im := range rec.Images {
		if im.Name == "worker" {
			workerDigest = im.Digest
		}
	}
	if r.code != 1 || !strings.Contains(r.stderr, workerDigest) || !regexp.MustCompile(`already holds sha256:[0-9a-f]{64}`).MatchString(r.stderr) || !strings.Contains(r.stderr, "--keep-existing") {
		t.Errorf("tag on another digest: exit %d: %s", r.code, r.stderr)
	}
	if got := commits(t, bare); len(got) != len(start) {
		t.Errorf("a failed release committed: %v", got)
	}
	r = mustShipit(t, a.dir, nil, "release", "--keep-existing")
	if strings.Contains(r.stdout, "worker:"+rec.Tag+"@"+workerDigest) {
		t.Errorf("--keep-existing released the build's digest, not the registry's: %s", r.stdout)
	}
}

// TestReleaseToOwnRepository: deploy.repo "." pins through the app
// repository's origin, with [skip ci], leaving the work tree alone.
func TestReleaseToOwnRepository(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	origin := filepath.Join(t.TempDir(), "origin.git")
	git(t, "", "", "init", "-q", "--bare", "-b", "main", origin)
	writeFiles(t, a.dir, map[string]string{
		"k8s/base/kustomization.yaml":          "resources: [deployment.yaml]\n",
		"k8s/base/deployment.yaml":             "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: web, image: web}\n      - {name: worker, image: worker}\n",
		"k8s/overlays/prod/kustomization.yaml": "# prod\nresources:\n- ../../base\n",
	})
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": mustRead(t, filepath.Join(a.dir, "shipit.yaml")) + "deploy:\n  repo: .\n  overlays: [k8s/overlays/prod]\n"})
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, "2026-05-06T07:09:00+02:00", "commit", "-qm", "deploy here")
	git(t, a.dir, "", "remote", "set-url", "origin", origin)
	git(t, a.dir, "", "push", "-q", "origin", "HEAD:main")
	head := git(t, a.dir, "", "rev-parse", "HEAD")

	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	mustShipit(t, a.dir, nil, "release")
	msg := git(t, origin, "", "log", "-1", "--format=%s", "main")
	if !strings.Contains(msg, "[skip ci]") {
		t.Errorf("the pin commit to the app's own repository lacks [skip ci]: %q", msg)
	}
	if parent := git(t, origin, "", "rev-parse", "main^"); parent != head {
		t.Errorf("the pin commit's parent is %s, want the released commit %s", parent, head)
	}
	if k := git(t, origin, "", "show", "main:k8s/overlays/prod/kustomization.yaml"); !strings.Contains(k, "- name: web") || !strings.Contains(k, "- name: worker") {
		t.Errorf("pins:\n%s", k)
	}
	if st := git(t, a.dir, "", "status", "--porcelain", "--untracked-files=no"); st != "" || git(t, a.dir, "", "rev-parse", "HEAD") != head {
		t.Errorf("release touched the work tree: %q", st)
	}
}
