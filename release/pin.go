package release

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/tag"
)

// ErrNoSuchTag is a pin to a tag some image does not have.
var ErrNoSuchTag = errors.New("no such tag")

// PinImage is an image to pin.
type PinImage struct {
	Name          string
	Repository    string
	KustomizeName string // the images entry name, when configured
}

// PinOptions configure a pin.
type PinOptions struct {
	Tag      string
	Images   []PinImage
	Registry Registry
	Deploy   Deploy // Overlays: the ones to move
	DryRun   bool
	Events   progress.Sink // notices; nil: none
	// Now is the clock for rollback tags in Image Updater mode.
	Now func() time.Time
}

// PinResult is what a pin did.
type PinResult struct {
	Tag         string          `json:"tag"`
	Images      []ImageResult   `json:"images"`
	Overlays    []OverlayResult `json:"overlays,omitempty"`
	RollbackTag string          `json:"rollbackTag,omitempty"` // Image Updater mode: the new tag on the old digest
	gitops.Change
}

// Pin moves every selected image of the selected overlays to an existing
// release tag: the explicit way to roll back (or forward). In git mode it
// changes the pins through the release machinery and records a hold, so
// that re-running an older release cannot undo it. In Image Updater mode
// it gives the tag's digest a new tag that sorts after every existing one,
// so the updater's alphabetical strategy rolls to it.
func Pin(ctx context.Context, o PinOptions) (*PinResult, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	res := &PinResult{Tag: o.Tag}
	res.DryRun = o.DryRun
	manifests, err := lookupAll(ctx, o.Registry, o.Images, o.Tag, o.Deploy.ImageUpdater)
	if err != nil {
		return res, err
	}
	digests := map[string]string{}
	for n, m := range manifests {
		digests[n] = m.Digest
	}
	for _, im := range o.Images {
		d := digests[im.Name]
		res.Images = append(res.Images, ImageResult{Name: im.Name, Repository: im.Repository, Digest: d, Ref: im.Repository + ":" + o.Tag + "@" + d, Action: ActionExists})
	}
	if o.Deploy.ImageUpdater {
		return res, retag(ctx, o, res, manifests)
	}
	var imgs []kustomize.Image
	for _, im := range o.Images {
		imgs = append(imgs, kustomize.Image{Name: im.Name, Entry: im.KustomizeName, Repository: im.Repository, Tag: o.Tag, Digest: digests[im.Name]})
	}
	r := &Result{Tag: o.Tag}
	r.DryRun = o.DryRun
	err = writePins(ctx, Options{Deploy: o.Deploy, DryRun: o.DryRun, Events: o.Events}, r, imgs, pinHooks{
		keep:    func(Holds) kustomize.Keep { return nil },
		holds:   pinHolds,
		message: func(r *Result) string { return pinMessage(o.Tag, r) },
	})
	res.Overlays, res.Change = r.Overlays, r.Change
	return res, err
}

// lookupAll resolves tag for every image, with one manifest request each
// (a HEAD, or a GET when the manifest itself is needed to retag it); a
// missing tag is an error naming every image that lacks it.
func lookupAll(ctx context.Context, reg Registry, imgs []PinImage, t string, full bool) (map[string]*Manifest, error) {
	out := map[string]*Manifest{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(imgs))
	for i, im := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m *Manifest
			var err error
			if full {
				m, err = reg.Manifest(ctx, im.Repository, t)
			} else {
				var d string
				if d, err = reg.Lookup(ctx, im.Repository, t); d != "" {
					m = &Manifest{Digest: d}
				}
			}
			if err == nil && m == nil {
				err = fmt.Errorf("image %s: %w %s in %s", im.Name, ErrNoSuchTag, t, im.Repository)
			}
			errs[i] = err
			mu.Lock()
			out[im.Name] = m
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w; nothing was changed (shipit history lists the release tags)", err)
	}
	return out, nil
}

func pinMessage(to string, r *Result) string {
	var lines []string
	back, from := false, map[string]bool{}
	for _, ov := range r.Overlays {
		for _, im := range ov.Images {
			if im.From == im.To {
				continue
			}
			old := strings.TrimPrefix(tagOf(im.From), ":")
			if old != "" {
				from[old] = true
				if tag.Less(to, old) {
					back = true
				}
			}
			lines = append(lines, fmt.Sprintf("%s: %s %s -> %s", ov.Path, im.Image, im.FromOrNone(), im.To))
		}
	}
	var olds []string
	for t := range from {
		olds = append(olds, t)
	}
	sort.Strings(olds)
	head := "shipit: pin " + to
	if back {
		head = fmt.Sprintf("shipit: roll back from %s to %s", strings.Join(olds, ", "), to)
	}
	return head + "\n\n" + strings.Join(lines, "\n") + "\n"
}

// tagOf returns the tag of a reference, or "".
func tagOf(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return ""
}

// retag gives the pinned tag's digest a new release tag that sorts after
// every existing release tag of every selected image: a manifest copy, no
// blob moves. Its time is now (or a second after the newest tag, if that
// is later), its commit part the pinned tag's, so history can show it as
// a rollback to that tag.
func retag(ctx context.Context, o PinOptions, res *PinResult, manifests map[string]*Manifest) error {
	want, err := tag.Parse(o.Tag)
	if err != nil {
		return err
	}
	newest := want.Time
	for _, im := range o.Images {
		tags, err := o.Registry.Tags(ctx, im.Repository)
		if err != nil {
			return err
		}
		for _, s := range tags {
			if t, err := tag.Parse(s); err == nil && t.Prefix == want.Prefix && !t.Dirty && t.Time.After(newest) {
				newest = t.Time
			}
		}
	}
	at := o.Now().UTC().Truncate(time.Second)
	if !at.After(newest) {
		at = newest.Add(time.Second)
	}
	rb := tag.Tag{Prefix: want.Prefix, Time: at, SHA7: want.SHA7}.String()
	res.RollbackTag = rb
	if o.DryRun {
		return nil
	}
	for i, im := range o.Images {
		if err := o.Registry.PutManifest(ctx, im.Repository, rb, manifests[im.Name]); err != nil {
			return err
		}
		res.Images[i].Ref = im.Repository + ":" + rb + "@" + res.Images[i].Digest
		res.Images[i].Action = ActionRetagged
	}
	return nil
}
