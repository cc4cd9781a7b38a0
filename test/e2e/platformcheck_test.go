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
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + uniqueRepo(t) + "\nimages:\n  web: {context: web, args: {BASE: \"" + base + "\"}}\n" +
			"deploy:\n  repo: " + bare + "\n  environments:\n    - {name: staging, overlays: [overlays/staging], argocd: {applications: [web]}}\n",
		"web/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY id /id\n", "web/id": randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "app")
	// Staging pins a two-platform image.
	mustShipit(t, dir, append(env, "SHIPIT_PLATFORMS=linux/amd64,linux/arm64"), "build", "--progress", "quiet")
	mustShipit(t, dir, env, "release")
	// The cluster does not answer: the pinned release alone is compared,
	// which is no check of the nodes: it is kept as one that could not
	// compare, for minutes.
	mustShipit(t, dir, env, "build", "--progress", "quiet")
	kept := filepath.Join(dir, ".shipit", "platform-check.json")
	raw, err := os.ReadFile(kept)
	if err != nil {
		t.Fatalf("no kept check: %v", err)
	}
	var k map[string]any
	if err := json.Unmarshal(raw, &k); err != nil || k["verified"] != false {
		t.Fatalf("the check with the cluster down: %s (%v), want one that could not compare", raw, err)
	}
	// The cluster answers, its nodes arm64 only: once that keep is over,
	// the build warns.
	up.Store(true)
	k["checked"] = time.Now().Add(-11 * time.Minute).UTC().Format(time.RFC3339Nano)
	if raw, err = json.Marshal(k); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kept, raw, 0o644); err != nil {
		t.Fatal(err)
	}
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
	dir := t.TempDir()
	repo := uniqueRepo(t)
	cfg := func(first, second string) string {
		return "registry: " + repo + "\nimages:\n  web: {context: web, args: {BASE: \"" + base + "\"}}\n" +
			"deploy:\n  repo: " + bare + "\n  environments:\n    - {name: " + first + ", overlays: [overlays/" + first + "]}\n    - {name: " + second + ", overlays: [overlays/" + second + "]}\n"
	}
	writeFiles(t, dir, map[string]string{
		"shipit.yaml":    cfg("staging", "prod"),
		"web/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY id /id\n", "web/id": randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "app")
	mustShipit(t, dir, nil, "build", "--progress", "quiet")
	mustShipit(t, dir, nil, "release")
	mustShipit(t, dir, nil, "build", "--progress", "quiet")
	if _, err := os.Stat(filepath.Join(dir, ".shipit", "platform-check.json")); err != nil {
		t.Fatal(err)
	}
	// Another checkout releases an arm64 build to prod (a release from
	// this one would drop the kept check).
	other := filepath.Join(t.TempDir(), "other")
	git(t, dir, "", "clone", "-q", dir, other)
	writeFiles(t, other, map[string]string{"web/id": randomSecret(t, "id2")})
	git(t, other, "2026-05-06T08:30:00Z", "commit", "-qam", "next")
	mustShipit(t, other, []string{"SHIPIT_PLATFORMS=linux/arm64"}, "build", "--progress", "quiet")
	mustShipit(t, other, nil, "release", "--env", "prod")
	// prod is now the first environment.
	writeFiles(t, dir, map[string]string{"shipit.yaml": cfg("prod", "staging")})
	git(t, dir, "2026-05-06T09:00:00Z", "commit", "-qam", "prod first")
	r := mustShipit(t, dir, nil, "-v", "build", "--progress", "quiet")
	if !strings.Contains(r.stderr, "built for this daemon's own, linux/amd64; but prod runs linux/arm64") {
		t.Errorf("the kept check of staging was taken for prod:\n%s", r.stderr)
	}
}
