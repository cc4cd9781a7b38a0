package scaffold

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
	yaml "go.yaml.in/yaml/v3"
)

// initApp is one run of init on a copy of a fixture app of testdata/apps
// (files modelled on the real app's: versions, gems, lockfile platforms,
// Procfiles, Dockerfiles, JS lockfiles).
type initApp struct {
	dir      string
	res      *Result
	files    map[string]string // the tree after init
	findings string            // every finding, one a line, as init prints them
}

// runInit copies testdata/apps/<app> (without the files of drop), runs
// init on it and reads the tree.
func runInit(t *testing.T, app string, o Options, drop ...string) *initApp {
	t.Helper()
	dir := filepath.Join(t.TempDir(), app)
	copyTree(t, filepath.Join("testdata", "apps", app), dir)
	for _, d := range drop {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	o.Dir = dir
	res, err := Init(o)
	if err != nil {
		t.Fatalf("init %s: %v", app, err)
	}
	a := &initApp{dir: dir, res: res, files: readTree(t, dir)}
	var lines []string
	for _, f := range res.Findings {
		s := f.String()
		if f.Warning {
			s = "warning: " + s
		}
		lines = append(lines, s)
	}
	a.findings = strings.Join(lines, "\n")
	return a
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (a *initApp) has(t *testing.T, file string, want ...string) {
	t.Helper()
	s, ok := a.files[file]
	if !ok {
		t.Errorf("init wrote no %s", file)
		return
	}
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", file, w, s)
		}
	}
}

func (a *initApp) lacks(t *testing.T, file string, not ...string) {
	t.Helper()
	for _, n := range not {
		if strings.Contains(a.files[file], n) {
			t.Errorf("%s has %q:\n%s", file, n, a.files[file])
		}
	}
}

func (a *initApp) said(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(a.findings, w) {
			t.Errorf("init does not say %q; it says:\n%s", w, a.findings)
		}
	}
}

func (a *initApp) notSaid(t *testing.T, not ...string) {
	t.Helper()
	for _, n := range not {
		if strings.Contains(a.findings, n) {
			t.Errorf("init says %q:\n%s", n, a.findings)
		}
	}
}

// appDockerfile is the path of the app image's Dockerfile in shipit.yaml.
func (a *initApp) appDockerfile(t *testing.T) string {
	t.Helper()
	var cfg struct {
		Images map[string]struct {
			Context, Dockerfile, Target string
		}
	}
	if err := yaml.Unmarshal([]byte(a.files["shipit.yaml"]), &cfg); err != nil {
		t.Fatalf("shipit.yaml: %v", err)
	}
	app := cfg.Images["app"]
	if app.Context != "." || app.Dockerfile == "" {
		t.Fatalf("shipit.yaml's app image: %+v", app)
	}
	return app.Dockerfile
}

// offlineResolver answers the linter's base image look-ups with a plain
// linux/amd64 config (no registry can be reached here): the rules run on
// the Dockerfile itself.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, _ := json.Marshal(map[string]any{"os": "linux", "architecture": "amd64",
		"config": map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}})
	return ref, digest.FromBytes(cfg), cfg, nil
}

// checkDockerfile checks the Dockerfile the app image builds: BuildKit's
// linter (every rule) finds nothing in one init wrote, and every file or
// directory a COPY or ADD reads from the context exists in the app's tree
// and is not left out by the .dockerignore the build uses.
func (a *initApp) checkDockerfile(t *testing.T, written bool) {
	t.Helper()
	p := a.appDockerfile(t)
	dt := []byte(a.files[p])
	if written {
		sm := llb.NewSourceMap(nil, p, "Dockerfile", dt)
		sm.Definition = &llb.Definition{}
		res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
			Config: dockerui.Config{}, SourceMap: sm, MetaResolver: offlineResolver{}})
		if err != nil {
			t.Fatalf("lint %s: %v", p, err)
		}
		if res.Error != nil {
			t.Errorf("%s: %s", p, res.Error.Message)
		}
		for _, w := range res.Warnings {
			var b bytes.Buffer
			_ = w.PrintTo(&b, res.Sources, nil)
			t.Errorf("lint %s: %s: %s\n%s", p, w.RuleName, w.Detail, b.String())
		}
	}
	df, err := ParseDockerfile(dt)
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(strings.NewReader(a.files[".dockerignore"]))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range df.Sources {
		if src == "." {
			continue
		}
		src = strings.TrimSuffix(src, "/")
		if !a.inTree(src) {
			t.Errorf("%s copies %s, which the app does not have", p, src)
		}
		if out, _ := pm.MatchesOrParentMatches(src); out {
			t.Errorf("%s copies %s, which .dockerignore leaves out", p, src)
		}
	}
}

func (a *initApp) inTree(src string) bool {
	for f := range a.files {
		if f == src || strings.HasPrefix(f, src+"/") {
			return true
		}
		if ok, _ := path.Match(src, f); ok {
			return true
		}
	}
	return false
}

// render renders an overlay with kubectl kustomize: the objects, by
// Kind/name.
func (a *initApp) render(t *testing.T, env string) map[string]map[string]any {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no kubectl")
		}
		t.Skip("no kubectl to render the overlays")
	}
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(a.dir, "k8s", "overlays", env)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", env, err, out)
	}
	objs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); err != nil {
			break
		}
		md, _ := o["metadata"].(map[string]any)
		objs[fmt.Sprint(o["kind"], "/", md["name"])] = o
	}
	return objs
}

func get(o any, keys ...string) any {
	for _, k := range keys {
		m, ok := o.(map[string]any)
		if !ok {
			return nil
		}
		o = m[k]
	}
	return o
}

// containersOf maps the containers (or, with init, the init containers)
// of a workload to their specs.
func containersOf(o map[string]any, field string) map[string]map[string]any {
	out := map[string]map[string]any{}
	l, _ := get(o, "spec", "template", "spec", field).([]any)
	for _, c := range l {
		m := c.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

func strList(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}

func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lintWorkflow runs actionlint (ci/lint.sh builds it into bin/) over a
// workflow init wrote.
func (a *initApp) lintWorkflow(t *testing.T, rel string) {
	t.Helper()
	actionlint, err := filepath.Abs(filepath.Join("..", "..", "bin", "actionlint"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(actionlint); err != nil {
		if os.Getenv("CI") == "true" {
			t.Errorf("no %s (ci/lint.sh builds it)", actionlint)
		}
		return
	}
	if out, err := exec.Command(actionlint, filepath.Join(a.dir, rel)).CombinedOutput(); err != nil {
		t.Errorf("actionlint %s: %v\n%s", rel, err, out)
	}
}
