package build

import (
	"bytes"
	stdcmp "cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/shipit-dev/shipit/internal/progress"
)

// The daemon keeps a copy of each context it was sent, under the
// session's shared key (sharedKey), and syncs the next build's into it by
// metadata: fsutil's receiver takes a regular file whose size and
// modification time are those of its copy as unchanged, and never asks
// for it (moby/buildkit#2592, #4817). A file rewritten with both kept
// (mtimes set to SOURCE_DATE_EPOCH for reproducible builds, cp -p, rsync
// -t, a tar extracted) reaches the build as it was before, for every
// BuildKit client and with --no-cache too, since that copy is not the
// build cache. (The Dockerfile and .dockerignore are not synced this
// way: the frontend has them sent whole every time.)
//
// shipit's walk reads each file's change time and inode as well, and no
// write keeps both. So shipit keeps, for each directory pair and builder
// node, a record in .shipit/sync/ of every file it walked under the
// current key: by path, mode, size and mtime, its change time and inode.
// When a file has a recorded path, mode, size and mtime but another
// change time or inode, its content is read: when its digest is not the
// one recorded (each file's is read after the build that first walks it
// at that size and mtime, and kept while its inode and change time stay,
// under any generation), the key moves (a new random generation): the
// daemon has no copy under the new key and is sent every file, once. A
// touch to the same time, a chown or a new hard link then costs a read of
// the file, not a whole send. Files are read inside the context only, not
// through a symbolic link, never a FIFO, and only while they are the file
// walked.
// The record holds every file seen since the generation began, not only
// the last walk's, because a solve that reads nothing of the context
// leaves the daemon's copy as it was. Without a record to trust (the
// first build, .shipit removed, a build that failed or was stopped, a
// coarse timestamp just written, a record grown too large), the key moves
// too. The record is removed before the solves and written again only
// once every solve under the key has succeeded.
//
// A generation is random, not counted, so that two machines that build
// the same paths on one daemon never share a copy.

// syncFiles are the regular files a walk saw, each as the hash of what
// the daemon compares (path, mode, size, mtime) to the hash of what
// shipit compares besides (change time, inode).
type syncFiles struct {
	m map[uint64]uint64
	// paths are the files' paths, by key, for digests of their content.
	paths map[uint64]string
	root  string // the context directory the paths are in
	// unknown: a file's change time could not be read, or not every file
	// was seen, so no hidden change can be told.
	unknown bool
	// skip, when set, says why the context is not checked: too large to
	// walk for the key, and sent whole on every build it would cost more
	// than it guards against. It is synced as BuildKit does, under a
	// generation of its own (an unchecked record).
	skip string
	// again walks the context again, as this walk did; nil for a merge.
	again func(ctx context.Context) *syncFiles
	// parts are the walks merged into f.
	parts []*syncFiles
}

func newSyncFiles() *syncFiles {
	return &syncFiles{m: map[uint64]uint64{}, paths: map[uint64]string{}}
}

// add records one regular file; a ctime of 0 is one not read. A racy
// file (racyAfter) may be written again within its timestamps' tick, so
// nothing tells the daemon's copy of it from what it is now: it is
// recorded as such, and the key moves if it is found with those
// timestamps again.
func (f *syncFiles) add(path string, mode uint32, size, mtime, ctime int64, ino uint64, racy bool) {
	if ctime == 0 {
		f.unknown = true
		return
	}
	v := racySync
	if !racy {
		v = syncAt(ino, ctime)
	}
	// The mode is the daemon's to compare: a chmod, which moves the
	// change time, is then no hidden change.
	k := syncHash(path+"\x00"+strconv.FormatUint(uint64(mode), 8), size, mtime)
	f.m[k] = v
	f.paths[k] = filepath.FromSlash(path)
}

// racySync stands for a racy file's change time and inode.
const racySync uint64 = 0

// syncAt is the hash of a file's inode and change time, never racySync.
func syncAt(ino uint64, ctime int64) uint64 {
	if v := syncHash(strconv.FormatUint(ino, 10), ctime, 0); v != racySync {
		return v
	}
	return racySync + 1
}

