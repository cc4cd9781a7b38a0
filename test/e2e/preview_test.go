package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

const ingressYAML = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  tls:
    - hosts: [shop.example.test]
      secretName: shop-tls
  rules:
    - host: shop.example.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
    - host: www.shop.example.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

// withPreviews gives the app's GitOps repository an Ingress and configures
// previews from staging (max 2).
func withPreviews(t testing.TB, a *app, bare, extra string) {
	t.Helper()
	work := filepath.Join(t.TempDir(), "w")
	git(t, "", "", "clone", "-q", bare, work)
	writeFiles(t, work, map[string]string{
		"base/kustomization.yaml": "resources: [namespace.yaml, deployment.yaml, job.yaml, ingress.yaml]\n",
		"base/ingress.yaml":       ingressYAML,
		// An environment that declares its namespace: a preview must not.
		"base/namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
	})
	git(t, work, "", "add", "-A")
	git(t, work, "", "commit", "-qm", "ingress")
	git(t, work, "", "push", "-q", "origin", "HEAD:main")
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	cfg += "  previews:\n    dir: previews\n    namespace: \"shop-{{.Name}}\"\n    host: \"{{.Name}}.preview.example.test\"\n    max: 2\n" + extra
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-05-06T07:09:40+02:00", "commit", "-qam", "previews")
}

// renderDir runs kubectl kustomize on a directory of the GitOps head.
func renderDir(t testing.TB, bare, dir string) []map[string]any {
	t.Helper()
	work := filepath.Join(t.TempDir(), "r")
	git(t, "", "", "clone", "-q", bare, work)
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(work, dir)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	var objs []map[string]any
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	return objs
}

