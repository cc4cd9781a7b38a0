// Package dockerfiles holds the Dockerfile templates shipit ships: Alpine,
// multi-stage, secrets through mounts, caches in cache mounts, no syntax
// line (BuildKit's built-in Dockerfile frontend serves them). shipit init
// writes them into projects; the Rails one is rendered from what init read
// in the app.
package dockerfiles

import (
	"bytes"
	"embed"
	"encoding/json"
	"strings"
	"text/template"
)

// FS holds the templates, named <kind>.Dockerfile, and the Rails one,
// rails.Dockerfile.tmpl.
//
//go:embed *.Dockerfile rails.Dockerfile.tmpl
var FS embed.FS

// Template returns the template of a kind: nginx, go or shipit.
func Template(kind string) ([]byte, error) {
	return FS.ReadFile(kind + ".Dockerfile")
}

// Rails configures the Rails template.
type Rails struct {
	Ruby     string   // Ruby's version: the ruby:<Ruby>-alpine image
	Runtime  []string // Alpine packages the app runs with (the database client, vips)
	Build    []string // Alpine packages gems compile against
	JS       string   // yarn, npm, pnpm or bun: the JavaScript toolchain; "" for none
	Node     string   // node's version, with yarn or npm
	Bun      string   // bun's version
	Berry    bool     // yarn 2 or later
	JSFiles  []string // what the JavaScript install step needs: package.json, the lockfile, …
	JSDirs   []string // directories it needs (.yarn/: yarn berry's release and plugins), each copied as itself
	Bootsnap bool
	Vendor   bool // vendor/ exists: copied before bundle install
	// BundleCopies are the files and directories (with a trailing /) the
	// Gemfile names: path gems, eval_gemfile; copied before bundle install.
	BundleCopies []string
	NoLockfile   bool // the app commits no Gemfile.lock (bundle install then says so)
	// RubyVersionFile: .ruby-version exists, and is copied with the Gemfile
	// (which may read it).
	RubyVersionFile bool
	BundleConfig    bool     // .bundle/config exists: copied where Bundler reads it
	BinRails        bool     // bin/rails exists
	Cmd             []string // the web server's command; default: rails server
	JSInstall       string   `json:"-"`
}

// RenderRails renders the Rails template.
func RenderRails(r Rails) ([]byte, error) {
	src, err := FS.ReadFile("rails.Dockerfile.tmpl")
	if err != nil {
		return nil, err
	}
	rails := "bundle exec rails"
	if r.BinRails {
		rails = "./bin/rails"
	}
	if r.Cmd == nil {
		r.Cmd = append(strings.Fields(rails), "server")
	}
	switch r.JS {
	case "yarn":
		r.JSInstall = "--mount=type=cache,id=yarn,target=/root/.cache/yarn,sharing=locked \\\n    YARN_CACHE_FOLDER=/root/.cache/yarn yarn install --frozen-lockfile"
		if r.Berry {
			r.JSInstall = "--mount=type=cache,id=yarn-berry,target=/root/.yarn/berry/cache,sharing=locked \\\n    yarn install --immutable"
		}
	case "pnpm":
		r.JSInstall = "--mount=type=cache,id=pnpm,target=/root/.local/share/pnpm/store,sharing=locked \\\n    pnpm install --frozen-lockfile"
	case "npm":
		r.JSInstall = "--mount=type=cache,id=npm,target=/root/.npm,sharing=locked \\\n    npm ci"
	case "bun":
		r.JSInstall = "--mount=type=cache,id=bun,target=/root/.bun/install/cache,sharing=locked \\\n    bun install --frozen-lockfile"
	}
	cmd, err := json.Marshal(r.Cmd)
	if err != nil {
		return nil, err
	}
	t, err := template.New("rails").Funcs(template.FuncMap{"join": strings.Join}).Parse(string(src))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, struct {
		Rails
		RailsBin string
		Cmd      string
	}{r, rails, strings.ReplaceAll(string(cmd), ",", ", ")})
	return b.Bytes(), err
}
