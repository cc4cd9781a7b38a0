package confine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("TOKEN=hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "hold.yaml")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(link)
	var nr *NotRegularError
	if !errors.As(err, &nr) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a symlink: %v", err)
	}
	for _, read := range []func(string) ([]byte, error){ReadFile, ReadFollowing} {
		if _, err := read("/dev/zero"); !errors.As(err, &nr) {
			t.Errorf("/dev/zero: %v", err)
		}
	}
	if data, err := ReadFollowing(link); err != nil || string(data) != "TOKEN=hunter2" {
		t.Errorf("a link the user named: %q %v", data, err)
	}
	if data, err := ReadFile(secret); err != nil || string(data) != "TOKEN=hunter2" {
		t.Errorf("a regular file: %q %v", data, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("an oversized file: %v", err)
	}
}

func TestFirstLink(t *testing.T) {
	t.Parallel()
	base, outside := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "k8s/overlays"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(base, "k8s/overlays/prod")); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"k8s/overlays/prod/kustomization.yaml": "k8s/overlays/prod",
		"k8s/overlays/prod":                    "k8s/overlays/prod",
		"k8s/overlays/staging":                 "",
		"k8s":                                  "",
		".":                                    "",
	} {
		if got, err := FirstLink(base, rel); err != nil || got != want {
			t.Errorf("FirstLink(%s) = %q, %v; want %q", rel, got, err, want)
		}
	}
}
