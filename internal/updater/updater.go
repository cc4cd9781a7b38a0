// Package updater is Argo CD Image Updater as shipit sees it: the tag its
// alphabetical strategy picks, and the configuration that makes the real
// updater pick shipit's release tags and write them into the overlays
// Argo CD syncs. It imports no other shipit package but the tag.
package updater

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	updatertag "github.com/argoproj-labs/argocd-image-updater/registry-scanner/pkg/tag"
	"go.yaml.in/yaml/v3"

	"github.com/shipit-dev/shipit/internal/tag"
)

// Update strategies of the updater that shipit's configuration can name.
const (
	// Alphabetical sorts tags: shipit's release tags sort in commit
	// order, and a rollback tag sorts after them all.
	Alphabetical = "alphabetical"
	// NewestBuild sorts by the image's created time, which a rollback tag
	// shares with the release it rolls back to: it never rolls back.
	NewestBuild = "newest-build"
)

// Strategies are the strategies Render accepts, the recommended first.
var Strategies = []string{Alphabetical, NewestBuild}

// Pick is the tag Argo CD Image Updater's alphabetical strategy picks
// from tags: the last, in its own sort, of those allow matches. It uses
// the updater's registry-scanner package, so that shipit's prediction and
// the updater cannot disagree. "" when none matches.
func Pick(tags []string, allow string) (string, error) {
	re, err := regexp.Compile(allow)
	if err != nil {
		return "", err
	}
	list := updatertag.NewImageTagList()
	for _, t := range tags {
		if re.MatchString(t) {
			list.Add(updatertag.NewImageTag(t, time.Time{}, ""))
		}
	}
	sorted := list.SortAlphabetically()
	if len(sorted) == 0 {
		return "", nil
	}
	return sorted[len(sorted)-1].TagName, nil
}

// Image is one image the updater watches.
type Image struct {
	Alias         string // shipit's image name
	Repository    string
	KustomizeName string // the name of its entry in the overlays' images lists
}

// Target is one Argo CD Application and the overlay it syncs.
type Target struct {
	Env         string // the environment, for comments
	Namespace   string // the Application's namespace, and the ImageUpdater's
	Application string
	// Path is the overlay's directory from the GitOps repository's root,
	// slash-separated, as Argo CD's spec.source.path names it.
	Path string
}

// Config is what Render prints.
type Config struct {
	Branch    string // the GitOps branch the updater commits to
	TagPrefix string // tag.prefix, expanded
	Strategy  string // Alphabetical (""), or NewestBuild
	Images    []Image
	Targets   []Target
}

// WriteBackTarget is the updater's git write-back target for an overlay
// at p from the repository's root. The leading "/" makes the updater
// read the path from the root; without it, it joins the path to the
// Application's spec.source.path, which is already the overlay.
func WriteBackTarget(p string) string {
	return "kustomization:/" + strings.TrimPrefix(path.Clean("/"+p), "/")
}

// Join is the directory the updater looks for the kustomization in, for
// a write-back target and the Application's spec.source.path, by the
// updater's rule (v0.18 and v1.2): a target path with a leading "/" is
// from the repository's root, any other from the source path.
func Join(target, sourcePath string) (string, error) {
	p, ok := strings.CutPrefix(target, "kustomization")
	switch {
	case !ok:
		return "", fmt.Errorf("write-back target %q is not a kustomization target", target)
	case p == "":
		return path.Clean(sourcePath), nil
	case !strings.HasPrefix(p, ":"):
		return "", fmt.Errorf("write-back target %q is not a kustomization target", target)
	}
	p = p[1:]
	if rest, abs := strings.CutPrefix(p, "/"); abs {
		return path.Clean(rest), nil
	}
	return path.Join(sourcePath, p), nil
}

// Env is one environment as configured: overlays as shipit.yaml names
// them, and the Applications that sync them.
type Env struct {
	Name         string
	Namespace    string // the Applications' namespace; "" is argocd
	Overlays     []string
	Applications []string
}

// ErrPairing is an environment whose Applications cannot be matched
// with its overlays.
var ErrPairing = errors.New("cannot tell which Application syncs which overlay")

