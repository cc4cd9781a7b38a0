package scaffold

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// Each test below is one finding of issue 23, on the fixture apps of
// testdata/apps (six real Rails apps, and the layouts of two more).

// TestInitRubyVersionAndBundleConfig: a Gemfile that reads .ruby-version
// parses in the build only if .ruby-version is there; sqlite3's build
// flags live in .bundle/config (lobsters, manyfold, dawarich's layout).
func TestInitRubyVersionAndBundleConfig(t *testing.T) {
	t.Parallel()
	a := runInit(t, "lobsters", Options{})
	df := a.files["Dockerfile"]
	copyRuby := strings.Index(df, "COPY Gemfile Gemfile.lock .ruby-version ./")
	copyConfig := strings.Index(df, "COPY .bundle/config /usr/local/bundle/config")
	install := strings.Index(df, "bundle install --jobs")
	if copyRuby < 0 || copyConfig < 0 || copyRuby > install || copyConfig > install {
		t.Errorf("the Dockerfile does not copy .ruby-version and .bundle/config before bundle install:\n%s", df)
	}
	a.said(t, "Ruby 4.0.0 (from .ruby-version)", "(from .bundle/config)")
	a.checkDockerfile(t, true)

	// An app without them copies neither.
	h := runInit(t, "human-essentials", Options{})
	h.has(t, "Dockerfile", "COPY Gemfile Gemfile.lock .ruby-version ./")
	h.lacks(t, "Dockerfile", ".bundle/config")
	h.checkDockerfile(t, true)
	o := runInit(t, "openstreetmap-website", Options{})
	o.lacks(t, "docker/app/Dockerfile", ".ruby-version", ".bundle/config")
	o.checkDockerfile(t, true)
}

// TestInitJSToolchains: pnpm is pnpm, yarn berry gets its .yarn/ (plugins)
// as a directory, importmap beside a package.json still installs it, and
// vite_rails is named as what needs JavaScript.
func TestInitJSToolchains(t *testing.T) {
	t.Parallel()
	// chatwoot's layout, without its own Dockerfile.
	c := runInit(t, "chatwoot", Options{}, "docker")
	c.has(t, "Dockerfile", "corepack enable pnpm", "pnpm install --frozen-lockfile", "COPY package.json pnpm-lock.yaml ./", "ARG NODE_VERSION=23.7.0")
	c.lacks(t, "Dockerfile", "npm ci")
	c.said(t, "pnpm for vite_rails (from pnpm-lock.yaml)")
	c.checkDockerfile(t, true)

	m := runInit(t, "manyfold", Options{})
	m.has(t, "Dockerfile", "COPY package.json yarn.lock .yarnrc.yml ./\nCOPY .yarn/ ./.yarn/\n", "yarn install --immutable", "ARG NODE_VERSION=24.11.1")
	m.said(t, "yarn for vite_rails (from yarn.lock)")
	m.checkDockerfile(t, true)

	// dawarich's layout without its docker/Dockerfile: importmap, and npm
	// packages for tailwind's plugins.
	d := runInit(t, "dawarich", Options{}, "docker")
	d.has(t, "Dockerfile", "COPY package.json package-lock.json ./", "npm ci", "ARG NODE_VERSION=18.17.1")
	d.said(t, "npm for package.json (from package-lock.json)")
	d.checkDockerfile(t, true)

	// importmap alone: none.
	h := runInit(t, "human-essentials", Options{})
	h.lacks(t, "Dockerfile", "node", "yarn", "npm")

	// mastodon's layout without its Dockerfile: yarn workspaces (the
	// streaming server) are there for the install.
	ms := runInit(t, "mastodon", Options{}, "Dockerfile")
	ms.has(t, "Dockerfile", "COPY streaming/ ./streaming/\n", "yarn install --immutable", "ARG NODE_VERSION=22")
	ms.said(t, "JavaScript workspace streaming/")
	ms.checkDockerfile(t, true)
}

