// Package gitops is the GitOps workspace: a clone of the deploy branch
// that every GitOps read and write of shipit goes through. It clones with
// the user's own git and credentials, confines every file it reads or
// writes to the clone, reads overlays and hold files, and commits and
// pushes a change, re-planning it on the new head when the branch moved
// (never force-pushing).
package gitops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/retry"
)

// ErrRejected is a push the remote refused because the branch moved.
var ErrRejected = errors.New("the remote branch moved")

// Repo is a shallow clone of one branch.
type Repo struct {
	Dir    string
	URL    string // the remote, without credentials: for messages
	Branch string
	// Sparse: only the root's files and the directories SparseAdd named
	// are checked out.
	Sparse bool
	// NoFilter: the remote refused a partial clone, so this one is whole.
	NoFilter bool
	git      gitinfo.Cmd
}

// Branch is a GitOps repository's branch: where pins are written.
type Branch struct {
	URL  string // may hold credentials; they reach git only through its environment
	Name string
	// Stall is how long the remote may send nothing; 0: gitinfo.DefaultStall.
	Stall time.Duration
}

// Clone clones the branch into dir with its last depth commits (at least
// one), with every file of its head checked out. Credentials in the URL
// are handed to git through its environment, never its arguments, and the
// clone's remote is configured without them.
func (b Branch) Clone(ctx context.Context, dir string, depth int) (*Repo, error) {
	return cloneDepth(ctx, b, dir, max(depth, 1), false)
}

// cloneDepth clones the branch, blobless (git fetches a file's content
// when it is first read), and with sparse, with only the files at the
// root checked out (Repo.SparseAdd adds directories). A remote that
// refuses --filter is cloned again without it, once.
func cloneDepth(ctx context.Context, b Branch, dir string, depth int, sparse bool) (*Repo, error) {
	url, branch := b.URL, b.Name
	shown := gitinfo.SanitizeURL(url)
	if strings.HasPrefix(url, "-") || strings.HasPrefix(branch, "-") {
		return nil, fmt.Errorf("cloning %s: a repository or branch that begins with \"-\" is refused", shown)
	}
	clean, g := gitinfo.Credentials(url)
	g.Stall = b.Stall
	src := clean
	if strings.HasPrefix(clean, "/") {
		src = "file://" + clean // --depth is honoured only for file:// URLs
	}
	args := []string{"clone", "--quiet", "--depth", strconv.Itoa(depth), "--single-branch", "--branch", branch, "--no-tags"}
	if sparse {
		args = append(args, "--sparse")
	}
	r := &Repo{Dir: dir, URL: shown, Branch: branch, Sparse: sparse}
	_, warn, err := g.RunWarn(ctx, append(args, "--filter=blob:none", "--", src, dir)...)
	if err == nil && strings.Contains(warn, "filtering not recognized") {
		r.NoFilter = true // git went on with a whole clone
	}
	if err != nil && filterRefused(err) && ctx.Err() == nil {
		r.NoFilter = true
		_ = os.RemoveAll(dir)
		_, err = g.Run(ctx, append(args, "--", src, dir)...)
	}
	if err != nil {
		if strings.Contains(err.Error(), "Remote branch") && strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("cloning %s: branch %s does not exist there (check deploy.branch)", shown, branch)
		}
		return nil, fmt.Errorf("cloning %s (deploy.repo): %w", shown, err)
	}
	g.Dir = dir
	r.git = g
	return r, nil
}

// filterRefused reports whether a clone failed because the server does
// not do partial clones.
func filterRefused(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "filter") && (strings.Contains(msg, "not support") || strings.Contains(msg, "not recognized") || strings.Contains(msg, "unsupported") || strings.Contains(msg, "not allowed"))
}

