package release

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/lazyre"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/tag"
)

// PushAttempts bounds how often a pin commit is pushed when the branch
// keeps moving under it (each time fetched, re-planned and retried).
const PushAttempts = gitops.PushAttempts

// Deploy is one environment's deploy target: where in git its pins are
// written (the branch, the path prefix, the author), its overlays, and
// how they are pinned.
type Deploy struct {
	gitops.Target
	Overlays []string // overlay directories as configured
	Env      string   // the environment they are, for messages
	Mode     kustomize.Mode
	// ImageUpdater: Argo CD Image Updater writes the pins (deploy.mode:
	// image-updater); releases write no git, and pin retags.
	ImageUpdater bool
}

// DeploySpec is deploy.* as configured, for ResolveDeploy.
type DeploySpec struct {
	Repo     string // ".", a git URL, or a path relative to Dir
	Dir      string // the directory of shipit.yaml
	Branch   string
	Overlays []string
	Pin      kustomize.Mode
	Author   gitops.Author // zero: git's user.name and user.email in Dir, or shipit
	// ImageUpdater: deploy.mode is image-updater.
	ImageUpdater bool
	// Stall is how long the git remote may send nothing; 0: 60s.
	Stall time.Duration
	// Events get the GitOps workspace's notices; nil: none.
	Events progress.Sink
}

// ErrNoOrigin is a deploy.repo of "." in a repository without an origin remote.
var ErrNoOrigin = errors.New(`is "." (this repository), but it has no origin remote to push pins to: add one, or set deploy.repo to the GitOps repository's URL`)

// DefaultAuthor signs pin commits when nothing else names an author.
var DefaultAuthor = gitops.Author{Name: "shipit", Email: "shipit@users.noreply.localhost"}

// ResolveDeploy turns deploy.* into where pins are written. A deploy.repo
// of "." is this repository through its origin remote, so that the user's
// work tree is never touched; its pin commits carry [skip ci], so that the
// app's CI does not loop.
func ResolveDeploy(ctx context.Context, s DeploySpec) (Deploy, error) {
	d := Deploy{
		Target:       gitops.Target{Branch: gitops.Branch{Name: s.Branch, Stall: s.Stall}, Author: s.Author, Attempts: PushAttempts, Events: s.Events},
		Overlays:     append([]string(nil), s.Overlays...),
		Mode:         s.Pin,
		ImageUpdater: s.ImageUpdater,
	}
	switch {
	case s.Repo == ".":
		// The prefix first: commands that write nothing (updater-config)
		// need it without an origin.
		if top, err := gitinfo.TopLevel(ctx, s.Dir); err == nil {
			if top, err = filepath.EvalSymlinks(top); err != nil {
				return d, err
			}
			dir, err := filepath.EvalSymlinks(s.Dir)
			if err != nil {
				return d, err
			}
			if prefix, err := filepath.Rel(top, dir); err == nil && prefix != "." {
				d.Prefix = prefix
			}
		}
		url := gitinfo.Origin(s.Dir)
		if url == "" {
			return d, ErrNoOrigin
		}
		d.Branch.URL, d.SkipCI = url, true
	case !strings.Contains(s.Repo, "://") && !strings.Contains(s.Repo, "@") && !filepath.IsAbs(s.Repo):
		d.Branch.URL = filepath.Join(s.Dir, s.Repo) // a path relative to shipit.yaml
	default:
		d.Branch.URL = s.Repo
	}
	if d.Author == (gitops.Author{}) {
		d.Author = DefaultAuthor
		if n, e, ok := gitinfo.Identity(ctx, s.Dir); ok {
			d.Author = gitops.Author{Name: n, Email: e}
		}
	}
	return d, nil
}

// RecordError is a build record that must not be released: bad input,
// exit code 2.
type RecordError struct {
	Path string // the record
	Msg  string // the whole message, naming the record
}

func (e *RecordError) Error() string { return e.Msg }

// BadInput marks the error as the user's to fix (exit code 2).
func (e *RecordError) BadInput() bool { return true }

