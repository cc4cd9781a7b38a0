package build

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSyncFilesHidden(t *testing.T) {
	t.Parallel()
	last := newSyncFiles()
	last.add("a", 10, 100, 500, 7, false)
	last.add("b", 10, 100, 500, 8, true) // racy when recorded

	for name, tc := range map[string]struct {
		size, mtime, ctime int64
		ino                uint64
		racy, want         bool
	}{
		"unchanged":                      {10, 100, 500, 7, false, false},
		"rewritten, size and mtime kept": {10, 100, 600, 7, false, true},
		"replaced by another inode":      {10, 100, 500, 9, false, true},
		"another mtime":                  {10, 200, 600, 7, false, false},
		"another size":                   {11, 100, 600, 7, false, false},
	} {
		now := newSyncFiles()
		now.add("a", tc.size, tc.mtime, tc.ctime, tc.ino, tc.racy)
		if got := now.hidden(last.m); got != tc.want {
			t.Errorf("%s: hidden %v, want %v", name, got, tc.want)
		}
	}
	// A file racy when sent, found with the same size and mtime: nothing
	// tells what the daemon has from what it is now, racy or not.
	for _, racy := range []bool{false, true} {
		now := newSyncFiles()
		now.add("b", 10, 100, 500, 8, racy)
		if !now.hidden(last.m) {
			t.Errorf("b racy when sent, found again (racy %v): not hidden", racy)
		}
	}
	unknown := newSyncFiles()
	unknown.add("c", 1, 1, 0, 1, false)
	if !unknown.unknown {
		t.Error("a file whose change time is 0 is known")
	}
}

// syncOf is a syncKeys of one request r whose walk saw files.
func syncOf(dir string, r Request, files *syncFiles) *syncKeys {
	return newSyncKeys(dir, nil, []Request{r}, []sources{{files: files}})
}

func TestSyncKeysMoveOnlyWhenTheCopyCannotBeTrusted(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	r := Request{Name: "web", ContextDir: "/app/web", DockerfileDir: "/app/web"}
	files := func(ctime int64) *syncFiles {
		f := newSyncFiles()
		f.add("app.sh", 10, 100, ctime, 7, false)
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
		s.save()
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
	unknown.add("app.sh", 10, 100, 0, 7, false)
	again := build(files(600), "default", nil)
	if got := build(unknown, "default", nil); got == again {
		t.Error("a walk whose change times are not known kept the key")
	}
}

func TestSyncRecordRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "rec")
	m := map[uint64]uint64{1: 2, 3: 4}
	if err := writeSyncRecord(p, "0123456789abcdef", m); err != nil {
		t.Fatal(err)
	}
	gen, got, err := readSyncRecord(p)
	if err != nil || gen != "0123456789abcdef" || len(got) != 2 || got[1] != 2 || got[3] != 4 {
		t.Fatalf("read back %q %v %v", gen, got, err)
	}
	for name, data := range map[string]string{
		"empty":            "",
		"no header":        strings.Repeat("x", 32),
		"a short gen":      "shipit-sync 1 0123\n",
		"not hex":          "shipit-sync 1 0123456789abcdeg\n",
		"a partial entry":  "shipit-sync 1 0123456789abcdef\n" + strings.Repeat("x", 15),
		"another version":  "shipit-sync 2 0123456789abcdef\n",
		"larger than read": "shipit-sync 1 0123456789abcdef\n" + strings.Repeat("x", maxSyncRecord),
	} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readSyncRecord(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}
