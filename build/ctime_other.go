//go:build !linux && !darwin

package build

import "github.com/tonistiigi/fsutil"

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
