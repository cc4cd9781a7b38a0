package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shipit-dev/shipit/internal/ecr"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/retry"
	"github.com/shipit-dev/shipit/internal/tag"
	"github.com/shipit-dev/shipit/release"
)

// deleteBatch is how many delete requests are sent between two re-reads
// of the GitOps head and the tag lists.
const deleteBatch = 64

// job is one delete request: a manifest by digest (the registry API), or
// up to ecr.BatchSize tags by name (TagDeleter).
type job struct {
	img    int
	repo   string
	digest string   // the registry API: the manifest deleted
	tags   []string // the tags the job removes
	of     string   // a companion's: the digest it belongs to
}

// jobsOf splits the plan into delete requests: the release tags', then
// the companions' (signatures, attestations), each of which is sent only
// once its digest is gone.
func jobsOf(o Options, res *Result) ([]job, []job) {
	var jobs, comp []job
	for i, p := range res.Images {
		for _, d := range p.Deleted {
			if d.Of != "" {
				comp = append(comp, job{img: i, repo: p.Repository, digest: d.Digest, tags: []string{d.Tag}, of: d.Of})
			}
		}
		if o.TagDeleter != nil {
			var tags []string
			for _, d := range p.Deleted {
				if d.Of == "" {
					tags = append(tags, d.Tag)
				}
			}
			for start := 0; start < len(tags); start += ecr.BatchSize {
				jobs = append(jobs, job{img: i, repo: p.Repository, tags: tags[start:min(start+ecr.BatchSize, len(tags))]})
			}
			continue
		}
		byDigest := map[string][]string{}
		var order []string
		for _, d := range p.Deleted {
			if d.Of != "" {
				continue
			}
			if _, ok := byDigest[d.Digest]; !ok {
				order = append(order, d.Digest)
			}
			byDigest[d.Digest] = append(byDigest[d.Digest], d.Tag)
		}
		for _, d := range order {
			jobs = append(jobs, job{img: i, repo: p.Repository, digest: d, tags: byDigest[d]})
		}
	}
	return jobs, comp
}

// runCompanions deletes each companion tag whose digest was deleted (all
// its planned tags gone), and keeps the others.
func runCompanions(ctx context.Context, o Options, res *Result, comp []job, oc *outcome) {
	var ready []job
	for _, j := range comp {
		gone, any := true, false
		for _, t := range res.Images[j.img].Deleted {
			if t.Of == "" && t.Digest == j.of {
				any = true
				gone = gone && oc.state[j.img][t.Tag] == stateDeleted
			}
		}
		if !any || !gone {
			oc.set(j.img, j.tags, KeepCompanion)
			continue
		}
		ready = append(ready, j)
	}
	runBatch(ctx, o, ready, oc)
}

// outcome is what became of a planned tag.
type outcome struct {
	mu    sync.Mutex
	state []map[string]string // per image: tag -> "deleted", "failed", or the reason it was kept after all
	errs  []error
	reqs  int
}

const (
	stateDeleted = "deleted"
	stateFailed  = "failed"
)

func (oc *outcome) set(img int, tags []string, state string) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	for _, t := range tags {
		oc.state[img][t] = state
	}
}

