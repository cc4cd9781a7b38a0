package scaffold

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestInitNeverWritesThroughALink: a repository whose k8s directory links
// elsewhere gets nothing written there.
func TestInitNeverWritesThroughALink(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "k8s")); err != nil {
		t.Fatal(err)
	}
	_, err := Init(Options{Dir: dir, Name: "shop"})
	var le *LinkError
	if !errors.As(err, &le) || le.Path != "k8s" {
		t.Fatalf("err = %v, want a LinkError naming k8s", err)
	}
	if left, _ := os.ReadDir(outside); len(left) != 0 {
		t.Errorf("init wrote through the link: %v", left)
	}

	// Without the link, the same repository is set up.
	if err := os.Remove(filepath.Join(dir, "k8s")); err != nil {
		t.Fatal(err)
	}
	res, err := Init(Options{Dir: dir, Name: "shop"})
	if err != nil || len(res.Files) == 0 {
		t.Fatalf("init: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k8s", "base")); err != nil {
		t.Error(err)
	}
}