// SparseAdd checks out these directories (relative to the root, with
// everything below them) too, in a sparse clone; git fetches the files'
// content in one request. A path that is not a directory (a symbolic link
// planted where an overlay should be) is added as a pattern all the same,
// so that its parent's files come with it and CheckOverlay sees it.
func (r *Repo) SparseAdd(ctx context.Context, dirs []string) error {
	if !r.Sparse || len(dirs) == 0 {
		return nil
	}
	args := []string{"sparse-checkout", "add", "--skip-checks", "--"}
	for _, d := range dirs {
		args = append(args, filepath.ToSlash(d))
	}
	_, err := r.git.Run(ctx, args...)
	return err
}

// SparseOff checks out every file: for a repository whose reach cannot
// be told.
func (r *Repo) SparseOff(ctx context.Context) error {
	if !r.Sparse {
		return nil
	}
	r.Sparse = false
	_, err := r.git.Run(ctx, "sparse-checkout", "disable")
	return err
}

// Kinds tells, for paths of the head (relative to the root), which are
// directories ("tree") and which files ("blob"); a path the head does not
// have is left out. One git call, no file content.
func (r *Repo) Kinds(ctx context.Context, paths []string) (map[string]string, error) {
	out := map[string]string{}
	if len(paths) == 0 {
		return out, nil
	}
	args := []string{"ls-tree", "--format=%(objecttype) %(path)", "HEAD", "--"}
	for _, p := range paths {
		args = append(args, filepath.ToSlash(p))
	}
	list, err := r.git.Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if kind, p, ok := strings.Cut(line, " "); ok {
			out[filepath.FromSlash(p)] = kind
		}
	}
	return out, nil
}

// Head returns the checked-out commit.
func (r *Repo) Head(ctx context.Context) (string, error) {
	out, err := r.git.Run(ctx, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}

// Author is who a commit is by.
type Author struct{ Name, Email string }

// Commit commits the given paths (relative to Dir) with a message.
func (r *Repo) Commit(ctx context.Context, paths []string, msg string, a Author) (string, error) {
	if _, err := r.git.Run(ctx, append([]string{"add", "--"}, paths...)...); err != nil {
		return "", err
	}
	g := r.git
	g.Stdin = strings.NewReader(msg)
	g.Env = append(append([]string(nil), g.Env...),
		"GIT_AUTHOR_NAME="+a.Name, "GIT_AUTHOR_EMAIL="+a.Email, "GIT_COMMITTER_NAME="+a.Name, "GIT_COMMITTER_EMAIL="+a.Email)
	if _, err := g.Run(ctx, "commit", "--quiet", "--no-verify", "-F", "-"); err != nil {
		return "", fmt.Errorf("committing in %s: %w", r.URL, err)
	}
	return r.Head(ctx)
}

// Push pushes HEAD to the branch, never forcing. A refusal because the
// branch moved is ErrRejected.
func (r *Repo) Push(ctx context.Context) error {
	_, err := r.git.Run(ctx, "push", "--quiet", "--porcelain", "--", "origin", "HEAD:refs/heads/"+r.Branch)
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range []string{"[rejected]", "non-fast-forward", "fetch first", "failed to update ref", "cannot lock ref", "incorrect old value"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("pushing to %s %s: %w", r.URL, r.Branch, ErrRejected)
		}
	}
	return fmt.Errorf("pushing to %s %s: %w", r.URL, r.Branch, err)
}

// Reset moves the clone to the remote branch's current head, dropping the
// local commit.
func (r *Repo) Reset(ctx context.Context) error {
	if _, err := r.git.Run(ctx, "fetch", "--quiet", "--depth", "1", "--", "origin", "refs/heads/"+r.Branch); err != nil {
		return fmt.Errorf("fetching %s %s: %w", r.URL, r.Branch, err)
	}
	_, err := r.git.Run(ctx, "reset", "--quiet", "--hard", "FETCH_HEAD")
	return err
}

