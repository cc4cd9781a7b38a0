package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/shipit-dev/shipit/ci/templates"
)

// tree maps every file under dir (but .git) to its content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInitRails(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "shop")
	writeFiles(t, dir, map[string]string{
		"Gemfile":            "source 'https://rubygems.org'\ngem 'rails', '~> 7.2'\n",
		"Gemfile.lock":       "GEM\n",
		"config/routes.rb":   "Rails.application.routes.draw do\nend\n",
		"README.md":          "shop\n",
		"k8s/base/notes.txt": "mine\n",
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, "", "commit", "-qm", "rails app")

	r := mustShipit(t, dir, nil, "init", "--dry-run")
	if !strings.Contains(r.stdout, "shipit.yaml") || !strings.Contains(r.stdout, "k8s/overlays/production/kustomization.yaml") {
		t.Errorf("dry run lists:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "shipit.yaml")); err == nil {
		t.Fatal("a dry run wrote shipit.yaml")
	}

	mustShipit(t, dir, nil, "init", "--registry", registry+"/shop")
	files := tree(t, dir)
	for _, want := range []string{"shipit.yaml", "Dockerfile", "docker/nginx/Dockerfile", "k8s/base/deployment.yaml", "k8s/base/service.yaml",
		"k8s/base/migrate-job.yaml", "k8s/overlays/staging/kustomization.yaml", "k8s/overlays/production/kustomization.yaml",
		"k8s/argocd/production.yaml", ".github/workflows/shipit.yml", ".github/workflows/preview.yml", "k8s/argocd/previews.yaml", "k8s/base/ingress.yaml"} {
		if _, ok := files[want]; !ok {
			t.Errorf("init did not write %s", want)
		}
	}
	if files["k8s/base/notes.txt"] != "mine\n" || files["README.md"] != "shop\n" {
		t.Error("init changed a file that was there")
	}
	if !strings.Contains(files["Dockerfile"], "FROM ruby:${RUBY_VERSION}-alpine") {
		t.Error("the Rails Dockerfile is not the template")
	}
	// The workflow is the (actionlint-checked) template, but for setup-ruby's
	// version: the app has no .ruby-version.
	tmpl, _ := templates.FS.ReadFile("github-actions.yml")
	want := strings.Replace(string(tmpl), "          bundler-cache: true\n", "          ruby-version: \"3.4\"   # the app has no .ruby-version\n          bundler-cache: true\n", 1)
	if files[".github/workflows/shipit.yml"] != want {
		t.Errorf("the Rails workflow is not the template:\n%s", files[".github/workflows/shipit.yml"])
	}
	lintWorkflow(t, filepath.Join(dir, ".github/workflows/shipit.yml"))

	// The overlays render, with the migration Job and the Deployment on the app image.
	for _, env := range []string{"staging", "production"} {
		out, err := exec.Command("kubectl", "kustomize", filepath.Join(dir, "k8s/overlays", env)).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", env, err, out)
		}
		s := string(out)
		if strings.Count(s, "image: "+registry+"/shop/app") != 4 || !strings.Contains(s, "image: "+registry+"/shop/nginx") || !strings.Contains(s, "kind: Job") {
			t.Errorf("%s renders:\n%s", env, s)
		}
	}

	// shipit accepts it, and a second run changes nothing.
	if r := mustShipit(t, dir, nil, "tag"); !strings.HasSuffix(strings.TrimSpace(r.stdout), "-dirty") {
		t.Errorf("shipit tag: %s", r.stdout)
	}
	before := tree(t, dir)
	r = mustShipit(t, dir, nil, "init")
	if strings.TrimSpace(r.stdout) != "" || !strings.Contains(r.stderr, "skipped shipit.yaml (it exists)") {
		t.Errorf("second run: stdout %q stderr %s", r.stdout, r.stderr)
	}
	after := tree(t, dir)
	if len(before) != len(after) {
		t.Errorf("second run changed the tree: %d files, then %d", len(before), len(after))
	}
	for p, c := range before {
		if after[p] != c {
			t.Errorf("second run changed %s", p)
		}
	}
}

func TestInitGoAndNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"go.mod": "module example.com/svc\n\ngo 1.26\n", "main.go": "package main\nfunc main() {}\n"})
	mustShipit(t, dir, nil, "init", "--image-updater", "--registry", registry+"/svc")
	files := tree(t, dir)
	if !strings.Contains(files["Dockerfile"], "FROM golang:${GO_VERSION}-alpine") || !strings.Contains(files["shipit.yaml"], "mode: image-updater") || files["k8s/argocd/image-updater.yaml"] == "" {
		t.Errorf("go project: Dockerfile %q\nshipit.yaml %s", files["Dockerfile"], files["shipit.yaml"])
	}
	lintWorkflow(t, filepath.Join(dir, ".github/workflows/shipit.yml"))
	// updater-config's defaults are the Application init wrote; init's
	// write-back target is the overlay from the repository's root.
	upd := mustShipit(t, dir, nil, "updater-config").stdout
	want := tree(t, dir)["k8s/argocd/image-updater.yaml"]
	for _, s := range []string{`namePattern: "` + filepath.Base(dir) + `-staging"`, "kustomization:/k8s/overlays/staging"} {
		if !strings.Contains(upd, s) || !strings.Contains(want, s) {
			t.Errorf("updater-config and init's image-updater.yaml do not both say %s:\n%s\n%s", s, upd, want)
		}
	}
	dockerfileOnly := t.TempDir()
	writeFiles(t, dockerfileOnly, map[string]string{"Dockerfile": "FROM scratch AS build\nFROM scratch\nEXPOSE 9090/tcp\n"})
	mustShipit(t, dockerfileOnly, nil, "init")
	files = tree(t, dockerfileOnly)
	if strings.Contains(files["shipit.yaml"], "target:") || !strings.Contains(files["k8s/base/deployment.yaml"], "containerPort: 9090") {
		t.Errorf("a Dockerfile with an unnamed last stage and EXPOSE 9090:\n%s\n%s", files["shipit.yaml"], files["k8s/base/deployment.yaml"])
	}
	lintWorkflow(t, filepath.Join(dockerfileOnly, ".github/workflows/shipit.yml"))
	if r := shipitRun(t, t.TempDir(), nil, "init"); r.code != 2 || !strings.Contains(r.stderr, "Gemfile, go.mod or Dockerfile") {
		t.Errorf("empty directory: exit %d: %s", r.code, r.stderr)
	}
}

// TestInitBranch: init writes the app's own branch, origin's default
// (origin/HEAD) else the one checked out, everywhere a branch is named:
// deploy.branch, the workflow's push trigger, the Applications and the
// previews ApplicationSet.
func TestInitBranch(t *testing.T) {
	t.Parallel()
	origin := filepath.Join(t.TempDir(), "osm.git")
	git(t, "", "", "init", "-q", "--bare", "-b", "master", origin)
	seed := filepath.Join(t.TempDir(), "seed")
	writeFiles(t, seed, map[string]string{"Gemfile": "gem 'rails'\ngem 'pg'\n"})
	git(t, seed, "", "init", "-q", "-b", "master")
	git(t, seed, "", "add", "-A")
	git(t, seed, "", "commit", "-qm", "app")
	git(t, seed, "", "push", "-q", origin, "master")
	dir := filepath.Join(t.TempDir(), "osm")
	git(t, "", "", "clone", "-q", origin, dir)
	git(t, dir, "", "checkout", "-q", "-b", "feature") // origin/HEAD wins over the branch checked out
	mustShipit(t, dir, nil, "init")
	files := tree(t, dir)
	for f, want := range map[string]string{
		"shipit.yaml":                  "  branch: master\n",
		".github/workflows/shipit.yml": "    branches: [master]\n",
		"k8s/argocd/staging.yaml":      "targetRevision: master\n",
		"k8s/argocd/production.yaml":   "targetRevision: master\n",
		"k8s/argocd/previews.yaml":     "        revision: master\n",
	} {
		if !strings.Contains(files[f], want) || strings.Contains(files[f], ": main") || strings.Contains(files[f], "[main]") {
			t.Errorf("%s does not say %q:\n%s", f, want, files[f])
		}
	}
	lintWorkflow(t, filepath.Join(dir, ".github/workflows/shipit.yml"))

	// No origin: the branch checked out.
	local := t.TempDir()
	writeFiles(t, local, map[string]string{"go.mod": "module example.com/x\n\ngo 1.26\n"})
	git(t, local, "", "init", "-q", "-b", "trunk")
	mustShipit(t, local, nil, "init")
	if s := tree(t, local)["shipit.yaml"]; !strings.Contains(s, "  branch: trunk\n") {
		t.Errorf("shipit.yaml without origin:\n%s", s)
	}
}

// TestInitHelpListsItsFiles: every top-level file or folder init writes
// for a Rails app is in init --help.
func TestInitHelpListsItsFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Gemfile": "gem 'rails'\ngem 'pg'\ngem 'sidekiq'\n"})
	help := mustShipit(t, dir, nil, "init", "--help").stdout
	for _, p := range strings.Fields(mustShipit(t, dir, nil, "init", "--dry-run").stdout) {
		name := p
		if i := strings.Index(p, "/"); i >= 0 && !strings.HasPrefix(p, ".github/") && !strings.HasPrefix(p, "docker/") {
			name = p[:i+1] // k8s/base/deployment.yaml: k8s/base/ is listed
			if j := strings.Index(p[i+1:], "/"); j >= 0 {
				name = p[:i+1+j+1]
			}
		}
		if !strings.Contains(help, name) {
			t.Errorf("init writes %s, and --help does not list %s:\n%s", p, name, help)
		}
	}
}

