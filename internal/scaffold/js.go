package scaffold

import (
	"encoding/json"
	"strings"
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
	if r.JS.Manager == "bun" {
		return r.readBun()
	}
	return r.readNode()
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
