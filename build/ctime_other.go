//go:build !linux && !darwin

package build

import (
	"os"

	"github.com/tonistiigi/fsutil"
)

// keyFS is fsutil's own walk where shipit does not read change times:
// every file then counts as just changed (its time is 0), and every image
// is solved.
func keyFS(root string) (fsutil.FS, keyRead, error) {
	f, err := fsutil.NewFS(root)
	return f, noTimes{}, err
}

type noTimes struct{}

func (noTimes) timesOf(string) fileTimes { return fileTimes{} }
func (noTimes) changed() error           { return nil }

// lstatPath is the lstat of path, and whether it is a regular file; its
// change time is not read (0).
func lstatPath(path string) (rawStat, bool, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return rawStat{}, false, err
	}
	return rawStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}, fi.Mode().IsRegular(), nil
}

// rawStat is what the walk keeps of an lstat, as far as shipit reads one
// here.
type rawStat struct {
	mode         uint32
	size         int64
	mtime, ctime int64 // ns
	ino          uint64
}
