package build

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shipit-dev/shipit/internal/gitinfo"
)

// TestRequestsAttest: an image's attest settings become BuildKit's
// frontend attributes: provenance mode max with the repository and commit
// (vcs:source, vcs:revision), the SBOM with its generator; an image
// without them gets none, whatever the other's.
func TestRequestsAttest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	head := gitinfo.Head{SHA: "0123456789abcdef0123456789abcdef01234567", Time: time.Unix(1700000000, 0).UTC(), Source: "https://git.example.com/acme/app.git"}
	spec := func(name string, a Attest) Spec {
		return Spec{Name: name, Repository: "127.0.0.1:5000/team/" + name, Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Attest: a}
	}
	plan := Plan{StateDir: filepath.Join(dir, ".shipit"), Head: head, Tag: "20231114-221320-0123456", Images: []Spec{
		spec("web", Attest{Provenance: "max", SBOM: true, SBOMGenerator: "127.0.0.1:5055/base/sbom-scanner:1"}),
		spec("worker", Attest{}),
		spec("sbom", Attest{SBOM: true}),
	}}
	reqs, _, err := Requests(plan)
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]map[string]string{}
	for _, r := range reqs {
		so, err := solveOpt(r)
		if err != nil {
			t.Fatal(err)
		}
		attrs[r.Name] = so.FrontendAttrs
	}
	for k, v := range map[string]string{
		"attest:provenance": "mode=max", "vcs:source": head.Source, "vcs:revision": head.SHA,
		"attest:sbom": `"generator=127.0.0.1:5055/base/sbom-scanner:1"`,
	} {
		if attrs["web"][k] != v {
			t.Errorf("web: %s = %q, want %q", k, attrs["web"][k], v)
		}
	}
	for _, k := range []string{"attest:provenance", "attest:sbom", "vcs:source", "vcs:revision"} {
		if _, ok := attrs["worker"][k]; ok {
			t.Errorf("worker has no attestations, but %s is set", k)
		}
	}
	if v, ok := attrs["sbom"]["attest:sbom"]; !ok || v != "" {
		t.Errorf("an SBOM without a generator: attest:sbom = %q (set %v), want BuildKit's default (empty)", v, ok)
	}
	if _, ok := attrs["sbom"]["attest:provenance"]; ok {
		t.Error("sbom only: provenance is on")
	}

	// The older provenance key, as the plan's default.
	plan.Provenance = "min"
	reqs, _, _ = Requests(plan)
	prov := map[string]string{}
	for _, r := range reqs {
		prov[r.Name] = r.Provenance
	}
	if prov["worker"] != "min" || prov["web"] != "max" {
		t.Errorf("plan provenance min: %v, want web's own max and worker's min", prov)
	}
}

// writePart writes one node's part: an OCI layout whose blob is an index
// of one platform manifest and the attestation manifest referring to it.
func writePart(t *testing.T, dir, arch string) (Result, ocispecs.Descriptor, ocispecs.Descriptor) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	m := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromString("manifest " + arch), Size: 100,
		Platform: &ocispecs.Platform{OS: "linux", Architecture: arch}}
	a := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromString("attestation " + arch), Size: 50,
		Platform:    &ocispecs.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{AnnotationReferenceType: ReferenceTypeAttestation, AnnotationReferenceDigest: m.Digest.String()}}
	idx := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex, Manifests: []ocispecs.Descriptor{m, a}}
	idx.SchemaVersion = 2
	raw, _ := json.MarshalIndent(idx, "", "  ")
	d := digest.FromBytes(raw)
	if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return Result{Request: Request{LayoutDir: dir, Platforms: []string{"linux/" + arch}}, Node: arch,
		Descriptor: ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageIndex, Digest: d, Size: int64(len(raw))}}, m, a
}

// TestAssembleAttestedParts: parts that are indexes (a manifest and its
// attestation) make one index of the platform manifests in the image's
// platform order, then their attestation manifests in the same order,
// each still referring to its manifest; a part that does not read back as
// its digest is refused.
func TestAssembleAttestedParts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := Request{Name: "web", Tag: "t", Repository: "r.example.com/web", LayoutDir: filepath.Join(dir, "web"), Platforms: []string{"linux/amd64", "linux/arm64"}}
	arm, armM, armA := writePart(t, filepath.Join(dir, "arm"), "arm64")
	amd, amdM, amdA := writePart(t, filepath.Join(dir, "amd"), "amd64")
	desc, err := assemble(context.Background(), r, []Result{arm, amd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(r.LayoutDir, "blobs", "sha256", desc.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	want := []ocispecs.Descriptor{amdM, armM, amdA, armA}
	if len(idx.Manifests) != len(want) {
		t.Fatalf("index %s", raw)
	}
	for i, w := range want {
		if got := idx.Manifests[i]; got.Digest != w.Digest || got.Annotations[AnnotationReferenceDigest] != w.Annotations[AnnotationReferenceDigest] {
			t.Errorf("manifest %d: %+v, want %+v", i, got, w)
		}
	}
	st, err := sizeOf(raw, nil, func(d string) ([]byte, error) { return []byte(`{"layers":[]}`), nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(st.attestations) != 2 || st.attestations[1].Subject != armM.Digest.String() || st.attestations[1].Platform != "linux/arm64" || len(st.platforms) != 2 {
		t.Errorf("read back: %+v", st)
	}

	// A part whose blob is not what its descriptor says is refused.
	arm2, _, _ := writePart(t, filepath.Join(dir, "arm2"), "arm64")
	amd2, _, _ := writePart(t, filepath.Join(dir, "amd2"), "amd64")
	blob := filepath.Join(arm2.Request.LayoutDir, "blobs", "sha256", arm2.Descriptor.Digest.Encoded())
	if err := os.WriteFile(blob, []byte(`{"manifests":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r.LayoutDir = filepath.Join(dir, "web2")
	if _, err := assemble(context.Background(), r, []Result{arm2, amd2}, nil); err == nil {
		t.Error("a part that does not read back as its digest was assembled")
	}
}