// merge adds o's files to f; o nil is a walk that gave none.
func (f *syncFiles) merge(o *syncFiles) {
	if o == nil {
		f.unknown = true
		return
	}
	f.unknown = f.unknown || o.unknown
	f.skip = stdcmp.Or(f.skip, o.skip)
	if o.again != nil && !slices.Contains(f.parts, o) {
		f.parts = append(f.parts, o)
	}
	for _, p := range o.parts {
		if !slices.Contains(f.parts, p) {
			f.parts = append(f.parts, p)
		}
	}
	maps.Copy(f.m, o.m)
	maps.Copy(f.paths, o.paths)
	f.root = stdcmp.Or(f.root, o.root)
}

// hidden reports whether a file of f has the size and mtime it had in
// last but another content, which the daemon would not be sent: its
// change time or inode moved, and its content's digest is not the one
// recorded (or none was). sums gets the digests of the files read and
// found the same.
func (f *syncFiles) hidden(last map[uint64]syncEntry, sums map[uint64]uint64) bool {
	cr := &contextReader{dir: f.root}
	defer cr.close()
	for k, v := range f.m {
		e, ok := last[k]
		switch {
		case !ok || e.at == v && e.at != racySync:
			continue
		case e.at == racySync || v == racySync || e.sum == 0:
			return true
		}
		// A touch, chown or new hard link moves the change time alone.
		sum, err := cr.sum(f.paths[k], v)
		if err != nil || sum != e.sum {
			return true
		}
		sums[k] = sum
	}
	return false
}

// errNotAsWalked is a file that is not the one the walk saw.
var errNotAsWalked = errors.New("not the file walked")

// syncEntry is a file as a record keeps it: the hash of its change time
// and inode (at), and of its content (sum; 0: not read).
type syncEntry struct{ at, sum uint64 }

// contextReader reads files of a context directory for their digests,
// opening it once, when the first is read.
type contextReader struct {
	dir    string
	root   *os.Root
	err    error
	opened bool
}

// sum is fileSum of rel, or why it cannot be read.
func (c *contextReader) sum(rel string, at uint64) (uint64, error) {
	if !c.opened {
		c.root, c.err = os.OpenRoot(c.dir)
		c.opened = true
	}
	if c.err != nil {
		return 0, c.err
	}
	return fileSum(c.root, rel, at)
}

func (c *contextReader) close() {
	if c.root != nil {
		_ = c.root.Close()
	}
}

// fileSum is a digest of the content of the regular file rel of root,
// never 0, read only while it is the file the walk saw (at: its inode and
// change time): opened inside root, without following a symbolic link or
// waiting for a FIFO's writer.
func fileSum(root *os.Root, rel string, at uint64) (uint64, error) {
	f, err := openInRoot(root, rel)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	ino, ctime, ok := inodeTimes(fi)
	if !ok || !fi.Mode().IsRegular() || syncAt(ino, ctime) != at {
		return 0, fmt.Errorf("%s: %w", rel, errNotAsWalked)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return 0, err
	}
	return max(binary.LittleEndian.Uint64(h.Sum(nil)), 1), nil
}

func syncHash(s string, a, b int64) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, s)
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], uint64(a)) //nolint:gosec // bits, not a number
	binary.LittleEndian.PutUint64(buf[8:], uint64(b)) //nolint:gosec // bits, not a number
	_, _ = h.Write(buf[:])
	return h.Sum64()
}

// syncKeys decides, once for each directory pair and node in a build, the
// generation of the shared key its solves use, and writes the record of
// what was sent when they are done.
type syncKeys struct {
	dir    string // .shipit/sync
	events progress.Sink
	files  map[string]*syncFiles // by baseSharedKey: every image's, merged
	mu     sync.Mutex
	uses   map[string]*syncUse // by baseSharedKey and node
}

type syncUse struct {
	path  string
	files *syncFiles
	once  sync.Once
	gen   string
	// last is the record's files, whether or not its generation is kept
	// (keep): a file at the same inode and change time has the same
	// digest under any generation.
	last   map[uint64]syncEntry
	keep   bool
	sums   map[uint64]uint64 // digests read to tell a moved change time from a change
	failed bool
}

// newSyncKeys gathers the files each request's walk saw (its sources), by
// directory pair.
func newSyncKeys(stateDir string, events progress.Sink, reqs []Request, srcs []sources) *syncKeys {
	s := &syncKeys{dir: filepath.Join(stateDir, "sync"), events: events, files: map[string]*syncFiles{}, uses: map[string]*syncUse{}}
	for i, r := range reqs {
		k := baseSharedKey(r)
		f := s.files[k]
		if f == nil {
			f = newSyncFiles()
			s.files[k] = f
		}
		f.merge(srcs[i].files)
	}
	return s
}

