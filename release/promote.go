package release

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/sign"
)

// PromoteOptions configure a promotion.
type PromoteOptions struct {
	From     Deploy // the source environment (its overlays are read, never written)
	To       Deploy // the target environment
	Images   []PinImage
	Registry Registry
	DryRun   bool
	Events   progress.Sink
	// Gate, when set, checks what is copied before anything is written:
	// the target environment requires signatures or provenance.
	Gate Gate
}

// PromotedImage is what an image is promoted to: its shipit name, and
// the repository, tag and digest the source pins.
type PromotedImage = kustomize.Pin

// PromoteResult is what a promotion did.
type PromoteResult struct {
	From   string          `json:"from"`
	To     string          `json:"to"`
	Images []PromotedImage `json:"images"`
	Result
}

// NotPinnedError is a source overlay that does not pin an image: there is
// nothing to promote.
type NotPinnedError struct {
	Overlay, Env, Image string
}

func (e *NotPinnedError) Error() string {
	return fmt.Sprintf("%s (%s) does not pin image %s: there is nothing to promote (release to %s first)", e.Overlay, e.Env, e.Image, e.Env)
}

// DisagreeError is a source environment whose overlays pin an image
// differently: there is no one thing to promote.
type DisagreeError struct {
	Env, Image string
	Pins       map[string]string // overlay -> reference
}

func (e *DisagreeError) Error() string {
	var parts []string
	for ov, ref := range e.Pins {
		parts = append(parts, ov+" pins "+ref)
	}
	sort.Strings(parts)
	return fmt.Sprintf("the overlays of %s disagree on %s (%s): make them agree (release or pin %s), then promote", e.Env, e.Image, strings.Join(parts, "; "), e.Env)
}

// Promote moves the target environment to exactly what the source pins at
// the head of the branch: the same newName, newTag and digest, read from
// the source overlays in git; nothing is rebuilt, re-resolved or read from
// a build record. Each image must exist in the registry with that digest.
// Like a release it only moves forward and respects holds; the change is
// one commit, pushed with the same fetch, re-plan and retry (the source is
// read again on the new head).
func Promote(ctx context.Context, o PromoteOptions) (*PromoteResult, error) {
	res := &PromoteResult{From: o.From.Env, To: o.To.Env}
	res.DryRun = o.DryRun
	var checked map[string]kustomize.Pin // source pins the registry was asked about, by reference
	gated := map[string]bool{}           // digests the gate passed
	var source []PromotedImage
	images := func(ctx context.Context, w *gitops.Workspace, _ string) ([]kustomize.Image, error) {
		pins, err := sourcePins(w, o)
		if err != nil {
			return nil, err
		}
		if checked == nil {
			checked = map[string]kustomize.Pin{}
		}
		var out []kustomize.Image
		source = nil
		for _, im := range o.Images {
			e := pins[im.Name]
			p, ok := checked[e.Ref()]
			if !ok {
				if p, err = sourcePin(ctx, o.Registry, o.From, im, e); err != nil {
					return nil, err
				}
				checked[e.Ref()] = p
			}
			p.Name = im.Name
			source = append(source, p)
			out = append(out, kustomize.Image{Name: im.Name, Entry: im.KustomizeName, Repository: p.NewName, Tag: p.NewTag, Digest: p.Digest})
		}
		return out, gate(ctx, o.Gate, gated, source)
	}
	err := writePins(ctx, Options{Deploy: o.To, DryRun: o.DryRun, Events: o.Events}, &res.Result, nil, pinHooks{
		images:  images,
		reads:   o.From.overlayDirs(),
		keep:    releaseKeep,
		holds:   releaseHolds,
		message: func(r *Result) string { return promoteMessage(o, source, r) },
	})
	res.Images = source
	return res, err
}

