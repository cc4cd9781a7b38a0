package build

import "syscall"

// changeTime is a file's change time (ns) and inode; 0 when it cannot be read.
func changeTime(path string) (int64, uint64) {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil {
		return 0, 0
	}
	return st.Ctimespec.Nano(), st.Ino
}
