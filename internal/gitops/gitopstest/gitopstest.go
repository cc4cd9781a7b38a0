// Package gitopstest makes GitOps repositories for tests: real git, a
// bare repository as the remote, in the test's temporary directory.
package gitopstest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Git runs git in dir as a test user and returns its trimmed output; a
// failure fails the test.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(context.Background(), "git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Overlay is the overlays' kustomization in Files: one pin, with a
// comment shipit must keep.
const Overlay = `resources:
  - ../../base
# pins
images:
  - name: web
    newName: old.example.com/web # before shipit
    newTag: "20200101-000000-0000000"
`

// Base is the base's Deployment in Files: two containers, web and worker.
const Base = `apiVersion: apps/v1
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
`

// Files are a base and two overlays, staging and production, under k8s/.
func Files() map[string]string {
	return map[string]string{
		"k8s/base/kustomization.yaml":                "resources: [deploy.yaml]\n",
		"k8s/base/deploy.yaml":                       Base,
		"k8s/overlays/staging/kustomization.yaml":    Overlay,
		"k8s/overlays/production/kustomization.yaml": Overlay,
	}
}

// Remote makes a bare repository whose main branch holds files (nil:
// Files()), in one commit, and returns its path.
func Remote(t testing.TB, files map[string]string) string {
	t.Helper()
	if files == nil {
		files = Files()
	}
	dir := t.TempDir()
	bare := filepath.Join(dir, "gitops.git")
	Git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(dir, "w")
	Git(t, dir, "clone", "-q", bare, work)
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, work, "add", ".")
	Git(t, work, "commit", "-qm", "init")
	Git(t, work, "push", "-q", "origin", "HEAD:main")
	return bare
}

// Push commits files (path to content; "" removes the file) on top of
// the remote's main branch and pushes them, and returns the new head.
func Push(t testing.TB, bare string, files map[string]string, msg string) string {
	t.Helper()
	work := filepath.Join(t.TempDir(), "w")
	Git(t, filepath.Dir(work), "clone", "-q", bare, work)
	for p, c := range files {
		full := filepath.Join(work, p)
		if c == "" {
			Git(t, work, "rm", "-q", "--", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		Git(t, work, "add", "--", p)
	}
	Git(t, work, "commit", "-qm", msg)
	Git(t, work, "push", "-q", "origin", "HEAD:main")
	return Git(t, work, "rev-parse", "HEAD")
}
