package scaffold

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/shipit-dev/shipit/internal/confine"
)

// Defaults init falls back on, and says so.
const (
	DefaultRuby = "3.4"
	DefaultNode = "24"
)

// Finding is one thing init found out, or assumed, and where.
type Finding struct {
	What    string `json:"what"`
	From    string `json:"from,omitempty"` // the file it was read from
	Assumed bool   `json:"assumed,omitempty"`
	Change  string `json:"change,omitempty"` // where to change it, when assumed
}

func (f Finding) String() string {
	s := f.What
	if f.From != "" {
		s += " (from " + f.From + ")"
	}
	if f.Assumed {
		s = "assumed " + s
		if f.Change != "" {
			s += "; change it in " + f.Change
		}
	}
	return s
}

// Rails is what init reads from a Rails app.
type Rails struct {
	Ruby     string
	DB       DB
	JS       JS
	Bootsnap bool
	Vips     bool
	BinRails bool              // bin/rails exists
	BinJobs  bool              // bin/jobs exists (Solid Queue)
	Worker   *Command          // the job runner, when there is one
	Health   bool              // routes.rb mounts Rails' /up
	Findings []Finding         // what was found, in order
	gems     map[string]string // every gem in Gemfile.lock and the Gemfile: where it was found
}

// DB is the database adapter's Alpine packages.
type DB struct {
	Gem     string
	Build   string // -dev packages the gem compiles against
	Runtime string // what the app needs to run (and the db client Rails uses for structure.sql)
}

// JS is the app's JavaScript toolchain: none for importmap.
type JS struct {
	Manager string // yarn, npm or bun; "" for none
	Node    string // node's version (not needed with bun)
	Bun     string // bun's version
	Berry   bool   // yarn 2+ (yarn.lock has __metadata)
	Lock    string // the lockfile
}

// Command is something to run from the app image: a rails command, a
// program of the bundle, or a script or command line of the app's.
type Command struct {
	Rails  []string // a rails command: ["server"], ["db:prepare"]
	Bundle []string // a program of the bundle: ["sidekiq"]
	Line   []string // a command line as it is (a Procfile entry, bin/jobs)
	Source string   // what it was found from, for the worker
}

var adapters = []DB{
	{Gem: "pg", Build: "postgresql-dev", Runtime: "postgresql-client"},
	{Gem: "mysql2", Build: "mariadb-dev", Runtime: "mariadb-client"},
	{Gem: "trilogy", Build: "", Runtime: "mariadb-client"},
	{Gem: "sqlite3", Build: "sqlite-dev", Runtime: "sqlite-libs"},
}

var (
	gemLine     = regexp.MustCompile(`(?m)^\s*gem\s*\(?\s*["']([A-Za-z0-9_.-]+)["']`)
	lockSpec    = regexp.MustCompile(`(?m)^ {4}([A-Za-z0-9_.-]+) \(`)
	lockDep     = regexp.MustCompile(`(?m)^ {2}([A-Za-z0-9_.-]+)(?: |!|$)`)
	gemfileRuby = regexp.MustCompile(`(?m)^\s*ruby\s*\(?\s*["']([0-9][0-9A-Za-z.]*)["']`)
	lockRuby    = regexp.MustCompile(`(?m)^RUBY VERSION\s*\n\s+ruby ([0-9][0-9.]*)`)
	version     = regexp.MustCompile(`[0-9]+(\.[0-9]+){0,2}`)
	healthRoute = regexp.MustCompile(`rails/health#show|get\s*\(?\s*["']/?up["']`)
	procWorker  = regexp.MustCompile(`(?m)^(worker|jobs|sidekiq):\s*(.+?)\s*$`)
)

