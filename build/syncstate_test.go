package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// entries are f's files as a record of them without digests.
func entries(f *syncFiles) map[uint64]syncEntry {
	m := map[uint64]syncEntry{}
	for k, v := range f.m {
		m[k] = syncEntry{at: v}
	}
	return m
}

func TestSyncFilesHidden(t *testing.T) {
	t.Parallel()
	last := newSyncFiles()
	last.add("a", 0o644, 10, 100, 500, 7, false)
	last.add("b", 0o644, 10, 100, 500, 8, true) // racy when recorded

	for name, tc := range map[string]struct {
		mode               uint32
		size, mtime, ctime int64
		ino                uint64
		racy, want         bool
	}{
		"unchanged":                      {0o644, 10, 100, 500, 7, false, false},
		"rewritten, size and mtime kept": {0o644, 10, 100, 600, 7, false, true},
		"replaced by another inode":      {0o644, 10, 100, 500, 9, false, true},
		"another mtime":                  {0o644, 10, 200, 600, 7, false, false},
		"another size":                   {0o644, 11, 100, 600, 7, false, false},
		// The daemon sees a mode change, and a chmod moves the ctime.
		"chmod": {0o755, 10, 100, 600, 7, false, false},
	} {
		now := newSyncFiles()
		now.add("a", tc.mode, tc.size, tc.mtime, tc.ctime, tc.ino, tc.racy)
		if got := now.hidden(entries(last), map[uint64]uint64{}); got != tc.want {
			t.Errorf("%s: hidden %v, want %v", name, got, tc.want)
		}
	}
	// A file racy when sent, found with the same size and mtime: nothing
	// tells what the daemon has from what it is now, racy or not.
	for _, racy := range []bool{false, true} {
		now := newSyncFiles()
		now.add("b", 0o644, 10, 100, 500, 8, racy)
		if !now.hidden(entries(last), map[uint64]uint64{}) {
			t.Errorf("b racy when sent, found again (racy %v): not hidden", racy)
		}
	}
	unknown := newSyncFiles()
	unknown.add("c", 0o644, 1, 1, 0, 1, false)
	if !unknown.unknown {
		t.Error("a file whose change time is 0 is known")
	}
}

// syncOf is a syncKeys of one request r whose walk saw files.
func syncOf(dir string, r Request, files *syncFiles) *syncKeys {
	return newSyncKeys(dir, nil, []Request{r}, []sources{{files: files}})
}

// syncBuild is one build of r, whose walk saw f, on the default node,
// with state in dir: the generation it was solved under.
func syncBuild(dir string, r Request, f *syncFiles) string {
	s := syncOf(dir, r, f)
	k := s.keyed(r, "default")
	s.done(k, "default", nil)
	s.save(context.Background())
	return k.syncGen
}

