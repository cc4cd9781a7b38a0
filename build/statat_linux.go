package build

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// lstatAt is the lstat of entry name of the directory open as dirfd: one
// path component for the kernel to look up, where an lstat of the whole
// path looks up every one of them again.
func lstatAt(dirfd int, name, path string) (rawStat, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return rawStat{}, &os.PathError{Op: "lstat", Path: path, Err: err}
		}
		break
	}
	return rawStat{
		mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		ino: st.Ino, nlink: uint64(st.Nlink), rdev: uint64(st.Rdev), //nolint:unconvert // uint32 on some architectures
	}, nil
}

// inodeTimes are an open file's inode and change time, from its Stat.
func inodeTimes(fi os.FileInfo) (uint64, int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Ino, st.Ctim.Nano(), true
}
