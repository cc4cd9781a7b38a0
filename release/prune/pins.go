package prune

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/pkg/util"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/safeyaml"
	"github.com/shipit-dev/shipit/release"
	"github.com/shipit-dev/shipit/release/preview"
)

// MaxHistory bounds the walk of the GitOps history: prune reads at most
// this many commits of deploy.branch, however few pins an overlay
// changed in them.
const MaxHistory = 1000

// firstDepth is how many commits the first clone holds; the walk deepens
// it (four times as deep each time, up to MaxHistory) while an overlay
// has fewer than --keep-history distinct pins in it.
const firstDepth = 64

// OverlayError is a configured overlay that prune cannot read at the
// head of deploy.branch: nothing is deleted.
type OverlayError struct {
	Overlay string
	Why     string // "does not exist", "has no kustomization"
	Where   string // the branch and repository
}

func (e *OverlayError) Error() string {
	return fmt.Sprintf("overlay %s (deploy.overlays) %s at the head of %s: prune deletes nothing while it cannot read what every configured overlay pins. Fix deploy.overlays in shipit.yaml (was the overlay renamed?) or restore the overlay", e.Overlay, e.Why, e.Where)
}

// BadInput marks the error as the user's to fix (exit code 2): deploy.overlays.
func (e *OverlayError) BadInput() bool { return true }

// pinSource is the GitOps workspace pins are read from, kept open for
// the re-reads before each delete batch.
type pinSource struct {
	o     Options
	w     *gitops.Workspace
	dirs  []string // what prune reads: the overlays (and what they reach) and the previews
	depth int      // commits the clone holds
	head  string   // the commit the pins were read at
	// seen caches what an overlay held at a commit (commit and directory):
	// commits do not change, and each deepening walks again from the head.
	seen map[[2]string]overlayFiles
}

// overlayFiles are an overlay's images entries and .argocd-source images
// at one commit.
type overlayFiles struct {
	entries map[string]kustomize.Entry
	sources []map[string]kustomize.Entry
}

func openPins(ctx context.Context, o Options) (*pinSource, error) {
	s := &pinSource{o: o, depth: firstDepth, seen: map[[2]string]overlayFiles{}}
	for _, ov := range o.Deploy.Overlays {
		s.dirs = append(s.dirs, o.Deploy.InRepo(ov))
	}
	if o.PreviewDir != "" {
		s.dirs = append(s.dirs, o.Deploy.InRepo(o.PreviewDir))
	}
	var err error
	s.w, err = gitops.Open(ctx, o.Deploy.Target, s.depth, s.dirs...)
	return s, err
}

func (s *pinSource) close() {
	if s.w != nil {
		s.w.Close()
	}
}

// read reads every image's pins at the head and in the history, deepening
// the clone while an overlay has fewer than KeepHistory distinct pins in
// it and the branch has older commits.
func (s *pinSource) read(ctx context.Context) (map[string]keptRefs, error) {
	repo := s.w.Repo()
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	s.head = head
	for {
		out, short, err := s.walk(ctx)
		if err != nil || !short || s.depth >= MaxHistory {
			return out, err
		}
		shallow, err := repo.Shallow(ctx)
		if err != nil || !shallow {
			return out, err
		}
		more := min(s.depth*4, MaxHistory) - s.depth
		if err := repo.Deepen(ctx, more); err != nil {
			return nil, err
		}
		s.depth += more
	}
}

// moved reports whether the branch moved since the pins were read, and
// clones its new head if so (what the overlays reach may have changed).
func (s *pinSource) moved(ctx context.Context) (bool, error) {
	remote, err := s.w.Repo().RemoteHead(ctx)
	if err != nil || remote == s.head {
		return false, err
	}
	w, err := gitops.Open(ctx, s.o.Deploy.Target, s.depth, s.dirs...)
	if err != nil {
		return false, err
	}
	s.w.Close()
	s.w = w
	return true, nil
}

