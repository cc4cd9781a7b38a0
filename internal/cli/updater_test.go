package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// updaterDoc is what a test reads back from updater-config's resources.
type updaterDoc struct {
	Metadata struct{ Name, Namespace string }
	Spec     struct {
		WriteBackConfig struct {
			GitConfig struct {
				WriteBackTarget string `yaml:"writeBackTarget"`
			} `yaml:"gitConfig"`
		} `yaml:"writeBackConfig"`
		ApplicationRefs []struct {
			NamePattern          string `yaml:"namePattern"`
			CommonUpdateSettings struct {
				UpdateStrategy string `yaml:"updateStrategy"`
			} `yaml:"commonUpdateSettings"`
		} `yaml:"applicationRefs"`
	}
}

// monorepo is a git repository with an origin and shipit.yaml (yml) in
// services/shop; it returns shipit.yaml's path.
func monorepo(t *testing.T, yml string) string {
	t.Helper()
	root := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"remote", "add", "origin", "https://git.example.com/mono.git"}} {
		if out, err := exec.Command("git", append([]string{"-C", root}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	dir := filepath.Join(root, "services", "shop")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "shipit.yaml")
	if err := os.WriteFile(f, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func runUpdaterConfig(t *testing.T, file string, args ...string) (docs []updaterDoc, stderr string, code int) {
	t.Helper()
	root := New()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"updater-config", "--config", file}, args...))
	code = ExitCode(root.Execute(), false, &errOut)
	dec := yaml.NewDecoder(&out)
	for {
		var d updaterDoc
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("updater-config printed no YAML: %v", err)
		}
		docs = append(docs, d)
	}
	return docs, errOut.String(), code
}

const monoYAML = `registry: 127.0.0.1:5055/shop
images:
  web: {context: .}
deploy:
  repo: .
  branch: main
  mode: image-updater
  environments:
    - name: staging
      overlays: [k8s/overlays/staging]
      argocd: {applications: [shop-staging]}
    - name: production
      overlays: [k8s/overlays/tokyo, k8s/overlays/osaka]
      argocd: {applications: [shop-tokyo, shop-osaka], namespace: ops}
`

// TestUpdaterConfigPaths: every environment and overlay, each in its
// Applications' namespace, each target from the repository's root with
// shipit.yaml's directory first.
func TestUpdaterConfigPaths(t *testing.T) {
	t.Parallel()
	file := monorepo(t, monoYAML)
	docs, stderr, code := runUpdaterConfig(t, file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := []struct{ ns, app, target string }{
		{"argocd", "shop-staging", "kustomization:/services/shop/k8s/overlays/staging"},
		{"ops", "shop-tokyo", "kustomization:/services/shop/k8s/overlays/tokyo"},
		{"ops", "shop-osaka", "kustomization:/services/shop/k8s/overlays/osaka"},
	}
	if len(docs) != len(want) {
		t.Fatalf("%d resources, want %d: %+v", len(docs), len(want), docs)
	}
	for i, w := range want {
		d := docs[i]
		if d.Metadata.Namespace != w.ns || d.Metadata.Name != w.app || d.Spec.ApplicationRefs[0].NamePattern != w.app || d.Spec.WriteBackConfig.GitConfig.WriteBackTarget != w.target {
			t.Errorf("resource %d: %+v, want %+v", i, d, w)
		}
	}
	docs, _, code = runUpdaterConfig(t, file, "--env", "production")
	if code != 0 || len(docs) != 2 || docs[0].Metadata.Name != "shop-tokyo" {
		t.Errorf("--env production: exit %d, %+v", code, docs)
	}
	docs, stderr, code = runUpdaterConfig(t, file, "--env", "staging", "--strategy", "newest-build")
	if code != 0 || len(docs) != 1 || docs[0].Spec.ApplicationRefs[0].CommonUpdateSettings.UpdateStrategy != "newest-build" || !strings.Contains(stderr, "never rolls back") {
		t.Errorf("--strategy newest-build: exit %d, %+v\n%s", code, docs, stderr)
	}
	docs, _, code = runUpdaterConfig(t, file, "--env", "staging", "--app", "shop-stg")
	if code != 0 || len(docs) != 1 || docs[0].Metadata.Name != "shop-stg" {
		t.Errorf("--app: exit %d, %+v", code, docs)
	}
}

// TestUpdaterConfigBadUsage: exit 2 and a message naming what to fix.
func TestUpdaterConfigBadUsage(t *testing.T) {
	t.Parallel()
	file := monorepo(t, monoYAML)
	mismatch := monorepo(t, strings.Replace(monoYAML, "[shop-tokyo, shop-osaka]", "[shop-tokyo]", 1))
	for _, c := range []struct {
		file  string
		args  []string
		wants string
	}{
		{file, []string{"--strategy", "semver"}, "--strategy semver: use alphabetical or newest-build"},
		{file, []string{"--env", "qa"}, "--env qa: no such environment"},
		{file, []string{"--app", "x"}, "--app x names one Application, but 3 are printed"},
		{mismatch, nil, "deploy.environments[1].argocd.applications: 2 overlays, but 1 in argocd.applications"},
	} {
		docs, stderr, code := runUpdaterConfig(t, c.file, c.args...)
		if code != 2 || len(docs) != 0 || !strings.Contains(stderr, c.wants) {
			t.Errorf("%v: exit %d, %d documents, stderr %s", c.args, code, len(docs), stderr)
		}
	}
}
