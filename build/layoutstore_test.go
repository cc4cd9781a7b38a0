package build

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestLayoutStore: a blob one layout being built has (a layer of its last
// build) is linked into the others, not sent again; one none has is
// written once and then every layout being built has it; a layout whose
// image is solved gets nothing more.
func TestLayoutStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	l, err := newLayoutStore([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	write := func(blob []byte) error {
		desc := ocispecs.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
		w, err := l.Writer(ctx, content.WithRef("layer"), content.WithDescriptor(desc))
		if err != nil {
			return err
		}
		defer w.Close()
		if _, err := w.Write(blob); err != nil {
			return err
		}
		return w.Commit(ctx, desc.Size, desc.Digest)
	}
	has := func(dir string, blob []byte) bool {
		got, err := os.ReadFile(blobIn(t, dir, blob))
		return err == nil && string(got) == string(blob)
	}

	// b's image kept a layer of its own from its last build; a's did not.
	kept := []byte("b's layer")
	if err := os.MkdirAll(b+"/blobs/sha256", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobIn(t, b, kept), kept, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := write(kept); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("writing a layer one layout has: %v, want already exists (it is not sent again)", err)
	}
	if !has(a, kept) {
		t.Fatal("a layer one layout has is not linked into the other")
	}
	if _, err := l.Info(ctx, digest.FromBytes(kept)); err != nil {
		t.Fatalf("Info of a blob every layout has: %v", err)
	}

	// A layer cut short (or overwritten) in a layout is not taken as had:
	// the export would skip it, and every later build of the layout would
	// name a blob it does not hold.
	cut := []byte("a layer written whole")
	if err := os.WriteFile(blobIn(t, b, cut), cut[:7], 0o444); err != nil {
		t.Fatal(err)
	}
	if err := write(cut); err != nil {
		t.Fatalf("writing a layer one layout holds cut short: %v, want it written", err)
	}
	if !has(a, cut) || !has(b, cut) {
		t.Fatal("a layer a layout held cut short is not whole in every layout after its write")
	}

	fresh := []byte("a new layer")
	if _, err := l.Info(ctx, digest.FromBytes(fresh)); !errdefs.IsNotFound(err) {
		t.Fatalf("Info of a blob no layout has: %v, want not found (the daemon must write it)", err)
	}
	if err := write(fresh); err != nil {
		t.Fatal(err)
	}
	if !has(a, fresh) || !has(b, fresh) {
		t.Fatal("a blob written once is not in every layout")
	}
	if err := write(fresh); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("writing a blob every layout has: %v, want already exists", err)
	}
	if _, err := l.Info(ctx, "sha256:../../x"); err == nil {
		t.Fatal("Info of a malformed digest: no error")
	}

	// a's image is solved: a sibling's blob written after is not linked
	// into a, whose keepLayout has run.
	l.finish(a)
	other := []byte("the sibling's manifest")
	if err := write(other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(blobIn(t, a, other)); !os.IsNotExist(err) {
		t.Errorf("a blob written after a's image was solved is in a (%v)", err)
	}
	if !has(b, other) {
		t.Error("b, still being built, lacks the blob")
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.staging); !os.IsNotExist(err) {
		t.Errorf("the staging directory %s is still there (%v)", l.staging, err)
	}
}

// blobIn is where layout dir keeps blob.
func blobIn(t *testing.T, dir string, blob []byte) string {
	t.Helper()
	p, err := blobPath(digest.FromBytes(blob).String())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, p)
}
