package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// platformApp is a committed app of one image with no platforms, web,
// whose environments (YAML flow mappings, one a line) pin it in the
// GitOps repository bare.
func platformApp(t *testing.T, base, bare string, envs ...string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := "registry: " + uniqueRepo(t) + "\nimages:\n  web: {context: web, args: {BASE: \"" + base + "\"}}\n" +
		"deploy:\n  repo: " + bare + "\n  environments:\n"
	for _, e := range envs {
		cfg += "    - " + e + "\n"
	}
	writeFiles(t, dir, map[string]string{
		"shipit.yaml":    cfg,
		"web/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY id /id\n", "web/id": randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "app")
	return dir
}

// readKeptCheck is the app's kept platform check.
func readKeptCheck(t *testing.T, dir string) map[string]any {
	t.Helper()
	p := filepath.Join(dir, ".shipit", "platform-check.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("no kept check: %v", err)
	}
	var k map[string]any
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return k
}

// ageKeptCheck makes the app's kept platform check d older.
func ageKeptCheck(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	k := readKeptCheck(t, dir)
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(k["checked"]))
	if err != nil {
		t.Fatal(err)
	}
	k["checked"] = at.Add(-d).Format(time.RFC3339Nano)
	raw, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".shipit", "platform-check.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// releaseElsewhere releases, from a clone of dir (another checkout, as
// CI's), a new commit built with env.
func releaseElsewhere(t *testing.T, dir, date string, env []string, args ...string) {
	t.Helper()
	other := filepath.Join(t.TempDir(), "other")
	git(t, dir, "", "clone", "-q", dir, other)
	writeFiles(t, other, map[string]string{"web/id": randomSecret(t, "id2")})
	git(t, other, date, "commit", "-qam", "next")
	mustShipit(t, other, env, "build", "--progress", "quiet")
	mustShipit(t, other, nil, append([]string{"release"}, args...)...)
}

// TestPlatformCheckKept: a platform check that found the daemon's
// platform where staging runs is not done again by the next builds, which
// then read neither the GitOps repository nor the registry for it; one
// that could not compare is kept minutes; a release from this checkout
// drops it. A kept check expires, and a check that warned is done again on
// every build.
func TestPlatformCheckKept(t *testing.T) {
	t.Parallel()
	_, _, base := nodesEnv(t)
	bare := newGitOpsOverlays(t, map[string]string{"staging": "resources: [../../base]\n"})
	dir := platformApp(t, base, bare, "{name: staging, overlays: [overlays/staging]}")
	kept := filepath.Join(dir, ".shipit", "platform-check.json")
	// Nothing pinned yet: that check could not compare, and is kept as such.
	mustShipit(t, dir, nil, "build", "--progress", "quiet")
	if k := readKeptCheck(t, dir); k["verified"] != false {
		t.Errorf("before staging pinned anything: %v, want a check that could not compare", k)
	}
	if r := mustShipit(t, dir, nil, "-v", "build", "--progress", "quiet"); !strings.Contains(r.stderr, "platform check: nothing to compare, as a check") {
		t.Errorf("the check that could not compare was not taken:\n%s", r.stderr)
	}
	mustShipit(t, dir, nil, "release")
	if _, err := os.Stat(kept); err == nil {
		t.Error("the kept check outlived a release from this checkout")
	}
	// Staging runs this daemon's platform, linux/amd64.
	r := mustShipit(t, dir, nil, "build", "--progress", "quiet")
	if strings.Contains(r.stderr, "has no platforms") {
		t.Fatalf("a warning for a build of staging's own platform:\n%s", r.stderr)
	}
	if k := readKeptCheck(t, dir); k["verified"] != true {
		t.Fatalf("after a check that found no mismatch: %v, want it kept as verified", k)
	}
	// The GitOps repository is not read again: gone, it is not missed.
	if err := os.Rename(bare, bare+".moved"); err != nil {
		t.Fatal(err)
	}
	r = mustShipit(t, dir, nil, "-v", "build", "--progress", "quiet")
	if !strings.Contains(r.stderr, "platform check: no mismatch, as a check") || strings.Contains(r.stderr, "gitops.git") {
		t.Errorf("the kept check was not taken, or the GitOps repository was read:\n%s", r.stderr)
	}
	if err := os.Rename(bare+".moved", bare); err != nil {
		t.Fatal(err)
	}
	// Another checkout releases an arm64 build to staging. Once this
	// checkout's kept check is older than shipit keeps one, the check is
	// done again, and a check that warns is done on every build.
	releaseElsewhere(t, dir, "2026-05-06T09:00:00Z", []string{"SHIPIT_PLATFORMS=linux/arm64"})
	ageKeptCheck(t, dir, 13*time.Hour)
	for i := range 2 {
		r = mustShipit(t, dir, nil, "build", "--progress", "quiet")
		if !strings.Contains(r.stderr, "image web has no platforms, so it was built for this daemon's own, linux/amd64; but staging runs linux/arm64") {
			t.Errorf("build %d after the kept check expired: no warning:\n%s", i+1, r.stderr)
		}
	}
}

// TestPlatformCheckClusterUnanswered: a build whose cluster did not answer
// compared only the pinned release, so its "no mismatch" is no check of
// the nodes: once the cluster answers with nodes of another platform, the
// next build after the short keep warns. The cluster is a stand-in of
// the Kubernetes API on loopback: no arm64 node runs here (kwok's
// simulated ones are not counted), and a cluster that answers 503 and
// then lists one is what the test is about.
func TestPlatformCheckClusterUnanswered(t *testing.T) {
	t.Parallel()
	_, _, base := nodesEnv(t)
	var up atomic.Bool
	kube := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"n1"},"status":{"nodeInfo":{"operatingSystem":"linux","architecture":"arm64"}}}]}`)
	}))
	defer kube.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "+kube.URL+"}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + kc}
	bare := newGitOpsOverlays(t, map[string]string{"staging": "resources: [../../base]\n"})
	dir := platformApp(t, base, bare, "{name: staging, overlays: [overlays/staging], argocd: {applications: [web]}}")
	// Staging pins a two-platform image.
	mustShipit(t, dir, append(env, "SHIPIT_PLATFORMS=linux/amd64,linux/arm64"), "build", "--progress", "quiet")
	mustShipit(t, dir, env, "release")
	// The cluster does not answer: the pinned release alone is compared,
	// which is no check of the nodes: it is kept as one that could not
	// compare, for minutes.
	mustShipit(t, dir, env, "build", "--progress", "quiet")
	if k := readKeptCheck(t, dir); k["verified"] != false {
		t.Fatalf("the check with the cluster down: %v, want one that could not compare", k)
	}
	// The cluster answers, its nodes arm64 only: once that keep is over,
	// the build warns.
	up.Store(true)
	ageKeptCheck(t, dir, 11*time.Minute)
	r := mustShipit(t, dir, env, "build", "--progress", "quiet")
	if !strings.Contains(r.stderr, "but the nodes of staging's cluster") {
		t.Errorf("cluster up, nodes arm64, daemon amd64: no warning:\n%s", r.stderr)
	}
}

// TestPlatformCheckKeyed: a kept check is for its configuration: once the
// first environment is another one, the check is done again.
func TestPlatformCheckKeyed(t *testing.T) {
	t.Parallel()
	_, _, base := nodesEnv(t)
	bare := newGitOpsOverlays(t, map[string]string{"staging": "resources: [../../base]\n", "prod": "resources: [../../base]\n"})
	staging, prod := "{name: staging, overlays: [overlays/staging]}", "{name: prod, overlays: [overlays/prod]}"
	dir := platformApp(t, base, bare, staging, prod)
	mustShipit(t, dir, nil, "build", "--progress", "quiet")
	mustShipit(t, dir, nil, "release")
	mustShipit(t, dir, nil, "build", "--progress", "quiet")
	if k := readKeptCheck(t, dir); k["verified"] != true {
		t.Fatalf("after a check that found no mismatch: %v", k)
	}
	// Another checkout releases an arm64 build to prod (a release from this
	// one would drop the kept check), and prod becomes the first
	// environment.
	releaseElsewhere(t, dir, "2026-05-06T08:30:00Z", []string{"SHIPIT_PLATFORMS=linux/arm64"}, "--env", "prod")
	cfg := strings.Replace(mustRead(t, filepath.Join(dir, "shipit.yaml")), "    - "+staging+"\n    - "+prod+"\n", "    - "+prod+"\n    - "+staging+"\n", 1)
	writeFiles(t, dir, map[string]string{"shipit.yaml": cfg})
	git(t, dir, "2026-05-06T09:00:00Z", "commit", "-qam", "prod first")
	r := mustShipit(t, dir, nil, "build", "--progress", "quiet")
	if !strings.Contains(r.stderr, "built for this daemon's own, linux/amd64; but prod runs linux/arm64") {
		t.Errorf("the kept check of staging was taken for prod:\n%s", r.stderr)
	}
}