// keyed is r with the shared key it is solved under on node.
func (s *syncKeys) keyed(r Request, node string) Request {
	if s == nil {
		return r
	}
	u := s.use(r, node)
	u.once.Do(func() {
		if u.files.skip != "" {
			progress.Warnf(s.events, "image %s: its context (%s) is too large for shipit to check the daemon's copy of it: a file rewritten with its size and modification time kept is built as it was (moby/buildkit#2592). A .dockerignore that leaves out what the build does not read keeps it checked", r.Name, u.files.skip)
		}
		u.gen, u.last, u.keep = s.decide(r, u)
	})
	r.syncGen = u.gen
	return r
}

func (s *syncKeys) use(r Request, node string) *syncUse {
	base := baseSharedKey(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := base + "\x00" + node
	u := s.uses[k]
	if u == nil {
		sum := sha256.Sum256([]byte(k))
		u = &syncUse{path: filepath.Join(s.dir, hex.EncodeToString(sum[:12])), files: s.files[base], sums: map[uint64]uint64{}}
		if u.files == nil {
			u.files = &syncFiles{unknown: true}
		}
		s.uses[k] = u
	}
	return u
}

// decide reads the record of the last send, removes it (it is true again
// only once this build's solves are done), and keeps its generation, and
// the files it holds, only when no file changed out of the daemon's sight.
func (s *syncKeys) decide(r Request, u *syncUse) (string, map[uint64]syncEntry, bool) {
	gen, last, unchecked, err := readSyncRecord(u.path)
	why := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "no record of what the daemon was last sent"
	case err != nil:
		why = err.Error()
	case u.files.skip != "":
		// Unchecked, under a generation of its own: one begun when the
		// context grew too large, never a checked one's copy.
		if !unchecked {
			why = "its context is now too large to check"
		}
	case unchecked:
		why = "its context was last sent unchecked"
	case u.files.unknown:
		why = "not every file's change time could be read"
	case u.files.hidden(last, u.sums):
		why = "a file changed with its size and modification time kept, which the daemon's copy would not take"
	}
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		if rerr := removeSyncRecord(u.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			why = stdcmp.Or(why, "its record cannot be removed: "+rerr.Error())
		}
	}
	if why == "" {
		return gen, last, true
	}
	progress.Debugf(s.events, "image %s: the daemon is sent its whole context: %s", r.Name, why)
	if unchecked {
		last = nil
	}
	return newSyncGen(), last, false
}

// done counts one solve under r's key on node as ended, with err.
func (s *syncKeys) done(r Request, node string, err error) {
	if s == nil {
		return
	}
	u := s.use(r, node)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		u.failed = true
	}
}

// save writes the record of each send whose solves all succeeded, from
// walks whose every file's times are known and are the same after the
// solves (a file changed between the walk and the daemon's read of it
// would leave the daemon a state the record never saw); a failed one's
// stays removed. Under a kept generation the record keeps the files it
// held: a solve that reads nothing of the context leaves the daemon's copy
// as it was, so every file seen under the generation must stay
// comparable. One grown past maxSyncFiles is dropped, and the next build
// sends the whole context under a new one.
func (s *syncKeys) save(ctx context.Context) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range s.uses {
		if u.failed || u.gen == "" || (u.files.unknown && u.files.skip == "") {
			continue
		}
		wg.Go(func() { s.saveOne(ctx, u) })
	}
	wg.Wait()
}

