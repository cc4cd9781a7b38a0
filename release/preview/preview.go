// Package preview is shipit's per-pull-request environments: a preview is
// a folder of the GitOps repository's previews directory, a kustomization
// built on an environment's overlay, in a namespace of its own, running
// one build.
package preview

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/lazyre"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/release"
)

// Spec is deploy.previews, resolved for one preview.
type Spec struct {
	Dir       string   // the previews' folder, as configured (like an overlay path)
	From      []string // the overlays of the environment previews start from; the first is built on
	Namespace string   // this preview's namespace
	Host      string   // this preview's host: every Ingress host becomes it; "" keeps them
	Max       int      // at most this many previews; 0: no limit
	Patches   []string // kustomize patch files added to every preview, as configured
	// Reserved are namespaces no preview may use besides default and
	// kube-*: where Argo CD runs.
	Reserved []string
	// Environments are every environment's overlays, as configured: no
	// preview may use a namespace one of them renders into.
	Environments []string
}

// UpOptions configure preview up: a release's options (the record,
// the registry, the deploy target) and the preview.
type UpOptions struct {
	release.Options
	Name string
	Spec Spec
}

// UpResult is what preview up did.
type UpResult struct {
	Name      string                `json:"name"`
	Namespace string                `json:"namespace"`
	URL       string                `json:"url,omitempty"`
	Path      string                `json:"path"` // the preview's folder in the deploy repository
	Tag       string                `json:"tag"`
	Images    []release.ImageResult `json:"images"`
	Changed   bool                  `json:"changed"`
	Kept      string                `json:"kept,omitempty"` // why the preview stays as it was (a newer build runs there)
	// LeftOut are the source's cluster-scoped objects the preview does not
	// hold (Kind/name).
	LeftOut []string `json:"leftOut,omitempty"`
	gitops.Change
}

// Preview is one preview as it is in the deploy repository.
type Preview struct {
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	URL       string    `json:"url,omitempty"`
	Path      string    `json:"path"`
	Images    []string  `json:"images"` // repository:tag@digest, as pinned
	Updated   time.Time `json:"updated"`
	// Entries are its images entries, by entry name.
	Entries map[string]kustomize.Entry `json:"-"`
}