func TestSyncKeysMoveOnlyWhenTheCopyCannotBeTrusted(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	r := Request{Name: "web", ContextDir: "/app/web", DockerfileDir: "/app/web"}
	files := func(ctime int64) *syncFiles {
		f := newSyncFiles()
		f.add("app.sh", 0o644, 10, 100, ctime, 7, false)
		return f
	}
	build := func(f *syncFiles, node string, err error) string {
		t.Helper()
		s := syncOf(state, r, f)
		k := s.keyed(r, node)
		if k.syncGen == "" || !strings.HasPrefix(sharedKey(k), baseSharedKey(r)+"-") {
			t.Fatalf("shared key %q: want the directories' key and a generation", sharedKey(k))
		}
		if again := s.keyed(r, node); again.syncGen != k.syncGen {
			t.Fatalf("two images of one directory pair on one node: generations %s and %s", k.syncGen, again.syncGen)
		}
		s.done(k, node, err)
		s.save(context.Background())
		return k.syncGen
	}
	first := build(files(500), "default", nil)
	if got := build(files(500), "default", nil); got != first {
		t.Errorf("nothing changed: generation %s, want %s kept", got, first)
	}
	hidden := build(files(600), "default", nil)
	if hidden == first {
		t.Error("a file rewritten with its size and mtime kept: the generation stayed")
	}
	if got := build(files(600), "other", nil); got == hidden {
		t.Error("another node's copy shares the generation")
	}
	// A failed solve leaves no record: the next build moves the key.
	failed := build(files(600), "default", errors.New("boom"))
	if failed != hidden {
		t.Errorf("the failed build moved the key (%s, want %s): nothing changed before it", failed, hidden)
	}
	if got := build(files(600), "default", nil); got == failed {
		t.Error("after a failed solve the daemon's copy is trusted")
	}
	// A record removed, damaged or not shipit's: the key moves.
	last := build(files(600), "default", nil)
	matches, _ := filepath.Glob(filepath.Join(state, "sync", "*"))
	if len(matches) != 2 {
		t.Fatalf("records %v, want one per node", matches)
	}
	for _, m := range matches {
		if err := os.WriteFile(m, []byte("shipit-sync 1 zz\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := build(files(600), "default", nil); got == last {
		t.Error("a damaged record was trusted")
	}
	unknown := newSyncFiles()
	unknown.add("app.sh", 0o644, 10, 100, 0, 7, false)
	again := build(files(600), "default", nil)
	if got := build(unknown, "default", nil); got == again {
		t.Error("a walk whose change times are not known kept the key")
	}
}

func TestSyncRecordRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "rec")
	m := map[uint64]syncEntry{1: {2, 5}, 3: {4, 6}}
	if err := writeSyncRecord(p, "0123456789abcdef", m, false); err != nil {
		t.Fatal(err)
	}
	gen, got, unchecked, err := readSyncRecord(p)
	if err != nil || gen != "0123456789abcdef" || len(got) != 2 || got[1] != (syncEntry{2, 5}) || got[3] != (syncEntry{4, 6}) || unchecked {
		t.Fatalf("read back %q %v %v %v", gen, got, unchecked, err)
	}
	if err := writeSyncRecord(p, "0123456789abcdef", nil, true); err != nil {
		t.Fatal(err)
	}
	if gen, got, unchecked, err := readSyncRecord(p); err != nil || gen != "0123456789abcdef" || len(got) != 0 || !unchecked {
		t.Fatalf("an unchecked record read back %q %v %v %v", gen, got, unchecked, err)
	}
	for name, data := range map[string]string{
		"empty":                 "",
		"no header":             strings.Repeat("x", 32),
		"a short gen":           "shipit-sync 2 0123\n",
		"not hex":               "shipit-sync 2 0123456789abcdeg\n",
		"a partial entry":       "shipit-sync 2 0123456789abcdef\n" + strings.Repeat("x", 23),
		"the first version":     "shipit-sync 1 0123456789abcdef\n" + strings.Repeat("x", 16),
		"another version":       "shipit-sync 3 0123456789abcdef\n",
		"unchecked, with files": "shipit-sync 2 0123456789abcdef unchecked\n" + strings.Repeat("x", 24),
		"larger than read":      "shipit-sync 2 0123456789abcdef\n" + strings.Repeat("x", maxSyncRecord),
	} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := readSyncRecord(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

// TestSyncRecordKeepsWhatTheCopyMayHold: a build whose solve never reads
// the context (a target without it) leaves the daemon's copy as it was,
// so the record of a kept generation keeps the files it held: a file back
// at the copy's size and mtime with another content moves the key.
func TestSyncRecordKeepsWhatTheCopyMayHold(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	r := Request{Name: "web", ContextDir: "/app/web", DockerfileDir: "/app/web"}
	build := func(size, ctime int64) string {
		f := newSyncFiles()
		f.add("job.sh", 0o644, size, 100, ctime, 7, false)
		return syncBuild(state, r, f)
	}
	first := build(14, 500)  // sent
	second := build(15, 600) // another size: kept, though not sent
	if second != first {
		t.Fatalf("another size moved the key (%s, %s)", first, second)
	}
	if third := build(14, 700); third == first {
		t.Error("the first size and mtime again, rewritten: the key stayed, and the daemon's copy of the first content would be built")
	}
}

func TestSyncKeysTooLargeAContext(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	r := Request{Name: "web", ContextDir: "/app/web", DockerfileDir: "/app/web"}
	build := func(f *syncFiles) string { return syncBuild(state, r, f) }
	large := func() *syncFiles { f := newSyncFiles(); f.skip = "more than 200000 files"; return f }
	small := func() *syncFiles { f := newSyncFiles(); f.add("app.sh", 0o644, 10, 100, 500, 7, false); return f }
	checked := build(small())
	first := build(large())
	if first == checked {
		t.Error("a context grown too large to check is synced into its checked copy")
	}
	if again := build(large()); again != first {
		t.Errorf("too large twice: generations %s and %s, want one (it is synced as BuildKit does, not sent whole each time)", first, again)
	}
	if back := build(small()); back == first {
		t.Error("back under the limit: the unchecked copy is trusted")
	}
}

// TestSyncRecordNotKeptWhenAFileChangedDuringTheBuild: a file changed
// between the walk and the daemon's read of it leaves the daemon a state
// no walk saw (found by a review, with a 1.2 GB context being sent): no
// record, so the next build sends the context whole.
func TestSyncRecordNotKeptWhenAFileChangedDuringTheBuild(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	r := Request{Name: "web", ContextDir: "/app/web", DockerfileDir: "/app/web"}
	type st struct{ size, ctime int64 }
	// walk is a walk that saw was, and sees now when walked again.
	walk := func(was, now st) *syncFiles {
		f := newSyncFiles()
		f.add("job.sh", 0o644, was.size, 100, was.ctime, 7, false)
		f.again = func(context.Context) *syncFiles {
			g := newSyncFiles()
			g.add("job.sh", 0o644, now.size, 100, now.ctime, 7, false)
			return g
		}
		return f
	}
	build := func(f *syncFiles) string { return syncBuild(state, r, f) }
	first := build(walk(st{14, 500}, st{14, 500}))
	if again := build(walk(st{14, 500}, st{14, 500})); again != first {
		t.Fatalf("nothing changed, and the key moved")
	}
	// The daemon reads 15 bytes written during the build; then the file
	// is rewritten with those 15 bytes' size and mtime.
	if during := build(walk(st{14, 500}, st{15, 600})); during != first {
		t.Fatalf("the key moved before the change")
	}
	if next := build(walk(st{15, 700}, st{15, 700})); next == first {
		t.Error("after a file changed while the build read it, the daemon's copy is trusted")
	}
}

// TestSyncKeysReadTheContentOfAMovedChangeTime: a file whose change time
// moved at the size and mtime the daemon has (a touch -d of every file
// before each build, a chown) keeps the key when its content is what was
// sent, and moves it when it is not.
func TestSyncKeysReadTheContentOfAMovedChangeTime(t *testing.T) {
	t.Parallel()
	state, app := t.TempDir(), t.TempDir()
	r := Request{Name: "web", ContextDir: app, DockerfileDir: app}
	// build writes content (moving the file's change time) and builds,
	// with the file's own inode and change time, at a kept mtime.
	build := func(content string) string {
		t.Helper()
		p := filepath.Join(app, "job.sh")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // another change time each write
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		ino, ctime, ok := inodeTimes(fi)
		if !ok {
			t.Skip("no change times here")
		}
		f := newSyncFiles()
		f.root = app
		f.add("job.sh", 0o644, int64(len(content)), 100, ctime, ino, false)
		return syncBuild(state, r, f)
	}
	first := build("echo one\n")
	if touched := build("echo one\n"); touched != first {
		t.Error("the change time moved, the content is the same: the key moved")
	}
	if again := build("echo one\n"); again != first {
		t.Error("touched twice: the key moved")
	}
	if rewritten := build("echo two\n"); rewritten == first {
		t.Error("rewritten with its size and mtime kept: the key stayed")
	}
	// A FIFO put in its place is not waited on: the key moves.
	p := filepath.Join(app, "job.sh")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip(err)
	}
	f := newSyncFiles()
	f.root = app
	f.add("job.sh", 0o644, 9, 100, 1, 1, false)
	done := make(chan string, 1)
	go func() { done <- syncBuild(state, r, f) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a FIFO in a context file's place: the build waits for its writer")
	}
}

// TestFileSumStaysInTheContext: a directory of the context swapped for a
// symbolic link out of it since the walk is not read through.
func TestFileSumStaysInTheContext(t *testing.T) {
	t.Parallel()
	app, outside := t.TempDir(), t.TempDir()
	must(t, os.MkdirAll(filepath.Join(app, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(app, "sub", "f"), []byte("in"), 0o644))
	must(t, os.WriteFile(filepath.Join(outside, "f"), []byte("out"), 0o644))
	fi, err := os.Stat(filepath.Join(outside, "f"))
	must(t, err)
	ino, ctime, ok := inodeTimes(fi)
	if !ok {
		t.Skip("no change times here")
	}
	must(t, os.RemoveAll(filepath.Join(app, "sub")))
	must(t, os.Symlink(outside, filepath.Join(app, "sub")))
	root, err := os.OpenRoot(app)
	must(t, err)
	defer root.Close()
	if sum, err := fileSum(root, filepath.Join("sub", "f"), syncAt(ino, ctime)); err == nil {
		t.Errorf("read %x through a link out of the context", sum)
	}
}