// ReadRails reads what init needs from the Rails app in dir. Every file is
// read confined to dir: a symbolic link or a file past confine.MaxFileSize
// is an error naming it.
func ReadRails(dir string) (*Rails, error) {
	r := &Rails{gems: map[string]string{}}
	read := func(rel string) (string, bool, error) {
		b, err := confine.ReadFile(filepath.Join(dir, rel))
		if errors.Is(err, os.ErrNotExist) {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", rel, err)
		}
		return string(b), true, nil
	}
	found := func(what, from string) { r.Findings = append(r.Findings, Finding{What: what, From: from}) }
	assumed := func(what, change string) {
		r.Findings = append(r.Findings, Finding{What: what, Assumed: true, Change: change})
	}

	gemfile, _, err := read("Gemfile")
	if err != nil {
		return nil, err
	}
	for _, m := range gemLine.FindAllStringSubmatch(gemfile, -1) {
		r.gems[m[1]] = "Gemfile"
	}
	lock, _, err := read("Gemfile.lock")
	if err != nil {
		return nil, err
	}
	for _, re := range []*regexp.Regexp{lockSpec, lockDep} {
		for _, m := range re.FindAllStringSubmatch(lock, -1) {
			if r.gems[m[1]] == "" {
				r.gems[m[1]] = "Gemfile.lock"
			}
		}
	}

	// Ruby: .ruby-version, the Gemfile's ruby line, Gemfile.lock.
	rv, ok, err := read(".ruby-version")
	if err != nil {
		return nil, err
	}
	switch m := gemfileRuby.FindStringSubmatch(gemfile); {
	case ok && version.MatchString(rv):
		r.Ruby = version.FindString(strings.TrimPrefix(strings.TrimSpace(rv), "ruby-"))
		found("Ruby "+r.Ruby, ".ruby-version")
	case m != nil:
		r.Ruby = version.FindString(m[1])
		found("Ruby "+r.Ruby, "Gemfile")
	case lockRuby.MatchString(lock):
		r.Ruby = lockRuby.FindStringSubmatch(lock)[1]
		found("Ruby "+r.Ruby, "Gemfile.lock")
	default:
		r.Ruby = DefaultRuby
		assumed("Ruby "+DefaultRuby+" (no .ruby-version, no ruby line in the Gemfile or Gemfile.lock)", "the Dockerfile's RUBY_VERSION")
	}

	// The database adapter.
	for _, a := range adapters {
		if from := r.gems[a.Gem]; from != "" {
			r.DB = a
			found(fmt.Sprintf("database adapter %s: packages %s", a.Gem, strings.TrimSpace(a.Build+" "+a.Runtime)), from)
			break
		}
	}
	if r.DB.Gem == "" {
		found("no database adapter gem (pg, mysql2, trilogy, sqlite3): no database packages", "Gemfile")
	}

	if from := r.gems["bootsnap"]; from != "" {
		r.Bootsnap = true
		found("bootsnap: its cache is precompiled in the image", from)
	}
	for _, g := range []string{"image_processing", "ruby-vips"} {
		if from := r.gems[g]; from != "" && !r.Vips {
			r.Vips = true
			found(g+": libvips in the image", from)
		}
	}
	if err := r.readJS(dir, read, found, assumed); err != nil {
		return nil, err
	}

	r.BinRails = isFile(filepath.Join(dir, "bin", "rails"))
	r.BinJobs = isFile(filepath.Join(dir, "bin", "jobs"))

	// The job runner: a Procfile's worker first (the team's own command),
	// then the gems.
	procfile, ok, err := read("Procfile")
	if err != nil {
		return nil, err
	}
	if m := procWorker.FindStringSubmatch(procfile); ok && m != nil {
		r.Worker = &Command{Line: strings.Fields(m[2]), Source: "Procfile " + m[1] + ":"}
	} else {
		switch {
		case r.gems["sidekiq"] != "":
			r.Worker = &Command{Bundle: []string{"sidekiq"}, Source: "gem sidekiq"}
		case r.gems["solid_queue"] != "":
			if r.BinJobs {
				r.Worker = &Command{Line: []string{"./bin/jobs"}, Source: "gem solid_queue"}
			} else {
				r.Worker = &Command{Rails: []string{"solid_queue:start"}, Source: "gem solid_queue"}
			}
		case r.gems["good_job"] != "":
			r.Worker = &Command{Bundle: []string{"good_job", "start"}, Source: "gem good_job"}
		}
	}
	if r.Worker != nil {
		from := "Procfile"
		if g, ok := strings.CutPrefix(r.Worker.Source, "gem "); ok {
			from = r.gems[g]
		}
		found(fmt.Sprintf("job runner (%s): a worker Deployment", r.Worker.Source), from)
	}

	routes, ok, err := read(filepath.Join("config", "routes.rb"))
	if err != nil {
		return nil, err
	}
	r.Health = ok && healthRoute.MatchString(routes)
	if r.Health {
		found("health check /up: HTTP readiness, liveness and startup probes", "config/routes.rb")
	} else {
		found("no /up route: TCP probes (add `get \"up\" => \"rails/health#show\"` for HTTP ones)", "config/routes.rb")
	}
	return r, nil
}

func (r *Rails) readJS(dir string, read func(string) (string, bool, error), found func(string, string), assumed func(string, string)) error {
	bundling := r.gems["jsbundling-rails"] != "" || r.gems["cssbundling-rails"] != ""
	if importmap := r.gems["importmap-rails"]; importmap != "" && !bundling {
		found("importmap-rails: no JavaScript toolchain", importmap)
		return nil
	}
	if !bundling && !isFile(filepath.Join(dir, "package.json")) {
		found("no jsbundling-rails, cssbundling-rails or package.json: no JavaScript toolchain", "Gemfile")
		return nil
	}
	for _, l := range []struct{ file, manager string }{
		{"bun.lock", "bun"}, {"bun.lockb", "bun"}, {"yarn.lock", "yarn"}, {"package-lock.json", "npm"},
	} {
		if isFile(filepath.Join(dir, l.file)) {
			r.JS.Manager, r.JS.Lock = l.manager, l.file
			break
		}
	}
	if r.JS.Manager == "" {
		r.JS.Manager = "npm"
		assumed("npm (no yarn.lock, package-lock.json or bun.lock)", "the Dockerfile's JavaScript step")
	} else {
		found(r.JS.Manager+" for jsbundling/cssbundling", r.JS.Lock)
	}
	if r.JS.Manager == "yarn" {
		lock, _, err := read("yarn.lock")
		if err != nil {
			return err
		}
		r.JS.Berry = strings.Contains(lock, "__metadata:")
	}
	if r.JS.Manager == "bun" {
		r.JS.Bun = "1"
		if v, ok, err := read(".bun-version"); err != nil {
			return err
		} else if ok && version.MatchString(v) {
			r.JS.Bun = version.FindString(v)
			found("Bun "+r.JS.Bun, ".bun-version")
		}
		return nil
	}
	for _, f := range []string{".node-version", ".nvmrc"} {
		v, ok, err := read(f)
		if err != nil {
			return err
		}
		if ok && version.MatchString(strings.TrimSpace(v)) && !strings.HasPrefix(strings.TrimSpace(v), "lts") {
			r.JS.Node = version.FindString(v)
			found("Node "+r.JS.Node, f)
			return nil
		}
	}
	pkg, ok, err := read("package.json")
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
			found("Node "+r.JS.Node+" (engines.node "+p.Engines.Node+")", "package.json")
			return nil
		}
	}
	r.JS.Node = DefaultNode
	assumed("Node "+DefaultNode+" (no .node-version, .nvmrc or engines.node)", "the Dockerfile's NODE_VERSION")
	return nil
}

func isFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}