// CheckRecord refuses records a release must not ship: empty, from
// another commit than HEAD, from a dirty work tree, not tagged with a
// release tag, or with an entry that is not what shipit.yaml builds. The
// record is input: it may have travelled between CI jobs as an artifact,
// and every field that reaches the registry, the pins or a commit message
// is checked against the configuration. repos maps each configured image
// to its repository.
func CheckRecord(rec *build.Record, path, headSHA string, repos map[string]string) error {
	bad := func(format string, args ...any) error {
		return &RecordError{Path: path, Msg: path + " " + fmt.Sprintf(format, args...)}
	}
	if len(rec.Images) == 0 {
		return bad("lists no images: run `shipit build` first")
	}
	if rec.Commit != headSHA {
		return bad("was built from commit %.7s, but HEAD is %.7s: run `shipit build` for HEAD first (or check out %.7s)", rec.Commit, headSHA, rec.Commit)
	}
	if strings.HasSuffix(rec.Tag, tag.DirtySuffix) {
		return bad("is tagged %s: it was built from a work tree with uncommitted changes, which is never released. Commit, then `shipit build` again", rec.Tag)
	}
	if _, err := tag.Parse(rec.Tag); err != nil {
		return bad("has tag %q, which is not a release tag (built with a tag of your own?): releases need YYYYMMDD-HHMMSS-<sha7> tags, which sort in commit order", rec.Tag)
	}
	if fromTheFuture(rec.Tag, time.Now()) {
		return bad("has tag %s, whose time is more than %s after this machine's clock: the commit was made on a skewed clock, and its tag would sort after every release to come. Fix the clock, then make a new commit (git commit --amend --reset-author --no-edit resets its date), and build again", rec.Tag, FutureSkew)
	}
	seen := map[string]bool{}
	for i, im := range rec.Images {
		field := fmt.Sprintf("images[%d]", i)
		want, ok := repos[im.Name]
		switch {
		case !ok:
			return bad("%s.name: %q is not an image in shipit.yaml: refusing a record that names images the configuration does not build (run `shipit build` again)", field, im.Name)
		case seen[im.Name]:
			return bad("%s.name: image %s is listed twice", field, im.Name)
		case im.Repository != want:
			return bad("%s.repository: %q, but shipit.yaml sends image %s to %s: refusing to push or pin it (run `shipit build` again)", field, im.Repository, im.Name, want)
		case im.Tag != rec.Tag || im.Commit != rec.Commit:
			return bad("%s: image %s is from another build (%q)", field, im.Name, im.Tag)
		case !digestRE.MatchString(im.Digest):
			return bad("%s.digest: %q is not a sha256 digest", field, im.Digest)
		case !im.Pushed && !localLayout(im.Layout):
			return bad("%s.layout: %q is not an image layout under the record's directory (.shipit/): refusing to push from elsewhere", field, im.Layout)
		}
		for j, a := range im.Attestations {
			if !digestRE.MatchString(a.Digest) || !digestRE.MatchString(a.Subject) {
				return bad("%s.attestations[%d]: digest %q, subject %q: both must be sha256 digests", field, j, a.Digest, a.Subject)
			}
		}
		seen[im.Name] = true
	}
	return nil
}

var digestRE = lazyre.New(`^sha256:[a-f0-9]{64}$`)

// localLayout reports whether a record's layout path stays inside the
// record's directory: relative, no "..", no absolute path.
func localLayout(p string) bool {
	return p != "" && filepath.IsLocal(p) && !strings.ContainsRune(p, '\\')
}

// laterDepth is how far back a later commit is looked for.
const laterDepth = 200

// Later returns a check for --wait: is appRevision a later commit of the
// deploy branch than revision (someone pushed on top of the commit waited
// for, and Argo CD synced the new head, which holds it), whose overlays
// still pin what the command wrote (wrote: its overlay results)? A later
// commit that rolled the release back is not the release being healthy.
// Each pair of revisions is looked up once, in a clone of the branch's
// last commits.
func Later(d Deploy, wrote []OverlayResult) func(ctx context.Context, revision, appRevision string) bool {
	seen := map[[2]string]bool{}
	return func(ctx context.Context, revision, appRevision string) bool {
		key := [2]string{revision, appRevision}
		if v, ok := seen[key]; ok {
			return v
		}
		later := false
		if w, err := gitops.Open(ctx, d.Target, laterDepth, d.overlayDirs()...); err == nil {
			later = w.Repo().IsAncestor(ctx, revision, appRevision) && stillPinned(ctx, w, d, appRevision, wrote)
			w.Close()
		}
		if ctx.Err() == nil {
			seen[key] = later
		}
		return later
	}
}

// stillPinned reports whether every pin the command wrote is what the
// overlays pin at rev.
func stillPinned(ctx context.Context, w *gitops.Workspace, d Deploy, rev string, wrote []OverlayResult) bool {
	for _, ov := range wrote {
		var entries map[string]kustomize.Entry
		for _, im := range ov.Images {
			if im.Kept != "" || im.From == im.To {
				continue
			}
			if entries == nil {
				data, ok, err := w.KustomizationAt(ctx, rev, d.InRepo(ov.Path))
				if err != nil || !ok {
					return false
				}
				if entries, err = kustomize.Images(data); err != nil {
					return false
				}
			}
			found := false
			for _, e := range entries {
				if e.Ref() == im.To {
					found = true
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}

// overlayDirs is every overlay's directory from the repository's root:
// what a command reads in a sparse workspace.
func (d Deploy) overlayDirs() []string {
	out := make([]string, len(d.Overlays))
	for i, ov := range d.Overlays {
		out[i] = d.InRepo(ov)
	}
	return out
}

// EntryIn finds the image's entry among an overlay's: by its configured
// kustomize_name, else by its name or repository.
func (im PinImage) EntryIn(entries map[string]kustomize.Entry) (kustomize.Entry, bool) {
	if e, ok := entries[im.KustomizeName]; ok && im.KustomizeName != "" {
		return e, true
	}
	return kustomize.EntryFor(entries, im.Name, im.Repository)
}
