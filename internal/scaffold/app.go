package scaffold

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shipit-dev/shipit/internal/confine"
	"github.com/shipit-dev/shipit/internal/lazyre"
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
	Change  string `json:"change,omitempty"` // where to change it, when assumed; what to do, with a warning
	// Warning: what init read will not work as it is (a build that fails,
	// a pod that cannot start); Change says what to do.
	Warning bool `json:"warning,omitempty"`
	image   bool // about the Dockerfile init writes: not said when the app's own is kept
}

func (f Finding) String() string {
	s := f.What
	if f.From != "" {
		s += " (from " + f.From + ")"
	}
	if f.Warning {
		return s + ": " + f.Change
	}
	if f.Assumed {
		s = "assumed " + s
		if f.Change != "" {
			s += "; change it in " + f.Change
		}
	}
	return s
}

// JS is the app's JavaScript toolchain: none for importmap alone.
type JS struct {
	Manager string   // yarn, npm, pnpm or bun; "" for none
	Node    string   // node's version (not needed with bun)
	Bun     string   // bun's version
	Berry   bool     // yarn 2+ (yarn.lock has __metadata)
	Lock    string   // the lockfile
	For     string   // what needs it: jsbundling-rails, vite_rails, package.json
	Dirs    []string // directories the install reads: workspaces, patches/
}

// Command is something to run from the app image: a rails command, a
// program of the bundle, or a script or command line of the app's.
type Command struct {
	Rails  []string // a rails command: ["server"], ["db:prepare"]
	Bundle []string // a program of the bundle: ["sidekiq"]
	Line   []string // a command line as it is (sh -c and a Procfile entry, bin/jobs)
	Source string   // what it was found from, for the worker
}

var (
	gemfileRuby = lazyre.New(`(?m)^\s*ruby\s*\(?\s*["']([0-9][0-9A-Za-z.]*)["']`)
	lockRuby    = lazyre.New(`(?m)^RUBY VERSION\s*\n\s+ruby ([0-9][0-9.]*)`)
	version     = lazyre.New(`[0-9]+(\.[0-9]+){0,2}`)
)

// Rails is what init reads from a Rails app.
type Rails struct {
	Ruby            string
	RubyVersionFile bool     // .ruby-version exists: the Gemfile may read it, so it is copied before bundle install
	Lockfile        bool     // Gemfile.lock exists
	BundleConfig    bool     // .bundle/config exists (build flags of gems): copied too
	BundleCopies    []string // what the Gemfile reads beside itself (path gems, eval_gemfile): copied too
	Build           []string // Alpine packages gems compile against
	Runtime         []string // Alpine packages the app runs with
	JS              JS
	Bootsnap        bool
	BinRails        bool      // bin/rails exists
	BinJobs         bool      // bin/jobs exists (Solid Queue)
	Workers         []Process // the job runners: one Deployment each
	Release         *Command  // the Procfile's release: (the migration), when there is one
	Health          string    // the health endpoint's path; "" for none
	SQLite          *SQLite   // production runs on SQLite files
	Redis           string    // what needs Redis ("" when nothing does)
	RSpec           bool      // rspec-rails and spec/: the CI test step runs rspec
	Puma            Puma      // what config/puma.rb reads from the environment
	Findings        []Finding // what was found, in order
	gems            gems      // the bundle
	lock            lockfile  // Gemfile.lock
	read            readFunc  // reads a file of the app, confined
	dir             string
}

// Process is a job runner: a Procfile entry, or the one a gem implies.
type Process struct {
	Name    string // the Procfile's name, or "worker"
	Command Command
}

// SQLite is where a production SQLite database lives.
type SQLite struct {
	Dir  string // the directory of the database files, relative to the app: the volume's mount
	From string // the file that says so
}

// Puma is what config/puma.rb reads from the environment.
type Puma struct {
	Workers string // the variable that sets the number of workers (WEB_CONCURRENCY)
	Pidfile bool   // PIDFILE: the pidfile's path
}

// readFunc reads a file of the app: its content and whether it exists.
type readFunc func(rel string) (string, bool, error)

// ReadRails reads what init needs from the Rails app in dir. Every file is
// read confined to dir: a symbolic link or a file past confine.MaxFileSize
// is an error naming it.
func ReadRails(dir string) (*Rails, error) {
	r := &Rails{dir: dir, read: func(rel string) (string, bool, error) {
		b, err := confine.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if errors.Is(err, os.ErrNotExist) {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", rel, err)
		}
		return string(b), true, nil
	}}
	for _, step := range []func() error{r.readBundle, r.readGemfileFiles, r.readRuby, r.readNatives, r.readJSToolchain,
		r.readDatabase, r.readProcesses, r.readRedis, r.readBoot, r.readHealth} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Rails) found(what, from string) {
	r.Findings = append(r.Findings, Finding{What: what, From: from})
}

// image is a finding about what goes into the image init writes: it is
// not said when the app's own Dockerfile is kept.
func (r *Rails) image(what, from string) {
	r.Findings = append(r.Findings, Finding{What: what, From: from, image: true})
}

func (r *Rails) assumed(what, change string, image bool) {
	r.Findings = append(r.Findings, Finding{What: what, Assumed: true, Change: change, image: image})
}

func (r *Rails) exists(rel string) bool { return isFile(filepath.Join(r.dir, filepath.FromSlash(rel))) }

func (r *Rails) isDir(rel string) bool { return isDir(filepath.Join(r.dir, filepath.FromSlash(rel))) }