// Age is how long ago the preview last changed, rounded for people.
func (p Preview) Age(now time.Time) string {
	d := now.Sub(p.Updated)
	switch {
	case p.Updated.IsZero():
		return "unknown"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// File is the file shipit writes in a preview's folder.
const File = "kustomization.yaml"

// previewName is what a preview's folder may be called (the CLI checks the
// rule and explains it; this guards the path).
var previewName = lazyre.New(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// MaxError is a new preview past deploy.previews.max.
type MaxError struct {
	Max      int
	Existing []Preview
	Now      time.Time
}

func (e *MaxError) Error() string {
	var names []string
	for _, p := range e.Existing {
		names = append(names, fmt.Sprintf("%s (%s ago)", p.Name, p.Age(e.Now)))
	}
	return fmt.Sprintf("deploy.previews.max is %d, and %d previews are up: %s. Take one down first (shipit preview down NAME, or shipit preview gc)",
		e.Max, len(e.Existing), strings.Join(names, ", "))
}

// Up pushes the build (as release does) and writes the preview's
// folder: a kustomization built on the source environment's first overlay,
// in its own namespace, with every image pinned to this build and every
// Ingress host made the preview's. One commit, pushed with release's
// fetch, re-plan and retry. A preview that runs a newer build stays as it
// is; an unchanged one makes no commit.
func Up(ctx context.Context, o UpOptions) (*UpResult, error) {
	res := &UpResult{Name: o.Name, Namespace: o.Spec.Namespace, Tag: o.Record.Tag,
		Path: filepath.ToSlash(filepath.Join(o.Spec.Dir, o.Name))}
	res.DryRun = o.DryRun
	if !previewName.MatchString(o.Name) {
		return res, fmt.Errorf("%q is not a preview name", o.Name)
	}
	imgs, err := release.Push(ctx, o.Options)
	res.Images = imgs
	if err != nil {
		return res, err
	}
	err = gitops.With(ctx, o.Deploy.Target, o.reads(), func(w *gitops.Workspace) error {
		return w.PublishChange(ctx, &res.Change, func(ctx context.Context) ([]string, string, error) {
			paths, err := planPreview(ctx, o, w, res)
			if err != nil || len(paths) == 0 {
				return nil, "", err
			}
			if o.DryRun {
				res.Diff, err = w.DiffNew(ctx, paths)
				return nil, "", err
			}
			return paths, previewMessage(o, res), nil
		})
	})
	return res, err
}

// planPreview writes the preview's kustomization in the clone and checks
// it; it returns the paths to commit (none: nothing changes).
func planPreview(ctx context.Context, o UpOptions, w *gitops.Workspace, res *UpResult) ([]string, error) {
	res.Changed, res.Kept, res.URL, res.LeftOut = false, "", "", nil
	folder := filepath.Join(o.Deploy.InRepo(o.Spec.Dir), o.Name)
	if err := checkRoom(ctx, o, w, folder); err != nil {
		return nil, err
	}
	if err := checkNamespace(w, o); err != nil {
		return nil, err
	}
	src, out, pins, err := sourceOverlay(o, w, res)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(folder, File)
	before, err := w.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if kept, err := newerThere(o, res, before, pins); kept || err != nil {
		return nil, err
	}
	rel := func(p string) string {
		r, _ := filepath.Rel(folder, p)
		return filepath.ToSlash(r)
	}
	var patches []string
	for _, p := range o.Spec.Patches {
		pp := o.Deploy.InRepo(p)
		if err := w.CheckPath(pp); err != nil {
			return nil, err
		}
		patches = append(patches, rel(pp))
	}
	res.URL = previewURLFor(o.Spec.Host, out.Ingresses)
	for _, c := range out.ClusterScoped {
		res.LeftOut = append(res.LeftOut, c.String())
	}
	if len(res.LeftOut) > 0 {
		progress.Infof(o.Events, "preview %s leaves out what %s holds outside a namespace (%s): a preview holds only objects of its own namespace", o.Name, o.Spec.From[0], strings.Join(res.LeftOut, ", "))
	}
	content := previewKustomization(o, rel(src), patches, out, pins, res.URL)
	if bytes.Equal(before, content) {
		return nil, nil
	}
	if err := w.MkdirAll(folder); err != nil {
		return nil, err
	}
	if err := w.WriteFile(file, content); err != nil {
		return nil, err
	}
	if err := checkRendered(o, w, folder, res.Path, pins); err != nil {
		return nil, err
	}
	res.Changed = true
	return []string{file}, nil
}

// checkRoom refuses a new preview past deploy.previews.max.
func checkRoom(ctx context.Context, o UpOptions, w *gitops.Workspace, folder string) error {
	if err := w.CheckOverlay(folder); err != nil {
		return err
	}
	existing, err := read(w, filepath.Dir(folder))
	if err != nil {
		return err
	}
	var others []Preview
	here := false
	for _, p := range existing {
		if p.Name == o.Name {
			here = true
		} else {
			others = append(others, p)
		}
	}
	if !here && o.Spec.Max > 0 && len(others) >= o.Spec.Max {
		if err := dateUpdates(ctx, w, others); err != nil {
			return err
		}
		return &MaxError{Max: o.Spec.Max, Existing: others, Now: time.Now()}
	}
	return nil
}

// sourceOverlay renders the source overlay as it is now, and pins every
// image of the build under the name it runs with there (its own pins
// have already rewritten them).
func sourceOverlay(o UpOptions, w *gitops.Workspace, res *UpResult) (string, *kustomize.Output, []kustomize.Pin, error) {
	src := o.Deploy.InRepo(o.Spec.From[0])
	entries, err := w.Entries(src, o.Spec.From[0]) // checks the overlay before anything reads it
	if err != nil {
		return "", nil, nil, err
	}
	out, err := kustomize.RenderAll(kustomize.DiskFS(), w.Abs(src), nil)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%s (in %s) does not render: %w", o.Spec.From[0], w.URL(), w.Clean(err))
	}
	var pins []kustomize.Pin
	for i, im := range res.Images {
		repository := o.Record.Images[i].Repository
		name, err := runningName(out.Containers, entries, release.PinImage{Name: im.Name, Repository: repository, KustomizeName: o.KustomizeNames[im.Name]}, o.Spec.From[0])
		if err != nil {
			return "", nil, nil, err
		}
		pins = append(pins, kustomize.Pin{Name: name, NewName: repository, NewTag: o.Record.Tag, Digest: im.Digest})
	}
	return src, out, pins, nil
}

// newerThere keeps a preview that runs a newer build (forward only).
func newerThere(o UpOptions, res *UpResult, before []byte, pins []kustomize.Pin) (bool, error) {
	if before == nil {
		return false, nil
	}
	cur, err := kustomize.Images(before)
	if err != nil {
		return false, fmt.Errorf("%s/%s: %w", res.Path, File, err)
	}
	for _, p := range pins {
		if why := release.Forward(cur[p.Name], p); why != "" {
			res.Kept = fmt.Sprintf("preview %s keeps its images: %s", o.Name, why)
			res.URL = previewURL(before)
			return true, nil
		}
	}
	return false, nil
}

// previewURLFor is the preview's URL: its host, over HTTPS when an
// Ingress of the source has TLS; "" without a host or an Ingress.
func previewURLFor(host string, ings []kustomize.Ingress) string {
	if host == "" || len(ings) == 0 {
		return ""
	}
	for _, ing := range ings {
		if len(ing.TLS) > 0 {
			return "https://" + host
		}
	}
	return "http://" + host
}

// checkRendered renders the written preview: it must render, in its
// namespace and nowhere else, with nothing outside a namespace, running
// this build in every container of its images.
func checkRendered(o UpOptions, w *gitops.Workspace, folder, shown string, pins []kustomize.Pin) error {
	rendered, err := kustomize.RenderAll(kustomize.DiskFS(), w.Abs(folder), nil)
	if err != nil {
		return fmt.Errorf("preview %s does not render: %w", o.Name, w.Clean(err))
	}
	if _, err := kustomize.CheckPins(shown, rendered.Containers, pins, nil); err != nil {
		return err
	}
	if len(rendered.NamespaceObjects) > 0 {
		return fmt.Errorf("preview %s still renders the Namespace %s", o.Name, rendered.NamespaceObjects[0])
	}
	if len(rendered.ClusterScoped) > 0 {
		return fmt.Errorf("preview %s still renders %s, which is outside any namespace: a preview holds only objects of its own namespace", o.Name, rendered.ClusterScoped[0])
	}
	for _, ns := range rendered.Namespaces {
		if ns != o.Spec.Namespace {
			return fmt.Errorf("preview %s renders a resource in namespace %s, not %s: the namespace of every resource must be the preview's", o.Name, ns, o.Spec.Namespace)
		}
	}
	return nil
}

// runningName is the name an image has in the source overlay's output:
// what its pin there set (newName), or the name the workloads use. The
// preview's images entry must match that name, as its pins apply on top.
func runningName(cs []kustomize.Container, entries map[string]kustomize.Entry, im release.PinImage, overlay string) (string, error) {
	var candidates []string
	if e, ok := im.EntryIn(entries); ok {
		if e.NewName != "" {
			candidates = append(candidates, e.NewName)
		}
		candidates = append(candidates, e.Name)
	}
	candidates = append(candidates, im.Repository, im.Name)
	for _, n := range candidates {
		for _, c := range cs {
			if kustomize.Repository(c.Image) == n {
				return n, nil
			}
		}
	}
	return "", fmt.Errorf("image %s runs in no container of %s (looked for %s): a preview pins the images the environment runs", im.Name, overlay, strings.Join(candidates, ", "))
}

// previewKustomization is the preview's kustomization.yaml.
func previewKustomization(o UpOptions, source string, patches []string, out *kustomize.Output, pins []kustomize.Pin, url string) []byte {
	ings, namespaces := out.Ingresses, out.NamespaceObjects
	var b strings.Builder
	fmt.Fprintf(&b, "# shipit preview %s: written by `shipit preview up`, removed by `shipit preview down %s`.\n", o.Name, o.Name)
	fmt.Fprintf(&b, "# Built on %s, running build %s. Edit the source overlay or deploy.previews, not this file.\n", source, o.Record.Tag)
	if url != "" {
		fmt.Fprintf(&b, "# url: %s\n", url)
	}
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
	fmt.Fprintf(&b, "namespace: %s\nresources:\n  - %s\n", o.Spec.Namespace, source)
	if len(patches) > 0 || (o.Spec.Host != "" && len(ings) > 0) || len(namespaces) > 0 || len(out.ClusterScoped) > 0 {
		b.WriteString("patches:\n")
		for _, p := range patches {
			fmt.Fprintf(&b, "  - path: %s\n", p)
		}
		// The source's own Namespace objects are not the preview's: Argo CD
		// creates the preview's (CreateNamespace=true).
		for _, ns := range namespaces {
			fmt.Fprintf(&b, "  - patch: |-\n      apiVersion: v1\n      kind: Namespace\n      metadata: {name: %s}\n      $patch: delete\n", ns)
		}
		// Nor are its other cluster-scoped objects: a preview that held a
		// ClusterRole or a CustomResourceDefinition under the source's name
		// would delete the environment's when it is taken down.
		for _, c := range out.ClusterScoped {
			fmt.Fprintf(&b, "  - patch: |-\n      apiVersion: %s\n      kind: %s\n      metadata: {name: %s}\n      $patch: delete\n", c.APIVersion, c.Kind, c.Name)
		}
		if o.Spec.Host != "" {
			for _, ing := range ings {
				var ops []string
				for i := range ing.Rules {
					ops = append(ops, fmt.Sprintf("      - {op: add, path: /spec/rules/%d/host, value: %s}", i, o.Spec.Host))
				}
				for i := range ing.TLS {
					ops = append(ops, fmt.Sprintf("      - {op: add, path: /spec/tls/%d/hosts, value: [%s]}", i, o.Spec.Host))
				}
				if len(ops) == 0 {
					continue
				}
				fmt.Fprintf(&b, "  - target: {group: %s, kind: Ingress, name: %s}\n    patch: |-\n%s\n", ing.Group, ing.Name, strings.Join(ops, "\n"))
			}
		}
	}
	b.WriteString("images:\n")
	for _, p := range pins {
		fmt.Fprintf(&b, "  - name: %s\n    newName: %s\n    newTag: %q\n    digest: %s\n", p.Name, p.NewName, p.NewTag, p.Digest)
	}
	return []byte(b.String())
}

var urlLine = lazyre.New(`(?m)^# url: (https?://[a-z0-9.-]+)$`)

// previewURL reads the URL line shipit wrote.
func previewURL(k []byte) string {
	if m := urlLine.FindSubmatch(k); m != nil {
		return string(m[1])
	}
	return ""
}

func previewMessage(o UpOptions, res *UpResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "preview %s: %s\n\n", o.Name, o.Record.Tag)
	for _, im := range res.Images {
		fmt.Fprintf(&b, "%s: %s\n", im.Name, im.Ref)
	}
	if res.URL != "" {
		fmt.Fprintf(&b, "\nURL: %s\n", res.URL)
	}
	fmt.Fprintf(&b, "\nSource-Commit: %s\n", o.Record.Commit)
	if o.Deploy.SkipCI {
		b.WriteString("[skip ci]\n")
	}
	return b.String()
}

// Read lists the previews in the workspace's previews folder (dir, from
// the repository's root): each folder with a kustomization. Folders and
// files are checked as overlays are (no links, regular files, capped).
func Read(w *gitops.Workspace, dir string) ([]Preview, error) { return read(w, dir) }

func read(w *gitops.Workspace, dir string) ([]Preview, error) {
	ents, err := w.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Preview
	for _, e := range ents {
		if !e.IsDir() || !previewName.MatchString(e.Name()) {
			continue
		}
		folder := filepath.Join(dir, e.Name())
		if err := w.CheckOverlay(folder); err != nil {
			return nil, err
		}
		data, err := w.ReadFile(filepath.Join(folder, File))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		p := Preview{Name: e.Name(), Path: filepath.ToSlash(folder), URL: previewURL(data)}
		doc, err := yaml.Parse(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.Path, File, err)
		}
		p.Namespace, _ = doc.GetString("namespace")
		entries, err := kustomize.Images(data)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.Path, File, err)
		}
		p.Entries = entries
		for _, en := range entries {
			p.Images = append(p.Images, en.Ref())
		}
		sort.Strings(p.Images)
		out = append(out, p)
	}
	return out, nil
}