// deleteAll carries the plan out in batches. Before each batch it reads
// the GitOps head again and, on the registry API, the tags of the
// batch's images, and drops what is kept now (saying so): a pin made
// while prune runs is never deleted. The first delete is sent alone, so
// that a registry that refuses deletes is found before anything is gone;
// the others several at a time, retried on 429 and 5xx.
func deleteAll(ctx context.Context, o Options, res *Result, rp *replanner) error {
	jobs, comp := jobsOf(o, res)
	oc := &outcome{}
	for range res.Images {
		oc.state = append(oc.state, map[string]string{})
	}
	var err error
	for start, probed := 0, false; start < len(jobs) && err == nil; {
		n := deleteBatch
		if !probed {
			n = 1
		}
		batch := jobs[start:min(start+n, len(jobs))]
		start += len(batch)
		if batch, err = rp.recheck(ctx, o, res, batch, oc); err != nil {
			err = fmt.Errorf("reading the pins and tags again before deleting (what was not deleted yet stays): %w", err)
			break
		}
		if len(batch) == 0 {
			continue
		}
		if !probed {
			probed = true
			if err = runJob(ctx, o, batch[0], oc); err != nil {
				res.Requests = oc.reqs
				if refused(err) {
					settle(res, oc)
					res.Requests = 0
					return fmt.Errorf("%w (%w): nothing was deleted. Enable deletes in the registry (distribution: storage.delete.enabled: true), or let an ECR lifecycle policy expire untagged images (shipit lifecycle-policy)", ErrDeleteRefused, err)
				}
				settle(res, oc)
				return fmt.Errorf("nothing was deleted: %w", err)
			}
			batch = batch[1:]
		}
		runBatch(ctx, o, batch, oc)
	}
	if err == nil {
		runCompanions(ctx, o, res, comp, oc)
	}
	res.Requests = oc.reqs
	settle(res, oc)
	if err != nil {
		return err
	}
	if len(oc.errs) > 0 {
		return fmt.Errorf("%d deletes failed (the others were done; run prune again): %w", len(oc.errs), errors.Join(oc.errs...))
	}
	return nil
}

// runBatch sends a batch's deletes, deleteJobs at a time.
func runBatch(ctx context.Context, o Options, batch []job, oc *outcome) {
	sem := make(chan struct{}, deleteJobs)
	var wg sync.WaitGroup
	for _, j := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_ = runJob(ctx, o, j, oc)
		}()
	}
	wg.Wait()
}

// runJob sends one delete, retried on 429 and 5xx.
func runJob(ctx context.Context, o Options, j job, oc *outcome) error {
	err := retry.Do(ctx, retry.Policy{Attempts: 5, Delay: 300 * time.Millisecond, Max: 5 * time.Second}, registry.Transient, func(int) error {
		oc.mu.Lock()
		oc.reqs++
		oc.mu.Unlock()
		if o.TagDeleter != nil {
			_, err := o.TagDeleter.DeleteTags(ctx, j.repo, j.tags)
			return err
		}
		return o.Deleter.DeleteManifest(ctx, j.repo, j.digest)
	})
	if err != nil {
		oc.set(j.img, j.tags, stateFailed)
		oc.mu.Lock()
		oc.errs = append(oc.errs, err)
		oc.mu.Unlock()
		return err
	}
	oc.set(j.img, j.tags, stateDeleted)
	progress.Debugf(o.Events, "deleted %s: %s", j.repo, strings.Join(j.tags, ", "))
	return nil
}

// settle makes the result say what was done: Deleted lists what was
// deleted, Failed what a delete failed for, and Kept gains what was kept
// after all and what was never reached.
func settle(res *Result, oc *outcome) {
	for i := range res.Images {
		p := &res.Images[i]
		var deleted []Tag
		p.Failed = nil
		for _, t := range p.Deleted {
			switch st := oc.state[i][t.Tag]; st {
			case stateDeleted:
				deleted = append(deleted, t)
			case stateFailed:
				p.Failed = append(p.Failed, t.Tag)
			case "":
				t.Keep = []string{KeepUnchecked}
				p.Kept = append(p.Kept, t)
			default:
				t.Keep = []string{st}
				p.Kept = append(p.Kept, t)
			}
		}
		p.Deleted = deleted
		sort.SliceStable(p.Kept, func(a, b int) bool { return tag.Less(p.Kept[b].Tag, p.Kept[a].Tag) })
	}
}

// replanner holds the pins the plan was made from, and re-reads them.
type replanner struct {
	src  *pinSource // nil: no overlays
	pins map[string]keptRefs
}

