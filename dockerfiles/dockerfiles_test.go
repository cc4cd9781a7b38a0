package dockerfiles

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
)

// offlineResolver answers the linter's base image look-ups with a plain
// linux/amd64 config, as no registry can be reached here. The rules run on
// the Dockerfile itself; only base images' metadata is not real.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, _ := json.Marshal(map[string]any{
		"os": "linux", "architecture": "amd64",
		"config": map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
	})
	return ref, digest.FromBytes(cfg), cfg, nil
}

// railsVariants are the Rails template as init renders it for different
// apps: every branch of the template is in one of them.
var railsVariants = map[string]Rails{
	"rails": {Ruby: "3.4.4", Runtime: []string{"postgresql-client"}, Build: []string{"postgresql-dev"}, Bootsnap: true, Vendor: true, BinRails: true,
		BundleCopies: []string{"engines/billing/", "Gemfile.plugins"}},
	"rails-mysql-yarn-vips": {Ruby: "3.3", Runtime: []string{"mariadb-client", "vips"}, Build: []string{"mariadb-dev"},
		JS: "yarn", Node: "22.11.0", JSFiles: []string{"package.json", "yarn.lock"}, Bootsnap: true, BinRails: true},
	"rails-berry": {Ruby: "3.4", JS: "yarn", Berry: true, Node: "24", JSFiles: []string{"package.json", "yarn.lock", ".yarnrc.yml"}, JSDirs: []string{".yarn/"}},
	"rails-npm-sqlite": {Ruby: "4.0.0", Runtime: []string{"sqlite-libs"}, Build: []string{"sqlite-dev"},
		JS: "npm", Node: "20", JSFiles: []string{"package.json", "package-lock.json"}},
	"rails-pnpm-bundle-config": {Ruby: "4.0.0", Runtime: []string{"sqlite-libs", "libarchive"}, Build: []string{"sqlite-dev"}, RubyVersionFile: true, BundleConfig: true,
		JS: "pnpm", Node: "22", JSFiles: []string{"package.json", "pnpm-lock.yaml"}},
	"rails-bun-trilogy": {Ruby: "3.4", Runtime: []string{"mariadb-client"}, JS: "bun", Bun: "1.2", JSFiles: []string{"package.json", "bun.lock"}, BinRails: true},
}

func templates(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".Dockerfile") {
			return err
		}
		b, err := FS.ReadFile(p)
		out[strings.TrimSuffix(p, ".Dockerfile")] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range railsVariants {
		b, err := RenderRails(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = b
	}
	for _, k := range []string{"rails", "nginx", "go", "shipit"} {
		if out[k] == nil {
			t.Fatalf("no %s template", k)
		}
	}
	return out
}

// TestLintClean runs BuildKit's Dockerfile linter (every rule, all stages)
// over each template: no warning, no error.
func TestLintClean(t *testing.T) {
	t.Parallel()
	for name, dt := range templates(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sm := llb.NewSourceMap(nil, name+".Dockerfile", "Dockerfile", dt)
			sm.Definition = &llb.Definition{}
			res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
				Config:       dockerui.Config{},
				SourceMap:    sm,
				MetaResolver: offlineResolver{},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Error != nil {
				t.Errorf("build error: %s", res.Error.Message)
			}
			for _, w := range res.Warnings {
				var b bytes.Buffer
				_ = w.PrintTo(&b, res.Sources, nil)
				t.Errorf("lint: %s: %s\n%s", w.RuleName, w.Detail, b.String())
			}
		})
	}
}