// dateUpdates sets when each preview last changed, from git: a log per
// preview, so only what shows the ages (list, the max refusal) asks.
func dateUpdates(ctx context.Context, w *gitops.Workspace, ps []Preview) error {
	for i := range ps {
		t, err := w.Repo().LastChange(ctx, filepath.FromSlash(ps[i].Path))
		if err != nil {
			return err
		}
		ps[i].Updated = t
	}
	return nil
}

// List reads the previews at the head of the deploy branch.
func List(ctx context.Context, d release.Deploy, dir string) ([]Preview, error) {
	var out []Preview
	err := gitops.With(ctx, d.Target, []string{d.InRepo(dir)}, func(w *gitops.Workspace) error {
		var err error
		if out, err = read(w, d.InRepo(dir)); err != nil {
			return err
		}
		return dateUpdates(ctx, w, out)
	})
	return out, err
}

// DownResult is what preview down or gc did.
type DownResult struct {
	Removed []string `json:"removed"`
	gitops.Change
}

// Down removes previews' folders in one commit. A preview that is
// not there is not an error: there is nothing to remove.
func Down(ctx context.Context, d release.Deploy, dir string, names []string, dryRun bool, events progress.Sink) (*DownResult, error) {
	res := &DownResult{}
	res.DryRun = dryRun
	for _, n := range names {
		if !previewName.MatchString(n) {
			return res, fmt.Errorf("%q is not a preview name", n)
		}
	}
	err := gitops.With(ctx, d.Target, []string{d.InRepo(dir)}, func(w *gitops.Workspace) error {
		apply := func(ctx context.Context) ([]string, string, error) {
			res.Removed = nil
			var paths []string
			for _, n := range names {
				folder := filepath.Join(d.InRepo(dir), n)
				if err := w.CheckOverlay(folder); err != nil {
					return nil, "", err
				}
				ents, err := w.ReadDir(folder)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, "", err
				}
				for _, e := range ents {
					if !e.Type().IsRegular() {
						return nil, "", &gitops.UnsafePathError{Repo: w.URL(), Path: filepath.Join(folder, e.Name()), Why: "is not a regular file shipit wrote"}
					}
					p := filepath.Join(folder, e.Name())
					if err := w.Remove(p); err != nil {
						return nil, "", err
					}
					paths = append(paths, p)
				}
				if len(ents) > 0 {
					res.Removed = append(res.Removed, n)
				}
			}
			if len(paths) == 0 {
				return nil, "", nil
			}
			if dryRun {
				var err error
				res.Diff, err = w.Diff(ctx)
				return nil, "", err
			}
			msg := "preview down: " + strings.Join(res.Removed, ", ") + "\n"
			if d.SkipCI {
				msg += "\n[skip ci]\n"
			}
			return paths, msg, nil
		}
		return w.PublishChange(ctx, &res.Change, apply)
	})
	for _, n := range names {
		if !slices.Contains(res.Removed, n) && err == nil {
			progress.Infof(events, "preview %s is not there: nothing to remove", n)
		}
	}
	return res, err
}

