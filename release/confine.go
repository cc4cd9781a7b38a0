package release

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/konfig"

	"github.com/shipit-dev/shipit/release/kustomize"

	"github.com/shipit-dev/shipit/internal/confine"
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

// checkOverlay refuses an overlay that shipit must not touch: any
// component of its path that is a symbolic link, a kustomization, hold or
// Argo CD source file that is not a regular file, or one past the size cap.
// It runs before anything in the overlay is read.
func checkOverlay(repoDir, repoName, overlay string) error {
	link, err := confine.FirstLink(repoDir, overlay)
	if err != nil {
		return err
	}
	if link != "" {
		return &UnsafePathError{Repo: repoName, Path: link, Why: "is a symbolic link"}
	}
	p := filepath.Join(repoDir, overlay)
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
			return &UnsafePathError{Repo: repoName, Path: rel, Why: "is a symbolic link"}
		case !st.Mode().IsRegular():
			return &UnsafePathError{Repo: repoName, Path: rel, Why: "is not a regular file"}
		case st.Size() > confine.MaxFileSize:
			return &UnsafePathError{Repo: repoName, Path: rel, Why: fmt.Sprintf("is larger than %d bytes", confine.MaxFileSize)}
		}
	}
	return nil
}

// writeInRepo writes a file of the clone through an os.Root of it: never
// out of the clone, whatever links it holds.
func writeInRepo(repoDir, path string, data []byte) error {
	return inRepo(repoDir, path, func(root *os.Root, rel string) error {
		if st, err := root.Lstat(rel); err == nil && !st.Mode().IsRegular() {
			return &UnsafePathError{Path: rel, Why: "is not a regular file"}
		}
		return root.WriteFile(rel, data, 0o644)
	})
}

// removeInRepo removes a file of the clone through an os.Root of it.
func removeInRepo(repoDir, path string) error {
	return inRepo(repoDir, path, func(root *os.Root, rel string) error { return root.Remove(rel) })
}

// inRepo runs fn on path, relative to an os.Root of the clone.
func inRepo(repoDir, path string, fn func(root *os.Root, rel string) error) error {
	root, err := os.OpenRoot(repoDir)
	if err != nil {
		return err
	}
	defer root.Close()
	rel, err := filepath.Rel(repoDir, path)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is outside the clone", path)
	}
	return fn(root, rel)
}

// overlayEntries reads the images entries of an overlay in the clone (rel
// to its root; shown names it in errors), after checkOverlay.
func overlayEntries(repoDir, repoURL, rel, shown string) (map[string]kustomize.Entry, error) {
	if err := checkOverlay(repoDir, repoURL, rel); err != nil {
		return nil, err
	}
	file, err := kustomize.FindFile(kustomize.DiskFS(), filepath.Join(repoDir, rel))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shown, stripDir(err, repoDir))
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

// entryFor finds an image's entry: by its configured kustomize_name, else
// by its name or repository.
func entryFor(entries map[string]kustomize.Entry, im PinImage) (kustomize.Entry, bool) {
	if e, ok := entries[im.KustomizeName]; ok && im.KustomizeName != "" {
		return e, true
	}
	return kustomize.EntryFor(entries, im.Name, im.Repository)
}
