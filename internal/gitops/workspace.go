package gitops

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"

	"github.com/shipit-dev/shipit/internal/progress"
)

// PushAttempts bounds how often a change is pushed when the branch keeps
// moving under it (each time fetched, re-planned and retried). A push is
// rejected only when another writer's commit landed first, so N writers
// racing for the branch need at most N attempts each: this lets 50
// pipelines write at once and all land. (15 lost 2 of 32 concurrent
// releases on a loaded 2-core machine.)
const PushAttempts = 50

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
	// Events get the workspace's notices (-v detail); nil: none.
	Events progress.Sink
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
	cone []string        // the directories checked out, in a sparse clone
	read map[string]bool // the kustomizations followed
}

// Open clones the target's branch with its last depth commits (1:
// shallow) into a temporary directory; Close removes it. The clone is
// blobless; with include, it is sparse too: only the files at the root,
// and each directory of include with everything its kustomization
// reaches (see Include), are checked out. Without include, every file is.
func Open(ctx context.Context, t Target, depth int, include ...string) (*Workspace, error) {
	tmp, err := os.MkdirTemp("", "shipit-gitops-")
	if err != nil {
		return nil, err
	}
	w := &Workspace{Target: t, tmp: tmp, read: map[string]bool{}}
	w.repo, err = cloneDepth(ctx, t.Branch, filepath.Join(tmp, "repo"), max(depth, 1), len(include) > 0)
	if err == nil && w.repo.NoFilter {
		progress.Debugf(t.Events, "%s does not support partial clones (--filter): cloned its branch whole, which gives the same result more slowly", w.repo.URL)
	}
	if err == nil {
		err = w.Include(ctx, include...)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return w, nil
}

// With runs fn on a shallow workspace of the target that includes the
// given directories, removed after.
func With(ctx context.Context, t Target, include []string, fn func(*Workspace) error) error {
	w, err := Open(ctx, t, 1, include...)
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
// new head when the branch moved (see Repo.Publish): each retry fetches
// the new commits only, in the same clone. How many tries it took is
// said under -v.
func (w *Workspace) Publish(ctx context.Context, apply func(ctx context.Context) ([]string, string, error)) (string, error) {
	n := w.Attempts
	if n <= 0 {
		n = PushAttempts
	}
	tries := 0
	sha, err := w.repo.Publish(ctx, n, w.Author, func(ctx context.Context) ([]string, string, error) {
		tries++
		if tries > 1 {
			progress.Debugf(w.Events, "%s %s moved under the push: fetched its new commits and planned again (try %d of %d)", w.repo.URL, w.repo.Branch, tries, n)
		}
		return apply(ctx)
	})
	if tries > 1 && err == nil {
		progress.Debugf(w.Events, "pushed to %s %s after %d tries", w.repo.URL, w.repo.Branch, tries)
	}
	return sha, err
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