// TestInitGemfileFiles: what the Gemfile reads beside itself (a path gem,
// an eval_gemfile) is copied before bundle install; what the build cannot
// see is said.
func TestInitGemfileFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "shop")
	copyTree(t, "testdata/apps/human-essentials", dir)
	gemfile := readTree(t, dir)["Gemfile"] + "gem \"billing\", path: \"engines/billing\"\neval_gemfile \"Gemfile.plugins\"\ngem \"shared\", :path => \"../shared\"\n"
	writeFile(t, dir, "Gemfile", gemfile)
	writeFile(t, dir, "engines/billing/billing.gemspec", "Gem::Specification.new { |s| s.name = 'billing' }\n")
	writeFile(t, dir, "Gemfile.plugins", "gem 'pundit'\n")
	res, err := Init(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a := &initApp{dir: dir, res: res, files: readTree(t, dir)}
	for _, f := range res.Findings {
		a.findings += f.String() + "\n"
	}
	df := a.files["Dockerfile"]
	install := strings.Index(df, "bundle install --jobs")
	for _, c := range []string{"COPY engines/billing/ ./engines/billing/\n", "COPY Gemfile.plugins ./Gemfile.plugins\n"} {
		if i := strings.Index(df, c); i < 0 || i > install {
			t.Errorf("the Dockerfile does not %q before bundle install:\n%s", c, df)
		}
	}
	a.said(t, "the Gemfile reads ../shared, outside the repository")
	a.checkDockerfile(t, true)

	// Redmine's layout: the Gemfile reads config/database.yml to pick its
	// adapters, and no Gemfile.lock is committed.
	rm := t.TempDir()
	writeFile(t, rm, "Gemfile", "source 'https://rubygems.org'\ngem 'rails', '7.2.2'\n"+
		"database_file = File.join(File.dirname(__FILE__), \"config/database.yml\")\nif File.exist?(database_file)\n  gem 'pg'\nend\n")
	writeFile(t, rm, "config/database.yml", "production:\n  adapter: postgresql\n")
	writeFile(t, rm, "config/routes.rb", "Rails.application.routes.draw do\nend\n")
	res, err = Init(Options{Dir: rm, Name: "redmine"})
	if err != nil {
		t.Fatal(err)
	}
	r := &initApp{dir: rm, res: res, files: readTree(t, rm)}
	for _, f := range res.Findings {
		r.findings += f.String() + "\n"
	}
	r.has(t, "Dockerfile", "COPY config/database.yml ./config/database.yml\n", "COPY Gemfile ./\n")
	r.said(t, "no Gemfile.lock: bundle install in deployment mode")
	r.checkDockerfile(t, true)
}

// TestInitNativePackages: every adapter gets its packages (manyfold has
// three), the gems of one table get their system libraries, and gem groups
// count: openstreetmap's only server gem is in :test.
func TestInitNativePackages(t *testing.T) {
	t.Parallel()
	m := runInit(t, "manyfold", Options{})
	for _, p := range []string{"postgresql-dev", "mariadb-dev", "sqlite-dev"} {
		m.has(t, "Dockerfile", " "+p)
	}
	for _, p := range []string{"postgresql-client", "mariadb-client", "sqlite-libs", "libarchive"} {
		m.has(t, "Dockerfile", " "+p)
	}
	m.checkDockerfile(t, true)

	o := runInit(t, "openstreetmap-website", Options{})
	o.has(t, "docker/app/Dockerfile", " libxml2-dev", " libxml2", " libarchive", " gd", " libbz2", " vips", " postgresql-client")
	o.said(t, `gem puma is only in development or test groups`, `move gem "puma" out of that group in the Gemfile`)

	// Gems only in development or test groups get no packages: lobsters'
	// rspec and foreman are not in the image, nor would a native one be.
	g := gems{}
	for name, runtime := range parseGemfile("gem \"pg\"\ngroup :development, :test do\n  gem \"mysql2\"\nend\ngem \"rmagick\", group: :test\ngroup :production do\n  gem \"ruby-vips\"\nend\n" +
		"gem 'mini_magick', groups: %w[development test]\ngroup :test, optional: true do\n  gem 'ffi-libarchive'\nend\nif ENV['X']\n  gem 'libxml-ruby'\nend\n") {
		g[name] = gem{from: "Gemfile", runtime: runtime}
	}
	if g.has("pg") == "" || g.has("mysql2") != "" || g.has("rmagick") != "" || g.has("ruby-vips") == "" ||
		g.has("mini_magick") != "" || g.has("ffi-libarchive") != "" || g.has("libxml-ruby") == "" {
		t.Errorf("groups read as %v", g)
	}
}

