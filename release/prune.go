package release

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/retry"
	"github.com/shipit-dev/shipit/internal/tag"
	imageupdater "github.com/shipit-dev/shipit/internal/updater"
	"github.com/shipit-dev/shipit/release/gitops"
	"github.com/shipit-dev/shipit/release/kustomize"
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

// ErrDeleteRefused is a registry that does not allow deletes.
var ErrDeleteRefused = errors.New("the registry refuses deletes")

// PruneOptions configure a prune.
type PruneOptions struct {
	Images       []PinImage
	Registry     Registry
	Deleter      Deleter    // the registry API: manifests by digest
	TagDeleter   TagDeleter // when set (ECR), tags are deleted by name instead
	Deploy       Deploy     // the overlays whose pins are kept (all environments')
	KeepHistory  int        // pins in this many GitOps commits are kept
	Keep         int        // the newest this many release tags (per image and prefix) are kept
	MinAge       time.Duration
	IncludeOther bool // tags that are not release tags may go too
	UpdaterMode  bool // keep the newest release tag and the updater's pick
	Prefix       string
	DryRun       bool
	Now          func() time.Time
	TempDir      string
	Events       progress.Sink
	Jobs         int // concurrent deletes; 0: 8
	// PreviewDir is deploy.previews.dir: what a live preview pins is kept.
	PreviewDir string
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
)

// PruneTag is one tag's fate.
type PruneTag struct {
	Tag    string   `json:"tag"`
	Digest string   `json:"digest,omitempty"`
	Keep   []string `json:"keep,omitempty"` // why it stays; empty: deleted
}

// PruneImage is one image's plan.
type PruneImage struct {
	Image      string     `json:"image"`
	Repository string     `json:"repository"`
	Kept       []PruneTag `json:"kept"`
	Deleted    []PruneTag `json:"deleted"`
	Failed     []string   `json:"failed,omitempty"` // tags a delete failed for
}

// PruneResult is the plan, and what was done of it.
type PruneResult struct {
	Images   []PruneImage `json:"images"`
	DryRun   bool         `json:"dryRun,omitempty"`
	Requests int          `json:"deleteRequests"`
}

// Prune deletes the release tags nothing needs, and the manifests left
// without a tag. It decides from the pins of every overlay at the head of
// the GitOps branch and in its recent history, the holds, the newest tags
// and their age; if the GitOps repository cannot be read it deletes
// nothing. The whole plan is made before the first delete.
func Prune(ctx context.Context, o PruneOptions) (*PruneResult, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	res := &PruneResult{DryRun: o.DryRun}
	pins, err := historyPins(ctx, o)
	if err != nil {
		return res, fmt.Errorf("reading the pins in the GitOps repository (nothing was deleted): %w", err)
	}
	for _, im := range o.Images {
		p, err := planImage(ctx, o, im, pins[im.Name])
		if err != nil {
			return res, fmt.Errorf("%s (nothing was deleted): %w", im.Name, err)
		}
		res.Images = append(res.Images, p)
	}
	if o.DryRun {
		return res, nil
	}
	return res, deleteAll(ctx, o, res)
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

// historyPins reads what the overlays pin at the head and in the last
// KeepHistory commits, and the holds at the head, per image.
func historyPins(ctx context.Context, o PruneOptions) (map[string]keptRefs, error) {
	out := map[string]keptRefs{}
	for _, im := range o.Images {
		out[im.Name] = keptRefs{tags: map[string]string{}, digests: map[string]string{}}
	}
	if len(o.Deploy.Overlays) == 0 {
		return out, nil
	}
	repo, done, err := openClone(ctx, o.Deploy, o.TempDir, max(o.KeepHistory, 1))
	if err != nil {
		return nil, err
	}
	defer done()
	revs, err := repo.Revisions(ctx, max(o.KeepHistory, 1))
	if err != nil {
		return nil, err
	}
	for i, rev := range revs {
		why := KeepHistory
		if i == 0 {
			why = KeepPinned
		}
		for _, ov := range o.Deploy.Overlays {
			dir := o.Deploy.inRepo(ov)
			if i == 0 {
				if err := checkOverlay(repo.Dir, repo.URL, dir); err != nil {
					return nil, err
				}
				holds, err := readHolds(filepath.Join(repo.Dir, dir))
				if err != nil {
					return nil, err
				}
				for name, h := range holds {
					if k, ok := out[name]; ok {
						k.add(h.Pinned, "", KeepHeld)
					}
				}
			}
			data, found, err := kustomizationAt(ctx, repo, rev, dir)
			if err != nil {
				return nil, err
			}
			if !found {
				continue
			}
			entries, err := kustomize.Images(data)
			if err != nil {
				if i == 0 {
					return nil, fmt.Errorf("%s: %w", ov, err)
				}
				continue // an old commit's broken file pins nothing
			}
			for _, im := range o.Images {
				if e, ok := entryFor(entries, im); ok {
					out[im.Name].add(e.NewTag, e.Digest, why)
					// What the follower pins runs too (init's assets-previous).
					if f, ok := entries[e.Name+kustomize.PreviousSuffix]; ok {
						out[im.Name].add(f.NewTag, f.Digest, why)
					}
				}
			}
		}
	}
	if o.PreviewDir == "" {
		return out, nil
	}
	// Every live preview runs what it pins.
	previews, err := readPreviews(repo, o.Deploy.inRepo(o.PreviewDir))
	if err != nil {
		return nil, err
	}
	for _, p := range previews {
		for _, im := range o.Images {
			if e, ok := entryFor(p.entries, im); ok {
				out[im.Name].add(e.NewTag, e.Digest, KeepPreview)
			}
		}
	}
	return out, nil
}

// kustomizationAt reads an overlay's kustomization as it was at a commit.
func kustomizationAt(ctx context.Context, repo *gitops.Repo, rev, dir string) ([]byte, bool, error) {
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		data, ok, err := repo.FileAt(ctx, rev, filepath.Join(dir, n))
		if err != nil || ok {
			return data, ok, err
		}
	}
	return nil, false, nil
}

