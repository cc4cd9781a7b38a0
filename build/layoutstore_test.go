package build

import (
	"context"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestLayoutStore: a blob is written when any layout lacks it, and then
// every layout has it; one every layout has is not written again.
func TestLayoutStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	l, err := newLayoutStore([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("a layer")
	desc := ocispecs.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	write := func() error {
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
	// b had it already (the last build's base layer), a did not.
	if err := os.MkdirAll(b+"/blobs/sha256", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(layoutBlob(b, desc.Digest), blob, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("Info of a blob one layout lacks: %v, want not found (the daemon must write it)", err)
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{a, b} {
		got, err := os.ReadFile(layoutBlob(dir, desc.Digest))
		if err != nil || string(got) != string(blob) {
			t.Fatalf("%s: blob %q, %v", dir, got, err)
		}
	}
	if _, err := l.Info(ctx, desc.Digest); err != nil {
		t.Fatalf("Info of a blob every layout has: %v", err)
	}
	if err := write(); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("writing a blob every layout has: %v, want already exists", err)
	}
	if _, err := l.Info(ctx, "sha256:../../x"); err == nil {
		t.Fatal("Info of a malformed digest: no error")
	}

	// a's image is solved: a sibling's blob written after is not linked
	// into a, whose keepLayout has run.
	l.finish(a)
	other := []byte("the sibling's manifest")
	desc = ocispecs.Descriptor{Digest: digest.FromBytes(other), Size: int64(len(other))}
	blob = other
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(layoutBlob(a, desc.Digest)); !os.IsNotExist(err) {
		t.Errorf("a blob written after a's image was solved is in a (%v)", err)
	}
	if _, err := os.Stat(layoutBlob(b, desc.Digest)); err != nil {
		t.Errorf("b, still being built, lacks the blob: %v", err)
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.staging); !os.IsNotExist(err) {
		t.Errorf("the staging directory %s is still there (%v)", l.staging, err)
	}
}
