package release

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWarnArgoSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var log bytes.Buffer
	warnArgoSource(&log, "k8s/overlays/prod", dir)
	if log.Len() != 0 {
		t.Errorf("no file, but: %s", log.String())
	}
	if err := os.WriteFile(filepath.Join(dir, ".argocd-source-shop.yaml"), []byte("kustomize:\n  images:\n  - web:20200101\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".argocd-source-other.yaml"), []byte("helm:\n  parameters: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	warnArgoSource(&log, "k8s/overlays/prod", dir)
	if got := log.String(); strings.Count(got, "warning:") != 1 || !strings.Contains(got, "k8s/overlays/prod/.argocd-source-shop.yaml") || !strings.Contains(got, "one writer") {
		t.Errorf("warning: %q", got)
	}
}
