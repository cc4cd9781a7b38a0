// Package prune is shipit's retention: it deletes the release tags nothing
// needs, and the manifests left without a tag, keeping what every
// environment pins, has pinned recently, holds, or may roll back to.
package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	imageupdater "github.com/shipit-dev/shipit/internal/updater"

	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/sign"
	"github.com/shipit-dev/shipit/internal/tag"
	"github.com/shipit-dev/shipit/release"
)

// Deleter removes images from a registry.
type Deleter interface {
	// DeleteManifest deletes a manifest by digest, and with it every tag
	// that points at it (the registry API has no way to untag alone).
	DeleteManifest(ctx context.Context, repo, digest string) error
}

// TagDeleter is a registry that deletes tags one by one, and a manifest
// once no tag is left on it (Amazon ECR's BatchDeleteImage). It deletes
// tags in batches and returns those it deleted.
type TagDeleter interface {
	DeleteTags(ctx context.Context, repo string, tags []string) ([]string, error)
}

// deleteJobs is how many deletes run at once.
const deleteJobs = 8

// ErrDeleteRefused is a registry that does not allow deletes.
var ErrDeleteRefused = errors.New("the registry refuses deletes")

// Options configure a prune.
type Options struct {
	Images       []release.PinImage
	Registry     release.Registry
	Deleter      Deleter        // the registry API: manifests by digest
	TagDeleter   TagDeleter     // when set (ECR), tags are deleted by name instead
	Deploy       release.Deploy // the overlays whose pins are kept (all environments')
	KeepHistory  int            // the last this many distinct pins of each overlay and image are kept
	Keep         int            // the newest this many release tags (per image and prefix) are kept
	MinAge       time.Duration
	IncludeOther bool // tags that are not release tags may go too
	UpdaterMode  bool // keep the newest release tag and the updater's pick
	Prefix       string
	DryRun       bool
	Now          func() time.Time
	Events       progress.Sink
	// PreviewDir is deploy.previews.dir: what a live preview pins is kept.
	PreviewDir string
	// PushTimes, when set (ECR), says when each tag's image was pushed:
	// an image pushed within MinAge is kept whatever its tag's time.
	PushTimes PushTimer
}

// PushTimer says when the images of a repository were pushed, by tag
// (Amazon ECR's imagePushedAt).
type PushTimer interface {
	PushedAt(ctx context.Context, repo string) (map[string]time.Time, error)
}

// Keep reasons.
const (
	KeepPinned       = "pinned"        // pinned at the head of deploy.branch
	KeepPreview      = "preview"       // a live preview pins it
	KeepHistory      = "rollback"      // pinned in recent GitOps history
	KeepHeld         = "held"          // a hold names it
	KeepNewest       = "newest"        // among the newest --keep
	KeepYoung        = "young"         // younger than --min-age
	KeepOther        = "not-release"   // not a shipit release tag
	KeepUpdater      = "updater"       // the Image Updater's pick or the newest tag
	KeepSharesDigest = "shares-digest" // its manifest carries a tag that is kept
	KeepUnchecked    = "unchecked"     // its batch was not deleted: the pins or tags could not be read again
	KeepCompanion    = "companion"     // the signature or attestations of a digest that stays
)

// Tag is one tag's fate.
type Tag struct {
	Tag    string   `json:"tag"`
	Digest string   `json:"digest,omitempty"`
	Keep   []string `json:"keep,omitempty"` // why it stays; empty: deleted
	// Of is the digest a companion tag belongs to (its signatures
	// sha256-<hex>.sig, attestations .att, or the referrers fallback
	// sha256-<hex>): it goes when that digest goes, never before.
	Of string `json:"of,omitempty"`
}

// Image is one image's plan.
type Image struct {
	Image      string   `json:"image"`
	Repository string   `json:"repository"`
	Kept       []Tag    `json:"kept"`
	Deleted    []Tag    `json:"deleted"`
	Failed     []string `json:"failed,omitempty"` // tags a delete failed for
}

// Result is the plan, and what was done of it.
type Result struct {
	Images   []Image `json:"images"`
	DryRun   bool    `json:"dryRun,omitempty"`
	Requests int     `json:"deleteRequests"`
	// MinAgeFrom is what --min-age is counted from: "push" (the time the
	// registry received the image: ECR) or "tag" (the tag's own time).
	MinAgeFrom string `json:"minAgeFrom"`
}

