package gitinfo

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// gitRun runs git in dir with a fixed identity and committer date.
func gitRun(t *testing.T, dir, date string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	gitRun(t, dir, "", "init", "-q", "-b", "main")
	gitRun(t, dir, "", "remote", "add", "origin", "https://x-access-token:ghp_SECRET@github.com/acme/app.git")

	if _, err := Read(ctx, dir); err == nil {
		t.Fatal("a repository without commits gave a HEAD")
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, dir, "", "add", "a")
	gitRun(t, dir, "2026-01-02T03:04:05+09:00", "commit", "-qm", "one")
	h, err := Read(ctx, dir, ".shipit")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 1, 18, 4, 5, 0, time.UTC); !h.Time.Equal(want) || len(h.Ancestors) != 0 {
		t.Errorf("time = %v ancestors = %v, want %v and none", h.Time, h.Ancestors, want)
	}
	if h.Dirty {
		t.Error("a clean tree is dirty")
	}
	if h.Source != "https://github.com/acme/app.git" {
		t.Errorf("source = %q: credentials must be stripped", h.Source)
	}

	// shipit's own output does not make the tree dirty; anything else does.
	if err := os.MkdirAll(filepath.Join(dir, ".shipit", "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".shipit", "build.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, _ := Read(ctx, dir, ".shipit"); h.Dirty {
		t.Error(".shipit/ made the tree dirty")
	}
	if err := os.WriteFile(filepath.Join(dir, "b"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h, _ := Read(ctx, dir, ".shipit"); !h.Dirty {
		t.Error("an untracked file did not make the tree dirty")
	}
	gitRun(t, dir, "2026-01-02T03:00:00+09:00", "add", "b")
	gitRun(t, dir, "2026-01-02T03:00:00+09:00", "commit", "-qm", "two, with a clock behind")
	h, err = Read(ctx, filepath.Join(dir, ".shipit"), ".")
	if err != nil {
		t.Fatal(err)
	}
	if h.Dirty {
		t.Error("the ignored subdirectory itself made the tree dirty")
	}
	if len(h.Ancestors) != 1 || !h.Time.Before(h.Ancestors[0]) {
		t.Errorf("time %v ancestors %v: the skew should be visible", h.Time, h.Ancestors)
	}

	if _, err := Read(ctx, t.TempDir()); !errors.Is(err, ErrNotRepository) {
		t.Errorf("outside a repository: %v", err)
	}
}

func TestSanitizeURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://user:tok@github.com/a/b.git": "https://github.com/a/b.git",
		"https://github.com/a/b":              "https://github.com/a/b",
		"git@github.com:a/b.git":              "git@github.com:a/b.git",
		"ssh://git@host:22/a/b":               "ssh://host:22/a/b",
		"/srv/git/app.git":                    "/srv/git/app.git",
	} {
		if got := SanitizeURL(in); got != want {
			t.Errorf("SanitizeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