// planImage decides each tag of one image.
func planImage(ctx context.Context, o PruneOptions, im PinImage, pinned keptRefs) (PruneImage, error) {
	p := PruneImage{Image: im.Name, Repository: im.Repository}
	all, err := o.Registry.Tags(ctx, im.Repository)
	if err != nil {
		return p, err
	}
	digests, err := lookupTags(ctx, o.Registry, im.Repository, all)
	if err != nil {
		return p, err
	}
	// The newest --keep release tags of each prefix.
	byPrefix := map[string][]string{}
	for _, s := range all {
		if t, err := tag.Parse(s); err == nil {
			byPrefix[t.Prefix] = append(byPrefix[t.Prefix], s)
		}
	}
	newest := map[string]bool{}
	for _, ts := range byPrefix {
		sort.Slice(ts, func(i, j int) bool { return tag.Less(ts[j], ts[i]) })
		for i := 0; i < len(ts) && i < o.Keep; i++ {
			newest[ts[i]] = true
		}
	}
	updater := map[string]bool{}
	if o.UpdaterMode {
		updater[newestRelease(all, o.Prefix)] = true
		if pick, err := imageupdater.Pick(all, tag.Pattern(o.Prefix)); err == nil {
			updater[pick] = true
		}
	}
	now := o.Now()
	decide := func(s string) []string {
		var why []string
		if r, ok := pinned.tags[s]; ok {
			why = append(why, r)
		}
		if r, ok := pinned.digests[digests[s]]; ok && digests[s] != "" {
			why = append(why, r)
		}
		t, err := tag.Parse(s)
		if err != nil {
			if !o.IncludeOther {
				why = append(why, KeepOther)
			}
			return why
		}
		if newest[s] {
			why = append(why, KeepNewest)
		}
		if o.MinAge > 0 && now.Sub(t.Time) < o.MinAge {
			why = append(why, KeepYoung)
		}
		if updater[s] {
			why = append(why, KeepUpdater)
		}
		slices.Sort(why)
		return slices.Compact(why)
	}
	keep := map[string][]string{}
	for _, s := range all {
		keep[s] = decide(s)
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
		pt := PruneTag{Tag: s, Digest: digests[s], Keep: keep[s]}
		if len(pt.Keep) > 0 {
			p.Kept = append(p.Kept, pt)
		} else {
			p.Deleted = append(p.Deleted, pt)
		}
	}
	return p, nil
}

