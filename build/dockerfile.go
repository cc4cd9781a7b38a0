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
// (data) for target, with build arguments args, reads from registries, and
// those of them that are stages' bases, or why it cannot say.
func externalImages(data []byte, target string, args map[string]string) (refs, bases []string, why string) {
	// The BUILDKIT_SYNTAX build argument picks the frontend before any
	// # syntax= line does.
	syntax, _, _, ok := parser.DetectSyntax(data)
	if v, set := args["BUILDKIT_SYNTAX"]; set {
		syntax, ok = v, true
	}
	if ok {
		if !dockerfileFrontend(syntax) {
			return nil, nil, fmt.Sprintf("its frontend %q (# syntax= or BUILDKIT_SYNTAX) is not docker/dockerfile, which may read anything", syntax)
		}
		refs = append(refs, syntax)
	}
	ast, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, nil, "its Dockerfile does not parse: " + err.Error()
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil || len(stages) == 0 {
		return nil, nil, "its Dockerfile does not parse"
	}
	// FROM sees the arguments declared before the first FROM: a build
	// argument's value, else the declared default.
	env := map[string]string{}
	lex := shell.NewLex(ast.EscapeToken)
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Key == stampArg {
				// Its value is the commit's time, which the sources
				// are read before: FROM must not depend on it.
				continue
			}
			if v, ok := args[kv.Key]; ok {
				env[kv.Key] = v
			} else if kv.Value != nil {
				v, why := expand(lex, *kv.Value, env)
				if why != "" {
					return nil, nil, fmt.Sprintf("ARG %s's default %s", kv.Key, why)
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
			return nil, nil, fmt.Sprintf("its Dockerfile has no stage %q", target)
		}
		t = i
	}
	if why := s.visit(t); why != "" {
		return nil, nil, why
	}
	return append(refs, s.refs...), s.bases, ""
}

// stampArg is the build argument shipit sets to the commit's time.
const stampArg = "SOURCE_DATE_EPOCH"

// expand is a word with the environment's arguments, or why it cannot be
// known before the build: an argument shipit does not set (BuildKit sets
// some per platform), or the commit's time.
func expand(lex *shell.Lex, word string, env map[string]string) (string, string) {
	res, err := lex.ProcessWordWithMatches(word, envOf(env))
	if err != nil {
		return "", "does not parse: " + err.Error()
	}
	if _, ok := res.Matched[stampArg]; ok {
		return "", "depends on " + stampArg
	}
	if _, ok := res.Unmatched[stampArg]; ok {
		return "", "depends on " + stampArg
	}
	if len(res.Unmatched) > 0 {
		return "", "depends on an argument shipit does not set (BuildKit sets some per platform)"
	}
	return res.Result, ""
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
	bases  []string // the refs that are FROM a stage: their ONBUILD triggers run here
}

// visit follows stage i: its base, and what its commands read from other
// stages or images.
func (s *stageWalk) visit(i int) string {
	if s.seen[i] {
		return ""
	}
	s.seen[i] = true
	st := s.stages[i]
	base, why := expand(s.lex, st.BaseName, s.env)
	if why != "" || base == "" {
		return fmt.Sprintf("FROM %s %s", st.BaseName, why)
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
				return fmt.Sprintf("ADD %s may read a URL or a git repository, which BuildKit checks again on every build", src)
			}
		}
	case *instructions.OnbuildCommand:
		// Its trigger runs in a later stage built FROM this one, and may
		// read anything.
		return "it has an ONBUILD instruction"
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
	if isBase {
		s.bases = append(s.bases, ref)
	}
	return ""
}

// remoteSource reports whether an ADD source may be fetched rather than
// read from the context: a URL, a git repository in any of the forms
// BuildKit takes (user@host:path, a .git path, a #ref), or a variable
// that may hold one.
func remoteSource(src string) bool {
	return strings.ContainsAny(src, "$@#") || strings.Contains(src, "://") ||
		strings.HasSuffix(src, ".git") || strings.Contains(src, ".git/")
}

// envOf is a shell environment of a map.
func envOf(m map[string]string) shell.EnvGetter {
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	return shell.EnvsFromSlice(kv)
}