// TestInitInAMonorepo: init in services/shop writes Argo CD paths from the
// repository's root; joined as Argo CD and the Image Updater join them,
// they name the overlays init wrote.
func TestInitInAMonorepo(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	writeFiles(t, repo, map[string]string{"README.md": "monorepo\n", "services/shop/go.mod": "module example.com/shop\n\ngo 1.26\n"})
	git(t, repo, "", "init", "-q", "-b", "main")
	shop := filepath.Join(repo, "services", "shop")
	mustShipit(t, shop, nil, "init", "--image-updater")
	files := tree(t, shop)
	for _, env := range []string{"staging", "production"} {
		var app map[string]any
		if err := yaml.Unmarshal([]byte(files["k8s/argocd/"+env+".yaml"]), &app); err != nil {
			t.Fatal(err)
		}
		p, _ := app["spec"].(map[string]any)["source"].(map[string]any)["path"].(string)
		if _, err := os.Stat(filepath.Join(repo, p, "kustomization.yaml")); err != nil || p != "services/shop/k8s/overlays/"+env {
			t.Errorf("%s's Application syncs %q: %v", env, p, err)
		}
	}
	var upd map[string]any
	if err := yaml.Unmarshal([]byte(files["k8s/argocd/image-updater.yaml"]), &upd); err != nil {
		t.Fatal(err)
	}
	wb, _ := upd["spec"].(map[string]any)["writeBackConfig"].(map[string]any)["gitConfig"].(map[string]any)["writeBackTarget"].(string)
	target, ok := strings.CutPrefix(wb, "kustomization:/")
	if !ok {
		t.Fatalf("write-back target %q is not from the repository's root", wb)
	}
	if _, err := os.Stat(filepath.Join(repo, target, "kustomization.yaml")); err != nil {
		t.Errorf("the updater would write %s: %v", target, err)
	}
}

// TestInitPreviewsProjectOnArgoCD: the AppProject init writes for previews,
// applied to the test cluster's real Argo CD, lets a preview's Application
// create its namespace and sync into it, and refuses one that holds a
// cluster-scoped object and one whose destination is not <app>-*.
func TestInitPreviewsProjectOnArgoCD(t *testing.T) {
	kc := kubeconfig(t)
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	name := "proj" + id
	bare := filepath.Join(t.TempDir(), "gitops.git")
	git(t, "", "", "init", "-q", "--bare", "-b", "main", bare)
	dir := filepath.Join(t.TempDir(), name)
	writeFiles(t, dir, map[string]string{
		"go.mod":                              "module example.com/x\n\ngo 1.26\n",
		"k8s/previews/ok/cm.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata: {a: b}\n",
		"k8s/previews/ok/kustomization.yaml":  "resources: [cm.yaml]\n",
		"k8s/previews/bad/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {a: b}\n",
		"k8s/previews/bad/role.yaml":          "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: " + name + "-bad}\nrules: []\n",
		"k8s/previews/bad/kustomization.yaml": "resources: [cm.yaml, role.yaml]\n",
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	mustShipit(t, dir, nil, "init", "--repo-url", "file://"+bare)
	git(t, dir, "", "add", "-A")
	git(t, dir, "", "commit", "-qm", "app")
	git(t, dir, "", "push", "-q", bare, "main")
	project := mustRead(t, filepath.Join(dir, "k8s/argocd/previews-project.yaml"))
	kubectl(t, kc, project, "apply", "-f", "-")
	t.Cleanup(func() {
		for _, p := range []string{"ok", "bad", "system"} {
			_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "application", name+"-"+p, "--wait=false").Run()
		}
		_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "appproject", name+"-previews", "--wait=false").Run()
	})
	previewApp := func(p, ns string) string {
		return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s-%s, namespace: argocd}
spec:
  project: %s-previews
  source: {repoURL: "file://%s", targetRevision: main, path: k8s/previews/%s}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true]
`, name, p, name, bare, p, ns)
	}
	kubectl(t, kc, previewApp("ok", name+"-ok"), "apply", "-f", "-")
	kubectl(t, kc, previewApp("bad", name+"-bad"), "apply", "-f", "-")
	kubectl(t, kc, previewApp("system", "kube-system"), "apply", "-f", "-")

	// The preview syncs into the namespace Argo CD created for it.
	waitFor(t, 3*time.Minute, "the ok preview to sync", func() (bool, string) {
		out, _ := exec.Command("kubectl", "--kubeconfig", kc, "-n", name+"-ok", "get", "configmap", "ok", "-o", "jsonpath={.data.a}").CombinedOutput()
		return string(out) == "b", string(out)
	})
	// The ClusterRole is refused, and is not in the cluster; kube-system is
	// not a destination of the project.
	for p, want := range map[string]string{"bad": "ClusterRole is not permitted in project", "system": "do not match any of the allowed destinations in project"} {
		waitFor(t, 3*time.Minute, p+" refused", func() (bool, string) {
			out, _ := exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "get", "application", name+"-"+p, "-o", "json").CombinedOutput()
			return strings.Contains(string(out), want), string(out)
		})
	}
	if out, err := exec.Command("kubectl", "--kubeconfig", kc, "get", "clusterrole", name+"-bad").CombinedOutput(); err == nil {
		t.Errorf("the preview's ClusterRole was created: %s", out)
	}
}

// waitFor polls cond every second until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(time.Second)
	}
	t.Fatalf("waiting for %s: %s", what, last)
}