// lookupTags resolves every tag's digest, several at a time.
func lookupTags(ctx context.Context, reg Registry, repo string, tags []string) (map[string]string, error) {
	out := make(map[string]string, len(tags))
	var mu sync.Mutex
	errs := make([]error, len(tags))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, t := range tags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			d, err := reg.Lookup(ctx, repo, t)
			errs[i] = err
			mu.Lock()
			out[t] = d
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// deleteAll carries the plan out: one delete alone first, so that a
// registry that refuses deletes is found before anything is gone; then the
// rest, several at a time, retried on 429 and 5xx.
func deleteAll(ctx context.Context, o PruneOptions, res *PruneResult) error {
	type job struct {
		img  int
		repo string
		refs []string // a digest, or tags (TagDeleter)
		tags []string // the tags the job removes
	}
	var jobs []job
	for i, p := range res.Images {
		if o.TagDeleter != nil {
			var tags []string
			for _, d := range p.Deleted {
				tags = append(tags, d.Tag)
			}
			if len(tags) > 0 {
				jobs = append(jobs, job{img: i, repo: p.Repository, refs: tags, tags: tags})
			}
			continue
		}
		byDigest := map[string][]string{}
		var order []string
		for _, d := range p.Deleted {
			if _, ok := byDigest[d.Digest]; !ok {
				order = append(order, d.Digest)
			}
			byDigest[d.Digest] = append(byDigest[d.Digest], d.Tag)
		}
		for _, d := range order {
			jobs = append(jobs, job{img: i, repo: p.Repository, refs: []string{d}, tags: byDigest[d]})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	var mu sync.Mutex
	failed := map[int][]string{}
	var errs []error
	run := func(j job) error {
		err := retry.Do(ctx, retry.Policy{Attempts: 5, Delay: 300 * time.Millisecond, Max: 5 * time.Second}, transient, func(int) error {
			mu.Lock()
			res.Requests++
			mu.Unlock()
			if o.TagDeleter != nil {
				_, err := o.TagDeleter.DeleteTags(ctx, j.repo, j.refs)
				return err
			}
			return o.Deleter.DeleteManifest(ctx, j.repo, j.refs[0])
		})
		if err != nil {
			mu.Lock()
			failed[j.img] = append(failed[j.img], j.tags...)
			errs = append(errs, err)
			mu.Unlock()
			return err
		}
		progress.Debugf(o.Events, "deleted %s: %s", j.repo, strings.Join(j.tags, ", "))
		return nil
	}
	if err := run(jobs[0]); err != nil {
		if refused(err) {
			res.Requests = 0
			return fmt.Errorf("%w (%w): nothing was deleted. Enable deletes in the registry (distribution: storage.delete.enabled: true), or let an ECR lifecycle policy expire untagged images (shipit lifecycle-policy)", ErrDeleteRefused, err)
		}
		return fmt.Errorf("nothing was deleted: %w", err)
	}
	jobsN := o.Jobs
	if jobsN <= 0 {
		jobsN = 8
	}
	sem := make(chan struct{}, jobsN)
	var wg sync.WaitGroup
	for _, j := range jobs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_ = run(j)
		}()
	}
	wg.Wait()
	for i, tags := range failed {
		res.Images[i].Failed = tags
		gone := map[string]bool{}
		for _, t := range tags {
			gone[t] = true
		}
		var deleted []PruneTag
		for _, d := range res.Images[i].Deleted {
			if !gone[d.Tag] {
				deleted = append(deleted, d)
			}
		}
		res.Images[i].Deleted = deleted
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d deletes failed (the others were done; run prune again): %w", len(errs), errors.Join(errs...))
	}
	return nil
}

// refused reports whether a registry refused a delete as unsupported.
func refused(err error) bool {
	if errors.Is(err, ErrDeleteRefused) {
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusMethodNotAllowed {
			return true
		}
		for _, d := range te.Errors {
			if d.Code == transport.UnsupportedErrorCode {
				return true
			}
		}
	}
	return false
}
