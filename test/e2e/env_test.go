package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// withEnvironments points an app at a GitOps repository with a staging and
// a production environment; applications, when set, go under staging's
// and production's argocd.
func withEnvironments(t testing.TB, a *app, reg, bare string, argo bool) {
	t.Helper()
	withDeploy(t, a, reg, bare)
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	envs := "  environments:\n    - name: staging\n      overlays: [overlays/staging]\n"
	if argo {
		envs += "      argocd: {applications: [shop-staging]}\n"
	}
	envs += "    - name: production\n      overlays: [overlays/prod]\n"
	if argo {
		envs += "      argocd: {applications: [shop-production]}\n"
	}
	cfg = strings.Replace(cfg, "  overlays: [overlays/prod]\n", envs, 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-05-06T07:09:30+02:00", "commit", "-qam", "environments")
}

// entryOf is the images entry of name in a kustomization, as text.
func entryOf(k, name string) string {
	i := strings.Index(k, "- name: "+name)
	if i < 0 {
		return ""
	}
	rest := k[i+len("- name: "+name):]
	if j := strings.Index(rest, "\n  - name:"); j >= 0 {
		rest = rest[:j]
	}
	return strings.TrimSpace(rest)
}

// TestEnvironmentsPromote: release pins staging only; promote copies
// staging's exact pins to production in one commit; forward only; pin
// names its environment.
func TestEnvironmentsPromote(t *testing.T) {
	t.Parallel()
	proxy := newCountingProxy(t)
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	a := newApp(t)
	withEnvironments(t, a, proxy.host, bare, false)

	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	tagA := a.tagNow(t)
	before := commits(t, bare)
	mustShipit(t, a.dir, nil, "release")
	if got := commits(t, bare); len(got) != len(before)+1 {
		t.Fatalf("release made %d commits", len(got)-len(before))
	}
	staging := showFile(t, bare, "overlays/staging/kustomization.yaml")
	if !strings.Contains(staging, tagA) || strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), tagA) {
		t.Fatalf("release must change staging only:\n%s", staging)
	}

	// A dry run of the promotion changes nothing.
	head := commits(t, bare)[0]
	r := mustShipit(t, a.dir, nil, "promote", "production", "--dry-run")
	if commits(t, bare)[0] != head || !strings.Contains(r.stdout, "+    newTag: \""+tagA+"\"") {
		t.Errorf("promote --dry-run: moved the branch, or no diff:\n%s", r.stdout)
	}

	// The promotion: production gets staging's exact newName, newTag and
	// digest, in one commit; one registry request per image.
	proxy.reset()
	r = mustShipit(t, a.dir, nil, "promote", "production")
	prod := showFile(t, bare, "overlays/prod/kustomization.yaml")
	staging = showFile(t, bare, "overlays/staging/kustomization.yaml")
	for _, img := range []string{"web", "worker"} {
		if s, p := entryOf(staging, img), entryOf(prod, img); s == "" || s != p {
			t.Errorf("%s: production pins\n%s\nstaging pins\n%s", img, p, s)
		}
	}
	if got := commits(t, bare); len(got) != len(before)+2 {
		t.Errorf("promote made %d commits", len(got)-len(before)-1)
	}
	msg := git(t, bare, "", "log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "promote staging to production") || !strings.Contains(msg, tagA) || !strings.Contains(msg, "sha256:") {
		t.Errorf("promote commit message:\n%s", msg)
	}
	if n := proxy.requests.Load(); n > 2 {
		t.Errorf("%d registry requests for two images", n)
	}
	// A second promotion has nothing to do.
	mustShipit(t, a.dir, nil, "promote", "production")
	if got := commits(t, bare); len(got) != len(before)+2 {
		t.Error("a second promote committed")
	}

	// A newer release moves staging only.
	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho B\n"})
	git(t, a.dir, "2026-05-06T08:00:00Z", "commit", "-qam", "B")
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	tagB := a.tagNow(t)
	mustShipit(t, a.dir, nil, "release")
	if !strings.Contains(showFile(t, bare, "overlays/staging/kustomization.yaml"), tagB) || strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), tagB) {
		t.Error("a newer release did not move staging only")
	}
	mustShipit(t, a.dir, nil, "promote", "production")
	if !strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), tagB) {
		t.Error("production did not get B")
	}

	// pin without --env is bad usage with several environments.
	if r := shipitRun(t, a.dir, nil, "pin", tagA); r.code != 2 || !strings.Contains(r.stderr, "--env") {
		t.Errorf("pin without --env: exit %d: %s", r.code, r.stderr)
	}
	// Roll staging back to A; promoting then must not move production back.
	mustShipit(t, a.dir, nil, "pin", tagA, "--env", "staging")
	headBefore := commits(t, bare)[0]
	r = mustShipit(t, a.dir, nil, "promote", "production")
	if commits(t, bare)[0] != headBefore || !strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), tagB) {
		t.Errorf("promote moved production backwards:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "only move forward") {
		t.Errorf("no line says why production stays:\n%s", r.stderr)
	}

	// --wait without argocd.applications: bad usage.
	for _, args := range [][]string{{"release", "--wait"}, {"promote", "production", "--wait=1m"}, {"pin", tagB, "--env", "staging", "--wait"}} {
		if r := shipitRun(t, a.dir, nil, args...); r.code != 2 || !strings.Contains(r.stderr, "argocd.applications") {
			t.Errorf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	// Status groups by environment.
	var rows []struct{ Environment, Overlay, Image, PinnedTag, State string }
	if err := json.Unmarshal([]byte(mustShipit(t, a.dir, nil, "status", "-o", "json", "--cluster=false").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0].Environment != "staging" || rows[3].Environment != "production" {
		t.Errorf("status rows: %+v", rows)
	}
}

// tagNow is HEAD's release tag, as shipit tag prints it.
func (a *app) tagNow(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(mustShipit(t, a.dir, nil, "tag").stdout)
}

// TestPromoteDisagreement: a source whose overlays disagree is refused.
func TestPromoteDisagreement(t *testing.T) {
	t.Parallel()
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML, "staging2": strings.Replace(overlayYAML, "20200101-000000-0000000", "20200102-000000-0000000", 1)})
	a := newApp(t)
	withEnvironments(t, a, registry, bare, false)
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "overlays: [overlays/staging]", "overlays: [overlays/staging, overlays/staging2]", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	r := shipitRun(t, a.dir, nil, "promote", "production", "--image", "web")
	if r.code != 1 || !strings.Contains(r.stderr, "disagree on web") || !strings.Contains(r.stderr, "overlays/staging2") {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
	if r := shipitRun(t, a.dir, nil, "promote", "staging"); r.code != 2 {
		t.Errorf("promoting the first environment: exit %d: %s", r.code, r.stderr)
	}
	if r := shipitRun(t, a.dir, nil, "promote", "qa"); r.code != 2 || !strings.Contains(r.stderr, "staging, production") {
		t.Errorf("an unknown environment: exit %d: %s", r.code, r.stderr)
	}
}
