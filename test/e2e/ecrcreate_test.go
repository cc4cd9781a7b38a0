package e2e

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestECRNothingCreatedBeforeGit: with create_repositories, a build
// refused for its git state (a tracked .shipit) creates no repository.
func TestECRNothingCreatedBeforeGit(t *testing.T) {
	t.Parallel()
	reg := os.Getenv("SHIPIT_TEST_ECR_REGISTRY")
	pw, err := os.ReadFile(os.Getenv("SHIPIT_TEST_ECR_PASSWORD_FILE"))
	if reg == "" || err != nil {
		t.Fatal("no ECR test registry")
	}
	api := &ecrStandIn{t: t, password: strings.TrimSpace(string(pw)), repos: map[string]bool{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	a := newApp(t)
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	cfg = strings.Replace(cfg, "registry: "+a.repo, "registry:\n  url: "+reg+"/gitteam\n  create_repositories: true", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg, ".shipit/x": "x"})
	git(t, a.dir, "", "add", "-f", ".shipit/x")
	git(t, a.dir, "", "commit", "-qam", "ecr")
	r := shipitRun(t, a.dir, append(a.env(), ecrEnv(t, srv.URL, true)...), "build", "--push", "--progress", "quiet")
	if r.code == 0 || !strings.Contains(r.stderr, "tracked by git") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.created) != 0 {
		t.Errorf("created %v for a build refused for its git state", api.created)
	}
	t.Logf("calls: %v", api.calls)
}
