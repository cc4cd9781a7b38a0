//go:build linux || darwin

package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/continuity/sysx"
	"github.com/tonistiigi/fsutil"
	"github.com/tonistiigi/fsutil/types"
)

// keyFS is a context directory as the inputs key walks it: fsutil's walk
// (fsutil.NewFS, the one BuildKit's client sends the daemon), with one
// lstat per entry instead of fsutil's lstat and listxattr and the key's
// own lstat for the change time. Each lstat is done by the directory's
// descriptor as the directory is read, the halves of a large one at once:
// the walk is mostly those calls. The entries' metadata is fsutil's, less
// files' extended attributes, whose change changes the change time; the change
// time and inode, which fsutil's metadata has no room for, come from
// times, by the walk's path. fsutil's filters (NewFilterFS) go on top, so
// the same entries are walked as the daemon is sent.
func keyFS(root string) (fsutil.FS, keyRead, error) {
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
	return l, l, nil
}

type lstatFS struct {
	root  string
	mu    sync.Mutex
	links map[uint64]string // inode of a file with more than one link: its first path
	times map[string]fileTimes
	gone  error // the first entry seen changed while walked (errChanged)
}

// changed is the first entry the walk saw gone, or of another kind, since
// its directory was read (errChanged), nil for none. It is kept here, not
// only returned: fsutil's filters on top of the walk skip an entry whose
// metadata is not found, and the rest of its directory with it, without
// an error.
func (l *lstatFS) changed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gone
}

