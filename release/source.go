package release

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/tag"
)

// SourceError is a source environment's pin that promote refuses to carry
// forward: not this app's repository, not a release tag, or a digest no
// release tag of the repository holds. Whoever can write the source
// overlay must not reach the next environment past its review.
type SourceError struct {
	Overlay string // the source overlay, with its environment
	Image   string // shipit's image name
	Field   string // the images entry's field at fault
	Msg     string
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("%s: image %s: %s %s: promote carries only this app's releases, nothing was committed", e.Overlay, e.Image, e.Field, e.Msg)
}

// digestSearch bounds how many release tags are asked for their digest
// to find the release of a digest-only pin.
const digestSearch = 200

// sourcePin checks what the source environment pins for an image and
// returns it as a release pin: the configured repository, a release tag,
// and the digest that tag holds. A digest-only pin is resolved to the
// newest release tag that holds the digest, so that forward-only and
// holds apply to it. One registry request for a tagged pin.
func sourcePin(ctx context.Context, reg Registry, from Deploy, im PinImage, e kustomize.Entry) (kustomize.Pin, error) {
	where := e.Name + " in " + from.Env
	if len(from.Overlays) > 0 {
		where = from.Overlays[0] + " (" + from.Env + ")"
	}
	bad := func(field, format string, args ...any) error {
		return &SourceError{Overlay: where, Image: im.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	repo := e.NewName
	if repo == "" {
		repo = e.Name
	}
	if repo != im.Repository {
		return kustomize.Pin{}, bad("newName", "is %q, not this app's repository %s", repo, im.Repository)
	}
	p := kustomize.Pin{Name: e.Name, NewName: im.Repository, NewTag: e.NewTag, Digest: e.Digest}
	switch {
	case e.NewTag == "" && e.Digest == "":
		return p, bad("newTag", "is missing, and so is digest")
	case e.NewTag == "":
		t, err := releaseOf(ctx, reg, im.Repository, e.Digest)
		if err != nil {
			return p, err
		}
		if t == "" {
			return p, bad("digest", "%s is held by no release tag of %s (among the newest %d)", e.Digest, im.Repository, digestSearch)
		}
		p.NewTag = t
		return p, nil
	}
	if t, err := tag.Parse(e.NewTag); err != nil || t.Dirty {
		return p, bad("newTag", "%q is not a release tag (YYYYMMDD-HHMMSS-<sha7>)", e.NewTag)
	}
	if fromTheFuture(e.NewTag, time.Now()) {
		return p, bad("newTag", "%s is from the future (more than %s after this machine's clock)", e.NewTag, FutureSkew)
	}
	d, err := reg.Lookup(ctx, im.Repository, e.NewTag)
	switch {
	case err != nil:
		return p, fmt.Errorf("image %s: %w", im.Name, err)
	case d == "":
		return p, bad("newTag", "%s:%s is not in the registry", im.Repository, e.NewTag)
	case e.Digest != "" && d != e.Digest:
		return p, bad("digest", "%s is not what release tag %s holds (%s)", e.Digest, e.NewTag, d)
	}
	return p, nil
}

// releaseOf finds the newest release tag of repo that holds digest, among
// the newest digestSearch; "" when none does.
func releaseOf(ctx context.Context, reg Registry, repo, digest string) (string, error) {
	all, err := reg.Tags(ctx, repo)
	if err != nil {
		return "", err
	}
	var tags []string
	seen := map[string]bool{}
	for _, s := range all {
		if t, err := tag.Parse(s); err == nil && !t.Dirty && !seen[s] {
			tags, seen[s] = append(tags, s), true
		}
	}
	sort.Slice(tags, func(i, j int) bool { return tag.Less(tags[j], tags[i]) })
	if len(tags) > digestSearch {
		tags = tags[:digestSearch]
	}
	digests, err := LookupTags(ctx, reg, repo, tags)
	if err != nil {
		return "", err
	}
	for _, t := range tags {
		if digests[t] == digest {
			return t, nil
		}
	}
	return "", nil
}
