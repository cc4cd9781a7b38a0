package scaffold

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadRails(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		files   map[string]string
		check   func(*Rails) bool
		finding string // a line init prints
	}{
		{"Ruby from the Gemfile", map[string]string{"Gemfile": "ruby \"3.3.5\"\ngem 'rails'\n"},
			func(r *Rails) bool { return r.Ruby == "3.3.5" }, "Ruby 3.3.5 (from Gemfile)"},
		{"no Ruby anywhere: assumed and said", map[string]string{"Gemfile": "gem 'rails'\n"},
			func(r *Rails) bool { return r.Ruby == DefaultRuby }, "assumed Ruby " + DefaultRuby},
		{"node from engines", map[string]string{"Gemfile": "gem 'jsbundling-rails'\n", "package.json": `{"engines": {"node": ">=20.9 <23"}}`, "package-lock.json": "{}"},
			func(r *Rails) bool { return r.JS.Manager == "npm" && r.JS.Node == "20.9" }, "Node 20.9 (engines.node >=20.9 <23) (from package.json)"},
		{"an lts alias in .nvmrc is not a version", map[string]string{"Gemfile": "gem 'cssbundling-rails'\n", ".nvmrc": "lts/iron\n", "yarn.lock": "__metadata:\n"},
			func(r *Rails) bool { return r.JS.Manager == "yarn" && r.JS.Berry && r.JS.Node == DefaultNode }, "assumed Node " + DefaultNode},
		{"bun", map[string]string{"Gemfile": "gem 'jsbundling-rails'\n", "bun.lockb": "x", ".node-version": "22\n"},
			func(r *Rails) bool { return r.JS.Manager == "bun" && r.JS.Node == "" && r.JS.Bun != "" }, "bun for jsbundling-rails (from bun.lockb)"},
		{"trilogy, good_job, no /up", map[string]string{"Gemfile": "gem 'trilogy'\ngem 'good_job'\n", "config/routes.rb": "root 'a#b'\n"},
			func(r *Rails) bool {
				return slices.Equal(r.Runtime, []string{"mariadb-client"}) && len(r.Build) == 0 && len(r.Workers) == 1 && r.Workers[0].Command.Bundle[0] == "good_job" && r.Health == ""
			}, "no health route"},
		{"sqlite3", map[string]string{"Gemfile": "gem \"sqlite3\", \">= 2.1\"\n"},
			func(r *Rails) bool { return slices.Equal(r.Build, []string{"sqlite-dev"}) }, "database adapter sqlite3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for p, s := range c.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r, err := ReadRails(dir)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, f := range r.Findings {
				lines = append(lines, f.String())
			}
			all := strings.Join(lines, "\n")
			if !c.check(r) || !strings.Contains(all, c.finding) {
				t.Errorf("read %+v\nfindings:\n%s", r, all)
			}
		})
	}

	// A Gemfile that is a link out of the repository is refused, by name.
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "Gemfile")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRails(dir); err == nil || !strings.Contains(err.Error(), "Gemfile") {
		t.Errorf("a linked Gemfile: %v", err)
	}
}
