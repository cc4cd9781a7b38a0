// Package release pushes what a build made and bumps the kustomize image
// pins that Argo CD syncs: push, tag, pin, commit. It depends on build's
// record, never the reverse.
package release

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/confine"
	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/sign"
	"github.com/shipit-dev/shipit/internal/tag"
)

// Options configure a release.
type Options struct {
	Record       *build.Record
	RecordDir    string // the directory of the record, which layouts are relative to
	Registry     Registry
	KeepExisting bool // a tag on another digest: keep the registry's image and go on
	DryRun       bool
	Deploy       Deploy
	Events       progress.Sink // notices and progress; nil: none
	// KustomizeNames are configured images entry names, by image name.
	KustomizeNames map[string]string
	// Signer, when set, signs every image's digest right after its push
	// (and a digest already in the registry under its tag, where it has
	// no signature by the key yet).
	Signer Signer
	// Gate, when set, checks the images before anything is pinned: the
	// environment requires signatures or provenance.
	Gate Gate
}

// Signer signs a digest in the registry (internal/sign's).
type Signer interface {
	Sign(ctx context.Context, repo, digest string) (sign.Outcome, error)
}

// Gate checks digests about to be pinned into an environment that
// requires signatures or provenance; an error refuses them, and nothing
// is pinned.
type Gate func(ctx context.Context, imgs []sign.Subject) error

// Image actions.
const (
	ActionPushed       = "pushed"
	ActionPresent      = "present" // already in the registry under its tag
	ActionWouldPush    = "would push"
	ActionKeptExisting = "kept existing"
	ActionExists       = "exists"   // pin: the tag is in the registry
	ActionRetagged     = "retagged" // pin in Image Updater mode: a new tag on the old digest
)

// ImageResult is what happened to one image in the registry.
type ImageResult struct {
	Name       string `json:"name"`
	Repository string `json:"repository"`
	Ref        string `json:"ref"` // repository:tag@digest, the digest now under the tag
	Digest     string `json:"digest"`
	Action     string `json:"action"`
	// Signature is what signing did: signed, already signed; empty:
	// nothing is signed.
	Signature sign.Outcome `json:"signature,omitempty"`
}

// OverlayResult is what happened to one overlay.
type OverlayResult struct {
	Path    string              `json:"path"`
	Changed bool                `json:"changed"`
	Images  []OverlayImageState `json:"images"`
}

// OverlayImageState is one image's pin in one overlay.
type OverlayImageState struct {
	Image string   `json:"image"`
	From  string   `json:"from,omitempty"` // the old reference
	To    string   `json:"to"`
	Added bool     `json:"added,omitempty"`
	Kept  string   `json:"kept,omitempty"` // why the old pin stays
	Uses  []string `json:"uses,omitempty"`
	// Old is the entry as it was (not Found when it was added).
	Old kustomize.Entry `json:"-"`
}

// FromOrNone is the old reference, or "(none)" for an entry that was added.
func (s OverlayImageState) FromOrNone() string {
	if s.From == "" {
		return "(none)"
	}
	return s.From
}

// Result is what a release did (or, dry, would do).
type Result struct {
	Tag      string          `json:"tag"`
	Images   []ImageResult   `json:"images"`
	Overlays []OverlayResult `json:"overlays"`
	gitops.Change
}

// Run releases a build: every image ends up in the registry under its tag
// (pushing only what is missing), then the overlays' pins move to it in
// one commit. A failure leaves the overlays and the GitOps remote as they
// were; images already pushed stay, and a re-run finishes the job.
func Run(ctx context.Context, o Options) (*Result, error) {
	res := &Result{Tag: o.Record.Tag}
	res.DryRun = o.DryRun
	if err := checkLayouts(o.RecordDir, o.Record); err != nil {
		return res, err
	}
	imgs, err := ensureImages(ctx, o)
	res.Images = imgs
	if err != nil {
		return res, err
	}
	if o.Gate != nil && !o.DryRun {
		if err := o.Gate(ctx, subjects(imgs, o.Record.Tag)); err != nil {
			return res, err
		}
	}
	if len(o.Deploy.Overlays) == 0 {
		progress.Infof(o.Events, "no deploy.overlays configured: images are in the registry, no pins to bump")
		return res, nil
	}
	if o.Deploy.ImageUpdater {
		progress.Infof(o.Events, "deploy.mode is image-updater: Argo CD Image Updater moves the pins, shipit writes no git")
		return res, nil
	}
	var pins []kustomize.Image
	for i, im := range imgs {
		pins = append(pins, kustomize.Image{Name: im.Name, Entry: o.KustomizeNames[im.Name], Repository: o.Record.Images[i].Repository, Tag: o.Record.Tag, Digest: im.Digest})
	}
	msg := releaseMessage(o, imgs)
	return res, writePins(ctx, o, res, pins, pinHooks{
		keep:    releaseKeep,
		holds:   releaseHolds,
		message: func(*Result) string { return msg },
	})
}