// Run deletes the release tags nothing needs, and the manifests left
// without a tag. It decides from the pins of every overlay at the head of
// the GitOps branch and the last KeepHistory distinct pins of each
// overlay and image in its history, the holds, the .argocd-source files,
// the newest tags and their age; if the GitOps repository cannot be read
// it deletes nothing. The plan is made before the first delete, and
// checked again before each batch of deletes (see deleteAll).
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	o.KeepHistory = max(o.KeepHistory, 1)
	res := &Result{DryRun: o.DryRun, MinAgeFrom: "tag"}
	if o.PushTimes != nil {
		res.MinAgeFrom = "push"
	} else if o.MinAge > 0 {
		progress.Infof(o.Events, "--min-age is counted from each tag's own time (its commit's): this registry does not say when an image was pushed")
	}
	rp := &replanner{pins: map[string]keptRefs{}}
	for _, im := range o.Images {
		rp.pins[im.Name] = keptRefs{tags: map[string]string{}, digests: map[string]string{}}
	}
	if len(o.Deploy.Overlays) > 0 {
		src, err := openPins(ctx, o)
		defer src.close()
		if err == nil {
			rp.src = src
			rp.pins, err = src.read(ctx)
		}
		if err != nil {
			return res, fmt.Errorf("reading the pins in the GitOps repository (nothing was deleted): %w", err)
		}
	}
	for _, im := range o.Images {
		p, err := planImage(ctx, o, im, rp.pins[im.Name])
		if err != nil {
			return res, fmt.Errorf("%s (nothing was deleted): %w", im.Name, err)
		}
		res.Images = append(res.Images, p)
	}
	if o.DryRun {
		return res, nil
	}
	return res, deleteAll(ctx, o, res, rp)
}

// keptRefs are an image's tags and digests that pins name, by reason.
type keptRefs struct {
	tags    map[string]string // tag -> reason
	digests map[string]string // digest -> reason
}

func (k keptRefs) add(tagOrEmpty, digest, why string) {
	if tagOrEmpty != "" {
		if _, ok := k.tags[tagOrEmpty]; !ok {
			k.tags[tagOrEmpty] = why
		}
	}
	if digest != "" {
		if _, ok := k.digests[digest]; !ok {
			k.digests[digest] = why
		}
	}
}

