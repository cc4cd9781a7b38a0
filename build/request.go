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
	// Insecure: the registry may be spoken to over plain HTTP (loopback,
	// or listed in insecure-registries).
	Insecure bool
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
	Time       time.Time
	Push       bool
	NoCache    bool
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
		if p.Provenance == "min" || p.Provenance == "max" {
			r.Provenance = p.Provenance
		}
		r.CacheImports, r.CacheExports = cacheEntries(p.Cache, n, im.Repository, r.Insecure)
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].Name < reqs[j].Name })
	return reqs, warnings, nil
}

// vcsAttrs are the frontend attributes that make BuildKit's provenance
// name the repository and the commit an image was built from: vcs:source
// and vcs:revision, which BuildKit v0.33 records in the SLSA v1
// predicate at runDetails.metadata.buildkit_metadata.vcs (source with its
// credentials redacted). They come from the image's OCI labels (the
// origin remote without credentials, HEAD's commit); none when the build
// writes no provenance.
func vcsAttrs(r Request) map[string]string {
	if r.Provenance == "" {
		return nil
	}
	out := map[string]string{}
	if v := r.Labels[LabelSource]; v != "" {
		out["vcs:source"] = v
	}
	if v := r.Labels[LabelRevision]; v != "" {
		out["vcs:revision"] = v
	}
	return out
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

// cacheEntries configures cache import and export. A registry cache lives
// at <repository>:buildcache with the settings ECR requires.
func cacheEntries(c Cache, name, repo string, insecure bool) (imports, exports []client.CacheOptionsEntry) {
	switch {
	case c.Registry:
		ref := repo + ":" + CacheTag
		in := map[string]string{"ref": ref}
		out := map[string]string{"ref": ref, "mode": "max", "image-manifest": "true", "oci-mediatypes": "true"}
		if insecure {
			in["registry.insecure"] = "true"
			out["registry.insecure"] = "true"
		}
		return []client.CacheOptionsEntry{{Type: "registry", Attrs: in}}, []client.CacheOptionsEntry{{Type: "registry", Attrs: out}}
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
