package release

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

// attestedIndex is an index of one linux/amd64 image and an attestation
// manifest referring to it, as BuildKit writes one, and the record's
// attestation for it.
func attestedIndex(t *testing.T) (v1.ImageIndex, build.Attestation) {
	t.Helper()
	img, _ := random.Image(256, 1)
	att, _ := random.Image(128, 1)
	d, _ := img.Digest()
	ad, _ := att.Digest()
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{build.AnnotationReferenceType: build.ReferenceTypeAttestation, build.AnnotationReferenceDigest: d.String()}}})
	return idx, build.Attestation{Digest: ad.String(), Subject: d.String(), Platform: "linux/amd64", PredicateTypes: []string{"https://slsa.dev/provenance/v1"}}
}

// TestRecordAttestationsChecked: a record whose attestations are its
// index's releases; one naming an attestation manifest the index does not
// hold as an attestation of that manifest is refused as bad input, from a
// layout before anything is pushed, and for an image build --push pushed.
func TestRecordAttestationsChecked(t *testing.T) {
	t.Parallel()
	host := registrytest.Serve(t)
	ctx := context.Background()
	idx, good := attestedIndex(t)
	d, _ := idx.Digest()
	dir := t.TempDir()
	p, err := layout.Write(filepath.Join(dir, "images/web"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	im := build.Image{Name: "web", Repository: host + "/team/web", Tag: tA, Digest: d.String(), Layout: "images/web", Attestations: []build.Attestation{good}}
	rec := &build.Record{Version: build.RecordVersion, Commit: "c", Tag: tA, Images: []build.Image{im}}
	if err := checkLayouts(dir, rec); err != nil {
		t.Fatalf("the index's own attestations: %v", err)
	}
	wrongSubject := good
	wrongSubject.Subject = good.Digest // an attestation of itself
	foreign := good
	foreign.Digest = "sha256:" + good.Subject[len("sha256:"):] // the platform manifest, not an attestation
	for name, a := range map[string]build.Attestation{"wrong subject": wrongSubject, "not an attestation": foreign} {
		rec.Images[0].Attestations = []build.Attestation{a}
		err := checkLayouts(dir, rec)
		var ae *build.AttestationError
		if !errors.As(err, &ae) || !ae.BadInput() {
			t.Errorf("%s: %v, want an AttestationError (exit 2)", name, err)
		}
	}

	// Pushed by the build: checked against the registry's index.
	ref, _ := name.NewTag(host + "/team/pushed:" + tA)
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	pushed := build.Image{Name: "pushed", Repository: host + "/team/pushed", Tag: tA, Digest: d.String(), Pushed: true, Attestations: []build.Attestation{good}}
	o := Options{Record: &build.Record{Version: build.RecordVersion, Commit: "c", Tag: tA, Images: []build.Image{pushed}}, RecordDir: dir, Registry: registrytest.Client()}
	if got, err := ensureImages(ctx, o); err != nil || got[0].Action != ActionPresent {
		t.Fatalf("pushed with its own attestations: %+v %v", got, err)
	}
	o.Record.Images[0].Attestations = []build.Attestation{wrongSubject}
	_, err = ensureImages(ctx, o)
	var ae *build.AttestationError
	if !errors.As(err, &ae) {
		t.Errorf("pushed, a foreign attestation: %v, want an AttestationError", err)
	}
}