// planImage decides each tag of one image.
func planImage(ctx context.Context, o Options, im release.PinImage, pinned keptRefs) (Image, error) {
	p := Image{Image: im.Name, Repository: im.Repository}
	all, err := o.Registry.Tags(ctx, im.Repository)
	if err != nil {
		return p, err
	}
	// A registry may list a tag twice (one per page, or per manifest): each
	// counts once, or --keep N keeps fewer than N.
	slices.Sort(all)
	all = slices.Compact(all)
	digests, err := release.LookupTags(ctx, o.Registry, im.Repository, all)
	if err != nil {
		return p, err
	}
	all, companions := splitCompanions(all)
	var pushed map[string]time.Time
	if o.PushTimes != nil && o.MinAge > 0 {
		if pushed, err = o.PushTimes.PushedAt(ctx, im.Repository); err != nil {
			return p, err
		}
	}
	r := rules{o: o, pinned: pinned, digests: digests, pushed: pushed, now: o.Now(), newest: newestTags(all, o.Keep), updater: map[string]bool{}}
	if o.UpdaterMode {
		r.updater[tag.Newest(all, o.Prefix)] = true
		if pick, err := imageupdater.Pick(all, tag.Pattern(o.Prefix)); err == nil {
			r.updater[pick] = true
		}
	}
	keep := map[string][]string{}
	for _, s := range all {
		keep[s] = r.decide(s)
	}
	// Without tag deletes, a manifest goes with all its tags: a tag that
	// shares its digest with a kept tag must stay.
	if o.TagDeleter == nil {
		keptDigest := map[string]bool{}
		for _, s := range all {
			if len(keep[s]) > 0 {
				keptDigest[digests[s]] = true
			}
		}
		for _, s := range all {
			if len(keep[s]) == 0 && keptDigest[digests[s]] {
				keep[s] = []string{KeepSharesDigest}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return tag.Less(all[j], all[i]) })
	for _, s := range all {
		pt := Tag{Tag: s, Digest: digests[s], Keep: keep[s]}
		if len(pt.Keep) > 0 {
			p.Kept = append(p.Kept, pt)
		} else {
			p.Deleted = append(p.Deleted, pt)
		}
	}
	planCompanions(&p, companions, digests, pinned)
	return p, nil
}

// splitCompanions separates the tags stored beside digests (signatures,
// attestations, referrers fallbacks: tag -> the digest they belong to)
// from the rest.
func splitCompanions(all []string) ([]string, map[string]string) {
	var rest []string
	comp := map[string]string{}
	for _, s := range all {
		if d, ok := sign.CompanionOf(s); ok {
			comp[s] = d
		} else {
			rest = append(rest, s)
		}
	}
	return rest, comp
}

// planCompanions plans each companion tag with its digest: deleted when
// every tag on that digest is, kept otherwise (a digest that stays, is
// pinned, or has no tag this prune decides on).
func planCompanions(p *Image, comp map[string]string, digests map[string]string, pinned keptRefs) {
	kept, doomed := map[string]bool{}, map[string]bool{}
	for _, t := range p.Kept {
		kept[t.Digest] = true
	}
	for _, t := range p.Deleted {
		doomed[t.Digest] = true
	}
	tags := make([]string, 0, len(comp))
	for t := range comp {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	for _, t := range tags {
		of := comp[t]
		pt := Tag{Tag: t, Digest: digests[t], Of: of}
		_, pin := pinned.digests[of]
		if !doomed[of] || kept[of] || pin || pt.Digest == "" {
			pt.Keep = []string{KeepCompanion}
			p.Kept = append(p.Kept, pt)
			continue
		}
		p.Deleted = append(p.Deleted, pt)
	}
}

// newestTags are the newest keep release tags of each prefix.
func newestTags(all []string, keep int) map[string]bool {
	byPrefix := map[string][]string{}
	for _, s := range all {
		if t, err := tag.Parse(s); err == nil {
			byPrefix[t.Prefix] = append(byPrefix[t.Prefix], s)
		}
	}
	newest := map[string]bool{}
	for _, ts := range byPrefix {
		sort.Slice(ts, func(i, j int) bool { return tag.Less(ts[j], ts[i]) })
		for i := 0; i < len(ts) && i < keep; i++ {
			newest[ts[i]] = true
		}
	}
	return newest
}

// rules decide one image's tags.
type rules struct {
	o       Options
	pinned  keptRefs
	digests map[string]string    // tag -> digest
	pushed  map[string]time.Time // tag -> when its image was pushed (ECR); nil: unknown
	now     time.Time
	newest  map[string]bool
	updater map[string]bool
}

// decide says why a tag stays; none: it goes.
func (r rules) decide(s string) []string {
	var why []string
	if k, ok := r.pinned.tags[s]; ok {
		why = append(why, k)
	}
	if k, ok := r.pinned.digests[r.digests[s]]; ok && r.digests[s] != "" {
		why = append(why, k)
	}
	t, err := tag.Parse(s)
	if err != nil {
		if !r.o.IncludeOther {
			why = append(why, KeepOther)
		}
		return why
	}
	if r.newest[s] {
		why = append(why, KeepNewest)
	}
	if r.young(s, t.Time) {
		why = append(why, KeepYoung)
	}
	if r.updater[s] {
		why = append(why, KeepUpdater)
	}
	slices.Sort(why)
	return slices.Compact(why)
}

// young: a tag whose own time is within MinAge, or (where the registry
// says when it was pushed) whose image was pushed within MinAge, or whose
// push time the registry did not report (pushed after it answered).
func (r rules) young(s string, tagged time.Time) bool {
	if r.o.MinAge <= 0 {
		return false
	}
	if r.now.Sub(tagged) < r.o.MinAge {
		return true
	}
	if r.pushed == nil {
		return false
	}
	at, ok := r.pushed[s]
	return !ok || r.now.Sub(at) < r.o.MinAge
}
