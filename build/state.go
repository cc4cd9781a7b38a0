package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateError is a state directory (.shipit) that shipit refuses to use: a
// symbolic link, or one holding a symbolic link or a special file. A
// repository anyone can push to could otherwise make a build delete or
// overwrite files outside it, or read a secret into an error message.
type StateError struct {
	Path string // the offending path
	Why  string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("%s %s: shipit keeps its build output there and refuses to follow it out of the repository. Remove it (and if git tracks it, `git rm -r --cached` it and add .shipit/ to .gitignore)", e.Path, e.Why)
}

// CheckState refuses a state directory that is itself a symbolic link or
// holds anything but regular files and directories. A missing directory
// is fine: the build makes it.
func CheckState(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return &StateError{Path: dir, Why: "is a symbolic link"}
	}
	if !st.IsDir() {
		return &StateError{Path: dir, Why: "is not a directory"}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			return &StateError{Path: p, Why: "is a symbolic link"}
		case !t.IsDir() && !t.IsRegular():
			return &StateError{Path: p, Why: "is not a regular file"}
		}
		return nil
	})
}

// TrackedStateError is a state directory that git tracks: its content
// came from the repository, not from a build on this machine.
type TrackedStateError struct {
	Dir   string
	Files []string
}

func (e *TrackedStateError) Error() string {
	return fmt.Sprintf("%s is tracked by git (%s, …): shipit's build output must come from this machine, never from the repository. Run `git rm -r --cached %s`, add .shipit/ to .gitignore, and commit",
		e.Dir, e.Files[0], filepath.Base(e.Dir))
}

// ReadStateFile reads the file name of the state directory dir, inside an
// os.Root of it (as every read of it), when it is a regular file of at
// most max bytes.
func ReadStateFile(dir, name string, max int) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return readBounded(root, name, max)
}

// WriteStateFile replaces the file name of the state directory dir with
// data, whole or not at all, inside an os.Root of it; not synced to disk,
// for what can be found again.
func WriteStateFile(dir, name string, data []byte) error {
	return replaceFile(filepath.Join(dir, name), data, false)
}

// RemoveStateFile removes the file name of the state directory dir, inside
// an os.Root of it: a link in dir's place is not followed out of it.
func RemoveStateFile(dir, name string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return root.Remove(name)
}
