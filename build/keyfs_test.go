//go:build linux

package build

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tonistiigi/fsutil"
	"github.com/tonistiigi/fsutil/types"
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
			kfs, times, err := keyFS(dir)
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
				w.Xattrs = nil // left out of the key: a change to one moves the change time
				if g := got[i]; !g.EqualVT(w) {
					t.Errorf("entry %d: key walk has %v, fsutil %v", i, g, w)
				}
				if fs.FileMode(w.Mode).IsDir() {
					continue
				}
				fi, err := os.Lstat(filepath.Join(dir, w.Path))
				must(t, err)
				sys := fi.Sys().(*syscall.Stat_t)
				if ft := times(w.Path); ft.ino != sys.Ino || ft.ctime != sys.Ctim.Nano() {
					t.Errorf("%s: times %+v, lstat has inode %d and change time %d", w.Path, ft, sys.Ino, sys.Ctim.Nano())
				}
			}
		})
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