// TestInitSQLiteProduction: lobsters and campfire keep production in
// SQLite files: one replica with a volume, Recreate, the migration and the
// job runners in that pod, no DATABASE_URL.
func TestInitSQLiteProduction(t *testing.T) {
	t.Parallel()
	for app, mount := range map[string]string{"lobsters": "/rails/storage", "once-campfire": "/rails/storage"} {
		a := runInit(t, app, Options{})
		for _, f := range []string{"k8s/base/migrate-job.yaml", "k8s/base/worker.yaml"} {
			if _, ok := a.files[f]; ok {
				t.Errorf("%s: init wrote %s", app, f)
			}
		}
		a.lacks(t, "k8s/base/secret.example.yaml", "DATABASE_URL")
		a.said(t, "production runs on SQLite files in storage/")
		objs := a.render(t, "production")
		dep := objs["Deployment/"+app]
		if get(dep, "spec", "replicas") != 1 || get(dep, "spec", "strategy", "type") != "Recreate" {
			t.Errorf("%s: replicas %v, strategy %v", app, get(dep, "spec", "replicas"), get(dep, "spec", "strategy"))
		}
		if objs["PersistentVolumeClaim/"+app+"-storage"] == nil {
			t.Errorf("%s: no PersistentVolumeClaim", app)
		}
		if objs["Job/"+app+"-migrate"] != nil {
			t.Errorf("%s: a migration Job beside the pod", app)
		}
		inits, cs := containersOf(dep, "initContainers"), containersOf(dep, "containers")
		mounted := func(c map[string]any) bool {
			vm, _ := c["volumeMounts"].([]any)
			return len(vm) == 1 && get(vm[0], "mountPath") == mount && get(vm[0], "name") == "storage"
		}
		if m := inits["migrate"]; m == nil || !mounted(m) {
			t.Errorf("%s: no migration on the volume in the pod: %v", app, m)
		}
		if !mounted(cs["app"]) {
			t.Errorf("%s: the app does not mount the volume", app)
		}
		if len(cs) != 3 { // app, nginx and the job runner
			t.Errorf("%s: containers %v", app, cs)
		}
		for name, c := range cs {
			if name != "app" && name != "nginx" && !mounted(c) {
				t.Errorf("%s: the job runner %s does not mount the volume", app, name)
			}
		}
	}
}

