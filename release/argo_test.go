package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipit-dev/shipit/internal/progress"
)

func TestWarnArgoSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var log progress.Recorder
	warnArgoSource(&log, "k8s/overlays/prod", dir)
	if got := log.Events(); len(got) != 0 {
		t.Errorf("no file, but: %v", got)
	}
	if err := os.WriteFile(filepath.Join(dir, ".argocd-source-shop.yaml"), []byte("kustomize:\n  images:\n  - web:20200101\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".argocd-source-other.yaml"), []byte("helm:\n  parameters: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	warnArgoSource(&log, "k8s/overlays/prod", dir)
	got := log.Messages(progress.Warning)
	if len(got) != 1 || !strings.Contains(got[0], "k8s/overlays/prod/.argocd-source-shop.yaml") || !strings.Contains(got[0], "one writer") {
		t.Errorf("warning: %q", got)
	}
}
