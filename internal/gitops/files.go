package gitops

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/konfig"

	"github.com/shipit-dev/shipit/internal/confine"
	"github.com/shipit-dev/shipit/internal/kustomize"
)

// UnsafePathError is a path in the GitOps repository that shipit refuses
// to read or write: a symbolic link (which could lead a write out of the
// clone, or a read into a secret), a special file, or a file too large.
type UnsafePathError struct {
	Repo string // the repository, for the message
	Path string // relative to the repository's root
	Why  string
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("%s in %s %s: shipit refuses to follow it. Replace it with the real directory or file, and commit", e.Path, e.Repo, e.Why)
}

// CheckOverlay refuses an overlay (relative to the root) that shipit must
// not touch: any component of its path that is a symbolic link, a
// kustomization, hold or Argo CD source file that is not a regular file,
// or one past the size cap. It runs before anything in the overlay is
// read.
func (w *Workspace) CheckOverlay(overlay string) error {
	link, err := confine.FirstLink(w.repo.Dir, overlay)
	if err != nil {
		return err
	}
	if link != "" {
		return &UnsafePathError{Repo: w.URL(), Path: link, Why: "is a symbolic link"}
	}
	p := w.Abs(overlay)
	names := append([]string{HoldFile}, konfig.RecognizedKustomizationFileNames()...)
	if more, err := filepath.Glob(filepath.Join(p, ".argocd-source*.yaml")); err == nil {
		for _, m := range more {
			names = append(names, filepath.Base(m))
		}
	}
	for _, n := range names {
		st, err := os.Lstat(filepath.Join(p, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		rel := filepath.Join(overlay, n)
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			return &UnsafePathError{Repo: w.URL(), Path: rel, Why: "is a symbolic link"}
		case !st.Mode().IsRegular():
			return &UnsafePathError{Repo: w.URL(), Path: rel, Why: "is not a regular file"}
		case st.Size() > confine.MaxFileSize:
			return &UnsafePathError{Repo: w.URL(), Path: rel, Why: fmt.Sprintf("is larger than %d bytes", confine.MaxFileSize)}
		}
	}
	return nil
}

// CheckPath refuses a path (relative to the root) reached through a
// symbolic link.
func (w *Workspace) CheckPath(p string) error {
	link, err := confine.FirstLink(w.repo.Dir, p)
	if err != nil {
		return err
	}
	if link != "" {
		return &UnsafePathError{Repo: w.URL(), Path: link, Why: "is a symbolic link"}
	}
	return nil
}

// ReadFile reads a regular file of the clone (relative to the root),
// capped at confine.MaxFileSize.
func (w *Workspace) ReadFile(rel string) ([]byte, error) {
	if err := w.CheckPath(rel); err != nil {
		return nil, err
	}
	return confine.ReadFile(w.Abs(rel))
}

// ReadDir lists a directory of the clone (relative to the root).
func (w *Workspace) ReadDir(rel string) ([]os.DirEntry, error) {
	if err := w.CheckPath(rel); err != nil {
		return nil, err
	}
	return os.ReadDir(w.Abs(rel))
}

// WriteFile writes a file of the clone through an os.Root of it: never
// out of the clone, whatever links it holds.
func (w *Workspace) WriteFile(rel string, data []byte) error {
	return w.inRoot(rel, func(root *os.Root, rel string) error {
		if st, err := root.Lstat(rel); err == nil && !st.Mode().IsRegular() {
			return &UnsafePathError{Repo: w.URL(), Path: rel, Why: "is not a regular file"}
		}
		return root.WriteFile(rel, data, 0o644)
	})
}

// Remove removes a file of the clone through an os.Root of it.
func (w *Workspace) Remove(rel string) error {
	return w.inRoot(rel, func(root *os.Root, rel string) error { return root.Remove(rel) })
}

// MkdirAll makes a directory of the clone through an os.Root of it.
func (w *Workspace) MkdirAll(rel string) error {
	return w.inRoot(rel, func(root *os.Root, rel string) error { return root.MkdirAll(rel, 0o755) })
}

func (w *Workspace) inRoot(rel string, fn func(root *os.Root, rel string) error) error {
	if !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is outside the repository", rel)
	}
	root, err := os.OpenRoot(w.repo.Dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fn(root, rel)
}

// Entries reads the images entries of an overlay (relative to the root;
// shown names it in errors), after CheckOverlay. An overlay without a
// kustomization is an error naming it.
func (w *Workspace) Entries(overlay, shown string) (map[string]kustomize.Entry, error) {
	if err := w.CheckOverlay(overlay); err != nil {
		return nil, err
	}
	file, err := kustomize.FindFile(kustomize.DiskFS(), w.Abs(overlay))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shown, w.Clean(err))
	}
	data, err := confine.ReadFile(file)
	if err != nil {
		return nil, err
	}
	entries, err := kustomize.Images(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shown, err)
	}
	return entries, nil
}
