//go:build linux

package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tonistiigi/fsutil"
	"github.com/tonistiigi/fsutil/types"
	"golang.org/x/sys/unix"
)

// The key's walk must visit what fsutil's walk (the one the daemon is
// sent) visits, in its order, with its metadata, on every kind of entry a
// context holds: else the key would not follow what the solve reads.
func TestKeyFSIsFsutilsWalk(t *testing.T) {
	dir := t.TempDir()
	write := func(p string, mode os.FileMode) {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", 0o644)
	write("bin/run", 0o755)
	write("bin/suid", 0o4755|os.ModeSetuid)
	write("shared/sgid", 0o2755|os.ModeSetgid)
	write("app/a.rb", 0o600)
	// A directory large enough for its entries to be looked up in halves.
	for i := range 3 * prefetchSplit {
		write(fmt.Sprintf("app/models/m%03d.rb", i), 0o644)
	}
	must(t, os.Chmod(filepath.Join(dir, "shared"), 0o1777|os.ModeSticky))
	// A directory's extended attributes are in its metadata; a file's are
	// not (setting one moves the file's change time, which the key has).
	must(t, unix.Lsetxattr(filepath.Join(dir, "shared"), "user.shipit.test", []byte("dir"), 0))
	must(t, unix.Lsetxattr(filepath.Join(dir, "bin/run"), "user.shipit.test", []byte("file"), 0))
	must(t, os.MkdirAll(filepath.Join(dir, "empty/dir"), 0o700))
	must(t, os.Symlink("../Dockerfile", filepath.Join(dir, "bin/link")))
	must(t, os.Symlink("nowhere", filepath.Join(dir, "bin/dangling")))
	must(t, os.Link(filepath.Join(dir, "app/a.rb"), filepath.Join(dir, "app/models/z-hardlink.rb")))
	// A pair looked up in the other order than walked: links/c is looked
	// up with links/b, before links/b/x, but walked after it.
	write("links/b/x", 0o644)
	must(t, os.Link(filepath.Join(dir, "links/b/x"), filepath.Join(dir, "links/c")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "bin/fifo"), 0o644))
	if os.Geteuid() == 0 {
		must(t, syscall.Mknod(filepath.Join(dir, "bin/null"), syscall.S_IFCHR|0o666, int(259<<8|3)))
		must(t, os.Lchown(filepath.Join(dir, "app/a.rb"), 4321, 99))
		must(t, os.Lchown(filepath.Join(dir, "bin/link"), 1234, 5678))
	}

	excludes := []string{"app/models/m00*", "!app/models/m001.rb", "empty"}
	for _, tc := range []struct {
		name     string
		excludes []string
	}{{"whole", nil}, {"with excludes", excludes}} {
		t.Run(tc.name, func(t *testing.T) {
			kfs, kr, err := keyFS(dir)
			must(t, err)
			ffs, err := fsutil.NewFS(dir)
			must(t, err)
			if tc.excludes != nil {
				kfs, err = fsutil.NewFilterFS(kfs, &fsutil.FilterOpt{ExcludePatterns: tc.excludes})
				must(t, err)
				ffs, err = fsutil.NewFilterFS(ffs, &fsutil.FilterOpt{ExcludePatterns: tc.excludes})
				must(t, err)
			}
			got := walkStats(t, kfs)
			want := walkStats(t, ffs)
			if len(got) != len(want) {
				t.Fatalf("key walk visits %d entries, fsutil's %d:\n%v\n%v", len(got), len(want), paths(got), paths(want))
			}
			for i := range want {
				w := want[i]
				if !fs.FileMode(w.Mode).IsDir() {
					w.Xattrs = nil // left out of the key: a change to one moves the change time
				}
				if g := got[i]; !g.EqualVT(w) {
					t.Errorf("entry %d: key walk has %v, fsutil %v", i, g, w)
				}
				if fs.FileMode(w.Mode).IsDir() {
					continue
				}
				fi, err := os.Lstat(filepath.Join(dir, w.Path))
				must(t, err)
				sys := fi.Sys().(*syscall.Stat_t)
				if ft := kr.timesOf(w.Path); ft.ino != sys.Ino || ft.ctime != sys.Ctim.Nano() {
					t.Errorf("%s: times %+v, lstat has inode %d and change time %d", w.Path, ft, sys.Ino, sys.Ctim.Nano())
				}
			}
		})
	}
}

// An entry removed, or turned into another kind, while the key's walk is
// in its directory is an error (the image gets no key, and is solved),
// where fsutil's walk skips it and the rest of its directory: a key read
// half before a change and half after could equal the last build's.
func TestKeyFSChangedWhileWalked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(dir string) error
	}{
		{"a symbolic link removed", func(dir string) error { return os.Remove(filepath.Join(dir, "l")) }},
		{"a directory removed", func(dir string) error { return os.RemoveAll(filepath.Join(dir, "d")) }},
		{"a directory turned into a file", func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, "d")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "d"), nil, 0o644)
		}},
	} {
		// Bare, and under the filter every build puts on it (shipit's
		// own state left out), which skips an entry whose metadata is
		// not found without an error: the walk keeps what it saw.
		for _, filtered := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, filtered %v", tc.name, filtered), func(t *testing.T) {
				walkChanged(t, tc.change, filtered)
			})
		}
	}
}

func walkChanged(t *testing.T, change func(dir string) error, filtered bool) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "d", "f"), nil, 0o644))
	must(t, os.Symlink("a", filepath.Join(dir, "l")))
	must(t, os.WriteFile(filepath.Join(dir, "z"), []byte("z"), 0o644))
	kfs, kr, err := keyFS(dir)
	must(t, err)
	if filtered {
		kfs, err = fsutil.NewFilterFS(kfs, &fsutil.FilterOpt{ExcludePatterns: stateExcludes(filepath.Join(dir, ".shipit"))})
		must(t, err)
	}
	var seen []string
	err = kfs.Walk(context.Background(), "/", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := e.Info(); err != nil {
			return err
		}
		seen = append(seen, p)
		if p == "a" { // its siblings are looked up already
			return change(dir)
		}
		return nil
	})
	if err == nil {
		err = kr.changed()
	}
	if !errors.Is(err, errChanged) {
		t.Fatalf("a walk of a context changed under it: error %v after %v, want one saying it changed", err, seen)
	}
}

// An entry listed as one kind and looked up as another (a directory
// replaced by a file between the two calls) is errChanged, not a line
// with a file's mode and none of its times.
func TestKeyFSKindChangedSinceListed(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "x"), nil, 0o644))
	l := &lstatFS{root: dir, links: map[uint64]string{}, times: map[string]fileTimes{}}
	ents, err := l.readDir(dir, "")
	must(t, err)
	if _, err := ents[0].Info(); err != nil {
		t.Fatalf("a file as listed: %v", err)
	}
	fi, err := os.Stat(t.TempDir())
	must(t, err)
	ents[0].st, ents[0].d = nil, fs.FileInfoToDirEntry(fi) // as if listed as a directory
	if _, err := ents[0].Info(); !errors.Is(err, errChanged) {
		t.Fatalf("a file listed as a directory: error %v, want one saying it changed", err)
	}
}

func walkStats(t *testing.T, f fsutil.FS) []*types.Stat {
	t.Helper()
	var out []*types.Stat
	err := f.Walk(context.Background(), "/", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, fi.Sys().(*types.Stat).CloneVT())
		return nil
	})
	must(t, err)
	return out
}

func paths(sts []*types.Stat) []string {
	var out []string
	for _, s := range sts {
		out = append(out, s.Path)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
