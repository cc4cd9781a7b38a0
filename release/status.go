package release

import (
	"context"
	"sort"
	"time"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/tag"
	imageupdater "github.com/shipit-dev/shipit/internal/updater"
)

// OverlayState is what one overlay pins, read from the GitOps repository.
type OverlayState struct {
	Env     string // the environment it belongs to
	Path    string
	Entries map[string]kustomize.Entry // by shipit image name
	Holds   Holds
}

// ReadOverlays reads the pins and holds of the deploy overlays from a
// fresh shallow clone of the GitOps repository.
func ReadOverlays(ctx context.Context, d Deploy, imgs []PinImage) ([]OverlayState, error) {
	w, err := gitops.Open(ctx, d.Target, 1, d.overlayDirs()...)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	var out []OverlayState
	for _, ov := range d.Overlays {
		entries, err := w.Entries(d.InRepo(ov), ov)
		if err != nil {
			return nil, err
		}
		holds, err := w.Holds(d.InRepo(ov))
		if err != nil {
			return nil, err
		}
		st := OverlayState{Path: ov, Entries: map[string]kustomize.Entry{}, Holds: holds}
		for _, im := range imgs {
			if e, ok := im.EntryIn(entries); ok {
				st.Entries[im.Name] = e
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// HistoryEntry is one release tag of one image.
type HistoryEntry struct {
	Image      string    `json:"image"`
	Tag        string    `json:"tag"`
	Commit     string    `json:"commit"` // the commit's short id
	Time       time.Time `json:"time"`   // the release time (the commit time)
	Digest     string    `json:"digest"`
	PinnedIn   []string  `json:"pinnedIn,omitempty"`
	RollbackTo string    `json:"rollbackTo,omitempty"` // a tag shipit pin made: the release it rolls back to
	SameDigest []string  `json:"sameDigest,omitempty"` // other release tags on this digest
}

// History lists the release tags of each image, newest first, at most
// limit per image (0: all), with the overlays that pin each. It costs one
// tag list and a manifest request per tag shown (plus one for each pinned
// tag and each older tag of a shown tag's commit, for the marks), however
// many tags the repository holds. The marks (rollbacks, shared digests)
// are computed within those tags.
func History(ctx context.Context, reg Registry, imgs []PinImage, overlays []OverlayState, limit int) ([]HistoryEntry, error) {
	var out []HistoryEntry
	for _, im := range imgs {
		tags, err := releaseTags(ctx, reg, im.Repository)
		if err != nil {
			return nil, err
		}
		shown := tags
		if limit > 0 && len(tags) > limit {
			shown = tags[:limit]
		}
		// Besides the tags shown: the tags the overlays pin, and older tags
		// of the same commits (a rollback tag points at one of them).
		want := map[string]bool{}
		commits := map[string]bool{}
		for _, t := range shown {
			want[t.String()] = true
			commits[t.SHA7] = true
		}
		for _, ov := range overlays {
			if en, ok := ov.Entries[im.Name]; ok && en.NewTag != "" {
				want[en.NewTag] = true
			}
		}
		var looked []tag.Tag
		for _, t := range tags {
			if want[t.String()] || commits[t.SHA7] {
				looked = append(looked, t)
			}
		}
		names := make([]string, len(looked))
		for i, t := range looked {
			names[i] = t.String()
		}
		digests, err := LookupTags(ctx, reg, im.Repository, names)
		if err != nil {
			return nil, err
		}
		byDigest := map[string][]tag.Tag{}
		for _, t := range looked {
			d := digests[t.String()]
			byDigest[d] = append(byDigest[d], t)
		}
		for _, t := range shown {
			d := digests[t.String()]
			e := HistoryEntry{Image: im.Name, Tag: t.String(), Commit: t.SHA7, Time: t.Time, Digest: d}
			for _, o := range byDigest[d] {
				if o == t {
					continue
				}
				e.SameDigest = append(e.SameDigest, o.String())
				// A newer tag with the commit of an older tag on the same
				// digest is a rollback tag pointing at that release.
				if o.SHA7 == t.SHA7 && o.Time.Before(t.Time) && e.RollbackTo == "" {
					e.RollbackTo = o.String()
				}
			}
			for _, ov := range overlays {
				if en, ok := ov.Entries[im.Name]; ok && (en.NewTag == e.Tag || (en.NewTag == "" && en.Digest == e.Digest)) {
					e.PinnedIn = append(e.PinnedIn, ov.Path)
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// releaseTags lists a repository's release tags (not dirty), newest first.
func releaseTags(ctx context.Context, reg Registry, repo string) ([]tag.Tag, error) {
	all, err := reg.Tags(ctx, repo)
	if err != nil {
		return nil, err
	}
	var tags []tag.Tag
	for _, s := range all {
		if t, err := tag.Parse(s); err == nil && !t.Dirty {
			tags = append(tags, t)
		}
	}
	sort.Slice(tags, func(i, j int) bool { return tag.Less(tags[j].String(), tags[i].String()) })
	return tags, nil
}

// Pin states.
const (
	StateCurrent  = "current"  // pins the newest release
	StateBehind   = "behind"   // a newer release exists and nothing holds the pin back
	StateHeld     = "held"     // rolled back by shipit pin; releases up to the hold leave it
	StateUnpinned = "unpinned" // the overlay has no entry for the image
	StateUnknown  = "unknown"  // the pin is not a release tag shipit can compare
)

// StatusEntry is one image's pin in one overlay.
type StatusEntry struct {
	Environment string `json:"environment,omitempty"`
	Overlay     string `json:"overlay"`
	Image       string `json:"image"`
	PinnedTag   string `json:"pinnedTag,omitempty"`
	PinnedRef   string `json:"pinnedRef,omitempty"`
	Newest      string `json:"newest,omitempty"` // the newest release tag in the registry
	State       string `json:"state"`
	Hold        *Hold  `json:"hold,omitempty"`
	UpdaterPick string `json:"updaterPick,omitempty"` // image-updater mode: what the alphabetical strategy picks
}

// Status compares every overlay's pins with the registry's release tags.
// With updater set, it also predicts the tag Argo CD Image Updater's
// alphabetical strategy will pick, with the updater's own tag sort.
func Status(ctx context.Context, reg Registry, imgs []PinImage, overlays []OverlayState, prefix string, updater bool) ([]StatusEntry, error) {
	var out []StatusEntry
	for _, im := range imgs {
		all, err := reg.Tags(ctx, im.Repository)
		if err != nil {
			return nil, err
		}
		newest := tag.Newest(all, prefix)
		pick := ""
		if updater {
			if pick, err = imageupdater.Pick(all, tag.Pattern(prefix)); err != nil {
				return nil, err
			}
		}
		for _, ov := range overlays {
			e := StatusEntry{Environment: ov.Env, Overlay: ov.Path, Image: im.Name, Newest: newest, UpdaterPick: pick}
			en, ok := ov.Entries[im.Name]
			if h, held := ov.Holds[im.Name]; held {
				e.Hold = &h
			}
			switch {
			case !ok:
				e.State = StateUnpinned
			default:
				e.PinnedTag, e.PinnedRef = en.NewTag, en.Ref()
				target := newest
				if updater {
					target = pick
				}
				_, perr := tag.Parse(en.NewTag)
				switch {
				case perr != nil:
					e.State = StateUnknown
				case en.NewTag == target:
					e.State = StateCurrent
				case e.Hold != nil && !tag.Less(e.Hold.Until, target):
					e.State = StateHeld
				case tag.Less(en.NewTag, target):
					e.State = StateBehind
				default:
					e.State = StateUnknown
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}
