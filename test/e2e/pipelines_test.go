package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ciTool is a CI checker ci/testenv.sh installs (ci/npm.sh); under CI it
// must be there.
func ciTool(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: ci/testenv.sh up installs the CI checkers (ci/npm.sh)", env)
		}
		t.Skipf("%s is not set: run ci/testenv.sh up", env)
	}
	return p
}

// goApp is a realistic Go service with its own Dockerfile (on the test
// base image), its tests, a GitOps remote (the app's own origin, which
// Argo CD would sync), and shipit init's pipeline for ci, configured for
// this machine: no Argo CD Applications, so nothing waits for a cluster.
func goApp(t *testing.T, ci, bin string) (dir, bare string) {
	t.Helper()
	bare = filepath.Join(t.TempDir(), "hello.git")
	git(t, "", "", "init", "-q", "--bare", "-b", "main", bare)
	dir = filepath.Join(t.TempDir(), "hello")
	writeFiles(t, dir, map[string]string{
		"go.mod":       "module example.com/hello\n\ngo 1.22\n",
		"main.go":      "package main\n\nimport \"fmt\"\n\nfunc greeting() string { return \"hello\" }\n\nfunc main() { fmt.Println(greeting()) }\n",
		"main_test.go": "package main\n\nimport \"testing\"\n\nfunc TestGreeting(t *testing.T) {\n\tif greeting() != \"hello\" {\n\t\tt.Fatal(greeting())\n\t}\n}\n",
		"Dockerfile":   "FROM " + base + "\nCOPY main.go /srv/main.go\nRUN echo built > /srv/built\nEXPOSE 8080\nCMD [\"cat\", \"/srv/main.go\"]\n",
		".gitignore":   "/.gitlab-ci-local/\n",
		"fixture-id":   randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "remote", "add", "origin", bare)
	git(t, dir, commitDate, "add", "-A")
	git(t, dir, commitDate, "commit", "-qm", "hello service")
	git(t, dir, "", "push", "-q", "origin", "main")
	git(t, dir, "", "remote", "set-head", "origin", "main")

	cmd := exec.Command(bin, "init", "--ci", ci, "--registry", uniqueRepo(t))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shipit init --ci %s: %v\n%s", ci, err, out)
	}
	cfg := mustRead(t, filepath.Join(dir, "shipit.yaml"))
	cfg = regexp.MustCompile(`(?m)^\s+argocd: .*\n`).ReplaceAllString(cfg, "")
	writeFiles(t, dir, map[string]string{"shipit.yaml": cfg})
	git(t, dir, "2026-05-06T07:09:09+02:00", "add", "-A")
	git(t, dir, "2026-05-06T07:09:09+02:00", "commit", "-qm", "shipit init --ci "+ci)
	git(t, dir, "", "push", "-q", "origin", "main")
	return dir, bare
}

