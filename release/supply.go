package release

import (
	"context"
	"fmt"

	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/sign"
)

// Pinned is what an environment's overlays pin for each image, as the
// supply-chain checks take it: repository, release tag and digest (a tag
// without a digest resolved in the registry; a digest without a tag given
// the release tag that holds it, when one does). Each overlay's pin of an
// image counts once.
func Pinned(ctx context.Context, d Deploy, reg Registry, imgs []PinImage) ([]sign.Subject, error) {
	states, err := ReadOverlays(ctx, d, imgs)
	if err != nil {
		return nil, err
	}
	var out []sign.Subject
	seen := map[string]bool{}
	for _, st := range states {
		for _, im := range imgs {
			e, ok := st.Entries[im.Name]
			if !ok {
				continue
			}
			s, err := subjectOf(ctx, reg, im, e)
			if err != nil {
				return nil, fmt.Errorf("%s (%s): image %s: %w", st.Path, d.Env, im.Name, err)
			}
			if !seen[s.Ref()] {
				seen[s.Ref()] = true
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// subjectOf resolves one pin.
func subjectOf(ctx context.Context, reg Registry, im PinImage, e kustomize.Entry) (sign.Subject, error) {
	repo := e.NewName
	if repo == "" {
		repo = e.Name
	}
	s := sign.Subject{Image: im.Name, Repository: repo, Tag: e.NewTag, Digest: e.Digest}
	return Resolve(ctx, reg, s)
}

// Resolve completes a subject: the digest its tag holds, or the release
// tag that holds its digest ("" when none does).
func Resolve(ctx context.Context, reg Registry, s sign.Subject) (sign.Subject, error) {
	switch {
	case s.Digest == "" && s.Tag == "":
		return s, fmt.Errorf("%s: the pin names neither a tag nor a digest", s.Repository)
	case s.Digest == "":
		d, err := reg.Lookup(ctx, s.Repository, s.Tag)
		if err != nil {
			return s, err
		}
		if d == "" {
			return s, fmt.Errorf("%s:%s is not in the registry", s.Repository, s.Tag)
		}
		s.Digest = d
	case s.Tag == "":
		t, err := releaseOf(ctx, reg, s.Repository, s.Digest)
		if err != nil {
			return s, err
		}
		s.Tag = t
	}
	return s, nil
}
