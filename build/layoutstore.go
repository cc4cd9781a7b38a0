package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// layoutStore is the export store of a session shared by images that go
// to OCI layouts. The daemon writes each image's blobs into the session's
// one store, not saying for which image, so a blob is written when any of
// the layouts lacks it, and once committed it is linked into every layout
// that does. Each layout then holds its own image's blobs, and perhaps a
// sibling's configuration and manifest, which keepLayout removes after the
// build; a blob every layout has (a base layer) is not written at all, as
// with a store of one layout.
type layoutStore struct {
	content.Store // the first layout's, for what is not a write
	dirs          []string
	stores        []content.Store
}

func newLayoutStore(dirs []string) (*layoutStore, error) {
	l := &layoutStore{dirs: dirs}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		s, err := contentlocal.NewStore(d)
		if err != nil {
			return nil, err
		}
		l.stores = append(l.stores, s)
	}
	if len(l.stores) == 0 {
		return nil, errors.New("no layout")
	}
	l.Store = l.stores[0]
	return l, nil
}

// layoutBlob is where layout dir keeps the blob d.
func layoutBlob(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// lacking are the indexes of the layouts without the blob d.
func (l *layoutStore) lacking(d digest.Digest) []int {
	var out []int
	for i, dir := range l.dirs {
		if fi, err := os.Lstat(layoutBlob(dir, d)); err != nil || !fi.Mode().IsRegular() {
			out = append(out, i)
		}
	}
	return out
}

// Info is the blob's, when every layout has it.
func (l *layoutStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	if err := d.Validate(); err != nil {
		return content.Info{}, err
	}
	if len(l.lacking(d)) > 0 {
		return content.Info{}, fmt.Errorf("content %v: %w", d, errdefs.ErrNotFound)
	}
	return l.stores[0].Info(ctx, d)
}

// Writer writes into the first layout that lacks the blob; its commit
// links the blob into the others.
func (l *layoutStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	from := 0
	if d := wo.Desc.Digest; d != "" {
		if err := d.Validate(); err != nil {
			return nil, err
		}
		miss := l.lacking(d)
		if len(miss) == 0 {
			return nil, fmt.Errorf("content %v: %w", d, errdefs.ErrAlreadyExists)
		}
		from = miss[0]
	}
	w, err := l.stores[from].Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &linkingWriter{Writer: w, l: l, from: from}, nil
}

type linkingWriter struct {
	content.Writer
	l    *layoutStore
	from int
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
	if lerr := w.l.spread(w.from, d); lerr != nil {
		return lerr
	}
	return err
}

// spread links the blob d of layout from into every layout without it, or
// copies it where a link cannot be made.
func (l *layoutStore) spread(from int, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return err
	}
	src := layoutBlob(l.dirs[from], d)
	for _, i := range l.lacking(d) {
		dst := layoutBlob(l.dirs[i], d)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Link(src, dst); err == nil || errors.Is(err, os.ErrExist) {
			continue
		}
		if err := copyBlob(src, dst); err != nil {
			return fmt.Errorf("copying blob %s into %s: %w", d, l.dirs[i], err)
		}
	}
	return nil
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
