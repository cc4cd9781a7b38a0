package build

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"

	"github.com/shipit-dev/shipit/internal/gitinfo"
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

// TestCorruptLayoutClearedBeforeExport: a layout whose last image has a
// layer cut short is removed before an image is solved into it, whatever
// the solve (a new tag, --rebuild): BuildKit's export skips a blob the
// layout has, so the new image would name the cut layer. A whole layout
// stays.
func TestCorruptLayoutClearedBeforeExport(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeLayout := func(name string) (string, string) {
		dir := filepath.Join(base, name)
		p, err := layout.Write(dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		img := ociImage(t, randomLayer(t, 512))
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		return dir, filepath.Join(dir, "blobs", "sha256", m.Layers[0].Digest.Hex)
	}
	whole, _ := writeLayout("whole")
	if why := clearCorruptLayout(whole); why != "" {
		t.Fatalf("a whole layout: %s", why)
	}
	if _, err := os.Stat(filepath.Join(whole, "index.json")); err != nil {
		t.Fatalf("a whole layout was touched: %v", err)
	}
	if why := clearCorruptLayout(filepath.Join(base, "none")); why != "" {
		t.Fatalf("no layout yet: %s", why)
	}

	cut, layer := writeLayout("cut")
	if err := os.Truncate(layer, 100); err != nil {
		t.Fatal(err)
	}
	if why := clearCorruptLayout(cut); !strings.Contains(why, "the layout is removed") {
		t.Fatalf("a layout with a layer cut short: %q, want it removed", why)
	}
	if _, err := os.Stat(cut); !os.IsNotExist(err) {
		t.Fatalf("the layout with a cut layer is still there (%v)", err)
	}

	// A missing layer does not hide a cut one after it; a missing blob
	// alone is not corruption (the export writes it), and a layout whose
	// index also names a whole image is not removed for it.
	twoDir := filepath.Join(base, "two")
	p2, err := layout.Write(twoDir, empty.Index)
	must(t, err)
	two := ociImage(t, randomLayer(t, 512), randomLayer(t, 512))
	must(t, p2.AppendImage(two))
	m2, err := two.Manifest()
	must(t, err)
	must(t, os.Remove(filepath.Join(twoDir, "blobs", "sha256", m2.Layers[0].Digest.Hex)))
	if why := clearCorruptLayout(twoDir); why != "" {
		t.Fatalf("a layout missing a layer: %q, want it left for the export", why)
	}
	must(t, os.Truncate(filepath.Join(twoDir, "blobs", "sha256", m2.Layers[1].Digest.Hex), 100))
	if why := clearCorruptLayout(twoDir); !strings.Contains(why, "the layout is removed") {
		t.Fatalf("a missing layer, then one cut short: %q, want the layout removed", why)
	}
	bothDir := filepath.Join(base, "both")
	p3, err := layout.Write(bothDir, empty.Index)
	must(t, err)
	gone := ociImage(t, randomLayer(t, 256))
	must(t, p3.AppendImage(ociImage(t, randomLayer(t, 256))))
	must(t, p3.AppendImage(gone))
	gd, err := gone.Digest()
	must(t, err)
	must(t, os.Remove(filepath.Join(bothDir, "blobs", "sha256", gd.Hex)))
	if why := clearCorruptLayout(bothDir); why != "" {
		t.Fatalf("an index naming a whole image and one whose manifest is gone: %q, want it left", why)
	}

	// Through a build: --rebuild looks at no last image, and still clears it.
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "web"), 0o755))
	write(t, filepath.Join(dir, "web", "Dockerfile"), "FROM scratch\n")
	state := filepath.Join(dir, ".shipit")
	must(t, os.MkdirAll(filepath.Join(state, "images"), 0o755))
	webDir, webLayer := writeLayout("web")
	must(t, os.Rename(webDir, LayoutPath(state, "web")))
	must(t, os.Truncate(filepath.Join(LayoutPath(state, "web"), "blobs", "sha256", filepath.Base(webLayer)), 10))
	plan := Plan{
		Images:   []Spec{{Name: "web", Repository: "registry.example/web", Context: filepath.Join(dir, "web"), Dockerfile: filepath.Join(dir, "web", "Dockerfile")}},
		StateDir: state, Head: gitinfo.Head{SHA: "0123456789abcdef0123456789abcdef01234567", Time: time.Unix(1_700_000_000, 0)},
		Tag: "t2", Rebuild: true,
	}
	var seen error
	s := &layoutSeeingSolver{dir: LayoutPath(state, "web"), seen: &seen}
	_, _ = Run(context.Background(), Options{Solver: s, Progress: io.Discard, Mode: "quiet", Builder: "b"}, plan)
	if !s.solved {
		t.Fatal("no solve")
	}
	if !os.IsNotExist(seen) {
		t.Errorf("--rebuild: the solve found the layout with its cut layer (%v), want it removed first", seen)
	}

	// And an image whose inputs are the last build's, solved because its
	// layout no longer names the recorded image.
	webDir, webLayer = writeLayout("web-again")
	_ = os.RemoveAll(LayoutPath(state, "web"))
	must(t, os.Rename(webDir, LayoutPath(state, "web")))
	must(t, os.Truncate(filepath.Join(LayoutPath(state, "web"), "blobs", "sha256", filepath.Base(webLayer)), 10))
	plan.Rebuild = false
	opt := Options{Solver: s, Progress: io.Discard, Mode: "quiet", Builder: "b", now: func() time.Time { return time.Now().Add(time.Minute) }}
	reqs, err := planRequests(opt, plan)
	must(t, err)
	key := compareInputs(context.Background(), opt, plan, reqs, nil).ins[0].key
	if key == "" {
		t.Fatal("no inputs key")
	}
	rec := &Record{Version: RecordVersion, Commit: plan.Head.SHA, Tag: plan.Tag, Images: []Image{{
		Name: "web", Repository: "registry.example/web", Tag: plan.Tag, Digest: digest.FromString("not in the layout").String(),
		Inputs: key, Layout: filepath.Join("images", "web"),
	}}}
	must(t, WriteRecord(filepath.Join(state, RecordFile), rec))
	s.solved, seen = false, nil
	_, _ = Run(context.Background(), opt, plan)
	if !s.solved {
		t.Fatal("inputs as recorded, the layout not naming the image: no solve")
	}
	if !os.IsNotExist(seen) {
		t.Errorf("inputs as recorded: the solve found the layout with its cut layer (%v), want it removed first", seen)
	}
}

// layoutSeeingSolver notes, as its solve starts, whether the layout dir
// is there.
type layoutSeeingSolver struct {
	digestSolver
	dir    string
	seen   *error
	solved bool
}

func (s *layoutSeeingSolver) Solve(ctx context.Context, def *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
	_, *s.seen = os.Stat(s.dir)
	s.solved = true
	s.raw = manifestOf(1)
	return s.digestSolver.Solve(ctx, def, opt, ch)
}