// readBundle reads the Gemfile and Gemfile.lock, and the lockfile's
// platforms: Bundler on Alpine (musl) refuses a frozen lockfile that has
// neither ruby nor x86_64-linux-musl.
func (r *Rails) readBundle() error {
	gemfile, _, err := r.read("Gemfile")
	if err != nil {
		return err
	}
	lock, ok, err := r.read("Gemfile.lock")
	if err != nil {
		return err
	}
	r.Lockfile = ok
	if !ok {
		r.Findings = append(r.Findings, Finding{Warning: true, image: true, From: "Gemfile",
			What:   "no Gemfile.lock: bundle install in deployment mode (BUNDLE_DEPLOYMENT=1) refuses to run without one",
			Change: "run `bundle lock --add-platform x86_64-linux-musl` and commit Gemfile.lock"})
	}
	r.lock = parseLock(lock)
	r.gems = readGems(gemfile, r.lock)
	r.BundleConfig = r.exists(".bundle/config")
	if r.BundleConfig {
		r.image("Bundler settings (gem build flags): copied before bundle install", ".bundle/config")
	}
	if ok && len(r.lock.platforms) > 0 && !slices.Contains(r.lock.platforms, "ruby") && !slices.Contains(r.lock.platforms, "x86_64-linux-musl") {
		r.Findings = append(r.Findings, Finding{image: true, From: "Gemfile.lock", Warning: true,
			What:   "PLATFORMS " + strings.Join(r.lock.platforms, ", ") + " have no x86_64-linux-musl (nor ruby): bundle install on Alpine refuses the lockfile",
			Change: "run `bundle lock --add-platform x86_64-linux-musl` (and aarch64-linux-musl for arm64 nodes), and commit Gemfile.lock"})
	}
	return nil
}

// readRuby: .ruby-version, the Gemfile's ruby line, Gemfile.lock.
func (r *Rails) readRuby() error {
	gemfile, _, err := r.read("Gemfile")
	if err != nil {
		return err
	}
	lock, _, err := r.read("Gemfile.lock")
	if err != nil {
		return err
	}
	rv, ok, err := r.read(".ruby-version")
	if err != nil {
		return err
	}
	r.RubyVersionFile = ok
	switch m := gemfileRuby.FindStringSubmatch(gemfile); {
	case ok && version.MatchString(rv):
		r.Ruby = version.FindString(strings.TrimPrefix(strings.TrimSpace(rv), "ruby-"))
		r.image("Ruby "+r.Ruby, ".ruby-version")
	case m != nil:
		r.Ruby = version.FindString(m[1])
		r.image("Ruby "+r.Ruby, "Gemfile")
	case lockRuby.MatchString(lock):
		r.Ruby = lockRuby.FindStringSubmatch(lock)[1]
		r.image("Ruby "+r.Ruby, "Gemfile.lock")
	case r.dockerfileRuby() != "":
		// openstreetmap's development Dockerfile: ARG RUBY_VERSION=3.3
	default:
		r.Ruby = DefaultRuby
		r.assumed("Ruby "+DefaultRuby+" (no .ruby-version, no ruby line in the Gemfile or Gemfile.lock)", "the Dockerfile's RUBY_VERSION", true)
	}
	return nil
}

// readNatives gives every gem of the production bundle that needs system
// libraries its packages (natives), and says which gems only development
// or test groups have.
func (r *Rails) readNatives() error {
	var adapters []string
	for _, n := range natives {
		from := r.gems.has(n.gem)
		if from == "" {
			continue
		}
		r.Build = appendNew(r.Build, n.build...)
		r.Runtime = appendNew(r.Runtime, n.runtime...)
		what := "gem " + n.gem
		if n.adapter {
			what = "database adapter " + n.gem
			adapters = append(adapters, n.gem)
		}
		r.image(what+": packages "+strings.Join(append(slices.Clone(n.build), n.runtime...), " "), from)
	}
	if len(adapters) == 0 {
		r.image("no database adapter gem ("+adapterGems+"): no database packages", "Gemfile")
	}
	if from := r.gems.has("bootsnap"); from != "" {
		r.Bootsnap = true
		r.image("bootsnap: its cache is precompiled in the image", from)
	}
	servers := []string{"puma", "unicorn", "falcon", "passenger", "thin", "pitchfork"}
	for _, s := range servers {
		if r.gems.has(s) != "" {
			return nil
		}
	}
	for _, s := range servers {
		if from := r.gems.devOnly(s); from != "" {
			r.Findings = append(r.Findings, Finding{From: from, Warning: true, image: true,
				What:   "gem " + s + " is only in development or test groups: the image (BUNDLE_WITHOUT=development:test) has no web server",
				Change: "move gem \"" + s + "\" out of that group in the Gemfile"})
			return nil
		}
	}
	return nil
}

var argRuby = lazyre.New(`(?m)^\s*ARG\s+RUBY_VERSION=["']?([0-9]+(?:\.[0-9]+){0,2})`)

// dockerfileRuby takes Ruby's version from the app's own Dockerfile's
// ARG RUBY_VERSION, when nothing else names it.
func (r *Rails) dockerfileRuby() string {
	for _, f := range railsDockerfiles {
		b, _, err := r.read(f)
		if m := argRuby.FindStringSubmatch(b); err == nil && m != nil {
			r.Ruby = m[1]
			r.image("Ruby "+r.Ruby+" (ARG RUBY_VERSION)", f)
			return r.Ruby
		}
	}
	return ""
}

func appendNew(l []string, v ...string) []string {
	for _, s := range v {
		if !slices.Contains(l, s) {
			l = append(l, s)
		}
	}
	return l
}

func isFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}