// seen notes err, met on entry rel, when it says the entry is gone or of
// another kind (errChanged), and returns it so wrapped.
func (l *lstatFS) seen(rel string, err error) error {
	if err == nil || (!errors.Is(err, errChanged) && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR)) {
		return err
	}
	if !errors.Is(err, errChanged) {
		err = fmt.Errorf("%s %w: %w", rel, errChanged, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone == nil {
		l.gone = err
	}
	return err
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

// Walk walks the entries below target (the key walks "/"), never target
// itself, as fsutil's walk does. A context root that cannot be read is an
// error (the image then gets no key, and is solved), where fsutil's walk
// would send it as empty.
func (l *lstatFS) Walk(ctx context.Context, target string, fn fs.WalkDirFunc) error {
	dir := filepath.Join(l.root, target)
	rel, err := filepath.Rel(l.root, dir)
	if err != nil {
		return err
	}
	if rel == "." {
		rel = ""
	}
	ents, err := l.readDir(dir, rel)
	if err != nil {
		return err
	}
	if err := l.visitAll(ctx, ents, fn); !errors.Is(err, filepath.SkipAll) {
		return err
	}
	return nil
}

// visit calls fn for e and then, for a directory fn does not skip, for
// its entries in name order: filepath.WalkDir's order and its answers to
// fn's SkipDir (a directory not entered; on a file, the rest of its
// directory skipped), and a directory that cannot be read given to fn
// again with the error.
func (l *lstatFS) visit(ctx context.Context, e *lstatEntry, fn fs.WalkDirFunc) error {
	err := l.call(ctx, e, fn, nil)
	if err != nil || !e.IsDir() {
		if errors.Is(err, filepath.SkipDir) && e.IsDir() {
			err = nil
		}
		return err
	}
	ents, rerr := l.readDir(e.path, e.rel)
	if rerr != nil {
		rerr = l.seen(e.rel, rerr)
		if err := l.call(ctx, e, fn, rerr); err != nil {
			if errors.Is(err, filepath.SkipDir) {
				err = nil
			}
			return err
		}
	}
	return l.visitAll(ctx, ents, fn)
}

// visitAll visits the entries of one directory in order, up to one whose
// answer is SkipDir (the rest of the directory skipped).
func (l *lstatFS) visitAll(ctx context.Context, ents []*lstatEntry, fn fs.WalkDirFunc) error {
	for _, e := range ents {
		if err := l.visit(ctx, e, fn); err != nil {
			if errors.Is(err, filepath.SkipDir) {
				return nil
			}
			return err
		}
	}
	return nil
}

// errChanged is an entry removed, or turned into another kind of entry,
// between the read of its directory and its own.
var errChanged = errors.New("changed while the context was read")

// call is fn on one entry. An entry gone or changed in kind while walked
// is an error (errChanged, kept: changed), where fsutil's walk skips it,
// and with it the rest of its directory: a key of a context read half
// before a change and half after could equal the last build's, and keep
// an image the context no longer makes. The image then gets no key, and
// is solved.
func (l *lstatFS) call(ctx context.Context, e *lstatEntry, fn fs.WalkDirFunc, walkErr error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.seen(e.rel, fn(e.rel, e, walkErr))
}

// prefetchSplit is the size from which a directory's entries are looked
// up by two goroutines: the walk is mostly lstat calls, and two cores do
// them in about half the time.
const prefetchSplit = 32

// readDir is the entries of dir in name order, each one's lstat done
// (by the directory's descriptor; the two halves of a large directory at
// once). The entries are those read before an error, with the error.
func (l *lstatFS) readDir(dir, rel string) ([]*lstatEntry, error) {
	// O_DIRECTORY, as os.ReadDir opens: a directory swapped for a fifo
	// since its parent was read is ENOTDIR, not an open that waits for a
	// writer.
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	des, rerr := f.ReadDir(-1)
	sort.Slice(des, func(i, j int) bool { return des[i].Name() < des[j].Name() })
	ents := make([]*lstatEntry, len(des))
	for i, d := range des {
		ents[i] = &lstatEntry{fs: l, d: d, path: filepath.Join(dir, d.Name()), rel: filepath.Join(rel, d.Name())}
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	lstatAll := func(es []*lstatEntry, fd int) {
		for _, e := range es {
			e.raw, e.rawErr = lstatAt(fd, e.d.Name(), e.path)
		}
	}
	err = sc.Control(func(fd uintptr) {
		if len(ents) < prefetchSplit {
			lstatAll(ents, int(fd)) //nolint:gosec // a descriptor
			return
		}
		var wg sync.WaitGroup
		half := len(ents) / 2
		wg.Go(func() { lstatAll(ents[half:], int(fd)) }) //nolint:gosec // a descriptor
		lstatAll(ents[:half], int(fd))                   //nolint:gosec // a descriptor
		wg.Wait()
	})
	if err != nil {
		return nil, err
	}
	return ents, rerr
}

func (l *lstatFS) Open(p string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(l.root, p))
}

// lstatEntry is an entry of the walk: looked up as its directory is read
// (excluded or not), its metadata made, and its hard link and times kept,
// only when the filters ask for it, in walk order.
type lstatEntry struct {
	fs        *lstatFS
	d         fs.DirEntry
	path, rel string
	raw       rawStat // the entry's lstat, done as its directory was read
	rawErr    error
	st        *types.Stat
}

// rawStat is what the walk keeps of an lstat.
type rawStat struct {
	mode         uint32 // st_mode
	uid, gid     uint32
	size         int64
	mtime, ctime int64 // ns
	ino, nlink   uint64
	rdev         uint64
}

func (e *lstatEntry) Name() string      { return e.d.Name() }
func (e *lstatEntry) IsDir() bool       { return e.d.IsDir() }
func (e *lstatEntry) Type() fs.FileMode { return e.d.Type() }

func (e *lstatEntry) Info() (fs.FileInfo, error) {
	if e.st == nil {
		st, err := e.stat()
		if err != nil {
			return nil, e.fs.seen(e.rel, err)
		}
		e.st = st
	}
	return &fsutil.StatInfo{Stat: e.st.CloneVT()}, nil
}

// stat is fsutil's metadata of the entry (as its mkstat makes it, less a
// file's extended attributes), and its times kept beside. An entry whose
// kind is not the one its directory listed was changed since (errChanged).
func (e *lstatEntry) stat() (*types.Stat, error) {
	if e.rawErr != nil {
		return nil, e.rawErr
	}
	r := e.raw
	mode := fileMode(r.mode)
	if mode.Type() != e.d.Type() {
		return nil, fmt.Errorf("%s %w: listed as %v, now %v", e.rel, errChanged, e.d.Type(), mode.Type())
	}
	st := &types.Stat{
		Path:    e.rel,
		Mode:    uint32(mode &^ os.ModeSocket),
		ModTime: r.mtime,
		Uid:     r.uid,
		Gid:     r.gid,
	}
	if mode.IsDir() {
		var err error
		st.Xattrs, err = dirXattrs(e.path)
		return st, err
	}
	st.Size = r.size
	if mode&os.ModeSymlink != 0 {
		var err error
		if st.Linkname, err = os.Readlink(e.path); err != nil {
			return nil, err
		}
	}
	if mode&os.ModeDevice != 0 {
		// fsutil's split of the number; both parts are masked to 20 bits.
		st.Devmajor, st.Devminor = int64((r.rdev>>8)&0xfff), int64((r.rdev&0xff)|((r.rdev>>12)&0xfff00)) //nolint:gosec // masked
	}
	e.fs.mu.Lock()
	defer e.fs.mu.Unlock()
	if r.nlink > 1 {
		if first, ok := e.fs.links[r.ino]; ok {
			st.Linkname = first
		} else {
			e.fs.links[r.ino] = filepath.ToSlash(e.rel)
		}
	}
	e.fs.times[e.rel] = fileTimes{ctime: r.ctime, ino: r.ino}
	return st, nil
}

// dirXattrs is a directory's extended attributes as fsutil sends them
// (com.apple. ones left out), or none where the filesystem has none. A
// file's are not read: setting one moves its change time, which the key
// has. A directory's change time is not in the key (it moves with entries
// the daemon is never sent), so its attributes are.
func dirXattrs(path string) (map[string][]byte, error) {
	names, err := sysx.LListxattr(path)
	if errors.Is(err, syscall.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	var m map[string][]byte
	for _, k := range names {
		if strings.HasPrefix(k, "com.apple.") {
			continue
		}
		v, err := sysx.LGetxattr(path, k)
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + k, Path: path, Err: err}
		}
		if m == nil {
			m = map[string][]byte{}
		}
		m[k] = v
	}
	return m, nil
}

// openInRoot opens rel inside root for reading: not a symbolic link, and
// without waiting for a FIFO's writer.
func openInRoot(root *os.Root, rel string) (*os.File, error) {
	return root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// fileMode is st_mode as Go's os.FileMode, as os.Lstat makes it.
func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFBLK:
		mode |= os.ModeDevice
	case syscall.S_IFCHR:
		mode |= os.ModeDevice | os.ModeCharDevice
	case syscall.S_IFDIR:
		mode |= os.ModeDir
	case syscall.S_IFIFO:
		mode |= os.ModeNamedPipe
	case syscall.S_IFLNK:
		mode |= os.ModeSymlink
	case syscall.S_IFSOCK:
		mode |= os.ModeSocket
	}
	if m&syscall.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if m&syscall.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
