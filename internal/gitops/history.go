package gitops

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// History reads of a clone: the commits that changed a directory, the
// files a directory held at a commit (their content fetched in one
// request), a deeper history when the walk needs it, and whether the
// branch moved. They serve retention, which must
// know what each overlay pinned before, at its own pace.

// Shallow reports whether the clone's history is cut short (the branch
// has older commits than the clone holds).
func (r *Repo) Shallow(ctx context.Context) (bool, error) {
	out, err := r.git.Run(ctx, "rev-parse", "--is-shallow-repository")
	return strings.TrimSpace(out) == "true", err
}

// Deepen fetches n more commits of the branch's history below the
// clone's shallow boundary.
func (r *Repo) Deepen(ctx context.Context, n int) error {
	if _, err := r.git.Run(ctx, "fetch", "--quiet", "--no-tags", "--deepen", strconv.Itoa(max(n, 1)), "--", "origin", "refs/heads/"+r.Branch); err != nil {
		return fmt.Errorf("fetching older history of %s %s: %w", r.URL, r.Branch, err)
	}
	return nil
}

// RemoteHead is the commit the remote branch points at now, read without
// fetching anything.
func (r *Repo) RemoteHead(ctx context.Context) (string, error) {
	out, err := r.git.Run(ctx, "ls-remote", "--", "origin", "refs/heads/"+r.Branch)
	if err != nil {
		return "", fmt.Errorf("reading the head of %s %s: %w", r.URL, r.Branch, err)
	}
	sha, _, _ := strings.Cut(strings.TrimSpace(out), "\t")
	if sha == "" {
		return "", fmt.Errorf("reading the head of %s: branch %s does not exist there", r.URL, r.Branch)
	}
	return sha, nil
}

// Changes lists up to n commits of the clone's history (from HEAD) that
// changed anything under dir (relative to the root), newest first.
func (r *Repo) Changes(ctx context.Context, dir string, n int) ([]string, error) {
	out, err := r.git.Run(ctx, "--literal-pathspecs", "rev-list", "--max-count", strconv.Itoa(max(n, 1)), "HEAD", "--", filepath.ToSlash(dir))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// TreeFile is a file of a directory at a commit.
type TreeFile struct {
	Name   string // the file's name in its directory
	Mode   string // git's mode: 100644 for a regular file
	Object string
}

// FilesAt lists the entries directly in dir (relative to the root) at a
// commit; none when the commit has no such directory. It reads trees
// only: no file content is fetched.
func (r *Repo) FilesAt(ctx context.Context, rev, dir string) ([]TreeFile, error) {
	out, err := r.git.Run(ctx, "--literal-pathspecs", "ls-tree", "-z", "--format=%(objectmode) %(objecttype) %(objectname)%x09%(path)",
		rev, "--", filepath.ToSlash(dir)+"/")
	if err != nil {
		return nil, err
	}
	var files []TreeFile
	for _, rec := range strings.Split(out, "\x00") {
		meta, path, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			continue
		}
		files = append(files, TreeFile{Name: filepath.Base(path), Mode: f[0], Object: f[2]})
	}
	return files, nil
}

// ReadTree reads a file FilesAt listed: a regular file of at most MaxBlob
// bytes, else an error. (Its content is fetched if the clone lacks it:
// Prefetch first, for many.)
func (r *Repo) ReadTree(ctx context.Context, f TreeFile) ([]byte, error) {
	if f.Mode != "100644" && f.Mode != "100755" {
		return nil, fmt.Errorf("%s is not a regular file (mode %s)", f.Name, f.Mode)
	}
	size, err := r.git.Run(ctx, "cat-file", "-s", f.Object)
	if err != nil {
		return nil, err
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64); err != nil || n > MaxBlob {
		return nil, &TooLargeError{Name: f.Name}
	}
	out, err := r.git.Run(ctx, "cat-file", "blob", f.Object)
	return []byte(out), err
}

// TooLargeError is a file past MaxBlob.
type TooLargeError struct{ Name string }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.Name, MaxBlob)
}

// Prefetch fetches the content of these objects in one request, in a
// blobless clone (where git would fetch each one on its first read, a
// request apiece). A clone with every blob does nothing.
func (r *Repo) Prefetch(ctx context.Context, objects []string) error {
	if r.NoFilter || len(objects) == 0 {
		return nil
	}
	g := r.git
	g.Stdin = strings.NewReader(strings.Join(objects, "\n") + "\n")
	if _, err := g.Run(ctx, "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
		"--recurse-submodules=no", "--filter=blob:none", "--stdin", "origin"); err != nil {
		return fmt.Errorf("fetching %d files of %s's history: %w", len(objects), r.URL, err)
	}
	return nil
}
