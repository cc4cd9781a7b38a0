package kustomize

import (
	"strings"

	"sigs.k8s.io/kustomize/api/types"
)

// References lists the local paths a kustomization reads, relative to its
// directory and as written: resources, components, bases, crds, patches,
// generator sources, configurations, generators, transformers, validators,
// replacements and the openapi schema. Each is a file or a directory; the
// caller tells which. Remote references (URLs, git repositories) and
// inline documents are left out: they are not files of the repository.
func References(data []byte) ([]string, error) {
	var k types.Kustomization
	if err := k.Unmarshal(data); err != nil {
		return nil, err
	}
	var out []string
	add := func(ps ...string) {
		for _, p := range ps {
			if local(p) {
				out = append(out, p)
			}
		}
	}
	add(k.Resources...)
	add(k.Components...)
	add(k.Bases...) //nolint:staticcheck // deprecated, and still read by kustomize: users have it
	add(k.Crds...)
	add(k.Configurations...)
	add(k.Generators...)
	add(k.Transformers...)
	add(k.Validators...)
	for _, p := range k.PatchesStrategicMerge { //nolint:staticcheck // deprecated, still read
		add(string(p))
	}
	for _, p := range append(k.Patches, k.PatchesJson6902...) { //nolint:staticcheck // deprecated, still read
		add(p.Path)
	}
	for _, r := range k.Replacements {
		add(r.Path)
	}
	if p, ok := k.OpenAPI["path"]; ok {
		add(p)
	}
	sources := func(s types.KvPairSources) {
		for _, f := range s.FileSources {
			if _, path, ok := strings.Cut(f, "="); ok {
				f = path
			}
			add(f)
		}
		add(s.EnvSources...)
		add(s.EnvSource)
	}
	for _, g := range k.ConfigMapGenerator {
		sources(g.KvPairSources)
	}
	for _, g := range k.SecretGenerator {
		sources(g.KvPairSources)
	}
	return out, nil
}

// local reports whether a reference is a path of the repository: not
// empty, not an inline document, not a URL or a git repository.
func local(p string) bool {
	switch {
	case p == "" || strings.ContainsAny(p, "\n{"):
		return false
	case strings.Contains(p, "://") || strings.HasPrefix(p, "git@") || strings.Contains(p, "?ref=") || strings.Contains(p, "?version="):
		return false
	case strings.HasPrefix(p, "github.com/") || strings.HasPrefix(p, "gitlab.com/") || strings.HasPrefix(p, "bitbucket.org/"):
		return false
	}
	return true
}