// recheck reads the GitOps head again (and the pins, if it moved) and,
// on the registry API, the tags of the batch's images, and returns the
// batch without the deletes that would now remove something kept.
func (rp *replanner) recheck(ctx context.Context, o Options, res *Result, batch []job, oc *outcome) ([]job, error) {
	if rp.src != nil {
		moved, err := rp.src.moved(ctx)
		if err != nil {
			return nil, err
		}
		if moved {
			pins, err := rp.src.read(ctx)
			if err != nil {
				return nil, err
			}
			rp.pins = pins
		}
	}
	var moreTags map[int]map[string]string // image -> digest -> a tag on it that the plan did not delete
	if o.TagDeleter == nil {
		var err error
		if moreTags, err = tagsNow(ctx, o, res, batch); err != nil {
			return nil, err
		}
	}
	var out []job
	for _, j := range batch {
		if j, ok := rp.keepNow(o, res, j, moreTags[j.img], oc); ok {
			out = append(out, j)
		}
	}
	return out, nil
}

// keepNow drops from a job what the pins read again keep (the whole
// manifest on the registry API), saying so; ok is false when nothing of
// the job is left to delete.
func (rp *replanner) keepNow(o Options, res *Result, j job, moreTags map[string]string, oc *outcome) (job, bool) {
	p := res.Images[j.img]
	k := rp.pins[p.Image]
	digestOf := map[string]string{}
	for _, d := range p.Deleted {
		digestOf[d.Tag] = d.Digest
	}
	var left []string
	for _, t := range j.tags {
		why, ok := k.tags[t]
		if !ok {
			why, ok = k.digests[digestOf[t]]
		}
		if !ok {
			left = append(left, t)
			continue
		}
		progress.Infof(o.Events, "%s:%s is not deleted: the GitOps branch moved since the plan, and its head (%.7s) keeps it (%s)", p.Repository, t, rp.head(), why)
		oc.set(j.img, []string{t}, why)
		if o.TagDeleter == nil {
			oc.set(j.img, j.tags, KeepSharesDigest)
			oc.set(j.img, []string{t}, why)
			return j, false
		}
	}
	if o.TagDeleter == nil {
		if other, ok := moreTags[j.digest]; ok {
			progress.Infof(o.Events, "%s@%s is not deleted: tag %s points at it now", p.Repository, j.digest, other)
			oc.set(j.img, j.tags, KeepSharesDigest)
			return j, false
		}
	}
	j.tags = left
	return j, len(left) > 0
}

func (rp *replanner) head() string {
	if rp.src == nil {
		return ""
	}
	return rp.src.head
}

// tagsNow lists the tags of the batch's images again and finds, for each
// manifest the batch deletes, a tag on it that the plan does not delete
// (one pushed or moved since the plan). Release tags the plan saw are not
// looked up again: shipit never moves one.
func tagsNow(ctx context.Context, o Options, res *Result, batch []job) (map[int]map[string]string, error) {
	doomed := map[int]map[string]bool{}
	for _, j := range batch {
		if doomed[j.img] == nil {
			doomed[j.img] = map[string]bool{}
		}
		doomed[j.img][j.digest] = true
	}
	out := map[int]map[string]string{}
	for img, digests := range doomed {
		p := res.Images[img]
		planned := map[string]bool{}
		deleting := map[string]bool{}
		for _, t := range p.Kept {
			planned[t.Tag] = true
		}
		for _, t := range p.Deleted {
			planned[t.Tag], deleting[t.Tag] = true, true
		}
		all, err := o.Registry.Tags(ctx, p.Repository)
		if err != nil {
			return nil, err
		}
		slices.Sort(all)
		var check []string
		for _, t := range slices.Compact(all) {
			if _, err := tag.Parse(t); err != nil || !planned[t] {
				check = append(check, t)
			}
		}
		now, err := release.LookupTags(ctx, o.Registry, p.Repository, check)
		if err != nil {
			return nil, err
		}
		out[img] = map[string]string{}
		for t, d := range now {
			if digests[d] && !deleting[t] {
				out[img][d] = t
			}
		}
	}
	return out, nil
}

// refused reports whether a registry refused a delete as unsupported.
func refused(err error) bool {
	return errors.Is(err, ErrDeleteRefused) || registry.DeleteUnsupported(err)
}
