package scaffold

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/shipit-dev/shipit/internal/lazyre"
)

// Dockerfile is what init needs to know of a Dockerfile: the stage to
// build, and how the container it makes starts.
type Dockerfile struct {
	Stages     []string // stage names, in order ("" for an unnamed stage)
	Target     string   // the stage to build; "" for the last, unnamed one
	Workdir    string   // the target's final WORKDIR ("/" when none is set)
	Entrypoint []string // the target's ENTRYPOINT (a shell form is ["/bin/sh", "-c", line])
	Cmd        []string
	Expose     []string
	// Heredocs maps a path COPY writes from an inline file to its content:
	// an entrypoint script written in the Dockerfile itself.
	Heredocs map[string]string
	// Copied maps a path COPY writes from the build context to the file of
	// the context it copies (COPY docker/entrypoint.sh /entrypoint.sh).
	Copied map[string]string
	// CopiesApp: a stage copies the whole build context (COPY . .): a
	// production image. A development one bind-mounts the source instead.
	CopiesApp bool
	// Sources is every file or directory of the build context COPY and ADD
	// read, in any stage.
	Sources []string
}

// preferredTargets are stage names that mean "what runs in production",
// in the order they are preferred when a Dockerfile has several.
var preferredTargets = []string{"runtime", "production", "final"}

// ParseDockerfile reads a Dockerfile with BuildKit's own parser, and
// follows its target stage back through the stages it is built FROM, as
// BuildKit does: WORKDIR, ENTRYPOINT and CMD are inherited.
func ParseDockerfile(data []byte) (*Dockerfile, error) {
	ast, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM: it has no stage to build")
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	d := &Dockerfile{Heredocs: map[string]string{}, Copied: map[string]string{}}
	byName := map[string]int{}
	for i, s := range stages {
		d.Stages = append(d.Stages, s.Name)
		if s.Name != "" {
			byName[strings.ToLower(s.Name)] = i
		}
	}
	target := len(stages) - 1
	for _, name := range preferredTargets {
		if i, ok := byName[name]; ok {
			target = i
			break
		}
	}
	d.Target = stages[target].Name

	d.follow(stages, target, byName, args, ast.EscapeToken)
	for _, st := range stages {
		for _, c := range st.Commands {
			d.readSources(c)
		}
	}
	return d, nil
}

// follow reads the chain of stages the target builds on, base first, as
// BuildKit does: WORKDIR, ENTRYPOINT and CMD are inherited.
func (d *Dockerfile) follow(stages []instructions.Stage, target int, byName map[string]int, args map[string]string, escape rune) {
	var chain []instructions.Stage
	for i, seen := target, map[int]bool{}; i >= 0 && !seen[i]; {
		seen[i] = true
		chain = append([]instructions.Stage{stages[i]}, chain...)
		base, ok := byName[strings.ToLower(stages[i].BaseName)]
		if !ok {
			break
		}
		i = base
	}
	lex := shell.NewLex(escape)
	env := map[string]string{}
	expand := func(s string) string {
		out, _, err := lex.ProcessWord(s, envGetter(env, args))
		if err != nil {
			return s
		}
		return out
	}
	d.Workdir = "/"
	for _, s := range chain {
		for _, c := range s.Commands {
			d.apply(c, env, args, expand)
		}
	}
}