// Targets matches an environment's overlays with its Applications: every
// Application syncs an environment's one overlay, or the i-th Application
// the i-th overlay; without Applications, each overlay's is named after
// its path. prefix is where the overlay paths start in the GitOps
// repository (shipit.yaml's directory, for a deploy.repo of ".").
func Targets(e Env, prefix string) ([]Target, error) {
	ns := e.Namespace
	if ns == "" {
		ns = "argocd"
	}
	if !dnsLabel().MatchString(ns) {
		return nil, fmt.Errorf("namespace %q: %w", ns, ErrNamespace)
	}
	apps := e.Applications
	if len(apps) > 0 && len(e.Overlays) > 1 && len(apps) != len(e.Overlays) {
		return nil, fmt.Errorf("%d overlays, but %d in argocd.applications: %w (an Application syncs one path: list one per overlay, in the same order)", len(e.Overlays), len(apps), ErrPairing)
	}
	var out []Target
	for i, o := range e.Overlays {
		p := strings.TrimPrefix(path.Clean("/"+path.Join(filepath.ToSlash(prefix), filepath.ToSlash(o))), "/")
		var names []string
		switch {
		case len(apps) == 0:
			if names = []string{AppName(o)}; names[0] == "" {
				return nil, fmt.Errorf("overlay %q: %w", o, ErrNoName)
			}
		case len(e.Overlays) == 1:
			names = apps
		default:
			names = apps[i : i+1]
		}
		for _, n := range names {
			out = append(out, Target{Env: e.Name, Namespace: ns, Application: n, Path: p})
		}
	}
	return out, nil
}

// Errors of Targets.
var (
	ErrNamespace = errors.New("is not a namespace name (a DNS label)")
	ErrNoName    = errors.New("its path makes no Application name: name its Application in deploy.environments[].argocd.applications")
)

// Compiled on first use, not in every command's start-up.
var (
	notName  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9]+`) })
	dnsLabel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`) })
)

// AppName is the Application name assumed for an overlay no Application
// is configured for: its path, lower case, with '-' between words.
func AppName(overlay string) string {
	return strings.Trim(notName().ReplaceAllString(strings.ToLower(filepath.ToSlash(overlay)), "-"), "-")
}

// ErrDuplicate is an Application listed for two overlays: its
// ImageUpdater could write only one of them.
var ErrDuplicate = errors.New("is the Application of two overlays")

// Render prints the v1 ImageUpdater resources, one per Target, as a YAML
// stream that kubectl applies as it is; after each, as a comment, the
// v0.x annotations that do the same on the Application.
func Render(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(header(c))
	for _, t := range c.Targets {
		doc, err := marshal(c.resource(t))
		if err != nil {
			return "", err
		}
		ann, err := marshal(c.annotations(t))
		if err != nil {
			return "", err
		}
		b.WriteString("---\n" + about(t))
		b.Write(doc)
		fmt.Fprintf(&b, "# Argo CD Image Updater v0.x: these annotations on the Application instead\n# (shipit updater-config --annotations prints them as a merge patch):\n")
		for _, l := range strings.Split(strings.TrimSuffix(string(ann), "\n"), "\n") {
			b.WriteString("#   " + l + "\n")
		}
	}
	return b.String(), nil
}

// RenderAnnotations prints the v0.x annotations, one merge patch per
// Target, each headed by the kubectl command that applies it.
func RenderAnnotations(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(header(c))
	for _, t := range c.Targets {
		ann, err := marshal(c.annotations(t))
		if err != nil {
			return "", err
		}
		b.WriteString("---\n" + about(t))
		b.WriteString(oneLine(fmt.Sprintf("#   kubectl -n %s patch application %s --type merge --patch-file FILE", t.Namespace, t.Application)))
		b.Write(ann)
	}
	return b.String(), nil
}

// about is the comment over a Target's document.
func about(t Target) string {
	return oneLine(fmt.Sprintf("# Environment %s: Application %s/%s syncs %s.", t.Env, t.Namespace, t.Application, t.Path))
}

// oneLine is s as one comment line: a line break or another control
// character in a configured value must not end the comment and start YAML.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s) + "\n"
}

func (c Config) check() error {
	if c.Strategy != "" && c.Strategy != Alphabetical && c.Strategy != NewestBuild {
		return fmt.Errorf("update strategy %q: use %s", c.Strategy, strings.Join(Strategies, " or "))
	}
	seen := map[[2]string]string{}
	for _, t := range c.Targets {
		k := [2]string{t.Namespace, t.Application}
		if p, ok := seen[k]; ok && p != t.Path {
			return fmt.Errorf("application %s/%s %w (%s and %s)", t.Namespace, t.Application, ErrDuplicate, p, t.Path)
		}
		seen[k] = t.Path
	}
	return nil
}

func (c Config) strategy() string {
	if c.Strategy == "" {
		return Alphabetical
	}
	return c.Strategy
}

