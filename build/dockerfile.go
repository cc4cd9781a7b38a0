package build

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Images a Dockerfile's build reads from registries, as BuildKit's
// Dockerfile frontend resolves them: the FROM of every stage the target
// reaches, COPY --from and RUN --mount from= images, and a # syntax=
// frontend. What these rules cannot follow to the same answer as BuildKit
// (an argument BuildKit sets per platform, ADD of a URL or a git
// repository, a frontend other than docker/dockerfile) is a reason, and
// the image is then always solved.

// externalImages lists the image references a build of the Dockerfile
// (data) for target, with build arguments args, reads from registries, or
// why it cannot say.
func externalImages(data []byte, target string, args map[string]string) ([]string, string) {
	var refs []string
	if syntax, _, _, ok := parser.DetectSyntax(data); ok {
		if !dockerfileFrontend(syntax) {
			return nil, fmt.Sprintf("its # syntax= frontend %q is not docker/dockerfile, which may read anything", syntax)
		}
		refs = append(refs, syntax)
	}
	ast, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, "its Dockerfile does not parse: " + err.Error()
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil || len(stages) == 0 {
		return nil, "its Dockerfile does not parse"
	}
	// FROM sees the arguments declared before the first FROM: a build
	// argument's value, else the declared default.
	env := map[string]string{}
	lex := shell.NewLex(ast.EscapeToken)
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if v, ok := args[kv.Key]; ok {
				env[kv.Key] = v
			} else if kv.Value != nil {
				v, unmatched, err := lex.ProcessWord(*kv.Value, envOf(env))
				if err != nil || len(unmatched) > 0 {
					return nil, fmt.Sprintf("ARG %s's default depends on an argument shipit does not set", kv.Key)
				}
				env[kv.Key] = v
			}
		}
	}
	s := &stageWalk{stages: stages, byName: map[string]int{}, seen: map[int]bool{}, env: env, lex: lex}
	for i, st := range stages {
		if st.Name != "" {
			s.byName[strings.ToLower(st.Name)] = i
		}
	}
	t := len(stages) - 1
	if target != "" {
		i, ok := s.byName[strings.ToLower(target)]
		if !ok {
			return nil, fmt.Sprintf("its Dockerfile has no stage %q", target)
		}
		t = i
	}
	if why := s.visit(t); why != "" {
		return nil, why
	}
	return append(refs, s.refs...), ""
}

// dockerfileFrontend reports whether a # syntax= reference is an image of
// BuildKit's own Dockerfile frontend (docker/dockerfile, -upstream).
func dockerfileFrontend(ref string) bool {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return false
	}
	repo := r.Context()
	return repo.RegistryStr() == name.DefaultRegistry &&
		(repo.RepositoryStr() == "docker/dockerfile" || repo.RepositoryStr() == "docker/dockerfile-upstream")
}

type stageWalk struct {
	stages []instructions.Stage
	byName map[string]int
	seen   map[int]bool
	env    map[string]string
	lex    *shell.Lex
	refs   []string
}

// visit follows stage i: its base, and what its commands read from other
// stages or images.
func (s *stageWalk) visit(i int) string {
	if s.seen[i] {
		return ""
	}
	s.seen[i] = true
	st := s.stages[i]
	base, unmatched, err := s.lex.ProcessWord(st.BaseName, envOf(s.env))
	if err != nil || len(unmatched) > 0 || base == "" {
		return fmt.Sprintf("FROM %s depends on an argument shipit does not set (BuildKit sets some per platform)", st.BaseName)
	}
	if why := s.from(base, i, true); why != "" {
		return why
	}
	for _, c := range st.Commands {
		if why := s.command(c, i); why != "" {
			return why
		}
	}
	return ""
}

// command notes what one instruction of stage i reads besides the
// context: another stage, an image, or something remote.
func (s *stageWalk) command(c instructions.Command, i int) string {
	switch c := c.(type) {
	case *instructions.AddCommand:
		for _, src := range c.SourcePaths {
			if remoteSource(src) {
				return fmt.Sprintf("ADD %s reads a URL or a git repository, which BuildKit checks again on every build", src)
			}
		}
	case *instructions.CopyCommand:
		if c.From != "" {
			return s.from(c.From, i, false)
		}
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			if m.From != "" {
				if why := s.from(m.From, i, false); why != "" {
					return why
				}
			}
		}
	}
	return ""
}

// from is a stage or an image that stage i reads: a FROM (isBase: by name
// only, and scratch is no image) or a --from (a name or an index).
func (s *stageWalk) from(ref string, i int, isBase bool) string {
	if strings.Contains(ref, "$") {
		return fmt.Sprintf("--from=%s depends on an argument", ref)
	}
	if j, ok := s.byName[strings.ToLower(ref)]; ok && j < i {
		return s.visit(j)
	}
	if !isBase {
		if j, err := strconv.Atoi(ref); err == nil && j >= 0 && j < i {
			return s.visit(j)
		}
	}
	if isBase && strings.EqualFold(ref, "scratch") {
		return ""
	}
	s.refs = append(s.refs, ref)
	return ""
}

// remoteSource reports whether an ADD source is fetched rather than read
// from the context: a URL or a git repository.
func remoteSource(src string) bool {
	return strings.Contains(src, "://") || strings.HasPrefix(src, "git@")
}

// envOf is a shell environment of a map.
func envOf(m map[string]string) shell.EnvGetter {
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	return shell.EnvsFromSlice(kv)
}
