package build

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/registry"
)

// Provenance records when a build ran, so each build of a commit with
// attestations is another index of the same images. Pushing one to a tag
// that already holds the commit's image would move the tag off the index
// a release may pin (which a lifecycle rule for untagged images then
// deletes), and an immutable repository refuses it. So such an image is
// pushed by digest, and tagged after: the tag keeps the index it holds
// when that has the same platform manifests; otherwise the new index gets
// the tag, as a push would have done.

// heldTags looks up the tags of the attested images a build pushes (on
// one daemon: a split image's index is put by its assembly) and marks those
// whose tag already holds a manifest to be pushed by digest. It returns
// those manifests by image name.
func heldTags(ctx context.Context, opt Options, reqs []Request) (map[string]*registry.Manifest, error) {
	held := map[string]*registry.Manifest{}
	if len(opt.Nodes) > 1 || opt.Registry == nil {
		return held, nil
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		if !r.Push || r.PushByDigest || (r.Provenance == "" && !r.SBOM) {
			continue
		}
		wg.Go(func() {
			m, err := opt.Registry.Manifest(ctx, r.Repository, r.Tag)
			if err != nil {
				errs[i] = fmt.Errorf("image %s: looking up %s:%s: %w", r.Name, r.Repository, r.Tag, err)
				return
			}
			if m != nil {
				mu.Lock()
				held[r.Name] = m
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if held[reqs[i].Name] != nil {
			reqs[i].PushByDigest = true
		}
	}
	return held, nil
}

// settleTag tags an attested image pushed by digest: the tag keeps what it
// held when that is the same image (res then names the held index), else
// it moves to the new index.
func settleTag(ctx context.Context, opt Options, res *Result, held *registry.Manifest) error {
	r := res.Request
	built, err := opt.Registry.Manifest(ctx, r.Repository, res.Digest)
	if err != nil {
		return err
	}
	if built == nil {
		return fmt.Errorf("image %s: %s@%s, just pushed, is not in the registry", r.Name, r.Repository, res.Digest)
	}
	if SameImages(built.Raw, held.Raw) {
		progress.Infof(opt.Events, "%s:%s already holds %s: the same image as this build's, with an earlier build's attestations; keeping it", r.Repository, r.Tag, held.Digest)
		d, err := digest.Parse(held.Digest)
		if err != nil {
			return err
		}
		res.Digest = held.Digest
		res.Descriptor.Digest, res.Descriptor.Size, res.Descriptor.MediaType = d, int64(len(held.Raw)), string(held.MediaType)
		return nil
	}
	if err := opt.Registry.PutManifest(ctx, r.Repository, r.Tag, built); err != nil {
		return fmt.Errorf("image %s: %w", r.Name, err)
	}
	return nil
}

// solveHeld is Solve, with the tags of attested images settled after it
// (heldTags): retagged names each image whose result changed. The requests
// of now are solved at once; rest, when waiting > 0, returns more, solved
// as soon as it does.
func solveHeld(ctx context.Context, opt Options, now []Request, waiting int, rest func() []Request, retagged func(name string)) ([]Result, error) {
	if len(now) == 0 && waiting > 0 {
		now, waiting = rest(), 0
	}
	held, err := heldTags(ctx, opt, now)
	if err != nil {
		return nil, err
	}
	var more func() ([]Request, error)
	if waiting > 0 {
		// held is read only once solve has returned, after more.
		more = func() ([]Request, error) {
			reqs := rest()
			h, err := heldTags(ctx, opt, reqs)
			maps.Copy(held, h)
			return reqs, err
		}
	}
	if len(now) == 0 {
		return nil, nil
	}
	results, err := solve(ctx, opt, now, waiting, more)
	if err != nil {
		return nil, err
	}
	for i := range results {
		if m := held[results[i].Request.Name]; m != nil {
			if err := settleTag(ctx, opt, &results[i], m); err != nil {
				return nil, err
			}
			retagged(results[i].Request.Name)
		}
	}
	return results, nil
}