// TestInitJobProcesses: every Procfile process but the web server and
// release gets a Deployment, run through sh -c (env prefixes, $PORT);
// resque and delayed_job without a Procfile are found too.
func TestInitJobProcesses(t *testing.T) {
	t.Parallel()
	h := runInit(t, "human-essentials", Options{})
	objs := h.render(t, "staging")
	for name, want := range map[string][]string{
		"human-essentials-worker": {"sh", "-c", "exec bundle exec rails jobs:work"},
		"human-essentials-clock":  {"sh", "-c", "exec bundle exec clockwork clock.rb"},
	} {
		w := containersOf(objs["Deployment/"+name], "containers")["worker"]
		if got := strList(w["args"]); !slices.Equal(got, want) {
			t.Errorf("%s runs %v, want %v", name, got, want)
		}
	}
	if objs["Deployment/human-essentials-custom-web"] != nil {
		t.Error("custom_web (puma) got a worker Deployment: it is the web server")
	}

	m := runInit(t, "manyfold", Options{})
	objs = m.render(t, "staging")
	for _, q := range []string{"default", "performance"} {
		w := containersOf(objs["Deployment/manyfold-"+q+"-worker"], "containers")["worker"]
		if got := strList(w["args"]); !slices.Equal(got, []string{"sh", "-c", "exec bundle exec sidekiq -C config/workers/" + q + ".yml"}) {
			t.Errorf("%s worker runs %v", q, got)
		}
	}

	// campfire: an env prefix, and Redis is not a worker.
	c := runInit(t, "once-campfire", Options{})
	cs := containersOf(c.render(t, "staging")["Deployment/once-campfire"], "containers")
	if got := strList(cs["workers"]["args"]); !slices.Equal(got, []string{"sh", "-c", "exec env FORK_PER_JOB=false INTERVAL=0.1 bundle exec resque-pool"}) {
		t.Errorf("campfire's workers run %v", got)
	}
	if cs["redis"] != nil {
		t.Error("the Procfile's redis-server became a worker")
	}
	c.said(t, "Procfile redis: runs redis-server")

	// delayed_job without a Procfile (openstreetmap).
	o := runInit(t, "openstreetmap-website", Options{})
	w := containersOf(o.render(t, "staging")["Deployment/openstreetmap-website-worker"], "containers")["worker"]
	if got := strList(w["args"]); !slices.Equal(got, []string{"./bin/rails", "jobs:work"}) {
		t.Errorf("delayed_job runs %v", got)
	}

	// resque without a Procfile.
	r := &Rails{gems: gems{"resque": {from: "Gemfile", runtime: true}}}
	if c := r.jobGem(); c == nil || !slices.Equal(c.Line, []string{"sh", "-c", "exec env QUEUE='*' bundle exec rake resque:work"}) {
		t.Errorf("resque: %+v", c)
	}
	if got := shLine("web: a | b"); got[2] != "web: a | b" {
		t.Errorf("a command line with a pipe is not exec'd: %v", got)
	}
}

// TestInitExistingDockerfiles: docker/Dockerfile is the app's production
// Dockerfile when it copies the app in; a development one is refused, with
// a warning; with a kept Dockerfile init says nothing about the template,
// and finds an entrypoint copied in or behind tini.
func TestInitExistingDockerfiles(t *testing.T) {
	t.Parallel()
	d := runInit(t, "dawarich", Options{})
	if got := d.appDockerfile(t); got != "docker/Dockerfile" {
		t.Errorf("dawarich builds %s, want docker/Dockerfile", got)
	}
	if _, ok := d.files["Dockerfile"]; ok {
		t.Error("init wrote a Dockerfile beside dawarich's docker/Dockerfile")
	}
	d.notSaid(t, "Ruby 3.4.6", "PLATFORMS", "packages", "assumed")
	d.said(t, "WORKDIR /var/app (from docker/Dockerfile)", "ENTRYPOINT bundle exec")
	d.checkDockerfile(t, false)

	o := runInit(t, "openstreetmap-website", Options{})
	if got := o.appDockerfile(t); got != "docker/app/Dockerfile" {
		t.Errorf("openstreetmap builds %s, want the template at docker/app/Dockerfile", got)
	}
	if o.files["Dockerfile"] != readTree(t, "testdata/apps/openstreetmap-website")["Dockerfile"] {
		t.Error("init changed openstreetmap's Dockerfile")
	}
	o.said(t, "warning: Dockerfile is a development image", "shipit.yaml builds docker/app/Dockerfile")
	o.checkDockerfile(t, true)

	c := runInit(t, "once-campfire", Options{})
	c.notSaid(t, "Ruby 3.4.5", "RUBY_VERSION", "assumed Ruby")
	c.checkDockerfile(t, false)

	w := runInit(t, "chatwoot", Options{})
	w.said(t, `ENTRYPOINT /docker/entrypoints/rails.sh ends with exec "$@" (from docker/Dockerfile)`)
	w.notSaid(t, "not found", "assumed it")
	// manyfold's docker/*.dockerfile build from images of their own: said,
	// not used.
	runInit(t, "manyfold", Options{}).said(t, "docker/manyfold.dockerfile is not built: shipit.yaml builds Dockerfile")

	m := runInit(t, "mastodon", Options{})
	m.said(t, "ENTRYPOINT /usr/bin/tini, an init that runs its arguments")
	m.notSaid(t, "not found", "assumed it")
	if got := strList(get(containersOf(m.render(t, "staging")["Deployment/mastodon"], "containers")["app"], "args")); !slices.Equal(got, []string{"./bin/rails", "server"}) {
		t.Errorf("mastodon's web runs %v", got)
	}
}