// gitlabCILocal runs gitlab-ci-local in dir, jobs on this machine, with
// the template's own switches pointed at the test environment: shipit is
// the binary under test and BuildKit the test daemon.
func gitlabCILocal(t *testing.T, dir string, vars []string, args ...string) string {
	t.Helper()
	tool := ciTool(t, "SHIPIT_TEST_GITLAB_CI_LOCAL")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	all := []string{"--force-shell-executor", "--shell-executor-no-image", "--no-color",
		"--variable", "SHIPIT_BIN=" + shipit, "--variable", "BUILDKIT_HOST=" + os.Getenv("BUILDKIT_HOST"),
		"--variable", "SHIPIT_WAIT="}
	for _, v := range vars {
		all = append(all, "--variable", v)
	}
	cmd := exec.CommandContext(ctx, tool, append(all, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gitlab-ci-local %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// pinned is the tag an overlay of the GitOps head pins, "" for none.
func pinned(t *testing.T, bare, env string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)newTag: "?([^"\s]+)`).FindStringSubmatch(showFile(t, bare, "k8s/overlays/"+env+"/kustomization.yaml"))
	if m == nil {
		return ""
	}
	return m[1]
}

// TestGitLabPipeline runs the pipeline init writes for GitLab under
// gitlab-ci-local (which checks it against GitLab's schema first): the
// app's tests, the build, the release to staging, production only by its
// manual job, and a merge request's review app up and down.
func TestGitLabPipeline(t *testing.T) {
	dir, bare := goApp(t, "gitlab", shipit)
	want := strings.TrimSpace(mustShipit(t, dir, nil, "tag").stdout)

	out := gitlabCILocal(t, dir, nil)
	for _, s := range []string{"json schema validated", "$ go test ./...", "PASS  test", "PASS  build", "PASS  release"} {
		if !strings.Contains(out, s) {
			t.Errorf("the pipeline's output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "PASS  production") || strings.Contains(out, "PASS  review") {
		t.Errorf("the pipeline ran production or a review app on its own:\n%s", out)
	}
	if got := pinned(t, bare, "staging"); got != want {
		t.Errorf("staging pins %q after the pipeline, want %s", got, want)
	}
	if got := pinned(t, bare, "production"); got == want {
		t.Errorf("production is pinned to %s before its manual job ran", got)
	}

	out = gitlabCILocal(t, dir, nil, "production")
	if !strings.Contains(out, "PASS  production") {
		t.Errorf("production job:\n%s", out)
	}
	if got := pinned(t, bare, "production"); got != want {
		t.Errorf("production pins %q after its manual job, want %s", got, want)
	}

	// A merge request from a branch of the project: its review app.
	git(t, dir, "", "checkout", "-q", "-b", "feature")
	writeFiles(t, dir, map[string]string{"main.go": strings.Replace(mustRead(t, filepath.Join(dir, "main.go")), `"hello"`, `"hello"+""`, 1)})
	git(t, dir, "2026-05-06T08:00:00+02:00", "commit", "-qam", "feature")
	mr := []string{"CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=7", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID=1", "CI_PROJECT_ID=1"}
	out = gitlabCILocal(t, dir, mr, "review")
	if !strings.Contains(out, "PASS  review") {
		t.Errorf("review job:\n%s", out)
	}
	if ls := git(t, bare, "", "ls-tree", "--name-only", "main", "k8s/previews/"); !strings.Contains(ls, "pr-7") {
		t.Errorf("no preview pr-7 in the GitOps head after the review job: %q", ls)
	}
	out = gitlabCILocal(t, dir, mr, "review-stop")
	if !strings.Contains(out, "PASS  review-stop") {
		t.Errorf("review-stop job:\n%s", out)
	}
	if ls := git(t, bare, "", "ls-tree", "--name-only", "main", "k8s/previews/"); strings.Contains(ls, "pr-7") {
		t.Errorf("preview pr-7 is still in the GitOps head after review-stop: %q", ls)
	}
	// A fork's merge request: no job holding a role or a token runs.
	fork := []string{"CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=8", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID=99", "CI_PROJECT_ID=1"}
	out = gitlabCILocal(t, dir, fork)
	if strings.Contains(out, "review") || strings.Contains(out, "PASS  build") || !strings.Contains(out, "PASS  test") {
		t.Errorf("a fork's merge request ran more than its tests:\n%s", out)
	}
}

// cacheDigest is the digest of repo's tag in the test registry, "" when it
// has none.
func cacheDigest(t *testing.T, repo, tag string) string {
	t.Helper()
	host, path, _ := strings.Cut(repo, "/")
	req, err := http.NewRequestWithContext(context.Background(), http.MethodHead, "http://"+host+"/v2/"+path+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s:%s: %s", repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// TestPrefixedBuildKeepsTheReleaseCache: a pull request's build (tag
// prefix pr-9-) reads the release cache but writes its own; the cache
// main's builds import keeps its digest, and main's next build imports it.
func TestPrefixedBuildKeepsTheReleaseCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo := uniqueRepo(t)
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + repo + "\ncache: {export: registry}\nimages:\n  web: {context: .}\n",
		"Dockerfile":  "FROM " + base + "\nCOPY id /id\nRUN cat /id > /copy\n",
		"id":          randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, commitDate, "add", "-A")
	git(t, dir, commitDate, "commit", "-qm", "web")
	mustShipit(t, dir, nil, "build", "--push", "--progress", "plain")
	release := cacheDigest(t, repo+"/web", "buildcache")
	if release == "" {
		t.Fatal("main's build exported no buildcache")
	}

	writeFiles(t, dir, map[string]string{"id": randomSecret(t, "pr")})
	git(t, dir, "2026-05-06T07:10:00+02:00", "commit", "-qam", "a pull request")
	pr := mustShipit(t, dir, []string{"SHIPIT_TAG_PREFIX=pr-9-"}, "build", "--push", "--progress", "plain")
	if got := cacheDigest(t, repo+"/web", "buildcache"); got != release {
		t.Errorf("the pr-9- build replaced buildcache: %s, was %s", got, release)
	}
	if cacheDigest(t, repo+"/web", "buildcache-pr-9") == "" {
		t.Errorf("the pr-9- build exported no cache of its own (buildcache-pr-9):\n%s", pr.stderr)
	}
	if !strings.Contains(pr.stderr, repo+"/web:buildcache") {
		t.Errorf("the pr-9- build did not import the release cache:\n%s", pr.stderr)
	}

	git(t, dir, "", "checkout", "-q", "-b", "next")
	git(t, dir, "2026-05-06T07:11:00+02:00", "commit", "-q", "--allow-empty", "-m", "main again")
	next := mustShipit(t, dir, nil, "build", "--push", "--progress", "plain")
	if !strings.Contains(next.stderr, "importing cache manifest from "+repo+"/web:buildcache") {
		t.Errorf("main's next build did not import buildcache:\n%s", next.stderr)
	}
}