func (s *syncKeys) saveOne(ctx context.Context, u *syncUse) {
	if u.files.skip != "" {
		if err := writeSyncRecord(u.path, u.gen, nil, true); err != nil {
			progress.Warnf(s.events, "%v; until that is fixed, every build sends the whole context", err)
		}
		return
	}
	m := make(map[uint64]syncEntry, len(u.last)+len(u.files.m))
	if u.keep {
		maps.Copy(m, u.last)
	}
	// A file that cannot be read has no digest, and is a whole send if
	// found later at its size and mtime with its change time moved.
	cr := &contextReader{dir: u.files.root}
	defer cr.close()
	for k, at := range u.files.m {
		e := syncEntry{at: at}
		switch last, ok := u.last[k]; {
		case at == racySync:
		case ok && last.at == at && last.sum != 0:
			e.sum = last.sum
		case u.sums[k] != 0:
			e.sum = u.sums[k]
		default:
			// Its content as of the walk, which the walk below checks; a
			// file the daemon may not have been sent too (a COPY of part
			// of the context, a target that reads none of it), as it may
			// be under this generation later.
			e.sum, _ = cr.sum(u.files.paths[k], at)
		}
		m[k] = e
	}
	// After the digests: a file changed since the walk, even while it was
	// read, has moved its change time.
	for _, p := range u.files.parts {
		if now := p.again(ctx); now.unknown || !maps.Equal(now.m, p.m) {
			progress.Debugf(s.events, "a file of a context changed while the build read it: no record kept, and the next build sends the context whole")
			return
		}
	}
	if len(m) > maxSyncFiles(len(u.files.m)) {
		progress.Debugf(s.events, "the record of what the daemon was sent holds %d files, for %d now: dropped, and the next build sends the whole context", len(m), len(u.files.m))
		return
	}
	if err := writeSyncRecord(u.path, u.gen, m, false); err != nil {
		progress.Warnf(s.events, "%v; until that is fixed, every build sends the whole context", err)
	}
}

// maxSyncFiles bounds a record of a context of n files: its files as
// they were at each change since the generation began.
func maxSyncFiles(n int) int { return min(4*n+10000, maxContextEntries) }

func newSyncGen() string { return randomHex() }

// The record: a header line (the generation, and " unchecked" for a
// context too large to check), then each file's three hashes (key,
// change time and inode, content), little-endian.
const (
	syncMagic     = "shipit-sync 2 "
	syncUnchecked = " unchecked"
)

// maxSyncRecord bounds the read of a record: every file the walk may
// reach, and the header.
const maxSyncRecord = 64 + syncEntrySize*(maxContextEntries+16)

const syncEntrySize = 24

func readSyncRecord(path string) (gen string, m map[uint64]syncEntry, unchecked bool, err error) {
	data, err := ReadStateFile(filepath.Dir(path), filepath.Base(path), maxSyncRecord)
	bad := fmt.Errorf("%s is not a record shipit wrote", path)
	if errors.Is(err, errTooLarge) || errors.Is(err, errNotRegular) {
		return "", nil, false, bad
	}
	if err != nil {
		return "", nil, false, err
	}
	line, rest, ok := bytes.Cut(data, []byte("\n"))
	g, found := bytes.CutPrefix(line, []byte(syncMagic))
	if g, unchecked = bytes.CutSuffix(g, []byte(syncUnchecked)); unchecked && len(rest) > 0 {
		return "", nil, false, bad
	}
	if !ok || !found || len(g) != 16 || len(rest)%syncEntrySize != 0 {
		return "", nil, false, bad
	}
	if _, err := hex.DecodeString(string(g)); err != nil {
		return "", nil, false, bad
	}
	m = make(map[uint64]syncEntry, len(rest)/syncEntrySize)
	for i := 0; i < len(rest); i += syncEntrySize {
		m[binary.LittleEndian.Uint64(rest[i:])] = syncEntry{at: binary.LittleEndian.Uint64(rest[i+8:]), sum: binary.LittleEndian.Uint64(rest[i+16:])}
	}
	return string(g), m, unchecked, nil
}

func writeSyncRecord(path, gen string, m map[uint64]syncEntry, unchecked bool) error {
	if err := writeSyncFile(path, gen, m, unchecked); err != nil {
		return fmt.Errorf("recording what the daemon was sent of a context in %s: %w", path, err)
	}
	return nil
}

func writeSyncFile(path, gen string, m map[uint64]syncEntry, unchecked bool) error {
	buf := make([]byte, 0, len(syncMagic)+len(syncUnchecked)+17+syncEntrySize*len(m))
	buf = append(buf, syncMagic+gen...)
	if unchecked {
		buf = append(buf, syncUnchecked...)
	}
	buf = append(buf, '\n')
	for k, e := range m {
		buf = binary.LittleEndian.AppendUint64(buf, k)
		buf = binary.LittleEndian.AppendUint64(buf, e.at)
		buf = binary.LittleEndian.AppendUint64(buf, e.sum)
	}
	// Not synced to disk: a record lost or cut short by a crash is one
	// readSyncRecord refuses, and costs one whole send.
	return replaceFile(path, buf, false)
}

// removeSyncRecord removes a record, inside its directory only.
func removeSyncRecord(path string) error {
	return RemoveStateFile(filepath.Dir(path), filepath.Base(path))
}
