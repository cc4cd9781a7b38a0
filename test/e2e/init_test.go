package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	tmpl, _ := templates.FS.ReadFile("github-actions.yml")
	if files[".github/workflows/shipit.yml"] != string(tmpl) {
		t.Error("the Rails workflow is not the (actionlint-checked) template")
	}

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
	// updater-config's defaults are the Application and overlay init wrote.
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
