package release

import (
	"context"
	"errors"
	"path/filepath"
	"sync"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/registry"
)

// Registry is the registry I/O the pin verbs need; *registry.Client is
// the real one.
type Registry interface {
	// Lookup returns the digest repo:tag points at, or "" when there is no such tag.
	Lookup(ctx context.Context, repo, tag string) (string, error)
	// Has reports whether repo holds a manifest with this digest.
	Has(ctx context.Context, repo, digest string) (bool, error)
	// Push writes an image or an index (exactly one is set) to repo:tag;
	// mountFrom, when set, is another repository:tag of the same registry
	// whose layers may be mounted rather than uploaded.
	Push(ctx context.Context, repo, tag string, img registry.Image, idx registry.Index, mountFrom string) error
	// Tags lists a repository's tags.
	Tags(ctx context.Context, repo string) ([]string, error)
	// Manifest reads the manifest repo:ref (a tag or a digest) points at; nil when there is none.
	Manifest(ctx context.Context, repo, ref string) (*registry.Manifest, error)
	// PutManifest puts a manifest under a tag: no blob moves.
	PutManifest(ctx context.Context, repo, tag string, m *registry.Manifest) error
}

// Manifest is a manifest (or index) as the registry holds it.
type Manifest = registry.Manifest

// pushLayout pushes the image (or index) with the record's digest from
// its OCI layout.
func pushLayout(ctx context.Context, reg Registry, recordDir string, im build.Image, mountFrom string) error {
	img, idx, err := build.FromLayout(LayoutDir(recordDir, im), im.Digest)
	if err != nil {
		return err
	}
	return reg.Push(ctx, im.Repository, im.Tag, img, idx, mountFrom)
}

// LayoutDir is where a record's image layout is: under the record's
// directory (CheckRecord refuses any other).
func LayoutDir(recordDir string, im build.Image) string {
	return filepath.Join(recordDir, im.Layout)
}

// LookupTags resolves every tag's digest, several at a time ("" for a
// tag that is not there).
func LookupTags(ctx context.Context, reg Registry, repo string, tags []string) (map[string]string, error) {
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