// TestPreview: the GitOps side of previews, in full, without a cluster.
func TestPreview(t *testing.T) {
	t.Parallel()
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	a := newApp(t)
	withEnvironments(t, a, registry, bare, false)
	withPreviews(t, a, bare, "")

	// Staging is pinned by a release; then a pull request's build.
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	mustShipit(t, a.dir, nil, "release")
	staging := showFile(t, bare, "overlays/staging/kustomization.yaml")
	prod := showFile(t, bare, "overlays/prod/kustomization.yaml")
	pr := []string{"SHIPIT_TAG_PREFIX=pr-7-", a.env()[0]}
	mustShipit(t, a.dir, pr, "build", "--progress", "quiet")
	rec, _ := readRecord(t, a.dir)
	if !strings.HasPrefix(rec.Tag, "pr-7-") {
		t.Fatalf("the PR build is tagged %s", rec.Tag)
	}
	want := map[string]string{}
	for _, im := range rec.Images {
		want[im.Repository] = im.Repository + ":" + im.Tag + "@" + im.Digest
	}

	// A dry run changes nothing and shows the new folder.
	before := commits(t, bare)
	r := mustShipit(t, a.dir, nil, "preview", "up", "pr-7", "--dry-run")
	if len(commits(t, bare)) != len(before) || !strings.Contains(r.stdout, "+++ b/previews/pr-7/kustomization.yaml") {
		t.Errorf("dry run: %d commits, stdout:\n%s", len(commits(t, bare))-len(before), r.stdout)
	}

	r = mustShipit(t, a.dir, nil, "preview", "up", "pr-7", "--output", "json")
	var res struct {
		Name, Namespace, URL, Commit string
		Images                       []struct{ Name, Ref string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if res.URL != "https://pr-7.preview.example.test" || res.Namespace != "shop-pr-7" || res.Commit == "" || len(res.Images) != 2 {
		t.Errorf("preview up --output json: %s", r.stdout)
	}
	after := commits(t, bare)
	if len(after) != len(before)+1 {
		t.Fatalf("preview up made %d commits", len(after)-len(before))
	}
	if files := git(t, bare, "", "show", "--name-only", "--format=", "main"); files != "previews/pr-7/kustomization.yaml" {
		t.Errorf("the commit changed %q", files)
	}
	if showFile(t, bare, "overlays/staging/kustomization.yaml") != staging || showFile(t, bare, "overlays/prod/kustomization.yaml") != prod {
		t.Error("preview up changed an environment")
	}

	// The folder renders the PR build in every container, in its
	// namespace, with the preview's hosts.
	checkPreview := func(name string) {
		t.Helper()
		for _, o := range renderDir(t, bare, "previews/"+name) {
			md := o["metadata"].(map[string]any)
			if md["namespace"] != "shop-"+name {
				t.Errorf("%s %s is in namespace %v", o["kind"], md["name"], md["namespace"])
			}
			for _, list := range []string{"containers", "initContainers"} {
				for _, c := range byName(podSpec(o)[list]) {
					img := c["image"].(string)
					repo := img[:strings.LastIndex(img[:strings.Index(img+"@", "@")], ":")]
					if want[repo] != img {
						t.Errorf("%s/%s runs %s, want the PR build %s", md["name"], c["name"], img, want[repo])
					}
				}
			}
			if o["kind"] == "Ingress" {
				b, _ := json.Marshal(o["spec"])
				if strings.Count(string(b), name+".preview.example.test") != 3 || strings.Contains(string(b), "shop.example.test\"") {
					t.Errorf("Ingress hosts: %s", b)
				}
			}
		}
	}
	checkPreview("pr-7")

	// Again: no commit.
	r = mustShipit(t, a.dir, nil, "preview", "up", "pr-7")
	if len(commits(t, bare)) != len(after) || strings.TrimSpace(r.stdout) != "https://pr-7.preview.example.test" {
		t.Errorf("a repeat committed, or printed %q", r.stdout)
	}

	// Forward only: a newer commit's build moves the preview; then a build
	// of the older commit leaves it as it is, with a line and no commit.
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho newer\n"})
	git(t, a.dir, "2026-05-06T07:19:00+02:00", "commit", "-qam", "newer")
	mustShipit(t, a.dir, pr, "build", "--progress", "quiet")
	mustShipit(t, a.dir, nil, "preview", "up", "pr-7")
	newer := showFile(t, bare, "previews/pr-7/kustomization.yaml")
	git(t, a.dir, "", "checkout", "-q", "HEAD~1")
	mustShipit(t, a.dir, pr, "build", "--progress", "quiet")
	head := commits(t, bare)[0]
	if r := mustShipit(t, a.dir, nil, "preview", "up", "pr-7"); commits(t, bare)[0] != head || !strings.Contains(r.stderr, "keeps its images") ||
		showFile(t, bare, "previews/pr-7/kustomization.yaml") != newer {
		t.Errorf("an older build replaced a newer one, or said nothing:\n%s", r.stderr)
	}
	git(t, a.dir, "", "checkout", "-q", "main")

	// A second preview sits beside the first; list names both.
	mustShipit(t, a.dir, []string{"SHIPIT_TAG_PREFIX=pr-8-", a.env()[0]}, "build", "--progress", "quiet")
	rec, _ = readRecord(t, a.dir)
	for _, im := range rec.Images {
		want[im.Repository] = im.Repository + ":" + im.Tag + "@" + im.Digest
	}
	mustShipit(t, a.dir, nil, "preview", "up", "pr-8")
	checkPreview("pr-8")
	var list []struct{ Name, URL, Age string }
	if err := json.Unmarshal([]byte(mustShipit(t, a.dir, nil, "preview", "list", "--output", "json").stdout), &list); err != nil || len(list) != 2 ||
		list[0].Name != "pr-7" || list[1].Name != "pr-8" || list[1].URL != "https://pr-8.preview.example.test" {
		t.Errorf("preview list: %v %+v", err, list)
	}

	// max: 2 refuses a third, naming the two.
	head = commits(t, bare)[0]
	if r := shipitRun(t, a.dir, nil, "preview", "up", "pr-9"); r.code != 1 || !strings.Contains(r.stderr, "pr-7 (") || !strings.Contains(r.stderr, "pr-8 (") || commits(t, bare)[0] != head {
		t.Errorf("past max: exit %d: %s", r.code, r.stderr)
	}

	// Bad names and --wait without argocd: exit 2, nothing done.
	for _, args := range [][]string{{"up", "Bad_Name"}, {"up", "staging"}, {"up", "../x"}, {"up", strings.Repeat("a", 41)}, {"down", "a/b"}, {"up", "pr-7", "--wait"}, {"gc"}, {"gc", "--keep", "x", "--older-than", "1h"}, {"up"}} {
		if r := shipitRun(t, a.dir, nil, append([]string{"preview"}, args...)...); r.code != 2 {
			t.Errorf("preview %v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
	if commits(t, bare)[0] != head {
		t.Error("a refused command committed")
	}

	// down, and its repeat.
	mustShipit(t, a.dir, nil, "preview", "down", "pr-8")
	if _, err := gitMaybe(bare, "show", "main:previews/pr-8/kustomization.yaml"); err == nil {
		t.Error("pr-8 is still there")
	}
	head = commits(t, bare)[0]
	if r := mustShipit(t, a.dir, nil, "preview", "down", "pr-8"); commits(t, bare)[0] != head || !strings.Contains(r.stderr, "nothing to remove") {
		t.Errorf("a second down: %s", r.stderr)
	}

	// gc: a dry run lists; --keep removes the rest.
	if r := mustShipit(t, a.dir, nil, "preview", "gc", "--keep", "pr-1", "--dry-run"); strings.TrimSpace(r.stdout) != "pr-7" || commits(t, bare)[0] != head {
		t.Errorf("gc --dry-run: %q", r.stdout)
	}
	mustShipit(t, a.dir, nil, "preview", "gc", "--keep", "pr-1,pr-2")
	if out := git(t, bare, "", "ls-tree", "-r", "--name-only", "main", "previews"); out != "" {
		t.Errorf("after gc: %s", out)
	}
}