// TestPractices checks what the templates promise: Alpine bases,
// multi-stage, no syntax line, secrets and caches through mounts, a
// non-root runtime.
func TestPractices(t *testing.T) {
	t.Parallel()
	stages := 0
	var all strings.Builder
	for name, dt := range templates(t) {
		if d, _, _, _ := parser.ParseDirective("syntax", dt); d != "" {
			t.Errorf("%s: has a # syntax= line: builds would depend on pulling a frontend image", name)
		}
		ast, err := parser.Parse(bytes.NewReader(dt))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st, _, err := instructions.Parse(ast.AST, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(st) < 2 && name != "nginx" { // nginx builds nothing: its assets come from the app image
			t.Errorf("%s: %d stage(s), want a multi-stage build", name, len(st))
		}
		stages += len(st)
		last := st[len(st)-1]
		if last.Name != "runtime" {
			t.Errorf("%s: the last stage is %q, want runtime", name, last.Name)
		}
		if !strings.Contains(strings.ToLower(last.BaseName), "alpine") && !strings.HasPrefix(last.BaseName, "base") {
			t.Errorf("%s: runtime is FROM %s, want an Alpine base", name, last.BaseName)
		}
		hasUser := false
		for _, c := range last.Commands {
			if u, ok := c.(*instructions.UserCommand); ok && !strings.HasPrefix(u.User, "root") && u.User != "0" {
				hasUser = true
			}
		}
		if name != "nginx" && !hasUser { // the nginx image drops privileges itself
			t.Errorf("%s: the runtime stage does not switch to a non-root user", name)
		}
		all.Write(dt)
	}
	if stages < 6 {
		t.Errorf("%d stages in all, want at least 6", stages)
	}
	rails := string(templates(t)["rails"])
	for _, want := range []string{"--mount=type=secret,id=bundle_token", "--mount=type=ssh", "--mount=type=secret,id=rails_master_key", "--mount=type=cache,id=apk", "--mount=type=cache,id=bundler", "tzdata", "build-base", "-dev"} {
		if !strings.Contains(rails, want) {
			t.Errorf("rails template lacks %q", want)
		}
	}
	if strings.Contains(all.String(), "ARG RAILS_MASTER_KEY") || strings.Contains(all.String(), "ENV RAILS_MASTER_KEY") {
		t.Error("RAILS_MASTER_KEY is a build argument or environment variable")
	}
	if g := string(templates(t)["go"]); !strings.Contains(g, "target=/go/pkg/mod") || !strings.Contains(g, "target=/root/.cache/go-build") || !strings.Contains(g, "CGO_ENABLED=0") {
		t.Error("the Go template lacks its module and build cache mounts or a static build")
	}
}

// TestRailsTemplate checks what the Rails template does with what init
// read in the app, as Rails' own generated Dockerfile does it.
func TestRailsTemplate(t *testing.T) {
	t.Parallel()
	for name, r := range railsVariants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dt, err := RenderRails(r)
			if err != nil {
				t.Fatal(err)
			}
			s := string(dt)
			ast, err := parser.Parse(bytes.NewReader(dt))
			if err != nil {
				t.Fatal(err)
			}
			stages, _, err := instructions.Parse(ast.AST, nil)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]instructions.Stage{}
			for _, st := range stages {
				byName[st.Name] = st
			}
			base, build, runtime := byName["base"].SourceCode, stageText(byName["build"]), stageText(byName["runtime"])
			if !strings.Contains(base, "ruby:${RUBY_VERSION}-alpine") || !strings.Contains(s, "ARG RUBY_VERSION="+r.Ruby+"\n") {
				t.Errorf("base is %q; want ruby %s on Alpine", base, r.Ruby)
			}
			if !strings.Contains(s, "LD_PRELOAD=/usr/lib/libjemalloc.so.2") || !strings.Contains(s, " jemalloc") {
				t.Error("no jemalloc")
			}
			for _, p := range r.Runtime {
				if !strings.Contains(stageText(byName["base"]), " "+p) {
					t.Errorf("runtime package %s not installed in base", p)
				}
			}
			for _, p := range r.Build {
				if !strings.Contains(build, " "+p) {
					t.Errorf("build package %s not installed in build", p)
				}
			}
			if got := strings.Contains(s, "bootsnap precompile --gemfile"); got != r.Bootsnap {
				t.Errorf("bootsnap precompile --gemfile: %v, want %v", got, r.Bootsnap)
			}
			if r.Vendor && strings.Index(s, "COPY vendor/") > strings.Index(s, "bundle install --jobs") {
				t.Error("vendor/ is copied after bundle install")
			}
			if strings.Contains(s, "chown -R") || !strings.Contains(runtime, "--chown=rails:rails /rails /rails") {
				t.Error("the app is not copied with COPY --chown")
			}
			if !strings.Contains(build, "SECRET_KEY_BASE_DUMMY=1") {
				t.Error("assets:precompile without SECRET_KEY_BASE_DUMMY=1")
			}
			if r.JS != "" {
				if !strings.Contains(build, "rm -rf node_modules") {
					t.Error("node_modules reaches the runtime")
				}
				if strings.Contains(runtime, "node") || strings.Contains(runtime, "--from=bun") {
					t.Error("the runtime stage has the JavaScript toolchain")
				}
				for _, f := range r.JSFiles {
					if !strings.Contains(build, " "+f) {
						t.Errorf("%s is not copied for the JavaScript install", f)
					}
				}
			} else if strings.Contains(s, "node") || strings.Contains(s, "yarn") {
				t.Error("a JavaScript toolchain for an app without one")
			}
		})
	}
}

// stageText is the source of a stage's instructions.
func stageText(st instructions.Stage) string {
	var b strings.Builder
	for _, c := range st.Commands {
		if s, ok := c.(interface{ String() string }); ok {
			b.WriteString(s.String() + "\n")
		}
	}
	return b.String()
}

// TestNginxPassesForwardedProto: TLS ends at the Ingress, so nginx passes
// on the X-Forwarded-Proto it gets (https) instead of its own $scheme
// (http), which would make Rails' force_ssl redirect forever. Its own
// scheme is the fallback only when no header came.
func TestNginxPassesForwardedProto(t *testing.T) {
	t.Parallel()
	b, err := Template("nginx")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	var header string
	for _, line := range strings.Split(conf, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "proxy_set_header" && f[1] == "X-Forwarded-Proto" {
			header = strings.TrimSuffix(f[2], ";")
		}
	}
	if header == "" || header == "$scheme" {
		t.Fatalf("nginx sets X-Forwarded-Proto to %q", header)
	}
	mapping := "map $http_x_forwarded_proto " + header + " {"
	i := strings.Index(conf, mapping)
	if i < 0 {
		t.Fatalf("%s is not mapped from the request's X-Forwarded-Proto:\n%s", header, conf)
	}
	block := conf[i : i+strings.Index(conf[i:], "}")]
	if !strings.Contains(block, "default $http_x_forwarded_proto;") || !strings.Contains(block, `""      $scheme;`) {
		t.Errorf("the mapping does not pass the header on, falling back to $scheme:\n%s", block)
	}
}