// TestInitDockerignoreLines: an existing .dockerignore gets /.shipit/ and
// /k8s/, once; one that leaves out what the Dockerfile copies is said.
func TestInitDockerignoreLines(t *testing.T) {
	t.Parallel()
	for _, app := range []string{"once-campfire", "dawarich", "manyfold"} {
		a := runInit(t, app, Options{})
		before := readTree(t, "testdata/apps/"+app)[".dockerignore"]
		if got := a.files[".dockerignore"]; !strings.HasPrefix(got, before) || !strings.HasSuffix(got, "\n/.shipit/\n/k8s/\n") {
			t.Errorf("%s's .dockerignore:\n%s", app, got)
		}
		again, err := Init(Options{Dir: a.dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range again.Files {
			if !f.Skipped {
				t.Errorf("%s: the second run changed %s", app, f.Path)
			}
		}
	}
	dir := t.TempDir()
	copyTree(t, "testdata/apps/lobsters", dir)
	writeFile(t, dir, ".dockerignore", "/.bundle\n/.shipit/\n/k8s/\n")
	res, err := Init(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	said := false
	for _, f := range res.Findings {
		said = said || f.Warning && strings.Contains(f.String(), "copies .bundle/config, which .dockerignore leaves out")
	}
	if !said {
		t.Errorf("no warning that .dockerignore leaves out .bundle/config: %v", res.Findings)
	}
}

// TestInitMuslPlatforms: a lockfile for glibc only is refused by Bundler
// on Alpine: said, with the command that fixes it.
func TestInitMuslPlatforms(t *testing.T) {
	t.Parallel()
	l := runInit(t, "lobsters", Options{})
	l.said(t, "warning: PLATFORMS arm64-darwin, x86_64-linux have no x86_64-linux-musl", "bundle lock --add-platform x86_64-linux-musl")
	for _, app := range []string{"manyfold", "openstreetmap-website", "human-essentials"} {
		runInit(t, app, Options{}).notSaid(t, "PLATFORMS")
	}
}

// TestInitRedis: the app that needs Redis gets REDIS_URL in the example
// Secret; one that does not, none.
func TestInitRedis(t *testing.T) {
	t.Parallel()
	for app, from := range map[string]string{"once-campfire": "Redis (gem resque)", "lobsters": "Redis (Action Cable's production adapter)", "dawarich": "Redis (gem sidekiq)"} {
		a := runInit(t, app, Options{})
		a.has(t, "k8s/base/secret.example.yaml", "REDIS_URL:", "--from-literal=REDIS_URL=")
		a.said(t, from)
	}
	runInit(t, "human-essentials", Options{}).lacks(t, "k8s/base/secret.example.yaml", "REDIS_URL")
}

// TestInitTestCommand: RSpec apps run rspec in CI; an app without
// .ruby-version gets setup-ruby's version from what init read.
func TestInitTestCommand(t *testing.T) {
	t.Parallel()
	for _, app := range []string{"human-essentials", "dawarich", "manyfold"} {
		a := runInit(t, app, Options{})
		a.has(t, ".github/workflows/shipit.yml", "run: bin/rails db:prepare && bundle exec rspec")
		a.lacks(t, ".github/workflows/shipit.yml", "ruby-version:")
		a.lintWorkflow(t, ".github/workflows/shipit.yml")
	}
	o := runInit(t, "openstreetmap-website", Options{})
	// openstreetmap names its Ruby only in its development Dockerfile.
	o.has(t, ".github/workflows/shipit.yml", "run: bin/rails db:prepare test", `ruby-version: "3.3"`)
	o.has(t, "docker/app/Dockerfile", "ARG RUBY_VERSION=3.3\n")
	o.said(t, "Ruby 3.3 (ARG RUBY_VERSION) (from Dockerfile)")
	o.lintWorkflow(t, ".github/workflows/shipit.yml")
}

// TestInitBootSettings: puma's worker count and pidfile from what
// config/puma.rb reads, missing config files said, health endpoints other
// than /up probed.
func TestInitBootSettings(t *testing.T) {
	t.Parallel()
	l := runInit(t, "lobsters", Options{})
	l.has(t, "k8s/base/configmap.yaml", `PUMA_WORKERS: "2"`, "PIDFILE: /tmp/puma.pid")
	l.said(t, "warning: no config/database.yml", "config/database.yml.sample is there")
	c := runInit(t, "once-campfire", Options{})
	c.has(t, "k8s/base/configmap.yaml", `WEB_CONCURRENCY: "2"`, "PIDFILE: /tmp/puma.pid")
	h := runInit(t, "human-essentials", Options{})
	h.lacks(t, "k8s/base/configmap.yaml", "PIDFILE")
	h.notSaid(t, "database.yml")
	o := runInit(t, "openstreetmap-website", Options{})
	o.said(t, "config/example.database.yml is there", "warning: no config/storage.yml")

	for app, path := range map[string]string{"dawarich": "/api/v1/health", "manyfold": "/health", "once-campfire": "/up"} {
		a := runInit(t, app, Options{})
		app := containersOf(a.render(t, "staging")["Deployment/"+app], "containers")["app"]
		for _, p := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
			if got := get(app, p, "httpGet", "path"); got != path {
				t.Errorf("%s: %s on %v, want %s", a.res.Name, p, got, path)
			}
		}
	}
}

// TestInitWording: a service with a Dockerfile gets no Rails lines in its
// .dockerignore; the error for a directory with nothing to build points at
// the user's own Dockerfile.
func TestInitWording(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "Dockerfile", "FROM scratch\n")
	if _, err := Init(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	di := readTree(t, dir)[".dockerignore"]
	if strings.Contains(di, "master.key") || strings.Contains(di, "/tmp/") || !strings.Contains(di, "/.env*") || !strings.Contains(di, "/.shipit/") {
		t.Errorf("a service's .dockerignore:\n%s", di)
	}
	_, err := Init(Options{Dir: t.TempDir()})
	if err == nil || strings.Contains(err.Error(), "dockerfiles/") || !strings.Contains(err.Error(), "Add a Dockerfile that builds your app") {
		t.Errorf("empty directory: %v", err)
	}
}

// TestInitDeploymentsFailFast (issue 21): every Deployment init writes has
// a readiness probe on every container, and a progress deadline within
// release --wait's default 10 minutes, so that a crash-looping release is
// Degraded before the wait gives up.
func TestInitDeploymentsFailFast(t *testing.T) {
	t.Parallel()
	goDir := filepath.Join(t.TempDir(), "svc")
	writeFile(t, goDir, "go.mod", "module example.com/svc\n\ngo 1.26\n")
	apps := []*initApp{runInit(t, "manyfold", Options{}), runInit(t, "lobsters", Options{}), runInit(t, "human-essentials", Options{})}
	if _, err := Init(Options{Dir: goDir}); err != nil {
		t.Fatal(err)
	}
	apps = append(apps, &initApp{dir: goDir, files: readTree(t, goDir)})
	for _, a := range apps {
		deployments := 0
		for key, o := range a.render(t, "production") {
			if !strings.HasPrefix(key, "Deployment/") {
				continue
			}
			deployments++
			d, _ := get(o, "spec", "progressDeadlineSeconds").(int)
			if d <= 0 || d > 540 {
				t.Errorf("%s: progressDeadlineSeconds %v, want at most 540 (release --wait waits 600)", key, get(o, "spec", "progressDeadlineSeconds"))
			}
			for name, c := range containersOf(o, "containers") {
				if c["readinessProbe"] == nil {
					t.Errorf("%s: container %s has no readiness probe", key, name)
				}
			}
		}
		if deployments == 0 {
			t.Errorf("%s: no Deployment", a.dir)
		}
	}
}

// TestInitPreviewsProject (issue 20): previews run in an AppProject of
// their own: this repository, namespaces <app>-* only, and nothing
// cluster-scoped but their namespace.
func TestInitPreviewsProject(t *testing.T) {
	t.Parallel()
	a := runInit(t, "human-essentials", Options{RepoURL: "https://git.example.com/he.git"})
	var set, proj map[string]any
	if err := yaml.Unmarshal([]byte(a.files["k8s/argocd/previews.yaml"]), &set); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(a.files["k8s/argocd/previews-project.yaml"]), &proj); err != nil {
		t.Fatal(err)
	}
	name := get(proj, "metadata", "name")
	if proj["kind"] != "AppProject" || name != "human-essentials-previews" || get(proj, "metadata", "namespace") != "argocd" {
		t.Fatalf("previews-project.yaml:\n%s", a.files["k8s/argocd/previews-project.yaml"])
	}
	if got := get(set, "spec", "template", "spec", "project"); got != name {
		t.Errorf("the ApplicationSet's Applications are in project %v, want %v", got, name)
	}
	if got := strList(get(proj, "spec", "sourceRepos")); !slices.Equal(got, []string{"https://git.example.com/he.git"}) {
		t.Errorf("sourceRepos %v", got)
	}
	var dests []string
	for _, d := range get(proj, "spec", "destinations").([]any) {
		if get(d, "server") != "https://kubernetes.default.svc" {
			t.Errorf("destination %v", d)
		}
		dests = append(dests, get(d, "namespace").(string))
	}
	// One allowing pattern: in Argo CD a deny pattern (!ns) beside it would
	// match, and allow, every other namespace.
	if !slices.Equal(dests, []string{"human-essentials-*"}) {
		t.Errorf("destinations %v", dests)
	}
	wl, _ := get(proj, "spec", "clusterResourceWhitelist").([]any)
	// Only Namespace, for CreateNamespace (no name pattern: Argo CD v3.2's
	// AppProject has no such field, and kubectl apply refuses it).
	if len(wl) != 1 || get(wl[0], "kind") != "Namespace" || get(wl[0], "group") != "" || len(wl[0].(map[string]any)) != 2 {
		t.Errorf("clusterResourceWhitelist %v: want only Namespace", wl)
	}
	if _, ok := get(proj, "spec", "clusterResourceBlacklist").([]any); ok {
		t.Error("a blacklist beside the whitelist")
	}
	// With the Image Updater there are no previews, and no project.
	u := runInit(t, "human-essentials", Options{ImageUpdater: true})
	if _, ok := u.files["k8s/argocd/previews-project.yaml"]; ok {
		t.Error("a previews project without previews")
	}
}

// TestInitInASubdirectory (issue 25): in a monorepo's services/shop, the
// Applications' paths and the Image Updater's write-back target start at
// the repository's root (the target with a leading /, which the updater
// does not join to the Application's path).
func TestInitInASubdirectory(t *testing.T) {
	t.Parallel()
	for _, updater := range []bool{false, true} {
		a := runInit(t, "human-essentials", Options{RepoPath: "services/shop", ImageUpdater: updater})
		for _, env := range []string{"staging", "production"} {
			a.has(t, "k8s/argocd/"+env+".yaml", "    path: services/shop/k8s/overlays/"+env+"\n")
		}
		if updater {
			a.has(t, "k8s/argocd/image-updater.yaml", `writeBackTarget: "kustomization:/services/shop/k8s/overlays/staging"`, "  namespace: argocd\n")
		} else {
			a.has(t, "k8s/argocd/previews.yaml", "          - path: services/shop/k8s/previews/*\n")
		}
	}
	root := runInit(t, "human-essentials", Options{ImageUpdater: true})
	root.has(t, "k8s/argocd/staging.yaml", "    path: k8s/overlays/staging\n")
	root.has(t, "k8s/argocd/image-updater.yaml", `writeBackTarget: "kustomization:/k8s/overlays/staging"`)
	if _, err := Init(Options{Dir: root.dir, RepoPath: "a b"}); err == nil {
		t.Error("a path with a space went into the Applications")
	}
}