// walk reads the pins once over the history the clone holds; short is
// true when an overlay had fewer than KeepHistory distinct pins of an
// image it pins.
func (s *pinSource) walk(ctx context.Context) (map[string]keptRefs, bool, error) {
	o := s.o
	out := map[string]keptRefs{}
	for _, im := range o.Images {
		out[im.Name] = keptRefs{tags: map[string]string{}, digests: map[string]string{}}
	}
	short := false
	for _, ov := range o.Deploy.Overlays {
		sh, err := s.overlay(ctx, ov, out)
		if err != nil {
			return nil, false, err
		}
		short = short || sh
	}
	if o.PreviewDir == "" {
		return out, short, nil
	}
	// Every live preview runs what it pins.
	previews, err := preview.Read(s.w, o.Deploy.InRepo(o.PreviewDir))
	if err != nil {
		return nil, false, err
	}
	for _, p := range previews {
		for _, im := range o.Images {
			if e, ok := im.EntryIn(p.Entries); ok {
				out[im.Name].add(e.NewTag, e.Digest, KeepPreview)
			}
		}
	}
	return out, short, nil
}

// overlay adds one overlay's pins: at the head (strictly: anything it
// cannot read is an error), its holds, and the last KeepHistory distinct
// pins of each image it pins now.
func (s *pinSource) overlay(ctx context.Context, ov string, out map[string]keptRefs) (bool, error) {
	o, w := s.o, s.w
	dir := o.Deploy.InRepo(ov)
	if err := w.CheckOverlay(dir); err != nil {
		return false, err
	}
	if _, err := kustomize.FindFile(kustomize.DiskFS(), w.Abs(dir)); err != nil {
		why := "has no kustomization"
		if _, err := os.Stat(w.Abs(dir)); errors.Is(err, fs.ErrNotExist) {
			why = "does not exist"
		}
		return false, &OverlayError{Overlay: ov, Why: why, Where: w.Branch.Name + " in " + w.URL()}
	}
	entries, err := w.Entries(dir, ov)
	if err != nil {
		return false, err
	}
	sources, err := headSources(w, dir, ov)
	if err != nil {
		return false, err
	}
	seen := map[string]map[string]bool{} // image -> distinct pins
	for _, im := range o.Images {
		if cur, ok := pinsOf(im, entries, sources, out[im.Name], KeepPinned); ok {
			seen[im.Name] = map[string]bool{cur: true}
		}
	}
	if err := s.rendered(dir, ov, out); err != nil {
		return false, err
	}
	holds, err := w.Holds(dir)
	if err != nil {
		return false, fmt.Errorf("%s: %w", ov, err)
	}
	for name, h := range holds {
		if k, ok := out[name]; ok {
			k.add(h.Pinned, "", KeepHeld)
		}
	}
	full := func() bool {
		for _, m := range seen {
			if len(m) < o.KeepHistory {
				return false
			}
		}
		return true
	}
	if len(seen) == 0 || full() {
		return false, nil
	}
	revs, err := w.Repo().Changes(ctx, dir, MaxHistory)
	if err != nil {
		return false, err
	}
	for i, rev := range revs {
		if i%loadBatch == 0 {
			if err := s.load(ctx, revs[i:min(i+loadBatch, len(revs))], dir); err != nil {
				return false, err
			}
		}
		at := s.seen[[2]string{rev, dir}]
		for _, im := range o.Images {
			m, ok := seen[im.Name]
			if !ok || len(m) >= o.KeepHistory {
				continue
			}
			if p, ok := pinsOf(im, at.entries, at.sources, out[im.Name], KeepHistory); ok {
				m[p] = true
			}
		}
		if full() {
			return false, nil
		}
	}
	return true, nil
}

// loadBatch is how many commits' overlay files are fetched in one request
// (the clone is blobless: git has no file content it was not asked for).
const loadBatch = 32