// apply is one instruction of the target's chain.
func (d *Dockerfile) apply(c instructions.Command, env, args map[string]string, expand func(string) string) {
	switch c := c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			env[kv.Key] = expand(kv.Value)
		}
	case *instructions.ArgCommand:
		for _, kv := range c.Args {
			if kv.Value != nil {
				env[kv.Key] = expand(*kv.Value)
			} else if v, ok := args[kv.Key]; ok {
				env[kv.Key] = v
			}
		}
	case *instructions.WorkdirCommand:
		p := expand(c.Path)
		if !path.IsAbs(p) {
			p = path.Join(d.Workdir, p)
		}
		d.Workdir = path.Clean(p)
	case *instructions.EntrypointCommand:
		d.Entrypoint = cmdLine(c.ShellDependantCmdLine)
		d.Cmd = nil // as in BuildKit: ENTRYPOINT resets an inherited CMD
	case *instructions.CmdCommand:
		d.Cmd = cmdLine(c.ShellDependantCmdLine)
	case *instructions.ExposeCommand:
		d.Expose = append(d.Expose, c.Ports...)
	case *instructions.CopyCommand:
		dest := expand(c.DestPath)
		abs := func(p string) string {
			if !path.IsAbs(p) {
				p = path.Join(d.Workdir, p)
			}
			return path.Clean(p)
		}
		for _, f := range c.SourceContents {
			to := dest
			if strings.HasSuffix(dest, "/") {
				to = path.Join(dest, f.Path)
			}
			d.Heredocs[abs(to)] = f.Data
		}
		if c.From == "" && len(c.SourcePaths) == 1 {
			src := contextPath(c.SourcePaths[0])
			to := dest
			if strings.HasSuffix(dest, "/") {
				to = path.Join(dest, path.Base(src))
			}
			d.Copied[abs(to)] = src
		}
	}
}

// readSources notes what COPY and ADD read from the build context.
func (d *Dockerfile) readSources(c instructions.Command) {
	var srcs []string
	switch c := c.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			return
		}
		srcs = c.SourcePaths
	case *instructions.AddCommand:
		srcs = c.SourcePaths
	}
	for _, s := range srcs {
		if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
			continue
		}
		p := contextPath(s)
		d.Sources = append(d.Sources, p)
		if p == "." {
			d.CopiesApp = true
		}
	}
}

// contextPath is a COPY source as a path of the build context, which
// BuildKit confines: ../Gemfile is Gemfile, ../. is the whole context.
func contextPath(s string) string {
	p := path.Clean("/" + s)
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

func envGetter(env, args map[string]string) shell.EnvGetter {
	return lookup(func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		v, ok := args[k]
		return v, ok
	})
}

type lookup func(string) (string, bool)

func (l lookup) Get(k string) (string, bool) { return l(k) }
func (l lookup) Keys() []string              { return nil }

func cmdLine(c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return []string{"/bin/sh", "-c", strings.Join(c.CmdLine, " ")}
	}
	return slices.Clone(c.CmdLine)
}

// Launcher is how a container of the image starts what init gives it to
// run: the arguments to hand to the entrypoint.
type Launcher int

// Launchers init knows.
const (
	// PassThrough: no entrypoint, or one that ends with exec "$@": the
	// arguments are the command.
	PassThrough Launcher = iota
	// BundleExec: ENTRYPOINT ["bundle", "exec"]: the arguments are a
	// program of the bundle.
	BundleExec
	// RailsEntrypoint: ENTRYPOINT ["bin/rails"] or ["rails"]: the arguments
	// are a rails command.
	RailsEntrypoint
)

// execArgs is the end of an entrypoint script that runs its arguments.
var execArgs = lazyre.New(`(?m)^\s*exec\s+("\$@"|"\$\{@\}"|\$@|\$\{@\}|"\$\*"|\$\*)\s*$`)

