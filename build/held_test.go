package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

// attestedIndex is the raw index of a platform manifest and an
// attestation manifest of it, as BuildKit writes one (the attestation's
// digest stands for one made at another time).
func attestedIndex(platformDigest, attestationDigest string) []byte {
	idx := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIImageIndex,
		"manifests": []map[string]any{
			{"mediaType": types.OCIManifestSchema1, "digest": platformDigest, "size": 100, "platform": map[string]string{"os": "linux", "architecture": "amd64"}},
			{"mediaType": types.OCIManifestSchema1, "digest": attestationDigest, "size": 100, "platform": map[string]string{"os": "unknown", "architecture": "unknown"},
				"annotations": map[string]string{AnnotationReferenceType: ReferenceTypeAttestation, AnnotationReferenceDigest: platformDigest}},
		},
	}
	raw, _ := json.Marshal(idx)
	return raw
}

func putIndex(t *testing.T, reg *registry.Client, repo, ref string, raw []byte) string {
	t.Helper()
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.PutManifest(context.Background(), repo, ref, &registry.Manifest{Digest: h.String(), MediaType: types.OCIImageIndex, Raw: raw}); err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestAttestedRebuildKeepsTheTag: an attested image whose tag holds an
// index is pushed by digest; the tag keeps that index when the platform
// manifests are the same, and moves when they are not.
func TestAttestedRebuildKeepsTheTag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host := registrytest.Serve(t)
	reg := registrytest.Client()
	repo, tag := host+"/team/web", "20260101-000000-abcdef1"
	dgst := func(c byte) string { // a manifest in the repository
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Push(ctx, repo, fmt.Sprintf("m%d", c), img, nil, ""); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	m1, m2, m3, m4, m5 := dgst(1), dgst(2), dgst(3), dgst(4), dgst(5)
	first := putIndex(t, reg, repo, tag, attestedIndex(m1, m2))
	opt := Options{Registry: reg}
	reqs := []Request{
		{Name: "web", Repository: repo, Tag: tag, Push: true, Provenance: "max"},
		{Name: "plain", Repository: host + "/team/plain", Tag: tag, Push: true},
	}
	held, err := heldTags(ctx, opt, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if held["web"] == nil || held["web"].Digest != first || !reqs[0].PushByDigest || reqs[1].PushByDigest || held["plain"] != nil {
		t.Fatalf("held %v, requests %+v: want web's tag held and web pushed by digest only", held, reqs)
	}

	// The same platform manifest under a new attestation: the tag keeps
	// the first index, and the result names it.
	again := putIndex(t, reg, repo, "sha256-x", attestedIndex(m1, m3))
	res := Result{Request: reqs[0], Digest: again}
	if err := settleTag(ctx, opt, &res, held["web"]); err != nil {
		t.Fatal(err)
	}
	if got, _ := reg.Lookup(ctx, repo, tag); got != first || res.Digest != first || res.Descriptor.Digest.String() != first {
		t.Errorf("tag %s, result %s / %s: want the first index %s kept", got, res.Digest, res.Descriptor.Digest, first)
	}

	// Another platform manifest: the tag moves to the new index.
	other := putIndex(t, reg, repo, "sha256-y", attestedIndex(m4, m5))
	res = Result{Request: reqs[0], Digest: other}
	if err := settleTag(ctx, opt, &res, held["web"]); err != nil {
		t.Fatal(err)
	}
	if got, _ := reg.Lookup(ctx, repo, tag); got != other || res.Digest != other {
		t.Errorf("tag %s, result %s: want the new index %s tagged", got, res.Digest, other)
	}
}
