package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// layoutStore is the export store of a session shared by images that go
// to OCI layouts. The daemon writes each image's blobs into the session's
// one store, not saying for which image. A blob one of the layouts still
// being built has is linked into the others and not written; one none has
// is written into a staging store beside them and, once committed, linked
// into each. Each layout then holds its own image's blobs, and perhaps a
// sibling's, which keepLayout removes after the build; a blob is written
// only when no layout has it, as with a store of one layout. A layout
// whose image is solved (finish) gets nothing more, so what keepLayout
// leaves it stays so.
type layoutStore struct {
	content.Store // the staging store, for what is not a write
	staging       string
	dirs          []string
	mu            sync.Mutex
	done          map[int]bool
}

// newLayoutStore is the store of layouts dirs, staging its writes in a
// directory beside the first; close removes it.
func newLayoutStore(dirs []string) (*layoutStore, error) {
	if len(dirs) == 0 {
		return nil, errors.New("no layout")
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	staging, err := os.MkdirTemp(filepath.Dir(dirs[0]), ".export-")
	if err != nil {
		return nil, err
	}
	s, err := contentlocal.NewStore(staging)
	if err != nil {
		_ = os.RemoveAll(staging)
		return nil, err
	}
	return &layoutStore{Store: s, staging: staging, dirs: dirs, done: map[int]bool{}}, nil
}

// close removes the staging directory.
func (l *layoutStore) close() error { return os.RemoveAll(l.staging) }

// finish says the image of layout dir is solved: nothing more is linked
// into it.
func (l *layoutStore) finish(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, d := range l.dirs {
		if d == dir {
			l.done[i] = true
		}
	}
}

// The blobs are named as in every layout shipit reads: by blobPath, a
// sha256 digest's path in the layout (rel).

// lacking are the layouts still being built without the blob at rel; l.mu
// is held.
func (l *layoutStore) lacking(rel string) []string {
	var out []string
	for i, dir := range l.dirs {
		if l.done[i] {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(dir, rel)); err != nil || !fi.Mode().IsRegular() {
			out = append(out, dir)
		}
	}
	return out
}

// have reports whether every layout still being built has the blob at
// rel, linking it into those that lack it from one that has it: a layer of
// one image's last build, which keepLayout trimmed out of its siblings'
// layouts, is not sent again. l.mu is held.
func (l *layoutStore) have(rel string) bool {
	miss := l.lacking(rel)
	if len(miss) == 0 {
		return true
	}
	for i, dir := range l.dirs {
		if l.done[i] || slices.Contains(miss, dir) {
			continue
		}
		return l.link(filepath.Join(dir, rel), rel, miss) == nil
	}
	return false
}

// dropOtherSize removes the blob at rel from each layout still being
// built where it is not size bytes long (size 0: not known): a blob the
// daemon is told a layout has is not written, and one of another size
// (cut short, overwritten) would stay in every later build of that
// layout, under a record that says it holds the image. A blob of the
// right size is trusted: hashing every layer of every export would cost
// the build's worth of reading again. l.mu is held.
func (l *layoutStore) dropOtherSize(rel string, size int64) error {
	if size <= 0 {
		return nil
	}
	for i, dir := range l.dirs {
		if l.done[i] {
			continue
		}
		p := filepath.Join(dir, rel)
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && fi.Size() != size {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing %s, %d bytes where its digest names %d: %w", p, fi.Size(), size, err)
			}
		}
	}
	return nil
}

// Info is the blob's, when every layout still being built has it (have).
func (l *layoutStore) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	rel, err := blobPath(d.String())
	if err != nil {
		return content.Info{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.have(rel) {
		return content.Info{}, fmt.Errorf("content %v: %w", d, errdefs.ErrNotFound)
	}
	for i, dir := range l.dirs {
		if !l.done[i] {
			fi, err := os.Stat(filepath.Join(dir, rel))
			if err != nil {
				return content.Info{}, err
			}
			return content.Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime(), UpdatedAt: fi.ModTime()}, nil
		}
	}
	return content.Info{}, fmt.Errorf("content %v: %w", d, errdefs.ErrNotFound)
}

// Writer writes into the staging store, unless every layout still being
// built has the blob (have); its commit links the blob into those that
// lack it.
func (l *layoutStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if d := wo.Desc.Digest; d != "" {
		rel, err := blobPath(d.String())
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		err = l.dropOtherSize(rel, wo.Desc.Size)
		have := err == nil && l.have(rel)
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if have {
			return nil, fmt.Errorf("content %v: %w", d, errdefs.ErrAlreadyExists)
		}
	}
	w, err := l.Store.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &linkingWriter{Writer: w, l: l}, nil
}

type linkingWriter struct {
	content.Writer
	l *layoutStore
}

func (w *linkingWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	d := expected
	if d == "" {
		d = w.Digest()
	}
	if lerr := w.l.spread(d); lerr != nil {
		return lerr
	}
	return err
}

// spread links the staged blob d into every layout still being built
// without it.
func (l *layoutStore) spread(d digest.Digest) error {
	rel, err := blobPath(d.String())
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.link(filepath.Join(l.staging, rel), rel, l.lacking(rel))
}

// link links src, the blob at rel, into each of dirs, or copies it where a
// link cannot be made. An entry already there is left: one that is not a
// regular file fails the build when its layout is read (keepLayout).
// l.mu is held.
func (l *layoutStore) link(src, rel string, dirs []string) error {
	for _, dir := range dirs {
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := linkBlob(src, dst); err != nil {
			return fmt.Errorf("copying blob %s into %s: %w", filepath.Base(rel), dir, err)
		}
	}
	return nil
}

// linkBlob links blob src to dst, or copies it where a link cannot be
// made; an entry already at dst is left.
func linkBlob(src, dst string) error {
	if err := os.Link(src, dst); err == nil || errors.Is(err, os.ErrExist) {
		return nil
	}
	return copyBlob(src, dst)
}

// copyBlob copies src to dst through a temporary file beside dst, so
// that dst is whole or absent.
func copyBlob(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
