//go:build linux || darwin

package build

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/tonistiigi/fsutil"
	"github.com/tonistiigi/fsutil/types"
)

// keyFS is a context directory as the inputs key walks it: fsutil's walk
// (fsutil.NewFS, the one BuildKit's client sends the daemon), with one
// lstat per entry instead of fsutil's lstat and listxattr and the key's
// own lstat for the change time. The entries' metadata is fsutil's, less
// extended attributes, whose change changes the change time; the change
// time and inode, which fsutil's metadata has no room for, come from
// times, by the walk's path. fsutil's filters (NewFilterFS) go on top, so
// the same entries are walked as the daemon is sent.
func keyFS(root string) (fsutil.FS, func(string) fileTimes, error) {
	abs, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, nil, &os.PathError{Op: "resolve", Path: root, Err: err}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, nil, err
	}
	if !fi.IsDir() {
		return nil, nil, &os.PathError{Op: "stat", Path: abs, Err: syscall.ENOTDIR}
	}
	l := &lstatFS{root: abs, links: map[uint64]string{}, times: map[string]fileTimes{}}
	return l, l.timesOf, nil
}

type lstatFS struct {
	root  string
	mu    sync.Mutex
	links map[uint64]string // inode of a file with more than one link: its first path
	times map[string]fileTimes
}

// timesOf is the times of entry p, read once: the walk reads each entry's
// times once, so they are dropped as read, and the map stays as small as
// the walk's own frontier rather than the whole context.
func (l *lstatFS) timesOf(p string) fileTimes {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.times[p]
	delete(l.times, p)
	return t
}

func (l *lstatFS) Walk(ctx context.Context, target string, fn fs.WalkDirFunc) error {
	return filepath.WalkDir(filepath.Join(l.root, target), func(path string, d fs.DirEntry, walkErr error) error {
		rel, err := filepath.Rel(l.root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var e fs.DirEntry
		if d != nil {
			e = &lstatEntry{fs: l, d: d, path: path, rel: rel}
		}
		err = fn(rel, e, walkErr)
		if err != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			// Gone while walked: skipped, as fsutil's walk does.
			return filepath.SkipDir
		}
		return err
	})
}

func (l *lstatFS) Open(p string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(l.root, p))
}

// lstatEntry is an entry of the walk; its metadata is read when the
// filters ask for it (an excluded entry is never read).
type lstatEntry struct {
	fs        *lstatFS
	d         fs.DirEntry
	path, rel string
	st        *types.Stat
}

func (e *lstatEntry) Name() string      { return e.d.Name() }
func (e *lstatEntry) IsDir() bool       { return e.d.IsDir() }
func (e *lstatEntry) Type() fs.FileMode { return e.d.Type() }

func (e *lstatEntry) Info() (fs.FileInfo, error) {
	if e.st == nil {
		st, err := e.stat()
		if err != nil {
			return nil, err
		}
		e.st = st
	}
	return &fsutil.StatInfo{Stat: e.st.CloneVT()}, nil
}

// stat is fsutil's metadata of the entry (as its mkstat makes it, less
// extended attributes), and its times kept beside.
func (e *lstatEntry) stat() (*types.Stat, error) {
	fi, err := os.Lstat(e.path)
	if err != nil {
		return nil, err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, &os.PathError{Op: "lstat", Path: e.path, Err: syscall.EBADMSG}
	}
	st := &types.Stat{
		Path:    e.rel,
		Mode:    uint32(fi.Mode() &^ os.ModeSocket),
		ModTime: fi.ModTime().UnixNano(),
		Uid:     sys.Uid,
		Gid:     sys.Gid,
	}
	if fi.IsDir() {
		return st, nil
	}
	st.Size = fi.Size()
	if fi.Mode()&os.ModeSymlink != 0 {
		if st.Linkname, err = os.Readlink(e.path); err != nil {
			return nil, err
		}
	}
	if fi.Mode()&os.ModeDevice != 0 {
		rdev := uint64(sys.Rdev) //nolint:unconvert // int32 on darwin
		// fsutil's split of the number; both parts are masked to 20 bits.
		st.Devmajor, st.Devminor = int64((rdev>>8)&0xfff), int64((rdev&0xff)|((rdev>>12)&0xfff00)) //nolint:gosec // masked
	}
	e.fs.mu.Lock()
	defer e.fs.mu.Unlock()
	if uint64(sys.Nlink) > 1 { //nolint:unconvert // uint16 on darwin
		if first, ok := e.fs.links[sys.Ino]; ok {
			st.Linkname = first
		} else {
			e.fs.links[sys.Ino] = filepath.ToSlash(e.rel)
		}
	}
	e.fs.times[e.rel] = fileTimes{ctime: changeTimeOf(sys), ino: sys.Ino}
	return st, nil
}
