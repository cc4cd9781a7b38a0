package scaffold

import (
	"encoding/json"
	"path"
	"path/filepath"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// jsLocks are the lockfiles of the JavaScript package managers, in the
// order they are looked for.
var jsLocks = []struct{ file, manager string }{
	{"bun.lock", "bun"}, {"bun.lockb", "bun"}, {"pnpm-lock.yaml", "pnpm"}, {"yarn.lock", "yarn"}, {"package-lock.json", "npm"},
}

// readJSToolchain: a bundler gem (jsbundling, cssbundling, vite_rails), or
// a package.json beside importmap (tailwind plugins, for one), needs
// JavaScript in the build; importmap alone does not.
func (r *Rails) readJSToolchain() error {
	for _, g := range []string{"jsbundling-rails", "cssbundling-rails", "vite_rails", "vite_ruby", "shakapacker", "webpacker"} {
		if r.gems.has(g) != "" {
			r.JS.For = g
			break
		}
	}
	pkg := r.exists("package.json")
	if r.JS.For == "" && pkg {
		r.JS.For = "package.json"
	}
	if r.JS.For == "" {
		if from := r.gems.has("importmap-rails"); from != "" {
			r.image("importmap-rails and no package.json: no JavaScript toolchain", from)
		} else {
			r.image("no jsbundling-rails, cssbundling-rails, vite_rails or package.json: no JavaScript toolchain", "Gemfile")
		}
		return nil
	}
	for _, l := range jsLocks {
		if r.exists(l.file) {
			r.JS.Manager, r.JS.Lock = l.manager, l.file
			break
		}
	}
	if r.JS.Manager == "" {
		r.JS.Manager = "npm"
		r.assumed("npm for "+r.JS.For+" (no yarn.lock, package-lock.json, pnpm-lock.yaml or bun.lock)", "the Dockerfile's JavaScript step", true)
	} else {
		r.image(r.JS.Manager+" for "+r.JS.For, r.JS.Lock)
	}
	if r.JS.Manager == "yarn" {
		lock, _, err := r.read("yarn.lock")
		if err != nil {
			return err
		}
		r.JS.Berry = strings.Contains(lock, "__metadata:")
	}
	if err := r.readWorkspaces(); err != nil {
		return err
	}
	if r.JS.Manager == "bun" {
		return r.readBun()
	}
	return r.readNode()
}

// readWorkspaces finds the JavaScript workspaces (package.json's
// workspaces, pnpm-workspace.yaml's packages) and patch-package's
// patches/: the install step needs them.
func (r *Rails) readWorkspaces() error {
	pkg, _, err := r.read("package.json")
	if err != nil {
		return err
	}
	var p struct {
		Workspaces json.RawMessage   `json:"workspaces"`
		Scripts    map[string]string `json:"scripts"`
	}
	_ = json.Unmarshal([]byte(pkg), &p) // a package.json that does not parse fails npm's own install, which says why
	var patterns []string
	if json.Unmarshal(p.Workspaces, &patterns) != nil {
		var w struct {
			Packages []string `json:"packages"`
		}
		_ = json.Unmarshal(p.Workspaces, &w)
		patterns = w.Packages
	}
	ws, _, err := r.read("pnpm-workspace.yaml")
	if err != nil {
		return err
	}
	var pw struct {
		Packages []string `yaml:"packages"`
	}
	if yaml.Unmarshal([]byte(ws), &pw) == nil {
		patterns = append(patterns, pw.Packages...)
	}
	for _, pat := range patterns {
		r.workspace(pat)
	}
	if strings.Contains(p.Scripts["postinstall"], "patch-package") && r.isDir("patches") {
		r.JS.Dirs = appendNew(r.JS.Dirs, "patches/")
		r.image("patch-package's patches/: copied for the install", "package.json")
	}
	return nil
}

// workspace adds the directories a workspace pattern names (streaming,
// packages/*) that have a package.json.
func (r *Rails) workspace(pat string) {
	pat = path.Clean(strings.TrimPrefix(pat, "./"))
	if pat == "." || path.IsAbs(pat) || strings.HasPrefix(pat, "..") || strings.HasPrefix(pat, "!") {
		return
	}
	matches, err := filepath.Glob(filepath.Join(r.dir, filepath.FromSlash(pat)))
	if err != nil {
		return
	}
	for _, m := range matches {
		rel, err := filepath.Rel(r.dir, m)
		if err != nil || !isDir(m) || !isFile(filepath.Join(m, "package.json")) {
			continue
		}
		rel = filepath.ToSlash(rel)
		r.JS.Dirs = appendNew(r.JS.Dirs, rel+"/")
		r.image("JavaScript workspace "+rel+"/: copied for the install", "package.json")
	}
}

func (r *Rails) readBun() error {
	r.JS.Bun = "1"
	if v, ok, err := r.read(".bun-version"); err != nil {
		return err
	} else if ok && version.MatchString(v) {
		r.JS.Bun = version.FindString(v)
		r.image("Bun "+r.JS.Bun, ".bun-version")
	}
	return nil
}

// readNode: .node-version, .nvmrc, package.json's engines.node.
func (r *Rails) readNode() error {
	for _, f := range []string{".node-version", ".nvmrc"} {
		v, ok, err := r.read(f)
		if err != nil {
			return err
		}
		if ok && version.MatchString(strings.TrimSpace(v)) && !strings.HasPrefix(strings.TrimSpace(v), "lts") {
			r.JS.Node = version.FindString(v)
			r.image("Node "+r.JS.Node, f)
			return nil
		}
	}
	pkg, ok, err := r.read("package.json")
	if err != nil {
		return err
	}
	if ok {
		var p struct {
			Engines struct {
				Node string `json:"node"`
			} `json:"engines"`
		}
		if json.Unmarshal([]byte(pkg), &p) == nil && version.MatchString(p.Engines.Node) {
			r.JS.Node = version.FindString(p.Engines.Node)
			r.image("Node "+r.JS.Node+" (engines.node "+p.Engines.Node+")", "package.json")
			return nil
		}
	}
	r.JS.Node = DefaultNode
	r.assumed("Node "+DefaultNode+" (no .node-version, .nvmrc or engines.node)", "the Dockerfile's NODE_VERSION", true)
	return nil
}
