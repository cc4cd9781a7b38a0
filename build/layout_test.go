package build

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestKeepLayout: after a build, the layout holds only the new image (the
// one before it shared a layer with it: that layer stays), and its size is
// what the registry would hold.
func TestKeepLayout(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "web")
	shared := randomLayer(t, 512)
	old, img := ociImage(t, shared, randomLayer(t, 256)), ociImage(t, shared, randomLayer(t, 256))
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range []v1.Image{old, img} {
		if err := p.AppendImage(im); err != nil {
			t.Fatal(err)
		}
	}
	dgst, _ := img.Digest()
	raw, _ := img.RawManifest()
	st, err := keepLayout(dir, ocispecs.Descriptor{Digest: digest.Digest(dgst.String()), Size: int64(len(raw)), Platform: &ocispecs.Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	want := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		want += l.Size
	}
	if st.size != want || len(st.platforms) != 1 || st.platforms[0] != "linux/amd64" {
		t.Errorf("stats = %d %v, want %d [linux/amd64]", st.size, st.platforms, want)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != dgst {
		t.Errorf("the index names %v, want only %s", im.Manifests, dgst)
	}
	kept := map[string]bool{dgst.Hex: true, m.Config.Digest.Hex: true}
	for _, l := range m.Layers {
		kept[l.Digest.Hex] = true
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !kept[e.Name()] {
			t.Errorf("blob %s of the old image is still in the layout", e.Name())
		}
		delete(kept, e.Name())
	}
	if len(kept) > 0 {
		t.Errorf("blobs of the image were removed: %v", kept)
	}
	if _, err := layout.ImageIndexFromPath(dir); err != nil {
		t.Fatal(err)
	}
	back, err := idx.Image(dgst)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := back.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("the kept image does not read back whole: %v", err)
		}
		rc.Close()
	}
}

func randomLayer(t *testing.T, size int64) v1.Layer {
	t.Helper()
	l, err := random.Layer(size, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ociImage(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, "application/vnd.oci.image.manifest.v1+json"), layers...)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.ConfigMediaType(img, "application/vnd.oci.image.config.v1+json")
}

// TestKeepLayoutRefusesABadChild: a child manifest of an index whose
// content is not its digest's (an export that skipped a blob the layout
// already had) is refused, naming the blob, and nothing is removed.
func TestKeepLayoutRefusesABadChild(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "web")
	img := ociImage(t, randomLayer(t, 128))
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	child, _ := img.Digest()
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", child.Hex), []byte(`{"schemaVersion":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	dgst, _ := idx.Digest()
	raw, _ := idx.RawManifest()
	_, err = keepLayout(dir, ocispecs.Descriptor{Digest: digest.Digest(dgst.String()), Size: int64(len(raw))})
	if err == nil || !strings.Contains(err.Error(), "holds blob "+child.String()+" with other content") || !strings.Contains(err.Error(), "build again") {
		t.Fatalf("keepLayout = %v, want the child named, with other content", err)
	}
	if after, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256")); len(after) != len(before) {
		t.Errorf("%d blobs before, %d after: a refused layout was pruned", len(before), len(after))
	}
}

// TestLayoutIndexTooLarge: an index.json grown past any shipit writes (a
// sparse file of gigabytes reads as zeros) is not read whole: a look at
// the layout says so at once, and the solve's naming of its image
// replaces it with an index of that image.
func TestLayoutIndexTooLarge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	idx := filepath.Join(dir, "index.json")
	f, err := os.Create(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil { // sparse: no disk taken
		t.Fatal(err)
	}
	_ = f.Close()
	d := digest.FromString("manifest").String()
	if err := layoutHolds(dir, d); !errors.Is(err, errIndexTooLarge) {
		t.Fatalf("a look at a layout with a 1 GiB index.json: %v, want it too large", err)
	}
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.Digest(d), Size: 8}
	if err := indexLayout(dir, desc, "registry.example/web:t1"); err != nil {
		t.Fatalf("naming the image in a layout with a 1 GiB index.json: %v", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	data, err := readIndex(root, dir)
	if err != nil || !strings.Contains(string(data), d) || len(data) > 4096 {
		t.Fatalf("index.json after the image was named: %d bytes (%v), want a small one naming %s", len(data), err, d)
	}
}
