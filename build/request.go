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

	"github.com/shipit-dev/shipit/internal/config"
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

// Plan is what to build: the images, the commit and the tag.
type Plan struct {
	Config *config.Config
	Head   gitinfo.Head
	Tag    string
	// Time stamps the images (SOURCE_DATE_EPOCH, created): the tag's
	// release time, which is the commit time but for commits made within a
	// second of their parent. Zero: the commit time.
	Time    time.Time
	Images  []string // names from Config.Images
	Push    bool
	NoCache bool
}

// Requests turns a plan into solve requests, and returns warnings for the
// user (build arguments that look like secrets), which never hold a value.
func Requests(p Plan) ([]Request, []string, error) {
	cfg := p.Config
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
	for _, n := range p.Images {
		im := cfg.Images[n]
		repo := cfg.RepositoryFor(n)
		ref, err := name.NewRepository(repo, name.WeakValidation)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: repository %q: %w", n, repo, err)
		}
		ctxDir := cfg.Abs(im.Context)
		df := filepath.Join(ctxDir, im.Dockerfile)
		args := map[string]string{"SOURCE_DATE_EPOCH": epoch}
		for k, v := range im.Args {
			args[k] = v
			if LooksSecret(k) {
				warnings = append(warnings, fmt.Sprintf("image %s: build argument %s looks like a secret; build arguments stay in the image's history. Pass it under images.%s.secrets and read it with RUN --mount=type=secret,id=%s instead", n, k, n, strings.ToLower(k)))
			}
		}
		r := Request{
			Name:           n,
			Repository:     repo,
			Tag:            p.Tag,
			ContextDir:     ctxDir,
			DockerfileDir:  filepath.Dir(df),
			DockerfileName: filepath.Base(df),
			Target:         im.Target,
			Args:           args,
			Labels:         meta,
			Annotations:    meta,
			Platforms:      im.Platforms,
			NoCache:        p.NoCache,
			Push:           p.Push,
			Insecure:       ref.Scheme() == "http",
			LayoutDir:      LayoutPath(cfg.StatePath(), n),
		}
		if cfg.Provenance == "min" || cfg.Provenance == "max" {
			r.Provenance = cfg.Provenance
		}
		for _, s := range im.Secrets {
			sec := Secret{ID: s.ID, Env: s.Env}
			if s.Src != "" {
				sec.File = cfg.SecretPath(s)
			}
			r.Secrets = append(r.Secrets, sec)
		}
		for _, s := range im.SSH {
			id, paths, _ := strings.Cut(s, "=")
			var ps []string
			if paths != "" {
				for _, p := range strings.Split(paths, ",") {
					ps = append(ps, cfg.Abs(p))
				}
			}
			r.SSH = append(r.SSH, SSH{ID: id, Paths: ps})
		}
		r.CacheImports, r.CacheExports = cacheEntries(cfg, n, repo, r.Insecure)
		reqs = append(reqs, r)
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].Name < reqs[j].Name })
	return reqs, warnings, nil
}

// cacheEntries configures cache import and export. A registry cache lives
// at <repository>:buildcache with the settings ECR requires.
func cacheEntries(cfg *config.Config, name, repo string, insecure bool) (imports, exports []client.CacheOptionsEntry) {
	switch cfg.Cache.Export {
	case config.CacheRegistry:
		ref := repo + ":" + CacheTag
		in := map[string]string{"ref": ref}
		out := map[string]string{"ref": ref, "mode": "max", "image-manifest": "true", "oci-mediatypes": "true"}
		if insecure {
			in["registry.insecure"] = "true"
			out["registry.insecure"] = "true"
		}
		return []client.CacheOptionsEntry{{Type: "registry", Attrs: in}}, []client.CacheOptionsEntry{{Type: "registry", Attrs: out}}
	case config.CacheLocal:
		dir := filepath.Join(cfg.StatePath(), "cache", name)
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
