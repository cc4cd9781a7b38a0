package build

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/client"

	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/tag"
)

// OCI annotation and label keys shipit sets on every image.
const (
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
	LabelCreated  = "org.opencontainers.image.created"
)

// CacheTag is the tag of an image's registry cache, beside the image.
const CacheTag = "buildcache"

// Spec is one image to build, as configured: paths absolute, names
// resolved. The composition root makes specs from shipit.yaml.
type Spec struct {
	Name       string
	Repository string // where the image goes: host[:port]/path
	Context    string // the build context directory
	Dockerfile string // the Dockerfile's path
	Target     string
	Args       map[string]string
	Secrets    []Secret
	SSH        []SSH
	Platforms  []string
	// Attest are the attestations BuildKit attaches to the image; a zero
	// Provenance falls back to the plan's.
	Attest Attest
	// Insecure: the registry may be spoken to over plain HTTP (loopback,
	// or listed in insecure-registries).
	Insecure bool
}

// Attest says which attestations BuildKit attaches to an image.
type Attest struct {
	Provenance    string // "", "min" or "max"
	SBOM          bool
	SBOMGenerator string // the scanner image; "": BuildKit's default
}

// Cache says where build cache goes beyond the daemon's own.
type Cache struct {
	// Registry: a registry cache at <repository>:buildcache.
	Registry bool
	// LocalDir: a local cache in LocalDir/<image>; "" for none.
	LocalDir string
}

// Plan is what to build: the images, the commit and the tag.
type Plan struct {
	Images   []Spec
	StateDir string // .shipit: layouts and the record go here
	Head     gitinfo.Head
	Tag      string
	// Time stamps the images (SOURCE_DATE_EPOCH, created): the tag's
	// release time, which is the commit time but for commits made within a
	// second of their parent. Zero: the commit time.
	Time    time.Time
	Push    bool
	NoCache bool
	// Rebuild solves every image, even one whose inputs are the last
	// build's (Inputs).
	Rebuild bool
	// Sources, when set, are the images' sources read beside git
	// (ReadSources); otherwise Run reads them.
	Sources    *Sources
	Cache      Cache
	Provenance string // "", "min" or "max"
	// Partial: only some of the configured images are built, and the
	// record keeps the others' entries from a build of the same commit.
	// A full build writes a fresh record.
	Partial bool
}

// Requests turns a plan into solve requests, and returns warnings for the
// user (build arguments that look like secrets), which never hold a value.
func Requests(p Plan) ([]Request, []string, error) {
	stamp := p.Time
	if stamp.IsZero() {
		stamp = p.Head.Time
	}
	epoch := strconv.FormatInt(stamp.Unix(), 10)
	created := stamp.UTC().Format(time.RFC3339)
	meta := map[string]string{LabelRevision: p.Head.SHA, LabelCreated: created}
	if p.Head.Source != "" {
		meta[LabelSource] = p.Head.Source
	}
	var reqs []Request
	var warnings []string
	for _, im := range p.Images {
		n := im.Name
		if _, err := name.NewRepository(im.Repository, name.WeakValidation); err != nil {
			return nil, nil, fmt.Errorf("image %s: repository %q: %w", n, im.Repository, err)
		}
		args := map[string]string{"SOURCE_DATE_EPOCH": epoch}
		for k, v := range im.Args {
			args[k] = v
			if LooksSecret(k) {
				warnings = append(warnings, fmt.Sprintf("image %s: build argument %s looks like a secret; build arguments stay in the image's history. Pass it under images.%s.secrets and read it with RUN --mount=type=secret,id=%s instead", n, k, n, strings.ToLower(k)))
			}
		}
		r := Request{
			Name:           n,
			Repository:     im.Repository,
			Tag:            p.Tag,
			ContextDir:     im.Context,
			ContextExclude: stateExcludes(p.StateDir),
			DockerfileDir:  filepath.Dir(im.Dockerfile),
			DockerfileName: filepath.Base(im.Dockerfile),
			Target:         im.Target,
			Args:           args,
			Labels:         meta,
			Annotations:    meta,
			Platforms:      im.Platforms,
			NoCache:        p.NoCache,
			Push:           p.Push,
			Insecure:       im.Insecure,
			LayoutDir:      LayoutPath(p.StateDir, n),
			Secrets:        im.Secrets,
			SSH:            im.SSH,
		}
		r.Provenance = im.Attest.Provenance
		if r.Provenance == "" {
			r.Provenance = p.Provenance
		}
		if r.Provenance != "min" && r.Provenance != "max" {
			r.Provenance = ""
		}
		if r.Provenance != "" {
			// The provenance names the source repository and commit
			// (runDetails.metadata.buildkit_metadata.vcs): what a
			// verifier checks the image's origin against.
			r.VCSSource, r.VCSRevision = p.Head.Source, p.Head.SHA
		}
		r.SBOM, r.SBOMGenerator = im.Attest.SBOM, im.Attest.SBOMGenerator
		r.CacheImports, r.CacheExports = cacheEntries(p.Cache, n, im.Repository, tagPrefix(p.Tag), r.Insecure)
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].Name < reqs[j].Name })
	return reqs, warnings, nil
}