// Publish applies a change, commits and pushes it; when the push is
// rejected because the branch moved, it resets to the new head, applies
// the change again (apply sees the new files) and retries, at most
// attempts times, waiting a jittered, growing delay in between. apply
// returns the paths it changed and the commit message; no paths means
// nothing to commit, and Publish returns "".
func (r *Repo) Publish(ctx context.Context, attempts int, a Author, apply func(ctx context.Context) ([]string, string, error)) (string, error) {
	var sha string
	policy := retry.Policy{Attempts: attempts, Delay: 100 * time.Millisecond, Max: 3200 * time.Millisecond}
	err := retry.Do(ctx, policy, func(err error) bool { return errors.Is(err, ErrRejected) }, func(i int) error {
		sha = ""
		if i > 1 {
			if err := r.Reset(ctx); err != nil {
				return err
			}
		}
		paths, msg, err := apply(ctx)
		if err != nil || len(paths) == 0 {
			return err
		}
		if sha, err = r.Commit(ctx, paths, msg, a); err != nil {
			return err
		}
		return r.Push(ctx)
	})
	if errors.Is(err, ErrRejected) {
		return "", fmt.Errorf("%w; gave up after %d attempts", err, max(attempts, 1))
	}
	if err != nil {
		return "", err
	}
	return sha, nil
}

// Diff shows the uncommitted change in the clone.
func (r *Repo) Diff(ctx context.Context) (string, error) {
	return r.git.Run(ctx, "-c", "color.ui=never", "diff", "--no-ext-diff")
}

// Revisions lists up to n commits of the clone's branch, newest first.
func (r *Repo) Revisions(ctx context.Context, n int) ([]string, error) {
	out, err := r.git.Run(ctx, "rev-list", "--max-count", strconv.Itoa(max(n, 1)), "HEAD", "--")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// MaxBlob caps what FileAt reads of one file.
const MaxBlob = 4 << 20

// FileAt reads a file (relative to the root) as it was at a commit; ok is
// false when the commit has no such file. A file larger than MaxBlob, or
// one that is not a regular file (a symbolic link), is an error.
func (r *Repo) FileAt(ctx context.Context, rev, path string) ([]byte, bool, error) {
	obj := rev + ":" + filepath.ToSlash(path)
	if _, err := r.git.Run(ctx, "cat-file", "-e", obj); err != nil {
		return nil, false, nil
	}
	mode, err := r.git.Run(ctx, "ls-tree", "--format=%(objectmode)", rev, "--", filepath.ToSlash(path))
	if err != nil {
		return nil, false, err
	}
	if m := strings.TrimSpace(mode); m != "100644" && m != "100755" {
		return nil, false, fmt.Errorf("%s at %.7s is not a regular file (mode %s)", path, rev, m)
	}
	size, err := r.git.Run(ctx, "cat-file", "-s", obj)
	if err != nil {
		return nil, false, err
	}
	if n, err := strconv.Atoi(strings.TrimSpace(size)); err != nil || n > MaxBlob {
		return nil, false, fmt.Errorf("%s at %.7s is larger than %d bytes", path, rev, MaxBlob)
	}
	out, err := r.git.Run(ctx, "cat-file", "blob", obj)
	return []byte(out), err == nil, err
}

// LastChange is when the last commit of the clone's branch that touched
// path was made; zero when none did.
func (r *Repo) LastChange(ctx context.Context, path string) (time.Time, error) {
	out, err := r.git.Run(ctx, "log", "-1", "--format=%ct", "HEAD", "--", filepath.ToSlash(path))
	if err != nil || strings.TrimSpace(out) == "" {
		return time.Time{}, err
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("git log of %s: %w", path, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// DiffNew is Diff with new files shown too (added with --intent-to-add).
func (r *Repo) DiffNew(ctx context.Context, paths []string) (string, error) {
	if _, err := r.git.Run(ctx, append([]string{"add", "--intent-to-add", "--"}, paths...)...); err != nil {
		return "", err
	}
	return r.Diff(ctx)
}

// IsAncestor reports whether ancestor is rev or one of its ancestors in
// the clone (false when either is not in it).
func (r *Repo) IsAncestor(ctx context.Context, ancestor, rev string) bool {
	out, err := r.git.Run(ctx, "merge-base", "--", ancestor, rev)
	return err == nil && strings.TrimSpace(out) == ancestor
}