// Launch says how the image's entrypoint treats arguments. read reads a
// file of the build context (the entrypoint script, when the image copies
// it from there); assumed is set when init could not tell and guessed.
func (d *Dockerfile) Launch(read func(rel string) ([]byte, bool)) (l Launcher, why string, assumed bool) {
	ep := d.Entrypoint
	if len(ep) == 0 {
		return PassThrough, "no ENTRYPOINT", false
	}
	if len(ep) == 3 && ep[0] == "/bin/sh" && ep[1] == "-c" {
		ep = strings.Fields(ep[2])
	}
	ep = stripInit(ep)
	if len(ep) == 0 {
		return PassThrough, "ENTRYPOINT " + d.Entrypoint[0] + ", an init that runs its arguments", false
	}
	switch {
	case len(ep) >= 2 && path.Base(ep[0]) == "bundle" && ep[1] == "exec":
		if len(ep) == 3 && path.Base(ep[2]) == "rails" {
			return RailsEntrypoint, "ENTRYPOINT " + strings.Join(ep, " "), false
		}
		return BundleExec, "ENTRYPOINT bundle exec", false
	case len(ep) == 1 && path.Base(ep[0]) == "rails":
		return RailsEntrypoint, "ENTRYPOINT " + ep[0], false
	}
	script := ep[0]
	if len(ep) == 2 && (path.Base(ep[0]) == "sh" || path.Base(ep[0]) == "bash") {
		script = ep[1]
	}
	abs := script
	if !path.IsAbs(abs) {
		abs = path.Join(d.Workdir, abs)
	}
	abs = path.Clean(abs)
	body, ok := d.Heredocs[abs]
	if !strings.Contains(script, "/") { // looked up on PATH
		for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			if body, ok = d.Heredocs[dir+"/"+script]; ok {
				break
			}
		}
	}
	if src, copied := d.Copied[abs]; !ok && copied {
		// COPY docker/entrypoint.sh /entrypoint.sh
		var b []byte
		if b, ok = read(src); ok {
			body = string(b)
		}
	}
	if !ok {
		// A script copied from the build context: the same path under the
		// WORKDIR (COPY . .), as Rails' bin/docker-entrypoint.
		if rel, in := strings.CutPrefix(abs, strings.TrimSuffix(d.Workdir, "/")+"/"); in && d.Workdir != "/" {
			var b []byte
			if b, ok = read(rel); ok {
				body = string(b)
			}
		}
	}
	if !ok {
		return PassThrough, fmt.Sprintf("ENTRYPOINT %s (not found in the repository or the Dockerfile): assumed it ends with exec \"$@\"", script), true
	}
	if execArgs.MatchString(body) {
		return PassThrough, fmt.Sprintf("ENTRYPOINT %s ends with exec \"$@\"", script), false
	}
	return PassThrough, fmt.Sprintf("ENTRYPOINT %s has no exec \"$@\": assumed it runs its arguments", script), true
}

// inits are the small init programs images start with: they run their
// arguments.
var inits = []string{"tini", "dumb-init", "docker-init", "catatonit"}

// stripInit drops an init (tini -g --, dumb-init) from an entrypoint.
func stripInit(ep []string) []string {
	if len(ep) == 0 || !slices.Contains(inits, path.Base(ep[0])) {
		return ep
	}
	rest := ep[1:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		if rest[0] == "--" {
			return rest[1:]
		}
		rest = rest[1:]
	}
	return rest
}

// Run gives a container's command and args to run c from an image whose
// entrypoint is l. command is set only when the entrypoint cannot run c
// (a rails entrypoint asked to run a worker): then it replaces it.
func (l Launcher) Run(c Command, binRails bool) (command, args []string) {
	rails := []string{"bundle", "exec", "rails"}
	if binRails {
		rails = []string{"./bin/rails"}
	}
	full := func() []string {
		switch {
		case c.Rails != nil:
			return append(slices.Clone(rails), c.Rails...)
		case c.Bundle != nil:
			return append([]string{"bundle", "exec"}, c.Bundle...)
		}
		return slices.Clone(c.Line)
	}
	switch l {
	case BundleExec:
		switch {
		case c.Rails != nil:
			return nil, append([]string{"rails"}, c.Rails...)
		case c.Bundle != nil:
			return nil, slices.Clone(c.Bundle)
		}
		if len(c.Line) > 2 && c.Line[0] == "bundle" && c.Line[1] == "exec" {
			return nil, slices.Clone(c.Line[2:])
		}
		return nil, slices.Clone(c.Line)
	case RailsEntrypoint:
		if c.Rails != nil {
			return nil, slices.Clone(c.Rails)
		}
		return full(), nil
	}
	return nil, full()
}