// load reads an overlay's files at these commits (those not read before):
// the listings first, then the content of every kustomization and
// .argocd-source file among them in one fetch. A file that cannot be
// parsed pins nothing; one that cannot be fetched is an error.
func (s *pinSource) load(ctx context.Context, revs []string, dir string) error {
	repo := s.w.Repo()
	listed := map[string][]gitops.TreeFile{}
	var objects []string
	for _, rev := range revs {
		if _, ok := s.seen[[2]string{rev, dir}]; ok {
			continue
		}
		files, err := repo.FilesAt(ctx, rev, dir)
		if err != nil {
			return err
		}
		for _, f := range files {
			if pinFile(f) {
				listed[rev] = append(listed[rev], f)
				objects = append(objects, f.Object)
			}
		}
		if _, ok := listed[rev]; !ok {
			s.seen[[2]string{rev, dir}] = overlayFiles{}
		}
	}
	slices.Sort(objects)
	if err := repo.Prefetch(ctx, slices.Compact(objects)); err != nil {
		return err
	}
	for rev, files := range listed {
		at, err := parseFiles(ctx, repo, files)
		if err != nil {
			return err
		}
		s.seen[[2]string{rev, dir}] = at
	}
	return nil
}

// pinFile: a regular file that pins images (a
// kustomization or an .argocd-source file).
func pinFile(f gitops.TreeFile) bool {
	if f.Mode != "100644" && f.Mode != "100755" {
		return false
	}
	return slices.Contains(konfig.RecognizedKustomizationFileNames(), f.Name) ||
		strings.HasPrefix(f.Name, ".argocd-source") && strings.HasSuffix(f.Name, ".yaml")
}

// rendered adds what the overlay renders to at the head: every container
// image of an image's repository runs, whatever set it (a base's pin, a
// patch, a literal image). An overlay that does not render stops prune.
func (s *pinSource) rendered(dir, ov string, out map[string]keptRefs) error {
	cs, err := kustomize.Render(kustomize.DiskFS(), s.w.Abs(dir), nil)
	if err != nil {
		return fmt.Errorf("%s (in %s) does not render, so prune cannot tell what it runs: %w", ov, s.w.URL(), s.w.Clean(err))
	}
	for _, c := range cs {
		name, tg, digest := util.SplitImageName(c.Image)
		for _, im := range s.o.Images {
			if name == im.Repository {
				out[im.Name].add(tg, digest, KeepPinned)
			}
		}
	}
	return nil
}

// pinsOf adds what an overlay pins of an image at one commit (its entry,
// the entry's follower, and what .argocd-source files set over them), and
// returns the pin that runs: the override's if any, else the entry's.
func pinsOf(im release.PinImage, entries map[string]kustomize.Entry, sources []map[string]kustomize.Entry, k keptRefs, why string) (string, bool) {
	runs, found := "", false
	if e, ok := im.EntryIn(entries); ok {
		k.add(e.NewTag, e.Digest, why)
		// What the follower pins runs too (init's assets-previous).
		if f, ok := entries[e.Name+kustomize.PreviousSuffix]; ok {
			k.add(f.NewTag, f.Digest, why)
		}
		runs, found = e.NewTag+"@"+e.Digest, e.NewTag != "" || e.Digest != ""
	}
	for _, src := range sources {
		if e, ok := im.EntryIn(src); ok {
			k.add(e.NewTag, e.Digest, why)
			if f, ok := src[e.Name+kustomize.PreviousSuffix]; ok {
				k.add(f.NewTag, f.Digest, why)
			}
			if e.NewTag != "" || e.Digest != "" {
				runs, found = e.NewTag+"@"+e.Digest, true
			}
		}
	}
	return runs, found
}