// gate checks the pins the gate has not passed yet (a re-plan on a new
// head checks only what changed).
func gate(ctx context.Context, g Gate, passed map[string]bool, pins []PromotedImage) error {
	if g == nil {
		return nil
	}
	var todo []sign.Subject
	for _, p := range pins {
		if !passed[p.NewName+"@"+p.Digest] {
			todo = append(todo, sign.Subject{Image: p.Name, Repository: p.NewName, Tag: p.NewTag, Digest: p.Digest})
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := g(ctx, todo); err != nil {
		return err
	}
	for _, s := range todo {
		passed[s.Repository+"@"+s.Digest] = true
	}
	return nil
}

// sourcePins reads what the source environment's overlays pin for each
// image; they must all agree.
func sourcePins(w *gitops.Workspace, o PromoteOptions) (map[string]kustomize.Entry, error) {
	out := map[string]kustomize.Entry{}
	seen := map[string]map[string]string{}
	for _, ov := range o.From.Overlays {
		entries, err := w.Entries(o.From.InRepo(ov), ov+" ("+o.From.Env+")")
		if err != nil {
			return nil, err
		}
		for _, im := range o.Images {
			e, ok := im.EntryIn(entries)
			if !ok {
				return nil, &NotPinnedError{Overlay: ov, Env: o.From.Env, Image: im.Name}
			}
			if e.NewName == "" {
				e.NewName = e.Name
			}
			ref := e.Ref()
			if seen[im.Name] == nil {
				seen[im.Name] = map[string]string{}
				out[im.Name] = e
			}
			seen[im.Name][ov] = ref
			if first := out[im.Name]; first.NewName != e.NewName || first.NewTag != e.NewTag || first.Digest != e.Digest {
				return nil, &DisagreeError{Env: o.From.Env, Image: im.Name, Pins: seen[im.Name]}
			}
		}
	}
	return out, nil
}

func promoteMessage(o PromoteOptions, imgs []PromotedImage, r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "shipit: promote %s to %s", o.From.Env, o.To.Env)
	if o.To.SkipCI {
		b.WriteString(" [skip ci]")
	}
	b.WriteString("\n\n")
	changed := map[string]bool{}
	for _, ov := range r.Overlays {
		for _, im := range ov.Images {
			if im.Kept == "" && im.From != im.To {
				changed[im.Image] = true
			}
		}
	}
	for _, im := range imgs {
		if changed[im.Name] {
			fmt.Fprintf(&b, "%s: %s\n", im.Name, kustomize.Pin{NewName: im.NewName, NewTag: im.NewTag, Digest: im.Digest}.Ref())
		}
	}
	fmt.Fprintf(&b, "\nFrom: %s (%s)\nTo: %s (%s)\n", o.From.Env, strings.Join(o.From.Overlays, ", "), o.To.Env, strings.Join(o.To.Overlays, ", "))
	return b.String()
}

// Restore pins an environment back to what it pinned before a command
// (the Old entries of that command's overlay results), through the path
// shipit pin takes: a hold on each image it moves back, one commit that
// says why. It compares before it writes: an image whose pin is no longer
// what the command wrote (a newer release landed meanwhile) is left as it
// is, with a line saying so.
func Restore(ctx context.Context, d Deploy, before []OverlayResult, why string, events progress.Sink) (*Result, error) {
	prev := map[string][]kustomize.Image{}
	wrote := map[string]map[string]string{} // overlay -> image -> the reference the command wrote
	for _, ov := range before {
		for _, im := range ov.Images {
			if im.Kept != "" || !im.Old.Found() || im.From == im.To {
				continue
			}
			prev[ov.Path] = append(prev[ov.Path], kustomize.Image{Name: im.Image, Entry: im.Old.Name, Repository: im.Old.NewName, Tag: im.Old.NewTag, Digest: im.Old.Digest})
			if wrote[ov.Path] == nil {
				wrote[ov.Path] = map[string]string{}
			}
			wrote[ov.Path][im.Image] = im.To
		}
	}
	res := &Result{}
	if len(prev) == 0 {
		return res, nil
	}
	d.Overlays = nil
	for _, ov := range before {
		if len(prev[ov.Path]) > 0 {
			d.Overlays = append(d.Overlays, ov.Path)
		}
	}
	still := func(_ context.Context, w *gitops.Workspace, overlay string) ([]kustomize.Image, error) {
		entries, err := w.Entries(d.InRepo(overlay), overlay)
		if err != nil {
			return nil, err
		}
		var out []kustomize.Image
		for _, im := range prev[overlay] {
			cur, ok := entries[im.Entry]
			if now := cur.Ref(); !ok || now != wrote[overlay][im.Name] {
				progress.Infof(events, "%s: %s is not rolled back: it pins %s now, not the %s that failed (someone moved it meanwhile)", overlay, im.Name, orNone(now, ok), wrote[overlay][im.Name])
				continue
			}
			out = append(out, im)
		}
		return out, nil
	}
	err := writePins(ctx, Options{Deploy: d, Events: events}, res, nil, pinHooks{
		images: still,
		keep:   func(Holds) kustomize.Keep { return nil },
		holds:  pinHolds,
		message: func(r *Result) string {
			var lines []string
			for _, ov := range r.Overlays {
				for _, im := range ov.Images {
					if im.From != im.To {
						lines = append(lines, fmt.Sprintf("%s: %s %s -> %s", ov.Path, im.Image, im.FromOrNone(), im.To))
					}
				}
			}
			return fmt.Sprintf("shipit: roll back %s: %s\n\n%s\n", d.Env, why, strings.Join(lines, "\n"))
		},
	})
	return res, err
}

func orNone(ref string, ok bool) string {
	if !ok {
		return "nothing"
	}
	return ref
}