// plainName reports whether a file name is its own .dockerignore pattern.
func plainName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
}

// stateExcludes is what build contexts never hold: the state directory
// (its OCI layouts, cache and record change with every build, so a context
// holding them would give every build of a commit another digest, and each
// image the previous build's layouts), and any directory of that name
// below the context, another app's in a monorepo.
func stateExcludes(stateDir string) []string {
	if stateDir == "" || !plainName(filepath.Base(stateDir)) {
		return nil
	}
	return []string{"**/" + filepath.Base(stateDir)}
}

// tagPrefix is the prefix of a release tag (pr-9- in
// pr-9-20231114-221320-0123456), "" for none or for a tag that is not one.
func tagPrefix(t string) string {
	parsed, err := tag.Parse(t)
	if err != nil {
		return ""
	}
	return parsed.Prefix
}

// cacheEntries configures cache import and export. A registry cache lives
// at <repository>:buildcache with the settings ECR requires. A prefixed
// build (a pull request's, pr-9-) reads that cache but never writes it:
// its own cache is <repository>:buildcache-pr-9, imported first and the
// only one exported, so a branch's build cannot put layers into the cache
// the release builds trust. (The name starts with buildcache, as ECR's
// tag mutability exclusion buildcache* expects.)
func cacheEntries(c Cache, name, repo, prefix string, insecure bool) (imports, exports []client.CacheOptionsEntry) {
	switch {
	case c.Registry:
		release := repo + ":" + CacheTag
		own := release
		if p := strings.TrimRight(prefix, "-._"); p != "" {
			own = release + "-" + p
		}
		in := func(ref string) client.CacheOptionsEntry {
			a := map[string]string{"ref": ref}
			if insecure {
				a["registry.insecure"] = "true"
			}
			return client.CacheOptionsEntry{Type: "registry", Attrs: a}
		}
		out := map[string]string{"ref": own, "mode": "max", "image-manifest": "true", "oci-mediatypes": "true"}
		if insecure {
			out["registry.insecure"] = "true"
		}
		imports = []client.CacheOptionsEntry{in(own)}
		if own != release {
			imports = append(imports, in(release))
		}
		return imports, []client.CacheOptionsEntry{{Type: "registry", Attrs: out}}
	case c.LocalDir != "":
		dir := filepath.Join(c.LocalDir, name)
		return []client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"src": dir}}},
			[]client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"dest": dir, "mode": "max"}}}
	}
	return nil, nil
}

// LooksSecret reports whether a build argument's name suggests a secret.
func LooksSecret(arg string) bool {
	u := strings.ToUpper(arg)
	for _, s := range []string{"TOKEN", "PASSWORD", "PASSWD", "SECRET"} {
		if strings.Contains(u, s) {
			return true
		}
	}
	for _, part := range strings.FieldsFunc(u, func(r rune) bool { return r == '_' || r == '-' }) {
		if part == "KEY" || part == "APIKEY" || part == "CREDENTIALS" {
			return true
		}
	}
	return false
}

// Repositories lists the plan's repositories.
func (p Plan) Repositories() []string {
	var out []string
	for _, im := range p.Images {
		out = append(out, im.Repository)
	}
	return out
}
