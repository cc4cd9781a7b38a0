// Package config is the schema of shipit.yaml: loading, environment and flag
// overrides, and validation with errors that name the file and the key.
package config

import (
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/shipit-dev/shipit/internal/lazyre"
	"go.yaml.in/yaml/v3"
)

// FileName is the name shipit looks for from the working directory upward.
const FileName = "shipit.yaml"

// DefaultBuilderAddr is where buildkitd listens when run as root with defaults.
const DefaultBuilderAddr = "unix:///run/buildkit/buildkitd.sock"

// StateDir is shipit's output directory beside shipit.yaml: OCI layouts and the build record.
const StateDir = ".shipit"

// Config is shipit.yaml.
type Config struct {
	// Registry is where images go: "host[:port][/prefix]", or a mapping
	// with url and create_repositories.
	Registry Registry `yaml:"registry"`
	Builder  Builder  `yaml:"builder"`
	Tag      Tag      `yaml:"tag"`
	Cache    Cache    `yaml:"cache"`
	// Provenance is the older form of attest.provenance: off, min or max.
	Provenance string `yaml:"provenance"`
	// Attest are the attestations BuildKit attaches to every image; an
	// image's own attest settings win, key by key.
	Attest Attest `yaml:"attest"`
	// Platforms apply to every image without its own.
	Platforms []string `yaml:"platforms"`
	// InsecureRegistries are registry hosts (host or host:port) that speak
	// plain HTTP. Loopback hosts always may; no other host does unless
	// listed here.
	InsecureRegistries []string          `yaml:"insecure-registries"`
	Images             map[string]*Image `yaml:"images"`
	Deploy             Deploy            `yaml:"deploy"`
	// Sign signs every digest shipit pushes (SHIPIT_SIGN_KEY sets its
	// key); no key: nothing is signed.
	Sign Sign `yaml:"sign"`
	// Verify is what shipit verify, and environments that require
	// signatures, check signatures against.
	Verify Verify `yaml:"verify"`

	// File is the absolute path of the file the configuration came from.
	File string `yaml:"-"`

	// lines maps a key to its line in File, for error messages.
	lines map[string]int
}

// Registry is where images go.
type Registry struct {
	// URL is host[:port][/prefix]; an image's repository is <url>/<image name>.
	URL string `yaml:"url"`
	// CreateRepositories creates missing ECR repositories (immutable tags
	// but for the cache tag, scan on push).
	CreateRepositories bool `yaml:"create_repositories"`
}

// UnmarshalYAML reads the short form "registry: host/prefix" too.
func (r *Registry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		r.URL = n.Value
		return nil
	}
	type plain Registry
	return n.Decode((*plain)(r))
}

// Sign configures signing.
type Sign struct {
	// Key is a cosign private key (encrypted, its password in
	// COSIGN_PASSWORD): a file (relative to shipit.yaml), or env:NAME for
	// an environment variable that holds its PEM text.
	Key string `yaml:"key"`
}

// Verify configures signature checks.
type Verify struct {
	// Keys are files of cosign public keys: a signature by any one passes.
	Keys []string `yaml:"keys"`
}

// Require is what an environment requires of every digest it pins.
type Require struct {
	Signature  bool `yaml:"signature"`  // signed by a key of verify.keys
	Provenance bool `yaml:"provenance"` // provenance naming this repository and the tag's commit
}

// Any reports whether anything is required.
func (r Require) Any() bool { return r.Signature || r.Provenance }

// SignKey is sign.key resolved: env:NAME as it is, a file against
// shipit.yaml's directory; "" when nothing is signed.
func (c *Config) SignKey() string {
	if c.Sign.Key == "" {
		return ""
	}
	if strings.HasPrefix(c.Sign.Key, "env:") {
		return c.Sign.Key
	}
	return c.Abs(c.Sign.Key)
}

// VerifyKeys are verify.keys resolved against shipit.yaml's directory.
func (c *Config) VerifyKeys() []string {
	var out []string
	for _, k := range c.Verify.Keys {
		if strings.HasPrefix(k, "env:") {
			out = append(out, k)
		} else {
			out = append(out, c.Abs(k))
		}
	}
	return out
}

// Builder says how to reach BuildKit.
type Builder struct {
	// Addr is a BuildKit address: unix://, tcp://, docker-container://, kube-pod://.
	Addr string `yaml:"addr"`
	TLS  TLS    `yaml:"tls"`
	// Insecure allows a tcp:// builder off loopback without TLS: secrets
	// and registry credentials then cross the network in the clear.
	Insecure bool `yaml:"insecure"`
	// Nodes are the daemons of a builder of several, in place of Addr:
	// each image's platforms are routed to the nodes that build them.
	Nodes []Node `yaml:"nodes"`
}

