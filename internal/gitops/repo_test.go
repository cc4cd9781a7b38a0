package gitops

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// remote makes a bare repository with one file on main.
func remote(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bare := filepath.Join(dir, "r.git")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(dir, "w")
	git(t, dir, "clone", "-q", bare, work)
	if err := os.WriteFile(filepath.Join(work, "pins"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "add", "pins")
	git(t, work, "commit", "-qm", "init")
	git(t, work, "push", "-q", "origin", "HEAD:main")
	return bare
}

// TestPublishRetriesOnTheNewHead: another pipeline pushes between our
// clone and our push; Publish resets, applies again and pushes, linearly.
func TestPublishRetriesOnTheNewHead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bare := remote(t)
	r, err := Branch{URL: bare, Name: "main"}.Clone(ctx, filepath.Join(t.TempDir(), "c"), 1)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else pushes first.
	other := filepath.Join(t.TempDir(), "o")
	git(t, "", "clone", "-q", bare, other)
	if err := os.WriteFile(filepath.Join(other, "other"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, other, "add", "other")
	git(t, other, "commit", "-qm", "other")
	git(t, other, "push", "-q", "origin", "HEAD:main")

	applies := 0
	sha, err := r.Publish(ctx, 3, Author{Name: "shipit", Email: "s@example.com"}, func(context.Context) ([]string, string, error) {
		applies++
		b, _ := os.ReadFile(filepath.Join(r.Dir, "pins"))
		return []string{"pins"}, "pin", os.WriteFile(filepath.Join(r.Dir, "pins"), append(b, '1', '\n'), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if applies != 2 {
		t.Errorf("applied %d times, want 2 (once more on the new head)", applies)
	}
	log := git(t, bare, "log", "--format=%H %s", "main")
	if !strings.HasPrefix(log, sha+" pin") || !strings.Contains(log, " other") || git(t, bare, "rev-list", "--merges", "main") != "" {
		t.Errorf("history:\n%s", log)
	}
	if got := git(t, bare, "show", "main:pins"); got != "0\n1" {
		t.Errorf("pins = %q", got)
	}
}

func TestPublishNothingAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bare := remote(t)
	r, err := Branch{URL: bare, Name: "main"}.Clone(ctx, filepath.Join(t.TempDir(), "c"), 1)
	if err != nil {
		t.Fatal(err)
	}
	sha, err := r.Publish(ctx, 3, Author{Name: "s", Email: "s@example.com"}, func(context.Context) ([]string, string, error) { return nil, "", nil })
	if sha != "" || err != nil {
		t.Errorf("nothing to change: %q %v", sha, err)
	}
	if _, err := (Branch{URL: bare, Name: "nope"}).Clone(ctx, filepath.Join(t.TempDir(), "d"), 1); err == nil || !strings.Contains(err.Error(), "branch nope does not exist") {
		t.Errorf("missing branch: %v", err)
	}
	if _, err := (Branch{URL: "https://user:s3cret@127.0.0.1:1/x.git", Name: "main"}).Clone(ctx, filepath.Join(t.TempDir(), "e"), 1); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("credentials in an error: %v", err)
	}
}
