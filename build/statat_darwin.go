package build

import (
	"os"
	"syscall"
)

// lstatAt is the lstat of entry name (at path) of the directory open as
// dirfd; on macOS by its path.
func lstatAt(_ int, _, path string) (rawStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return rawStat{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return rawStat{}, &os.PathError{Op: "lstat", Path: path, Err: syscall.EBADMSG}
	}
	return rawStat{
		mode: uint32(st.Mode), uid: st.Uid, gid: st.Gid, size: st.Size,
		mtime: st.Mtimespec.Nano(), ctime: st.Ctimespec.Nano(),
		ino: st.Ino, nlink: uint64(st.Nlink), rdev: uint64(uint32(st.Rdev)), //nolint:gosec // dev_t's bits
	}, nil
}

// inodeTimes are an open file's inode and change time, from its Stat.
func inodeTimes(fi os.FileInfo) (uint64, int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Ino, st.Ctimespec.Nano(), true
}