// headSources reads the .argocd-source*.yaml files of an overlay at the
// head: the images Argo CD sets over the kustomization's.
func headSources(w *gitops.Workspace, dir, ov string) ([]map[string]kustomize.Entry, error) {
	names, err := filepath.Glob(filepath.Join(w.Abs(dir), ".argocd-source*.yaml"))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(names, argoOrder)
	var out []map[string]kustomize.Entry
	for _, n := range names {
		rel := filepath.Join(dir, filepath.Base(n))
		data, err := w.ReadFile(rel)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(ov, filepath.Base(n)), err)
		}
		e, err := ArgoSourceImages(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(ov, filepath.Base(n)), err)
		}
		out = append(out, e)
	}
	return out, nil
}

// parseFiles reads an overlay's kustomization entries and .argocd-source
// images from its files at a commit. A broken file pins nothing.
func parseFiles(ctx context.Context, repo *gitops.Repo, files []gitops.TreeFile) (overlayFiles, error) {
	var at overlayFiles
	byName := map[string]gitops.TreeFile{}
	for _, f := range files {
		byName[f.Name] = f
	}
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if f, ok := byName[n]; ok {
			data, err := readOld(ctx, repo, f)
			if err != nil {
				return at, err
			}
			at.entries, _ = kustomize.Images(data)
			break
		}
	}
	slices.SortFunc(files, func(a, b gitops.TreeFile) int { return argoOrder(a.Name, b.Name) })
	for _, f := range files {
		if !strings.HasPrefix(f.Name, ".argocd-source") {
			continue
		}
		data, err := readOld(ctx, repo, f)
		if err != nil {
			return at, err
		}
		if e, err := ArgoSourceImages(data); err == nil && data != nil {
			at.sources = append(at.sources, e)
		}
	}
	return at, nil
}

// readOld reads a file of an old commit; one too large pins nothing (nil).
func readOld(ctx context.Context, repo *gitops.Repo, f gitops.TreeFile) ([]byte, error) {
	data, err := repo.ReadTree(ctx, f)
	var big *gitops.TooLargeError
	if errors.As(err, &big) {
		return nil, nil
	}
	return data, err
}

// ArgoSourceImages reads the kustomize images of an Argo CD parameter
// override file (.argocd-source.yaml, .argocd-source-<app>.yaml: what
// Argo CD Image Updater writes back by default). Each is an argument of
// `kustomize edit set image`, which Argo CD runs with it over the
// kustomization: [name=]image[:tag][@digest]. The entries are keyed by the
// images entry they set.
func ArgoSourceImages(data []byte) (map[string]kustomize.Entry, error) {
	var f struct {
		Kustomize struct {
			Images []string `yaml:"images"`
		} `yaml:"kustomize"`
	}
	doc, err := safeyaml.Parse(data)
	if err == nil && doc != nil {
		err = doc.Decode(&f)
	}
	if err != nil {
		return nil, fmt.Errorf("not an Argo CD parameter override file (%s): fix or delete it", firstLine(err.Error()))
	}
	out := map[string]kustomize.Entry{}
	for _, s := range f.Kustomize.Images {
		key, value, renamed := strings.Cut(s, "=")
		if !renamed {
			value = key
		}
		name, tg, digest := util.SplitImageName(value)
		if name == "" || (tg == "" && digest == "" && !renamed) {
			return nil, fmt.Errorf("kustomize.images: %q is not [name=]image[:tag][@digest]", s)
		}
		e := kustomize.Entry{Name: name, NewTag: tg, Digest: digest}
		if renamed {
			e = kustomize.Entry{Name: key, NewName: name, NewTag: tg, Digest: digest}
		}
		out[e.Name] = e
	}
	return out, nil
}

// argoOrder is the order Argo CD applies override files in:
// .argocd-source.yaml first, then the application's own, which wins.
func argoOrder(a, b string) int {
	pa, pb := filepath.Base(a) != ".argocd-source.yaml", filepath.Base(b) != ".argocd-source.yaml"
	if pa != pb {
		if pa {
			return 1
		}
		return -1
	}
	return strings.Compare(a, b)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
