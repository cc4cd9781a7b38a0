package gitops

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/shipit-dev/shipit/internal/kustomize"
)

// maxReach bounds how many kustomizations Include follows from one call:
// a repository that reaches further is checked out whole.
const maxReach = 1000

// Include checks out, in a sparse workspace, each directory (relative to
// the root) and every path its kustomization reaches: resources,
// components, patches, generator files and the rest (kustomize.References),
// followed from kustomization to kustomization and confined to the
// repository. A directory at a time is one git call for the lot: the
// kustomize library then finds every file it reads. A kustomization that
// cannot be read for its references, or a reach past maxReach, checks the
// whole repository out instead: never a render that misses a file.
func (w *Workspace) Include(ctx context.Context, dirs ...string) error {
	if !w.repo.Sparse {
		return nil
	}
	todo := cleanAll(dirs)
	for len(todo) > 0 {
		if len(w.read) > maxReach {
			return w.repo.SparseOff(ctx)
		}
		var add []string
		for _, d := range todo {
			if d == "." {
				return w.repo.SparseOff(ctx)
			}
			if !w.covered(d) {
				add = append(add, d)
			}
		}
		if err := w.repo.SparseAdd(ctx, add); err != nil {
			return err
		}
		w.cone = append(w.cone, add...)
		next, whole, err := w.reach(ctx, todo)
		if err != nil {
			return err
		}
		if whole {
			return w.repo.SparseOff(ctx)
		}
		todo = next
	}
	return nil
}

// reach reads the kustomizations of dirs (checked out now) and returns
// the directories they reach that are still to follow: a directory they
// name, or a file's directory. whole: one could not be read.
func (w *Workspace) reach(ctx context.Context, dirs []string) ([]string, bool, error) {
	var refs []string
	for _, d := range dirs {
		if w.read[d] {
			continue
		}
		w.read[d] = true
		file, err := kustomize.FindFile(kustomize.DiskFS(), w.Abs(d))
		if err != nil {
			continue // a directory of plain files: nothing to follow
		}
		data, err := w.ReadFile(w.Rel(file))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		rs, err := kustomize.References(data)
		if err != nil {
			return nil, true, nil
		}
		for _, r := range rs {
			p := filepath.Clean(filepath.Join(d, r))
			if filepath.IsLocal(p) || p == "." {
				refs = append(refs, p) // outside the repository: kustomize refuses it, nothing to fetch
			}
		}
	}
	kinds, err := w.repo.Kinds(ctx, refs)
	if err != nil {
		return nil, false, err
	}
	var next []string
	for _, p := range refs {
		switch kinds[p] {
		case "tree":
			next = append(next, p)
		case "blob":
			if dir := filepath.Dir(p); !w.covered(dir) {
				next = append(next, dir)
			}
		}
	}
	return cleanAll(next), false, nil
}

// covered reports whether a directory is checked out: it or a parent is
// in the cone.
func (w *Workspace) covered(dir string) bool {
	for _, c := range w.cone {
		if dir == c || strings.HasPrefix(dir, c+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func cleanAll(ps []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range ps {
		p = filepath.Clean(p)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
