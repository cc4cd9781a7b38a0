// Package confine reads files from repositories shipit does not control
// (the app repository, a GitOps clone, a build record that travelled as an
// artifact): bounded in size, regular files only, and no path followed
// through a symbolic link.
package confine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MaxFileSize caps every file shipit reads from a repository.
const MaxFileSize = 4 << 20

// ErrTooLarge is a file past MaxFileSize.
var ErrTooLarge = errors.New("too large")

// ReadFile reads a regular file with the size cap: not a symbolic link, a
// device or a pipe, and at most MaxFileSize bytes.
func ReadFile(path string) ([]byte, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: st.Mode()}
	}
	return read(path)
}

// ReadFollowing is ReadFile for a path the user named (shipit.yaml, which
// may be a link of theirs): it follows links, but still reads only a
// regular file, and at most MaxFileSize bytes.
func ReadFollowing(path string) ([]byte, error) {
	return read(path)
}

func read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: st.Mode()}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %w: more than the %d bytes shipit reads", path, ErrTooLarge, MaxFileSize)
	}
	return data, nil
}

// NotRegularError is a path that is a symbolic link, a directory or a
// special file where shipit wants a regular file.
type NotRegularError struct {
	Path string
	Mode os.FileMode
}

func (e *NotRegularError) Error() string {
	what := "not a regular file"
	switch {
	case e.Mode&os.ModeSymlink != 0:
		what = "a symbolic link"
	case e.Mode.IsDir():
		what = "a directory"
	case e.Mode&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe|os.ModeSocket) != 0:
		what = "a device, pipe or socket"
	}
	return fmt.Sprintf("%s is %s: shipit reads only regular files there (replace it with the file itself)", e.Path, what)
}

// FirstLink walks rel, a path relative to base, one component at a time,
// and returns the first component that is a symbolic link (relative to
// base), or "" when none is. A component that does not exist ends the
// walk: nothing below it can be a link.
func FirstLink(base, rel string) (string, error) {
	var p string
	for _, part := range strings.Split(filepath.Clean(rel), string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		p = filepath.Join(p, part)
		st, err := os.Lstat(filepath.Join(base, p))
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return p, nil
		}
	}
	return "", nil
}