// OlderThan selects the previews not updated within d.
func OlderThan(ps []Preview, d time.Duration, now time.Time) []string {
	var out []string
	for _, p := range ps {
		if now.Sub(p.Updated) > d {
			out = append(out, p.Name)
		}
	}
	return out
}

// NamespaceError is a preview namespace that belongs to something else:
// an environment, the cluster's own, or Argo CD's. The user's to fix.
type NamespaceError struct {
	Namespace, Why string
}

func (e *NamespaceError) Error() string {
	return fmt.Sprintf("preview namespace %s %s: a preview needs a namespace of its own (set deploy.previews.namespace, for example \"shop-{{.Name}}\")", e.Namespace, e.Why)
}

// BadInput marks the error as the user's to fix (exit code 2).
func (e *NamespaceError) BadInput() bool { return true }

// checkNamespace refuses a preview namespace that is default, kube-*,
// Argo CD's, or one an environment's overlay renders into.
func checkNamespace(w *gitops.Workspace, o UpOptions) error {
	ns := o.Spec.Namespace
	switch {
	case ns == "default" || strings.HasPrefix(ns, "kube-"):
		return &NamespaceError{Namespace: ns, Why: "is the cluster's own"}
	case slices.Contains(o.Spec.Reserved, ns):
		return &NamespaceError{Namespace: ns, Why: "is where Argo CD runs"}
	}
	for _, ov := range o.Spec.Environments {
		rel := o.Deploy.InRepo(ov)
		if err := w.CheckOverlay(rel); err != nil {
			return err
		}
		out, err := kustomize.RenderAll(kustomize.DiskFS(), w.Abs(rel), nil)
		if err != nil {
			return fmt.Errorf("%s (in %s) does not render: %w", ov, w.URL(), w.Clean(err))
		}
		if slices.Contains(out.Namespaces, ns) || slices.Contains(out.NamespaceObjects, ns) {
			return &NamespaceError{Namespace: ns, Why: "is where " + ov + " renders its resources"}
		}
	}
	return nil
}

// reads are the directories preview up reads: the previews folder, the
// source overlay, every environment's overlay, and the patches'.
func (o UpOptions) reads() []string {
	out := []string{o.Deploy.InRepo(o.Spec.Dir)}
	for _, ov := range append(append([]string(nil), o.Spec.From...), o.Spec.Environments...) {
		out = append(out, o.Deploy.InRepo(ov))
	}
	for _, p := range o.Spec.Patches {
		out = append(out, filepath.Dir(o.Deploy.InRepo(p)))
	}
	return out
}
