package build

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipit-dev/shipit/internal/gitinfo"
)

func TestRequests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	head := gitinfo.Head{SHA: "0123456789abcdef", Time: time.Unix(1700000000, 0).UTC(), Source: "https://github.com/acme/app"}
	plan := Plan{
		StateDir: filepath.Join(dir, ".shipit"), Head: head, Tag: "20231114-221320-0123456", Cache: Cache{Registry: true},
		Images: []Spec{{
			Name: "web", Repository: "127.0.0.1:5000/team/web", Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Target: "runtime",
			Args: map[string]string{"GREETING": "hi", "NPM_TOKEN": "oops"}, Insecure: true,
			Secrets: []Secret{{ID: "gem", File: filepath.Join(dir, "gem.txt")}, {ID: "npm", Env: "NPM"}},
		}},
	}
	if err := os.WriteFile(filepath.Join(dir, "gem.txt"), []byte("gem-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	reqs, warnings, err := Requests(plan)
	if err != nil {
		t.Fatal(err)
	}
	web := reqs[0]
	if len(warnings) != 1 || !strings.Contains(warnings[0], "NPM_TOKEN looks like a secret") || strings.Contains(warnings[0], "oops") {
		t.Errorf("warnings = %q: want one naming NPM_TOKEN and not its value", warnings)
	}
	ex := web.CacheExports[0].Attrs
	if ex["ref"] != "127.0.0.1:5000/team/web:buildcache" || ex["image-manifest"] != "true" || ex["oci-mediatypes"] != "true" || ex["mode"] != "max" || ex["registry.insecure"] != "true" {
		t.Errorf("cache export = %v: ECR needs image-manifest and OCI media types", ex)
	}
	so, err := solveOpt(web)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"target": "runtime", "build-arg:SOURCE_DATE_EPOCH": "1700000000",
		"label:" + LabelRevision: head.SHA, "filename": "Dockerfile",
	} {
		if so.FrontendAttrs[k] != v {
			t.Errorf("frontend attr %s = %q, want %q", k, so.FrontendAttrs[k], v)
		}
	}
	if _, ok := so.FrontendAttrs["attest:provenance"]; ok {
		t.Error("provenance is on by default")
	}
	if _, ok := so.FrontendAttrs["vcs:source"]; ok {
		t.Error("vcs:source without provenance")
	}
	// With provenance, BuildKit is told the repository and the commit, so
	// that its SLSA provenance names them (shipit verify checks them).
	plan.Provenance = "max"
	preqs, _, err := Requests(plan)
	if err != nil {
		t.Fatal(err)
	}
	pso, err := solveOpt(preqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if a := pso.FrontendAttrs; a["attest:provenance"] != "mode=max" || a["vcs:source"] != head.Source || a["vcs:revision"] != head.SHA {
		t.Errorf("with provenance: attest %q, vcs:source %q, vcs:revision %q", a["attest:provenance"], a["vcs:source"], a["vcs:revision"])
	}
	e := so.Exports[0]
	if e.Type != "oci" || e.OutputDir != LayoutPath(plan.StateDir, "web") || e.Attrs["rewrite-timestamp"] != "true" || e.Attrs["name"] != "127.0.0.1:5000/team/web:20231114-221320-0123456" {
		t.Errorf("export = %+v", e)
	}
	for k := range so.FrontendAttrs {
		if strings.Contains(k, "gem") || strings.Contains(k, "NPM") && k != "build-arg:NPM_TOKEN" {
			t.Errorf("a secret reached the frontend attributes: %s", k)
		}
	}
}

func TestLooksSecret(t *testing.T) {
	t.Parallel()
	for arg, want := range map[string]bool{
		"NPM_TOKEN": true, "githubToken": true, "DB_PASSWORD": true, "RAILS_MASTER_KEY": true,
		"AWS_SECRET_ACCESS_KEY": true, "api-key": true, "RUBY_VERSION": false, "MONKEY": false, "KEYBOARD_LAYOUT": false,
	} {
		if got := LooksSecret(arg); got != want {
			t.Errorf("LooksSecret(%s) = %v", arg, got)
		}
	}
}

// TestContextNeverHoldsState: shipit's state directory is not in a build
// context, whatever the app's .dockerignore says (here: nothing about it,
// and an exception that would bring it back), nor another app's below the
// context, while everything else is.
func TestContextNeverHoldsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for p, content := range map[string]string{
		"Dockerfile":                         "FROM scratch\nCOPY . .\n",
		".dockerignore":                      "/.git/\n/log/*\n!.shipit\n!**/.shipit\n",
		"app/models/user.rb":                 "class User; end\n",
		".shipit/build.json":                 "{}",
		".shipit/images/web/index.json":      "{}",
		".shipit/cache/web/index.json":       "{}",
		"engines/billing/.shipit/build.json": "{}",
		"docs/.shipit.md":                    "not state",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan := Plan{
		StateDir: filepath.Join(dir, ".shipit"), Head: gitinfo.Head{SHA: "0123456789abcdef", Time: time.Unix(1700000000, 0)}, Tag: "t",
		Images: []Spec{{Name: "web", Repository: "127.0.0.1:5000/web", Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile")}},
	}
	reqs, _, err := Requests(plan)
	if err != nil {
		t.Fatal(err)
	}
	so, err := solveOpt(reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	ctxFS := so.LocalMounts["context"]
	var seen []string
	err = ctxFS.Walk(context.Background(), "", func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		seen = append(seen, filepath.ToSlash(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range seen {
		if strings.Contains("/"+p+"/", "/.shipit/") {
			t.Errorf("the build context holds %s", p)
		}
	}
	for _, want := range []string{"Dockerfile", ".dockerignore", "app/models/user.rb", "docs/.shipit.md"} {
		if !slices.Contains(seen, want) {
			t.Errorf("the build context lacks %s: %q", want, seen)
		}
	}
	if rc, err := ctxFS.Open(".shipit/build.json"); err == nil {
		rc.Close()
		t.Error("the build record can be opened through the build context")
	}
}

// A prefixed build (a pull request's) imports the release cache but
// exports only to a cache of its own: it can never write layers into the
// cache release builds import.
func TestRequestsPrefixedCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	head := gitinfo.Head{SHA: "0123456789abcdef", Time: time.Unix(1700000000, 0).UTC()}
	for tagName, want := range map[string]struct{ imports, export string }{
		"20231114-221320-0123456":        {"r:buildcache", "r:buildcache"},
		"pr-9-20231114-221320-0123456":   {"r:buildcache-pr-9 r:buildcache", "r:buildcache-pr-9"},
		"feat_x.20231114-221320-0123456": {"r:buildcache-feat_x r:buildcache", "r:buildcache-feat_x"},
	} {
		plan := Plan{StateDir: filepath.Join(dir, ".shipit"), Head: head, Tag: tagName, Cache: Cache{Registry: true},
			Images: []Spec{{Name: "web", Repository: "r", Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile")}}}
		reqs, _, err := Requests(plan)
		if err != nil {
			t.Fatal(err)
		}
		var imports []string
		for _, e := range reqs[0].CacheImports {
			imports = append(imports, e.Attrs["ref"])
		}
		if got := strings.Join(imports, " "); got != want.imports {
			t.Errorf("%s: cache imports %q, want %q", tagName, got, want.imports)
		}
		if ex := reqs[0].CacheExports; len(ex) != 1 || ex[0].Attrs["ref"] != want.export {
			t.Errorf("%s: cache exports %v, want only %s", tagName, ex, want.export)
		}
		// Each builder node of a multi-node build keeps its own cache, the
		// prefixed one too.
		part := partRequest(Request{Platforms: []string{"linux/arm64"}, CacheImports: reqs[0].CacheImports, CacheExports: reqs[0].CacheExports}, "arm64")
		if got := part.CacheExports[0].Attrs["ref"]; got != want.export+"-linux-arm64" {
			t.Errorf("%s: node cache export %s, want %s-linux-arm64", tagName, got, want.export)
		}
	}
}
