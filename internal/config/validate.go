package config

import (
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/lazyre"
	"github.com/shipit-dev/shipit/internal/redact"
	"github.com/shipit-dev/shipit/internal/registry"

	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
)

// secretID is what BuildKit accepts as a secret or SSH id.
var secretID = lazyre.New(`^[A-Za-z0-9_.-]+$`)

func (c *Config) errorf(key, format string, args ...any) error {
	return &Error{File: c.File, Line: c.lines[key], Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the structure of the configuration: everything that can
// be checked without looking at the build inputs.
func (c *Config) Validate() error {
	if len(c.Images) == 0 {
		return c.errorf("images", "no images are configured: add at least one under `images:`, each with a `context:`")
	}
	if u := c.Registry.URL; u != "" {
		if _, err := name.NewRepository(strings.TrimSuffix(u, "/")+"/x", name.WeakValidation); err != nil || strings.Contains(u, "://") {
			return c.errorf("registry", "%q is not a registry: write host[:port][/prefix], for example 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/team", u)
		}
	}
	switch c.Cache.Export {
	case CacheNone, CacheRegistry, CacheLocal:
	default:
		return c.errorf("cache.export", "%q is not a cache mode: use registry, local or none", c.Cache.Export)
	}
	switch c.Provenance {
	case "", "off", "min", "max":
	default:
		return c.errorf("provenance", "%q is not a provenance mode: use off (the default), min or max", c.Provenance)
	}
	if err := c.validateAttest("attest", c.Attest); err != nil {
		return err
	}
	switch kustomize.Mode(c.Deploy.Pin) {
	case kustomize.ModeTag, kustomize.ModeDigest, kustomize.ModeTagAndDigest:
	default:
		return c.errorf("deploy.pin", "%q is not a pin mode: use tag, digest or tag+digest (the default)", c.Deploy.Pin)
	}
	if m := c.Deploy.Mode; m != ModeGit && m != ModeImageUpdater {
		return c.errorf("deploy.mode", "%q is not a deploy mode: use git (shipit writes the pins, the default) or image-updater (Argo CD Image Updater does)", m)
	}
	if a := c.Deploy.Author; a != "" {
		if _, _, ok := ParseAuthor(a); !ok {
			return c.errorf("deploy.author", "%q is not an author: write \"Name <email>\"", a)
		}
	}
	// git would read these as options (--upload-pack=…): never.
	for key, v := range map[string]string{"deploy.repo": c.Deploy.Repo, "deploy.branch": c.Deploy.Branch} {
		if strings.HasPrefix(v, "-") {
			return c.errorf(key, "%q begins with \"-\", which git would read as an option: write a repository URL or path, and a branch name", redact.URL(v))
		}
	}
	for i, h := range c.InsecureRegistries {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return c.errorf(fmt.Sprintf("insecure-registries[%d]", i), "%q is not a registry host: write host or host:port", h)
		}
	}
	if err := c.validateOverlays("deploy.overlays", c.Deploy.Overlays); err != nil {
		return err
	}
	if err := c.validateEnvironments(); err != nil {
		return err
	}
	if err := c.validatePreviews(); err != nil {
		return err
	}
	if err := c.validateBuilder(); err != nil {
		return err
	}
	if err := c.validateSupplyChain(); err != nil {
		return err
	}
	for _, n := range c.ImageNames() {
		if err := c.validateImage(n); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateBuilder() error {
	if err := c.validateDaemon("builder", c.Builder.Addr, c.Builder.TLS, c.Builder.Insecure); err != nil {
		return err
	}
	for i, p := range c.Platforms {
		if _, err := platforms.Parse(p); err != nil {
			return c.errorf(fmt.Sprintf("platforms[%d]", i), "%q is not a platform: write os/arch[/variant], such as linux/amd64", p)
		}
	}
	seen := map[string]int{}
	for i, n := range c.Builder.Nodes {
		key := fmt.Sprintf("builder.nodes[%d]", i)
		if n.Addr == "" {
			return c.errorf(key+".addr", "the node has no addr: write its BuildKit address (tcp://host:1234, unix:///path, kube-pod://name?namespace=ns)")
		}
		if err := c.validateDaemon(key, n.Addr, n.TLS, n.Insecure); err != nil {
			return err
		}
		name := n.NodeName()
		if !nodeName.MatchString(name) {
			return c.errorf(key+".name", "%q is not a node name: use letters, digits, '.', '_' and '-'", name)
		}
		if j, ok := seen[name]; ok {
			return c.errorf(key+".name", "%q is the name of builder.nodes[%d] too: give each node a name of its own", name, j)
		}
		seen[name] = i
		if len(n.Platforms) == 0 {
			return c.errorf(key+".platforms", "node %s declares no platforms: list what it builds natively, such as [linux/amd64]", name)
		}
		for j, p := range n.Platforms {
			if _, err := platforms.Parse(p); err != nil {
				return c.errorf(fmt.Sprintf("%s.platforms[%d]", key, j), "%q is not a platform: write os/arch[/variant], such as linux/arm64", p)
			}
		}
	}
	return nil
}

// validateDaemon checks one BuildKit address and its TLS settings (key is
// builder, or builder.nodes[N]).
func (c *Config) validateDaemon(key, addr string, t TLS, insecure bool) error {
	scheme, _, ok := strings.Cut(addr, "://")
	if !ok {
		return c.errorf(key+".addr", "%q is not a BuildKit address: use unix:///path, tcp://host:port, docker-container://name or kube-pod://name", addr)
	}
	if scheme == "tcp" && t.CA == "" && t.Cert == "" && !insecure && !loopbackAddr(addr) {
		return c.errorf(key+".addr", "%s is a tcp:// builder off this machine without TLS: build secrets and registry credentials would cross the network in the clear. Set %s.tls (ca, cert, key), or %s.insecure: true if the network is trusted", addr, key, key)
	}
	if (t.Cert == "") != (t.Key == "") {
		return c.errorf(key+".tls", "cert and key go together: set both or neither")
	}
	if (t.CA != "" || t.Cert != "") && scheme != "tcp" {
		return c.errorf(key+".tls", "TLS settings apply only to a tcp:// builder, and %s.addr is %s", key, addr)
	}
	for k, p := range map[string]string{key + ".tls.ca": t.CA, key + ".tls.cert": t.Cert, key + ".tls.key": t.Key} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(c.Abs(p)); err != nil {
			return c.errorf(k, "cannot read %s: %v", c.Abs(p), unwrapPath(err))
		}
	}
	return nil
}

func (c *Config) validateImage(n string) error {
	key := "images." + n
	im := c.Images[n]
	if im == nil || im.Context == "" {
		return c.errorf(key, "the image has no context: set `context:` to its build directory, relative to %s", FileName)
	}
	if !registry.ValidImageName(n) {
		return c.errorf(key, "%q cannot be an image name: use lower-case letters, digits and single '.', '_' or '-' between them (it is the last part of the repository)", n)
	}
	repo := c.RepositoryFor(n)
	if _, err := name.NewRepository(repo, name.WeakValidation); err != nil {
		k := key + ".repository"
		if im.Repository == "" {
			k = "registry"
		}
		return c.errorf(k, "%q is not a valid repository: %v", repo, err)
	}
	if err := c.validateAttest(key+".attest", im.Attest); err != nil {
		return err
	}
	for arg := range im.Args {
		if strings.ContainsAny(arg, "= \t") {
			return c.errorf(key+".args."+arg, "a build argument's name cannot hold '=' or spaces")
		}
	}
	ids := map[string]bool{}
	for i, s := range im.Secrets {
		k := fmt.Sprintf("%s.secrets[%d]", key, i)
		if !secretID.MatchString(s.ID) {
			return c.errorf(k+".id", "a secret needs an id of letters, digits, '.', '_' or '-' (the id its Dockerfile mounts with --mount=type=secret,id=ID)")
		}
		if ids[s.ID] {
			return c.errorf(k+".id", "secret id %q is given twice", s.ID)
		}
		ids[s.ID] = true
		if (s.Src == "") == (s.Env == "") {
			return c.errorf(k, "secret %q needs exactly one of src (a file) or env (an environment variable)", s.ID)
		}
	}
	for i, s := range im.SSH {
		id, _, _ := strings.Cut(s, "=")
		if !secretID.MatchString(id) {
			return c.errorf(fmt.Sprintf("%s.ssh[%d]", key, i), "%q is not an SSH agent id: write `default`, or ID=PATH to a socket or key file", s)
		}
	}
	for i, p := range im.Platforms {
		if _, err := platforms.Parse(p); err != nil {
			return c.errorf(fmt.Sprintf("%s.platforms[%d]", key, i), "%q is not a platform: write os/arch[/variant], for example linux/amd64", p)
		}
	}
	return nil
}

// CheckInputs checks what building the named images reads from this
// machine: their contexts and Dockerfiles exist, their secret files exist
// and their secret variables are set. Errors never hold a secret's value.
func (c *Config) CheckInputs(names []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, n := range names {
		key := "images." + n
		im := c.Images[n]
		ctx := c.Abs(im.Context)
		if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
			return c.errorf(key+".context", "directory %s does not exist: set `context:` to the image's build directory, relative to %s", ctx, FileName)
		}
		df := filepath.Join(ctx, im.Dockerfile)
		if st, err := os.Stat(df); err != nil || st.IsDir() {
			return c.errorf(key+".dockerfile", "no Dockerfile at %s: set `dockerfile:` relative to the context (%s)", df, im.Context)
		}
		for i, s := range im.Secrets {
			k := fmt.Sprintf("%s.secrets[%d]", key, i)
			if s.Src != "" {
				p := c.SecretPath(s)
				if st, err := os.Stat(p); err != nil || st.IsDir() {
					return c.errorf(k+".src", "secret %q: file %s does not exist: create it or point src at the file that holds the secret", s.ID, p)
				}
			} else if getenv(s.Env) == "" {
				return c.errorf(k+".env", "secret %q: environment variable %s is not set or empty: export it before running shipit", s.ID, s.Env)
			}
		}
		for i, s := range im.SSH {
			id, path, _ := strings.Cut(s, "=")
			if path == "" && getenv("SSH_AUTH_SOCK") == "" {
				return c.errorf(fmt.Sprintf("%s.ssh[%d]", key, i), "SSH forwarding %q needs an agent, and SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add your key, or write %s=PATH", id, id)
			}
		}
	}
	return nil
}

// CheckRegistry checks that the named images have somewhere to go: a
// registry, or a repository of their own that names its registry. Without
// one, "web" would mean docker.io/library/web.
func (c *Config) CheckRegistry(names []string) error {
	for _, n := range names {
		if repo := c.RepositoryFor(n); !NamesRegistry(repo) {
			key := "registry"
			if c.Images[n].Repository != "" {
				key = "images." + n + ".repository"
			}
			return c.errorf(key, "image %s would go to %s, which names no registry: set registry (for example 123456789012.dkr.ecr.us-east-1.amazonaws.com/team) or images.%s.repository", n, repo, n)
		}
	}
	return nil
}

// NamesRegistry reports whether a repository starts with a registry host
// (it has a dot or a port, or is localhost), as docker reads it.
func NamesRegistry(repo string) bool {
	host, _, ok := strings.Cut(repo, "/")
	return ok && (strings.ContainsAny(host, ".:") || host == "localhost")
}

// SecretPath resolves a file secret's src: ~ is the home directory, and a
// relative path is relative to shipit.yaml.
func (c *Config) SecretPath(s Secret) string {
	p := s.Src
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	return c.Abs(p)
}

// ParseAuthor splits "Name <email>".
func ParseAuthor(s string) (name, email string, ok bool) {
	i, j := strings.LastIndex(s, "<"), strings.LastIndex(s, ">")
	if i <= 0 || j != len(s)-1 || j < i+2 {
		return "", "", false
	}
	return strings.TrimSpace(s[:i]), s[i+1 : j], strings.TrimSpace(s[:i]) != ""
}

// loopbackAddr reports whether a tcp:// address is on this machine's loopback.
func loopbackAddr(addr string) bool {
	_, hostport, _ := strings.Cut(addr, "://")
	hostport, _, _ = strings.Cut(hostport, "/")
	return registry.IsLoopback(hostport)
}

func (c *Config) validateOverlays(key string, overlays []string) error {
	for i, o := range overlays {
		if o == "" || filepath.IsAbs(o) || strings.HasPrefix(filepath.Clean(o), "..") {
			return c.errorf(fmt.Sprintf("%s[%d]", key, i), "%q must be a directory inside the deploy repository, relative to its root", o)
		}
	}
	return nil
}

// envName is the rule of an environment's name: the preview names' too, a
// DNS label of at most 40 characters.
var envName = PreviewName

var (
	// appName is an Argo CD Application's (or ApplicationSet's) name.
	appName = lazyre.New(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	// nodeName is a builder node's name.
	nodeName = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

func (c *Config) validateEnvironments() error {
	envs := c.Deploy.Environments
	if len(envs) == 0 {
		return nil
	}
	if len(c.Deploy.Overlays) > 0 {
		return c.errorf("deploy.environments", "deploy.overlays and deploy.environments are both set: keep one (deploy.overlays is one environment named %s; move its overlays into an environment)", DefaultEnvironment)
	}
	seen := map[string]int{}
	for i, e := range envs {
		key := fmt.Sprintf("deploy.environments[%d]", i)
		if !envName.MatchString(e.Name) {
			return c.errorf(key+".name", "%q is not an environment name: use lower-case letters, digits and '-' (at most 40)", e.Name)
		}
		if j, ok := seen[e.Name]; ok {
			return c.errorf(key+".name", "%q is the name of deploy.environments[%d] too: names must differ", e.Name, j)
		}
		seen[e.Name] = i
		if len(e.Overlays) == 0 {
			return c.errorf(key+".overlays", "environment %s has no overlays: list the overlay directories it pins", e.Name)
		}
		if err := c.validateOverlays(key+".overlays", e.Overlays); err != nil {
			return err
		}
		for j, a := range e.ArgoCD.Applications {
			if !appName.MatchString(a) {
				return c.errorf(fmt.Sprintf("%s.argocd.applications[%d]", key, j), "%q is not an Application name", a)
			}
		}
	}
	return nil
}

// envVarName is what env:NAME may name.
var envVarName = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateSupplyChain checks sign, verify and the environments' require.
func (c *Config) validateSupplyChain() error {
	if _, set := c.lines["sign"]; set || c.Sign.Key != "" {
		k := c.Sign.Key
		if k == "" {
			return c.errorf("sign.key", "sign needs a key: a cosign private key file (cosign generate-key-pair), or env:NAME for a variable holding it; its password goes in COSIGN_PASSWORD")
		}
		if v, ok := strings.CutPrefix(k, "env:"); ok && !envVarName.MatchString(v) {
			return c.errorf("sign.key", "%q is not an environment variable name: write env:NAME", v)
		}
	}
	for i, k := range c.Verify.Keys {
		if k == "" {
			return c.errorf(fmt.Sprintf("verify.keys[%d]", i), "is empty: write the path of a cosign public key file (cosign.pub)")
		}
	}
	for i, e := range c.Deploy.Environments {
		if e.Require.Signature && len(c.Verify.Keys) == 0 {
			return c.errorf(fmt.Sprintf("deploy.environments[%d].require.signature", i), "environment %s requires signatures, and verify.keys lists no public key to check them with: add the cosign.pub of sign.key", e.Name)
		}
	}
	return nil
}

// PlaceholderAccount is the AWS account id of the registry shipit init
// writes until the user sets theirs.
const PlaceholderAccount = "123456789012"

// CheckPlaceholders refuses the placeholder values shipit init writes,
// before anything runs: a build or a release against them can only fail
// later, with a less useful message.
func (c *Config) CheckPlaceholders() error {
	for _, n := range c.ImageNames() {
		repo := c.RepositoryFor(n)
		if strings.HasPrefix(repo, PlaceholderAccount+".") {
			key := "registry"
			if c.Images[n].Repository != "" {
				key = "images." + n + ".repository"
			}
			return c.errorf(key, "%q is the placeholder shipit init wrote: set it to your registry, for example <account>.dkr.ecr.<region>.amazonaws.com/<team> (aws sts get-caller-identity shows the account)", strings.TrimSuffix(repo, "/"+n))
		}
	}
	return nil
}

// dnsName is a host name of DNS labels.
var dnsName = lazyre.New(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (c *Config) validatePreviews() error {
	p := c.Deploy.Previews
	if p == nil {
		return nil
	}
	if len(c.Envs()) == 0 {
		return c.errorf("deploy.previews", "previews start from an environment, and none is configured: set deploy.environments (or deploy.overlays)")
	}
	if _, ok := c.Env(p.From); !ok {
		return c.errorf("deploy.previews.from", "%q is not an environment: use one of %s", p.From, strings.Join(c.EnvNames(), ", "))
	}
	if err := c.validateOverlays("deploy.previews.dir", []string{p.Dir}); err != nil {
		return err
	}
	if err := c.validateOverlays("deploy.previews.patches", p.Patches); err != nil {
		return err
	}
	for _, ov := range c.AllOverlays() {
		if rel, err := filepath.Rel(filepath.Clean(p.Dir), filepath.Clean(ov)); err == nil && !strings.HasPrefix(rel, "..") {
			return c.errorf("deploy.previews.dir", "%q holds the overlay %s: previews need a folder of their own", p.Dir, ov)
		}
	}
	if p.Max < 0 {
		return c.errorf("deploy.previews.max", "%d: write the most previews at once, or leave it out for no limit", p.Max)
	}
	// Each template, rendered for the longest name, must give a valid value.
	sample := strings.Repeat("a", 40)
	check := func(key, tmpl string, ok func(string) bool, rule string) error {
		if tmpl == "" {
			return nil
		}
		v, err := PreviewValue(tmpl, sample)
		if err != nil {
			return c.errorf(key, "%q is not a template of {{.Name}}: %v", tmpl, err)
		}
		if !strings.Contains(tmpl, "{{") {
			return c.errorf(key, "%q does not use {{.Name}}: every preview would get the same value", tmpl)
		}
		if !ok(v) {
			return c.errorf(key, "%q gives %q for a 40-character name, which is not %s", tmpl, v, rule)
		}
		return nil
	}
	if err := check("deploy.previews.namespace", p.Namespace, func(v string) bool { return len(v) <= 63 && dnsName.MatchString(v) && !strings.Contains(v, ".") }, "a namespace name (a DNS label, at most 63 characters)"); err != nil {
		return err
	}
	if err := check("deploy.previews.host", p.Host, func(v string) bool { return len(v) <= 253 && dnsName.MatchString(v) }, "a host name"); err != nil {
		return err
	}
	if a := p.ArgoCD; a != nil {
		if !appName.MatchString(a.ApplicationSet) {
			return c.errorf("deploy.previews.argocd.applicationset", "%q is not an ApplicationSet name: name the ApplicationSet that makes the previews' Applications", a.ApplicationSet)
		}
		if err := check("deploy.previews.argocd.application", a.Application, func(v string) bool { return len(v) <= 253 && dnsName.MatchString(v) }, "an Application name"); err != nil {
			return err
		}
	}
	return nil
}

// validateAttest checks one attest mapping: a generator that is an image
// reference, and no disagreement with the older top-level provenance key.
func (c *Config) validateAttest(key string, a Attest) error {
	if g := a.SBOMGenerator; g != "" {
		if _, err := name.ParseReference(g, name.WeakValidation); err != nil || strings.HasPrefix(g, "-") {
			return c.errorf(key+".sbomGenerator", "%q is not an image reference: write the scanner image as host/repository:tag or @sha256:digest", g)
		}
	}
	if a.Provenance == nil || c.Provenance == "" {
		return nil
	}
	old := c.Provenance == "min" || c.Provenance == "max"
	if *a.Provenance != old || (old && c.Provenance != "max") {
		return c.errorf(key+".provenance", "%t disagrees with the older top-level key provenance: %s (%s.provenance: true is mode max): remove provenance: and keep %s.provenance", *a.Provenance, c.Provenance, key, key)
	}
	return nil
}