// ensureImages makes sure every image of the record is in the registry
// under the record's tag. It looks every tag up at once; then, per
// registry, it pushes one image alone and the rest at once, mounting the
// layers they share with it from its repository instead of uploading them
// again (where the registry allows cross-repository mounts).
func ensureImages(ctx context.Context, o Options) ([]ImageResult, error) {
	n := len(o.Record.Images)
	out := make([]ImageResult, n)
	push := make([]bool, n)
	errs := make([]error, n)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	each(all, func(i int) { out[i], push[i], errs[i] = checkImage(ctx, o, o.Record.Images[i]) })
	if err := errors.Join(errs...); err != nil || o.DryRun {
		return out, err
	}
	// Every layout to push is hashed against its digests before anything
	// is pushed: a tampered image stops the whole release, not half of it.
	each(all, func(i int) {
		if push[i] {
			im := o.Record.Images[i]
			if err := VerifyLayout(LayoutDir(o.RecordDir, im), im.Digest); err != nil {
				errs[i] = fmt.Errorf("%s:%s: %w", im.Repository, im.Tag, err)
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	var first, rest []int
	mountFrom := map[int]string{}
	firstOfHost := map[string]int{}
	for i, im := range o.Record.Images {
		if !push[i] {
			continue
		}
		host, _, _ := strings.Cut(im.Repository, "/")
		if f, ok := firstOfHost[host]; ok {
			rest = append(rest, i)
			if o.Record.Images[f].Repository != im.Repository {
				mountFrom[i] = o.Record.Images[f].Repository + ":" + o.Record.Images[f].Tag
			}
			continue
		}
		firstOfHost[host] = i
		first = append(first, i)
	}
	pushOne := func(i int) {
		im := o.Record.Images[i]
		progress.Emit(o.Events, progress.Event{Kind: progress.PushStart, Subject: im.Name, Ref: im.Repository + ":" + im.Tag})
		if errs[i] = pushLayout(ctx, o.Registry, o.RecordDir, im, mountFrom[i]); errs[i] != nil {
			return
		}
		// What the tag holds now is what gets pinned: it must be the
		// record's digest, whatever the registry or the layout did.
		have, err := o.Registry.Lookup(ctx, im.Repository, im.Tag)
		switch {
		case err != nil:
			errs[i] = err
		case have != im.Digest:
			errs[i] = fmt.Errorf("%s:%s holds %s after the push, not the build's %s: nothing is pinned", im.Repository, im.Tag, have, im.Digest)
		default:
			out[i].Action = ActionPushed
			errs[i] = signImage(ctx, o, &out[i])
		}
	}
	each(first, pushOne)
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	each(rest, pushOne)
	signPresent(ctx, o, out, errs)
	return out, errors.Join(errs...)
}

// each runs fn for every index at once.
func each(idx []int, fn func(i int)) {
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Add(1)
		go func() { defer wg.Done(); fn(i) }()
	}
	wg.Wait()
}

// signPresent signs what was in the registry already, where it has no
// signature by the key yet: a re-run after a failed signature finishes
// the job.
func signPresent(ctx context.Context, o Options, out []ImageResult, errs []error) {
	var present []int
	for i := range out {
		if out[i].Action == ActionPresent {
			present = append(present, i)
		}
	}
	each(present, func(i int) { errs[i] = signImage(ctx, o, &out[i]) })
}

// signImage signs an image's digest, when a signer is set.
func signImage(ctx context.Context, o Options, im *ImageResult) error {
	if o.Signer == nil {
		return nil
	}
	got, err := o.Signer.Sign(ctx, im.Repository, im.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w (nothing is pinned; run the release again to sign it)", im.Name, err)
	}
	im.Signature = got
	progress.Debugf(o.Events, "%s@%s: %s", im.Repository, im.Digest, got)
	return nil
}

// subjects are the released images as the supply-chain gate checks them.
func subjects(imgs []ImageResult, releaseTag string) []sign.Subject {
	var out []sign.Subject
	for _, im := range imgs {
		out = append(out, sign.Subject{Image: im.Name, Repository: im.Repository, Tag: releaseTag, Digest: im.Digest})
	}
	return out
}

// checkLayouts refuses layouts reached through a symbolic link, or holding
// one, below the record's directory.
func checkLayouts(recordDir string, rec *build.Record) error {
	for _, im := range rec.Images {
		if im.Layout == "" {
			continue
		}
		if !filepath.IsLocal(im.Layout) {
			return fmt.Errorf("image %s: layout %q is not under %s", im.Name, im.Layout, recordDir)
		}
		link, err := confine.FirstLink(recordDir, im.Layout)
		if err != nil {
			return err
		}
		if link != "" {
			return &build.StateError{Path: filepath.Join(recordDir, link), Why: "is a symbolic link"}
		}
		if err := build.CheckState(filepath.Join(recordDir, im.Layout)); err != nil {
			return err
		}
		if err := build.CheckAttestations(filepath.Join(recordDir, im.Layout), im); err != nil {
			return err
		}
	}
	return nil
}

// checkPushedAttestations checks the record's attestations of an image
// build --push pushed against the index in the registry.
func checkPushedAttestations(ctx context.Context, reg Registry, im build.Image) error {
	m, err := reg.Manifest(ctx, im.Repository, im.Digest)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("%s@%s is not in the registry, though its tag points at it", im.Repository, im.Digest)
	}
	return build.CheckAttestationsIn(m.Raw, im, im.Repository)
}

// TagTakenError is a release tag that already holds another digest than
// the build's: tags are never overwritten.
type TagTakenError struct {
	Ref, Have, Built string
}

func (e *TagTakenError) Error() string {
	return fmt.Sprintf("%s already holds %s, and this build made %s: tags are never overwritten", e.Ref, e.Have, e.Built)
}

// sameImages says whether the index the registry holds as have has the
// same platform manifests as the build's index in its layout: then the
// two differ only in their attestations.
func sameImages(ctx context.Context, o Options, im build.Image, have string) (bool, error) {
	_, idx, err := build.FromLayout(LayoutDir(o.RecordDir, im), im.Digest)
	if err != nil || idx == nil {
		return false, err
	}
	built, err := idx.RawManifest()
	if err != nil {
		return false, err
	}
	m, err := o.Registry.Manifest(ctx, im.Repository, have)
	if err != nil || m == nil {
		return false, err
	}
	return build.SameImages(built, m.Raw), nil
}

// checkImage looks an image's tag up and says whether it must be pushed.
func checkImage(ctx context.Context, o Options, im build.Image) (ImageResult, bool, error) {
	r := ImageResult{Name: im.Name, Repository: im.Repository, Digest: im.Digest, Ref: im.Repository + ":" + im.Tag + "@" + im.Digest}
	have, err := o.Registry.Lookup(ctx, im.Repository, im.Tag)
	if err != nil {
		return r, false, err
	}
	if have != "" && have != im.Digest && len(im.Attestations) > 0 && im.Layout != "" {
		same, err := sameImages(ctx, o, im, have)
		if err != nil {
			return r, false, err
		}
		if same {
			// Provenance records when the build ran, so a rebuild of the
			// same commit is the same image under new attestations: the
			// tag keeps the registry's index (and the signature of it).
			progress.Infof(o.Events, "%s:%s already holds %s: the same image as this build's, with an earlier build's attestations; keeping it", im.Repository, im.Tag, have)
			r.Digest, r.Ref, r.Action = have, im.Repository+":"+im.Tag+"@"+have, ActionPresent
			return r, false, nil
		}
	}
	switch {
	case have == im.Digest && im.Layout == "" && len(im.Attestations) > 0:
		// Pushed by the build: the record's attestations must be the
		// pushed index's (a layout's are checked before anything runs).
		r.Action = ActionPresent
		return r, false, checkPushedAttestations(ctx, o.Registry, im)
	case have == im.Digest:
		r.Action = ActionPresent
		return r, false, nil
	case have != "" && o.KeepExisting:
		progress.Infof(o.Events, "%s:%s already holds %s, not the build's %s; keeping the registry's image, as asked", im.Repository, im.Tag, have, im.Digest)
		r.Digest, r.Ref, r.Action = have, im.Repository+":"+im.Tag+"@"+have, ActionKeptExisting
		return r, false, nil
	case have != "":
		return r, false, &TagTakenError{Ref: im.Repository + ":" + im.Tag, Have: have, Built: im.Digest}
	case im.Pushed:
		return r, false, fmt.Errorf("%s:%s is not in the registry, though the build record says `shipit build --push` pushed it: build again", im.Repository, im.Tag)
	case im.Layout == "":
		return r, false, fmt.Errorf("image %s has no image layout in the build record: run `shipit build` again", im.Name)
	}
	r.Action = ActionWouldPush
	return r, true, nil
}

func releaseMessage(o Options, imgs []ImageResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "shipit: release %s", o.Record.Tag)
	if o.Deploy.SkipCI {
		b.WriteString(" [skip ci]")
	}
	b.WriteString("\n\n")
	for _, im := range imgs {
		fmt.Fprintf(&b, "%s: %s\n", im.Name, im.Ref)
	}
	fmt.Fprintf(&b, "\nSource-Commit: %s\n", o.Record.Commit)
	return b.String()
}

// Forward keeps a pin whose release tag sorts after the release's: two
// pipelines finishing out of order must not roll an overlay back. Pins
// that are not release tags of the same prefix are not compared, and
// neither is a pin that is not this app's (its newName is another
// repository: written by hand) or whose tag is from the future (a commit
// made on a skewed clock): those are replaced, or one such pin would stop
// every later release.
func Forward(cur kustomize.Entry, next kustomize.Pin) string {
	if cur.NewTag == "" || next.NewTag == "" || foreign(cur, next) || fromTheFuture(cur.NewTag, time.Now()) {
		return ""
	}
	c, err1 := tag.Parse(cur.NewTag)
	n, err2 := tag.Parse(next.NewTag)
	if err1 != nil || err2 != nil || c.Prefix != n.Prefix {
		return ""
	}
	if tag.Less(next.NewTag, cur.NewTag) {
		return fmt.Sprintf("it pins %s, newer than %s: releases only move forward (use `shipit pin` to roll back)", cur.NewTag, next.NewTag)
	}
	return ""
}

// FutureSkew is how far ahead of this machine's clock a release tag's
// time may be (tag.FutureAllowance): more is a commit made on a skewed
// clock.
const FutureSkew = tag.FutureAllowance

// fromTheFuture reports whether a release tag's time is more than
// FutureSkew after now.
func fromTheFuture(t string, now time.Time) bool {
	p, err := tag.Parse(t)
	return err == nil && p.IsFuture(now)
}

// foreign reports whether the current pin names another repository than
// the one the next pin writes: not this app's release.
func foreign(cur kustomize.Entry, next kustomize.Pin) bool {
	repo := cur.NewName
	if repo == "" {
		repo = cur.Name
	}
	return next.NewName != "" && repo != next.NewName
}

// pinHooks make writePins serve release, pin, promote and restore.
type pinHooks struct {
	// images, when set, gives each overlay's pins, read in the workspace
	// (the source environment's pins, the pins before a failed rollout);
	// they are written exactly as they are, whatever deploy.pin says.
	images  func(ctx context.Context, w *gitops.Workspace, overlay string) ([]kustomize.Image, error)
	keep    func(Holds) kustomize.Keep     // which current pins stay
	holds   func(Holds, *kustomize.Change) // how the holds change
	message func(*Result) string           // the commit message, from the plan
	reads   []string                       // directories read besides the overlays (the source environment's)
}

// writePins clones the GitOps repository, plans every overlay, and commits
// and pushes the change, re-planning on the new head when the push is
// rejected. In a dry run it computes the diff and pushes nothing.
func writePins(ctx context.Context, o Options, res *Result, imgs []kustomize.Image, hooks pinHooks) error {
	w, err := gitops.Open(ctx, o.Deploy.Target, 1, append(o.Deploy.overlayDirs(), hooks.reads...)...)
	if err != nil {
		return err
	}
	defer w.Close()
	apply := func(ctx context.Context) ([]string, string, error) {
		paths, err := planPins(ctx, o, w, res, imgs, hooks)
		if err != nil || o.DryRun {
			if err == nil && len(paths) > 0 {
				res.Diff, err = w.Diff(ctx)
			}
			return nil, "", err
		}
		return paths, hooks.message(res), nil
	}
	return w.PublishChange(ctx, &res.Change, apply)
}

// planPins plans every overlay of the workspace's head and writes the
// change (pins and holds) into it, returning the paths it changed.
func planPins(ctx context.Context, o Options, w *gitops.Workspace, res *Result, imgs []kustomize.Image, hooks pinHooks) ([]string, error) {
	var changes []*kustomize.Change
	var holds []Holds
	var overlays []string
	res.Overlays = nil
	for _, ov := range o.Deploy.Overlays {
		rel := o.Deploy.InRepo(ov)
		if err := w.CheckOverlay(rel); err != nil {
			return nil, err
		}
		warnArgoSource(o.Events, ov, w.Abs(rel))
		h, err := w.Holds(rel)
		if err != nil {
			return nil, err
		}
		pins, mode := imgs, o.Deploy.Mode
		if hooks.images != nil {
			if pins, err = hooks.images(ctx, w, ov); err != nil {
				return nil, err
			}
			mode = kustomize.ModeTagAndDigest // the pins say exactly what they hold
		}
		c, err := kustomize.Plan(kustomize.DiskFS(), w.Abs(rel), pins, mode, hooks.keep(h))
		if err != nil {
			return nil, fmt.Errorf("%s (in %s): %w", ov, w.URL(), w.Clean(err))
		}
		hooks.holds(h, c)
		sayReplaced(o.Events, ov, c)
		changes, holds, overlays = append(changes, c), append(holds, h), append(overlays, rel)
		res.Overlays = append(res.Overlays, overlayResult(ov, c))
	}
	var paths []string
	for i, c := range changes {
		changed, err := w.WriteHolds(overlays[i], holds[i])
		if err != nil {
			return nil, err
		}
		if changed {
			paths = append(paths, filepath.Join(overlays[i], HoldFile))
		}
		if !c.Changed() {
			continue
		}
		if err := w.WriteFile(w.Rel(c.File), c.After); err != nil {
			return nil, err
		}
		paths = append(paths, w.Rel(c.File))
	}
	for _, ov := range res.Overlays {
		for _, im := range ov.Images {
			if im.Kept != "" {
				progress.Infof(o.Events, "%s: %s keeps its pin: %s", ov.Path, im.Image, im.Kept)
			}
		}
	}
	return paths, nil
}

// sayReplaced says when a pin forward-only did not count replaces a newer
// tag: another repository's, or one from the future.
func sayReplaced(events progress.Sink, overlay string, c *kustomize.Change) {
	for _, ic := range c.Images {
		old := ic.Old
		if !ic.Changed || ic.Kept != "" || old.NewTag == "" || ic.New.NewTag == "" || !tag.Less(ic.New.NewTag, old.NewTag) {
			continue
		}
		switch {
		case foreign(old, ic.New):
			progress.Infof(events, "%s: %s pinned %s, which is not this app's repository (%s): forward-only does not count it, and the pin is replaced", overlay, ic.Image, old.Ref(), ic.New.NewName)
		case fromTheFuture(old.NewTag, time.Now()):
			progress.Infof(events, "%s: %s pinned %s, a tag from the future (a commit made on a skewed clock): forward-only does not count it, and the pin is replaced", overlay, ic.Image, old.NewTag)
		}
	}
}

func overlayResult(path string, c *kustomize.Change) OverlayResult {
	r := OverlayResult{Path: path, Changed: c.Changed()}
	for _, ic := range c.Images {
		s := OverlayImageState{Image: ic.Image, To: ic.New.Ref(), Added: !ic.Old.Found(), Kept: ic.Kept, Uses: ic.Uses, Old: ic.Old}
		if ic.Old.Found() {
			s.From = ic.Old.Ref()
		}
		r.Images = append(r.Images, s)
	}
	sort.Slice(r.Images, func(i, j int) bool { return r.Images[i].Image < r.Images[j].Image })
	return r
}

// warnArgoSource warns when Argo CD's parameter override file sits beside
// the overlay: its kustomize images win over kustomization.yaml's, so the
// pin shipit writes would not take effect. There must be one writer.
func warnArgoSource(events progress.Sink, overlay, dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, ".argocd-source*.yaml"))
	for _, m := range matches {
		data, err := confine.ReadFile(m)
		if err != nil || !strings.Contains(string(data), "images") {
			continue
		}
		progress.Warnf(events, "%s/%s sets kustomize images, and Argo CD applies them over kustomization.yaml: the pins shipit writes will not take effect there. Keep one writer of the pins (remove the file, or stop the tool that writes it)", overlay, filepath.Base(m))
	}
}

// Push makes sure every image of the record is in the registry under its
// tag, pushing only what is missing (nothing in a dry run), as a release
// does before it pins: for commands that push a build and write
// something else (previews).
func Push(ctx context.Context, o Options) ([]ImageResult, error) {
	if err := checkLayouts(o.RecordDir, o.Record); err != nil {
		return nil, err
	}
	return ensureImages(ctx, o)
}