func header(c Config) string {
	s := fmt.Sprintf(`# Argo CD Image Updater configuration for shipit's release tags,
# %sYYYYMMDD-HHMMSS-<sha7>: one ImageUpdater per Argo CD Application, in the
# Application's namespace (an ImageUpdater selects Applications in its own
# namespace only; an updater outside that namespace needs --watch-namespaces).
# The write-back target starts with "/": the overlay's path from the GitOps
# repository's root. The updater writes tags only: it drops a digest the
# overlay pins. shipit status predicts its pick.
`, strings.TrimSuffix(oneLine(c.TagPrefix), "\n"))
	if c.strategy() == Alphabetical {
		return s + `# updateStrategy alphabetical: the tags sort in commit order, so the updater
# picks the newest release (a revert too) and the tag shipit pin makes to
# roll back (a newer tag on the old digest). Do not use newest-build: a
# rollback tag's image keeps the old release's created time, so
# newest-build stays on the release you rolled back from.
`
	}
	return s + `# WARNING: updateStrategy newest-build never rolls back: the tag shipit pin
# makes keeps the old release's created time, so the updater stays on the
# release you rolled back from. Use alphabetical (the default).
`
}

// marshal prints v as YAML indented by two spaces, as kubectl does.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// quoted is a string YAML prints in double quotes: a pattern or a target
// that a reader should see whole.
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: string(q)}, nil
}

// The v1alpha1 ImageUpdater, as much of it as shipit sets (field names
// from the updater's API, argocd-image-updater.argoproj.io/v1alpha1).
type (
	resource struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   metadata `yaml:"metadata"`
		Spec       spec     `yaml:"spec"`
	}
	metadata struct {
		Name        string            `yaml:"name,omitempty"`
		Namespace   string            `yaml:"namespace,omitempty"`
		Annotations map[string]quoted `yaml:"annotations,omitempty"`
	}
	spec struct {
		WriteBackConfig writeBack `yaml:"writeBackConfig"`
		ApplicationRefs []appRef  `yaml:"applicationRefs"`
	}
	writeBack struct {
		Method    string    `yaml:"method"`
		GitConfig gitConfig `yaml:"gitConfig"`
	}
	gitConfig struct {
		Branch          quoted `yaml:"branch"`
		WriteBackTarget quoted `yaml:"writeBackTarget"`
	}
	appRef struct {
		NamePattern          quoted   `yaml:"namePattern"`
		CommonUpdateSettings settings `yaml:"commonUpdateSettings"`
		Images               []image  `yaml:"images"`
	}
	settings struct {
		UpdateStrategy string `yaml:"updateStrategy"`
		AllowTags      quoted `yaml:"allowTags"`
	}
	image struct {
		Alias           string  `yaml:"alias"`
		ImageName       string  `yaml:"imageName"`
		ManifestTargets targets `yaml:"manifestTargets"`
	}
	targets struct {
		Kustomize struct {
			Name string `yaml:"name"`
		} `yaml:"kustomize"`
	}
	patch struct {
		Metadata metadata `yaml:"metadata"`
	}
)

func (c Config) resource(t Target) resource {
	r := resource{
		APIVersion: "argocd-image-updater.argoproj.io/v1alpha1",
		Kind:       "ImageUpdater",
		Metadata:   metadata{Name: t.Application, Namespace: t.Namespace},
		Spec: spec{
			WriteBackConfig: writeBack{Method: "git", GitConfig: gitConfig{Branch: quoted(c.Branch), WriteBackTarget: quoted(WriteBackTarget(t.Path))}},
		},
	}
	ref := appRef{
		NamePattern:          quoted(t.Application),
		CommonUpdateSettings: settings{UpdateStrategy: c.strategy(), AllowTags: quoted("regexp:" + tag.Pattern(c.TagPrefix))},
	}
	for _, im := range c.Images {
		i := image{Alias: im.Alias, ImageName: im.Repository}
		i.ManifestTargets.Kustomize.Name = im.KustomizeName
		ref.Images = append(ref.Images, i)
	}
	r.Spec.ApplicationRefs = []appRef{ref}
	return r
}

// annotations are the v0.x form: a merge patch of the Application.
func (c Config) annotations(t Target) patch {
	const p = "argocd-image-updater.argoproj.io/"
	a := map[string]quoted{
		p + "write-back-method": "git",
		p + "write-back-target": quoted(WriteBackTarget(t.Path)),
		p + "git-branch":        quoted(c.Branch),
	}
	var list []string
	for _, im := range c.Images {
		list = append(list, im.Alias+"="+im.Repository)
		a[p+im.Alias+".update-strategy"] = quoted(c.strategy())
		a[p+im.Alias+".allow-tags"] = quoted("regexp:" + tag.Pattern(c.TagPrefix))
		a[p+im.Alias+".kustomize.image-name"] = quoted(im.KustomizeName)
	}
	a[p+"image-list"] = quoted(strings.Join(list, ","))
	return patch{Metadata: metadata{Annotations: a}}
}
