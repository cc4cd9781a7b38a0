package gitops

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
)

// PushAttempts bounds how often a change is pushed when the branch keeps
// moving under it (each time fetched, re-planned and retried).
const PushAttempts = 15

// Target is where a command writes in git: a branch, the directory that
// configured paths start from, and how commits are made.
type Target struct {
	Branch Branch
	// Prefix is where configured paths start inside the repository:
	// shipit.yaml's directory, for a deploy.repo of "." with shipit.yaml
	// below the repository root; "" otherwise.
	Prefix   string
	Author   Author
	SkipCI   bool // add [skip ci] to commit messages: the GitOps repository is the app's own
	Attempts int  // push attempts when the branch moves; 0: PushAttempts
}

// InRepo is a configured path (an overlay, the previews folder) relative
// to the repository's root.
func (t Target) InRepo(p string) string { return filepath.Join(t.Prefix, p) }

// Workspace is a temporary clone of the target's branch. Paths given to
// and reported by its methods are relative to the repository's root, and
// every file it reads or writes stays inside the clone.
type Workspace struct {
	Target
	repo *Repo
	tmp  string
}

// Open clones the target's branch with its last depth commits (1:
// shallow) into a temporary directory; Close removes it.
func Open(ctx context.Context, t Target, depth int) (*Workspace, error) {
	tmp, err := os.MkdirTemp("", "shipit-gitops-")
	if err != nil {
		return nil, err
	}
	repo, err := t.Branch.Clone(ctx, filepath.Join(tmp, "repo"), depth)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return &Workspace{Target: t, repo: repo, tmp: tmp}, nil
}

// With runs fn on a shallow workspace of the target, removed after.
func With(ctx context.Context, t Target, fn func(*Workspace) error) error {
	w, err := Open(ctx, t, 1)
	if err != nil {
		return err
	}
	defer w.Close()
	return fn(w)
}

// Close removes the clone.
func (w *Workspace) Close() { _ = os.RemoveAll(w.tmp) }

// Repo is the clone, for history reads and diffs.
func (w *Workspace) Repo() *Repo { return w.repo }

// URL is the repository, without credentials: for messages.
func (w *Workspace) URL() string { return w.repo.URL }

// Abs is a path of the repository on disk, for the kustomize library.
func (w *Workspace) Abs(rel string) string { return filepath.Join(w.repo.Dir, rel) }

// Rel is an absolute path of the clone relative to its root.
func (w *Workspace) Rel(abs string) string {
	r, err := filepath.Rel(w.repo.Dir, abs)
	if err != nil {
		return abs
	}
	return r
}

// Publish applies a change, commits and pushes it, re-applying it on the
// new head when the branch moved (see Repo.Publish).
func (w *Workspace) Publish(ctx context.Context, apply func(ctx context.Context) ([]string, string, error)) (string, error) {
	n := w.Attempts
	if n <= 0 {
		n = PushAttempts
	}
	return w.repo.Publish(ctx, n, w.Author, apply)
}

// Head is the checked-out commit.
func (w *Workspace) Head(ctx context.Context) (string, error) { return w.repo.Head(ctx) }

// Diff shows the uncommitted change.
func (w *Workspace) Diff(ctx context.Context) (string, error) { return w.repo.Diff(ctx) }

// DiffNew is Diff with the new files among paths shown too.
func (w *Workspace) DiffNew(ctx context.Context, paths []string) (string, error) {
	return w.repo.DiffNew(ctx, paths)
}

// Clean makes paths in an error relative to the clone: the kustomize
// library names the files it read by their absolute path. The error
// underneath stays reachable (errors.As finds a *kustomize.StaleError or
// an *exec.ExitError through it).
func (w *Workspace) Clean(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ReplaceAll(err.Error(), w.repo.Dir+string(filepath.Separator), "")
	if msg == err.Error() {
		return err
	}
	return &rewordedError{msg: msg, err: err}
}

// rewordedError shows another message for an error and unwraps to it.
type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }

// Change is what a command did in git, the same in every command's
// result: the commit it pushed, the branch's head afterwards, and in a
// dry run the diff it would have committed.
type Change struct {
	Commit   string `json:"commit,omitempty"`   // the commit pushed, if any
	Revision string `json:"revision,omitempty"` // the branch's head afterwards: the commit, or the head it was already at
	Diff     string `json:"diff,omitempty"`     // dry run: the change it would commit
	DryRun   bool   `json:"dryRun,omitempty"`
}

// PublishChange is Publish, recording what happened in c: the commit,
// and the head it was at when there was nothing to commit.
func (w *Workspace) PublishChange(ctx context.Context, c *Change, apply func(ctx context.Context) ([]string, string, error)) error {
	sha, err := w.Publish(ctx, apply)
	c.Commit, c.Revision = sha, sha
	if err == nil && sha == "" {
		c.Revision, err = w.Head(ctx)
	}
	return err
}

// KustomizationAt reads an overlay's kustomization (relative to the root)
// as it was at a commit of the clone; ok is false when it had none.
func (w *Workspace) KustomizationAt(ctx context.Context, rev, overlay string) ([]byte, bool, error) {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		data, ok, err := w.repo.FileAt(ctx, rev, filepath.Join(overlay, n))
		if err != nil || ok {
			return data, ok, err
		}
	}
	return nil, false, nil
}
