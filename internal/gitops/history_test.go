package gitops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHistoryReads: the commits that changed a directory, its files at a
// commit, a deeper history on demand, and the branch's new head.
func TestHistoryReads(t *testing.T) {
	t.Parallel()
	bare := remote(t)
	work := filepath.Join(t.TempDir(), "w")
	git(t, filepath.Dir(work), "clone", "-q", bare, work)
	write := func(p, c string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, work, "add", "-A")
		git(t, work, "commit", "-qm", "change "+p)
	}
	write("prod/kustomization.yaml", "old\n")
	first := git(t, work, "rev-parse", "HEAD")
	for i := 0; i < 10; i++ {
		write("staging/kustomization.yaml", fmt.Sprint(i, "\n"))
	}
	write("prod/kustomization.yaml", "new\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(work, "prod/link")); err != nil {
		t.Fatal(err)
	}
	write("staging/x", "x\n")
	git(t, work, "push", "-q", "origin", "HEAD:main")

	ctx := context.Background()
	git(t, bare, "config", "uploadpack.allowFilter", "true")
	r, err := Branch{URL: bare, Name: "main"}.Clone(ctx, filepath.Join(t.TempDir(), "c"), 4)
	if err != nil || r.NoFilter {
		t.Fatalf("a blobless clone: %v (whole: %v)", err, r != nil && r.NoFilter)
	}
	if s, err := r.Shallow(ctx); err != nil || !s {
		t.Fatalf("a depth-4 clone is not shallow: %v %v", s, err)
	}
	// Within 4 commits prod changed at the head (the link), at head~1,
	// and at the boundary (which holds every file); then, deepened, the
	// boundary is the commit that made it.
	revs, err := r.Changes(ctx, "prod", 100)
	if err != nil || len(revs) != 3 || revs[2] == first {
		t.Fatalf("changes of prod in a depth-4 clone: %v %v", revs, err)
	}
	if err := r.Deepen(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Shallow(ctx); s {
		t.Error("still shallow after deepening past the root")
	}
	if revs, _ = r.Changes(ctx, "prod", 100); len(revs) != 3 || revs[2] != first {
		t.Errorf("changes of prod: %v, want 3 ending with %s", revs, first)
	}
	// An old file's content is not in the blobless clone until fetched,
	// in one request for all.
	old, err := r.FilesAt(ctx, first, "prod")
	if err != nil || len(old) != 1 {
		t.Fatalf("files of prod at its first commit: %+v %v", old, err)
	}
	missing := func() bool {
		return strings.Contains(git(t, r.Dir, "rev-list", "--objects", "--missing=print", first), "?"+old[0].Object)
	}
	if !missing() {
		t.Fatalf("the old blob %s is in the clone already:\n%s", old[0].Object, git(t, r.Dir, "rev-list", "--objects", "--missing=print", first))
	}
	if err := r.Prefetch(ctx, []string{old[0].Object}); err != nil || missing() {
		t.Fatalf("Prefetch: %v; still missing: %v", err, missing())
	}
	if data, err := r.ReadTree(ctx, old[0]); err != nil || string(data) != "old\n" {
		t.Errorf("read %q %v", data, err)
	}
	files, err := r.FilesAt(ctx, revs[0], "prod")
	if err != nil || len(files) != 2 {
		t.Fatalf("files of prod: %+v %v", files, err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		data, err := r.ReadTree(ctx, f)
		switch f.Name {
		case "kustomization.yaml":
			if err != nil || string(data) != "new\n" {
				t.Errorf("read %q %v", data, err)
			}
		case "link":
			if err == nil {
				t.Errorf("a symbolic link was read: %q", data)
			}
		}
	}
	if !slices.Equal(names, []string{"kustomization.yaml", "link"}) {
		t.Errorf("files %v", names)
	}
	if files, err := r.FilesAt(ctx, first, "staging"); err != nil || len(files) != 0 {
		t.Errorf("a directory not there yet: %+v %v", files, err)
	}

	// The branch moves: RemoteHead sees it.
	write("prod/kustomization.yaml", "newer\n")
	git(t, work, "push", "-q", "origin", "HEAD:main")
	want := git(t, work, "rev-parse", "HEAD")
	if got, err := r.RemoteHead(ctx); err != nil || got != want {
		t.Errorf("RemoteHead = %s %v, want %s", got, err, want)
	}
}