// Node is one BuildKit daemon of a builder of several.
type Node struct {
	Name      string   `yaml:"name"` // default: from the address
	Addr      string   `yaml:"addr"`
	Platforms []string `yaml:"platforms"` // what it builds natively
	TLS       TLS      `yaml:"tls"`
	Insecure  bool     `yaml:"insecure"`
}

// NodeName is a node's name: its own, else its address's host or socket.
func (n Node) NodeName() string {
	if n.Name != "" {
		return n.Name
	}
	_, rest, _ := strings.Cut(n.Addr, "://")
	rest = strings.TrimSuffix(strings.SplitN(rest, "?", 2)[0], ".sock")
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		rest = rest[i+1:]
	}
	return rest
}

// TLS holds the client certificates for a tcp:// builder.
type TLS struct {
	CA         string `yaml:"ca"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ServerName string `yaml:"server_name"`
}

// Tag configures release tags.
type Tag struct {
	// Prefix is a text/template evaluated over the environment, e.g. "pr-{{.PR_NUMBER}}-".
	Prefix string `yaml:"prefix"`
}

// Cache configures cache import and export beyond the daemon's own cache.
type Cache struct {
	// Export is registry, local or none.
	Export string `yaml:"export"`
}

// Cache export modes.
const (
	CacheNone     = "none"
	CacheRegistry = "registry"
	CacheLocal    = "local"
)

// Image is one image to build.
type Image struct {
	Repository string            `yaml:"repository"`
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Target     string            `yaml:"target"`
	Args       map[string]string `yaml:"args"`
	Secrets    []Secret          `yaml:"secrets"`
	SSH        []string          `yaml:"ssh"`
	Platforms  []string          `yaml:"platforms"`
	// Attest overrides the top level's attest settings for this image.
	Attest Attest `yaml:"attest"`
	// KustomizeName is the image's name in the manifests and in the
	// overlays' images lists; default: the image's name in shipit.yaml.
	KustomizeName string `yaml:"kustomize_name"`
}

// Attest says which attestations BuildKit attaches to an image. Unset
// (nil) keys fall back to the top level's, then to off.
type Attest struct {
	// Provenance is SLSA provenance (mode=max).
	Provenance *bool `yaml:"provenance"`
	// SBOM is an SPDX SBOM made by the generator image.
	SBOM *bool `yaml:"sbom"`
	// SBOMGenerator is the scanner image BuildKit runs for the SBOM;
	// "": BuildKit's default (docker/buildkit-syft-scanner).
	SBOMGenerator string `yaml:"sbomGenerator"`
}

// Attestations are an image's attestations, resolved.
type Attestations struct {
	Provenance    string // "", "min" or "max"
	SBOM          bool
	SBOMGenerator string
}

// AttestFor resolves an image's attestations: its own attest keys, then
// the top level's, then the older top-level provenance key (Validate has
// refused a combination of the two forms that disagree).
func (c *Config) AttestFor(name string) Attestations {
	top := c.Attest
	var own Attest
	if im := c.Images[name]; im != nil {
		own = im.Attest
	}
	var a Attestations
	switch prov := firstBool(own.Provenance, top.Provenance); {
	case prov != nil && *prov:
		a.Provenance = "max"
	case prov == nil && (c.Provenance == "min" || c.Provenance == "max"):
		a.Provenance = c.Provenance
	}
	if sbom := firstBool(own.SBOM, top.SBOM); sbom != nil {
		a.SBOM = *sbom
	}
	a.SBOMGenerator = own.SBOMGenerator
	if a.SBOMGenerator == "" {
		a.SBOMGenerator = top.SBOMGenerator
	}
	return a
}

func firstBool(bs ...*bool) *bool {
	for _, b := range bs {
		if b != nil {
			return b
		}
	}
	return nil
}

// Secret is a BuildKit secret mount source: a file or an environment variable.
type Secret struct {
	ID  string `yaml:"id"`
	Src string `yaml:"src"`
	Env string `yaml:"env"`
}

// Deploy configures where release and pin write pins.
type Deploy struct {
	// Repo is "." (this repository's origin) or the URL or path of a GitOps repository.
	Repo     string   `yaml:"repo"`
	Branch   string   `yaml:"branch"`
	Overlays []string `yaml:"overlays"`
	// Environments are the deploy targets in promotion order: release pins
	// the first, promote moves each to what the one before it pins.
	// Overlays alone is one environment named default.
	Environments []Environment `yaml:"environments"`
	// Pin is what a pin holds: tag, digest or tag+digest (kustomize.Mode).
	Pin string `yaml:"pin"`
	// Author of pin commits, "Name <email>".
	Author string `yaml:"author"`
	// Mode is who writes the pins: git (shipit, the default) or
	// image-updater (Argo CD Image Updater; shipit only pushes and tags).
	Mode string `yaml:"mode"`
	// Previews are per-pull-request environments: one overlay folder each.
	Previews *Previews `yaml:"previews"`
}

// Previews configures shipit preview. Namespace, Host and the Argo CD
// names are templates of {{.Name}}, the preview's name.
type Previews struct {
	From      string          `yaml:"from"`      // the environment a preview starts from; default: the first
	Dir       string          `yaml:"dir"`       // each preview is <dir>/<name>/ in the deploy repository
	Namespace string          `yaml:"namespace"` // default: "<app>-{{.Name}}"
	Host      string          `yaml:"host"`      // every Ingress host of the preview becomes this
	Max       int             `yaml:"max"`       // at most this many previews at once; 0: no limit
	Patches   []string        `yaml:"patches"`   // kustomize patches added to every preview, in the deploy repository
	ArgoCD    *PreviewsArgoCD `yaml:"argocd"`
}

// PreviewsArgoCD names the ApplicationSet that turns preview folders into
// Applications, for --wait.
type PreviewsArgoCD struct {
	Application    string `yaml:"application"` // default: "<app>-{{.Name}}"
	ApplicationSet string `yaml:"applicationset"`
	Namespace      string `yaml:"namespace"` // default: argocd
}

// PreviewName is the rule a preview's name follows: a DNS label of at most
// 40 characters.
var PreviewName = lazyre.New(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// App is the app's name: the folder that holds shipit.yaml.
func (c *Config) App() string { return filepath.Base(c.Dir()) }

// PreviewValue renders one of the previews templates for a preview.
func PreviewValue(tmpl, name string) (string, error) {
	t, err := template.New("").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, struct{ Name string }{name}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Environment is one deploy target: its overlays, and the Argo CD
// Applications that sync them.
type Environment struct {
	Name     string   `yaml:"name"`
	Overlays []string `yaml:"overlays"`
	ArgoCD   ArgoCD   `yaml:"argocd"`
	// Require is checked before anything is pinned here (promote, release).
	Require Require `yaml:"require"`
}

// ArgoCD names the Applications of an environment, for --wait.
type ArgoCD struct {
	Applications []string `yaml:"applications"`
	Namespace    string   `yaml:"namespace"` // default argocd
}

// DefaultEnvironment is the name deploy.overlays alone gets.
const DefaultEnvironment = "default"

// Envs returns the environments in promotion order: deploy.environments,
// or deploy.overlays as one environment named default; none when neither
// is set.
func (c *Config) Envs() []Environment {
	if len(c.Deploy.Environments) > 0 {
		return c.Deploy.Environments
	}
	if len(c.Deploy.Overlays) > 0 {
		return []Environment{{Name: DefaultEnvironment, Overlays: c.Deploy.Overlays}}
	}
	return nil
}

// Env finds an environment by name.
func (c *Config) Env(name string) (Environment, bool) {
	for _, e := range c.Envs() {
		if e.Name == name {
			return e, true
		}
	}
	return Environment{}, false
}

// EnvNames lists the environments' names in order.
func (c *Config) EnvNames() []string {
	var out []string
	for _, e := range c.Envs() {
		out = append(out, e.Name)
	}
	return out
}

// AllOverlays lists every environment's overlays, each once.
func (c *Config) AllOverlays() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range c.Envs() {
		for _, o := range e.Overlays {
			if !seen[o] {
				seen[o] = true
				out = append(out, o)
			}
		}
	}
	return out
}

// Deploy modes.
const (
	ModeGit          = "git"
	ModeImageUpdater = "image-updater"
)

// Dir is the directory of shipit.yaml, against which relative paths resolve.
func (c *Config) Dir() string { return filepath.Dir(c.File) }

// StatePath is the absolute path of the .shipit directory.
func (c *Config) StatePath() string { return filepath.Join(c.Dir(), StateDir) }

// Abs resolves a path from the configuration against shipit.yaml's directory.
func (c *Config) Abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir(), p)
}

// ImageNames returns the configured image names, sorted.
func (c *Config) ImageNames() []string {
	names := make([]string, 0, len(c.Images))
	for n := range c.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RepositoryFor is the repository an image is pushed to.
func (c *Config) RepositoryFor(name string) string {
	if im := c.Images[name]; im != nil && im.Repository != "" {
		return im.Repository
	}
	if c.Registry.URL == "" {
		return name
	}
	return trimSlash(c.Registry.URL) + "/" + name
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
