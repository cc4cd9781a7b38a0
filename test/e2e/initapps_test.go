package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// railsEntrypoint is Rails' own bin/docker-entrypoint: it ends by running
// its arguments.
const railsEntrypoint = `#!/bin/bash -e
if [ -z "${LD_PRELOAD+x}" ]; then
    LD_PRELOAD=$(find /usr/lib -name libjemalloc.so.2 -print -quit)
    export LD_PRELOAD
fi
if [ "${@: -2:1}" == "./bin/rails" ] && [ "${@: -1:1}" == "server" ]; then
  ./bin/rails db:prepare
fi
exec "${@}"
`

// debianDockerfile is modeled on the Dockerfile Rails 7.2 generates: the
// final stage has no name, the app lives in /rails, and the entrypoint is
// a script of the app's.
const debianDockerfile = `# syntax=docker/dockerfile:1
ARG RUBY_VERSION=3.4.4
FROM docker.io/library/ruby:$RUBY_VERSION-slim AS base
WORKDIR /rails
ENV RAILS_ENV="production" BUNDLE_DEPLOYMENT="1"

FROM base AS build
RUN apt-get update -qq && apt-get install --no-install-recommends -y build-essential git libpq-dev
COPY Gemfile Gemfile.lock ./
RUN bundle install
COPY . .
RUN SECRET_KEY_BASE_DUMMY=1 ./bin/rails assets:precompile

FROM base
COPY --from=build /usr/local/bundle /usr/local/bundle
COPY --from=build /rails /rails
USER 1000:1000
ENTRYPOINT ["/rails/bin/docker-entrypoint"]
EXPOSE 3000
CMD ["./bin/rails", "server"]
`

// alpineDockerfile is modeled on a large app's: Alpine, a named final
// stage among others, and ENTRYPOINT ["bundle", "exec"].
const alpineDockerfile = `ARG RUBY_VERSION=4.0.0
FROM ruby:${RUBY_VERSION}-alpine AS builder
ARG APP_HOME=/opt/app
WORKDIR ${APP_HOME}
COPY . .
RUN bundle install

FROM ruby:${RUBY_VERSION}-alpine AS production
ARG APP_HOME=/opt/app
WORKDIR ${APP_HOME}
COPY --from=builder /opt/app /opt/app
ENTRYPOINT ["bundle", "exec"]
CMD ["rails", "server", "-b", "0.0.0.0"]

FROM production AS development
RUN apk add build-base
`

type initApp struct {
	files map[string]string
	// what init must make of it
	ruby                 string // "" when the app has its own Dockerfile
	dbBuild, dbNot       string
	js                   []string // in the Dockerfile
	noJS                 bool
	bootsnap, vips       bool
	target               string // "" for none
	workdir              string
	web, migrate, worker []string
	health               bool
}

func TestInitReadsTheApp(t *testing.T) {
	t.Parallel()
	apps := map[string]initApp{
		// A Rails 7.2 app: Postgres, Sidekiq, importmap and tailwind, and
		// its own Debian Dockerfile.
		"shop": {
			files: map[string]string{
				"Gemfile": "source \"https://rubygems.org\"\nruby file: \".ruby-version\"\ngem \"rails\", \"~> 7.2\"\ngem \"pg\"\ngem \"sidekiq\"\n" +
					"gem \"importmap-rails\"\ngem \"tailwindcss-rails\"\ngem \"bootsnap\", require: false\n",
				"Gemfile.lock":          "GEM\n  remote: https://rubygems.org/\n  specs:\n    pg (1.5.9)\n    sidekiq (7.3.9)\n    importmap-rails (2.1.0)\n\nDEPENDENCIES\n  pg\n  sidekiq\n\nRUBY VERSION\n   ruby 3.4.4p34\n",
				".ruby-version":         "3.4.4\n",
				"config/routes.rb":      "Rails.application.routes.draw do\n  get \"up\" => \"rails/health#show\", as: :rails_health_check\nend\n",
				"bin/rails":             "#!/usr/bin/env ruby\n",
				"bin/docker-entrypoint": railsEntrypoint,
				"Dockerfile":            debianDockerfile,
			},
			target: "", workdir: "/rails",
			web: []string{"./bin/rails", "server"}, migrate: []string{"./bin/rails", "db:prepare"}, worker: []string{"bundle", "exec", "sidekiq"},
			health: true,
		},
		// A large app on Ruby 4.0: an Alpine Dockerfile with ENTRYPOINT
		// ["bundle", "exec"], GoodJob.
		"forum": {
			files: map[string]string{
				"Gemfile":          "source 'https://rubygems.org'\nruby '4.0.0'\ngem 'rails'\ngem 'mysql2'\ngem 'good_job'\n",
				"Gemfile.lock":     "GEM\n  specs:\n    mysql2 (0.5.6)\n    good_job (4.0.0)\n",
				"config/routes.rb": "Rails.application.routes.draw do\n  root 'home#index'\nend\n",
				"bin/rails":        "#!/usr/bin/env ruby\n",
				"Dockerfile":       alpineDockerfile,
			},
			target: "production", workdir: "/opt/app",
			web: []string{"rails", "server"}, migrate: []string{"rails", "db:prepare"}, worker: []string{"good_job", "start"},
		},
		// The first app without its Dockerfile, on MySQL with jsbundling
		// (yarn), ruby-vips and a Procfile worker; Ruby only in Gemfile.lock.
		"shop-nodockerfile": {
			files: map[string]string{
				"Gemfile":          "source \"https://rubygems.org\"\ngem \"rails\"\ngem \"mysql2\"\ngem \"jsbundling-rails\"\ngem \"sidekiq\"\n",
				"Gemfile.lock":     "GEM\n  specs:\n    mysql2 (0.5.6)\n    ruby-vips (2.2.2)\n    jsbundling-rails (1.3.1)\n    sidekiq (7.3.9)\n\nRUBY VERSION\n   ruby 3.3.6p108\n",
				"package.json":     `{"name": "app", "private": true, "scripts": {"build": "esbuild app/javascript/*.* --bundle --outdir=app/assets/builds"}}`,
				"yarn.lock":        "# yarn lockfile v1\n",
				".nvmrc":           "v22.11.0\n",
				"Procfile":         "web: bin/rails server\nworker: bundle exec sidekiq -C config/sidekiq.yml\n",
				"config/routes.rb": "Rails.application.routes.draw do\n  get \"up\" => \"rails/health#show\"\nend\n",
				"bin/rails":        "#!/usr/bin/env ruby\n",
				"vendor/.keep":     "",
			},
			ruby: "3.3.6", dbBuild: "mariadb-dev", dbNot: "postgresql-dev", js: []string{"FROM node:${NODE_VERSION}-alpine", "ARG NODE_VERSION=22.11.0", "corepack enable yarn", "yarn install --frozen-lockfile", "COPY package.json yarn.lock ./", "rm -rf node_modules"},
			vips: true, target: "runtime", workdir: "/rails",
			web: []string{"./bin/rails", "server"}, migrate: []string{"./bin/rails", "db:prepare"}, worker: []string{"sh", "-c", "exec bundle exec sidekiq -C config/sidekiq.yml"},
			health: true,
		},
		// Postgres with importmap and bootsnap, Ruby from .ruby-version.
		"blog": {
			files: map[string]string{
				"Gemfile":          "source \"https://rubygems.org\"\ngem \"rails\"\ngem \"pg\"\ngem \"importmap-rails\"\ngem \"bootsnap\", require: false\ngem \"solid_queue\"\n",
				"Gemfile.lock":     "GEM\n  specs:\n    pg (1.5.9)\n    bootsnap (1.18.4)\n    solid_queue (1.1.0)\n",
				".ruby-version":    "ruby-3.4.1\n",
				"config/routes.rb": "Rails.application.routes.draw do\nend\n",
				"bin/rails":        "#!/usr/bin/env ruby\n",
				"bin/jobs":         "#!/usr/bin/env ruby\n",
			},
			ruby: "3.4.1", dbBuild: "postgresql-dev", dbNot: "mariadb-dev", noJS: true, bootsnap: true, target: "runtime", workdir: "/rails",
			web: []string{"./bin/rails", "server"}, migrate: []string{"./bin/rails", "db:prepare"}, worker: []string{"./bin/jobs"},
		},
	}
	for name, a := range apps {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), name)
			writeFiles(t, dir, a.files)
			git(t, dir, "", "init", "-q", "-b", "main")
			r := mustShipit(t, dir, nil, "init", "--registry", registry+"/"+name)
			files := tree(t, dir)
			checkInit(t, dir, name, a, files, r.stderr)

			// A second run changes nothing.
			r = mustShipit(t, dir, nil, "init", "--registry", registry+"/"+name)
			if strings.TrimSpace(r.stdout) != "" {
				t.Errorf("second run wrote: %s", r.stdout)
			}
			if after := tree(t, dir); !maps(after, files) {
				t.Error("the second run changed the tree")
			}
		})
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func checkInit(t *testing.T, dir, name string, a initApp, files map[string]string, stderr string) {
	t.Helper()
	checkDockerfileOf(t, a, files, stderr)
	checkConfig(t, a, files)
	for _, env := range []string{"staging", "production"} {
		checkOverlay(t, dir, name, env, a)
	}
	lintWorkflow(t, filepath.Join(dir, ".github/workflows/shipit.yml"))
	lintWorkflow(t, filepath.Join(dir, ".github/workflows/preview.yml"))
	var set map[string]any
	if err := yaml.Unmarshal([]byte(files["k8s/argocd/previews.yaml"]), &set); err != nil || set["kind"] != "ApplicationSet" {
		t.Errorf("k8s/argocd/previews.yaml: %v\n%s", err, files["k8s/argocd/previews.yaml"])
	}
}

// checkDockerfileOf: the Dockerfile init wrote is the Alpine template
// with what the app needs, or the app's own, untouched.
func checkDockerfileOf(t *testing.T, a initApp, files map[string]string, stderr string) {
	t.Helper()
	dockerfile := files["Dockerfile"]
	if a.ruby != "" {
		if !strings.Contains(dockerfile, "ARG RUBY_VERSION="+a.ruby+"\n") || !strings.Contains(dockerfile, "FROM ruby:${RUBY_VERSION}-alpine") {
			t.Errorf("Dockerfile does not use Ruby %s on Alpine:\n%s", a.ruby, dockerfile)
		}
		if !strings.Contains(stderr, "Ruby "+a.ruby+" (from ") {
			t.Errorf("init does not say where Ruby %s came from:\n%s", a.ruby, stderr)
		}
		if a.dbBuild != "" && !strings.Contains(dockerfile, " "+a.dbBuild) {
			t.Errorf("Dockerfile lacks %s", a.dbBuild)
		}
		if a.dbNot != "" && strings.Contains(dockerfile, a.dbNot) {
			t.Errorf("Dockerfile installs %s for another adapter", a.dbNot)
		}
		for _, js := range a.js {
			if !strings.Contains(dockerfile, js) {
				t.Errorf("Dockerfile lacks %q", js)
			}
		}
		if a.noJS && (strings.Contains(dockerfile, "node") || strings.Contains(dockerfile, "yarn")) {
			t.Error("a JavaScript toolchain for an importmap app")
		}
		if got := strings.Contains(dockerfile, "bootsnap precompile --gemfile"); got != a.bootsnap {
			t.Errorf("bootsnap: %v, want %v", got, a.bootsnap)
		}
		if got := strings.Contains(dockerfile, " vips"); got != a.vips {
			t.Errorf("vips: %v, want %v", got, a.vips)
		}
	} else if dockerfile != a.files["Dockerfile"] {
		t.Error("init changed the app's Dockerfile")
	}
}

// checkConfig: the target exists in the Dockerfile, or is left out, and
// .dockerignore keeps secrets and state out of the image.
func checkConfig(t *testing.T, a initApp, files map[string]string) {
	t.Helper()
	dockerfile := files["Dockerfile"]
	var cfg struct {
		Images map[string]struct {
			Target string `json:"target"`
		} `json:"images"`
	}
	if err := yaml.Unmarshal([]byte(files["shipit.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Images["app"].Target; got != a.target {
		t.Errorf("target %q, want %q", got, a.target)
	}
	if a.target != "" && !strings.Contains(dockerfile, " AS "+a.target+"\n") {
		t.Errorf("target %s is not a stage of the Dockerfile", a.target)
	}

	// .dockerignore keeps secrets and state out of the image.
	for _, e := range []string{"/.env*", "/config/master.key", "/config/credentials/*.key", "/log/*", "/tmp/*", "/storage/*", "/public/assets", "/node_modules", "/.git", "/.shipit"} {
		if !strings.Contains(files[".dockerignore"], e) {
			t.Errorf(".dockerignore lacks %s", e)
		}
	}
}

// checkOverlay: the overlay renders, and what it runs fits the
// Dockerfile.
func checkOverlay(t *testing.T, dir, name, env string, a initApp) {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(dir, "k8s/overlays", env)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", env, err, out)
	}
	objs := map[string]map[string]any{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		md, _ := o["metadata"].(map[string]any)
		objs[o["kind"].(string)+"/"+md["name"].(string)] = o
		if ns := md["namespace"]; ns != name+"-"+env {
			t.Errorf("%s %s is in namespace %v", env, o["kind"], ns)
		}
	}
	web := containers(t, objs, "Deployment/"+name)
	app, nginx := web["app"], web["nginx"]
	if app == nil || nginx == nil {
		t.Fatalf("%s: no app or nginx container: %v", env, web)
	}
	if got := strs(app["args"]); !slices.Equal(got, a.web) || app["command"] != nil {
		t.Errorf("web runs %v %v, want args %v", app["command"], got, a.web)
	}
	if res, _ := app["resources"].(map[string]any); res["requests"] == nil {
		t.Error("app has no resource requests")
	}
	for _, p := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
		probe, _ := app[p].(map[string]any)
		get, _ := probe["httpGet"].(map[string]any)
		if a.health && (get == nil || get["path"] != "/up") {
			t.Errorf("%s is %v, want HTTP /up", p, probe)
		}
		if !a.health && probe["tcpSocket"] == nil {
			t.Errorf("%s is %v, want TCP", p, probe)
		}
	}
	if nginx["readinessProbe"] == nil {
		t.Error("nginx has no probe")
	}
	envFrom, _ := json.Marshal(app["envFrom"])
	if !strings.Contains(string(envFrom), `"secretRef":{"name":"`+name+`"}`) || !strings.Contains(string(envFrom), `"configMapRef":{"name":"`+name+`"}`) {
		t.Errorf("app's envFrom: %s", envFrom)
	}
	if objs["ConfigMap/"+name] == nil {
		t.Error("no ConfigMap")
	}
	for k := range objs {
		if strings.HasPrefix(k, "Secret/") {
			t.Errorf("the overlay applies %s: secrets are never committed", k)
		}
	}
	// The assets come from <WORKDIR>/public, of this release and the one before.
	inits := initContainers(t, objs["Deployment/"+name])
	for _, ic := range []string{"assets", "assets-previous"} {
		if got := strs(inits[ic]["command"]); !slices.Contains(got, a.workdir+"/public/.") {
			t.Errorf("init container %s runs %v, want it to copy %s/public", ic, got, a.workdir)
		}
	}
	job := objs["Job/"+name+"-migrate"]
	if job == nil {
		t.Fatal("no migration Job")
	}
	ann := job["metadata"].(map[string]any)["annotations"].(map[string]any)
	if ann["argocd.argoproj.io/hook"] != "PreSync" || ann["argocd.argoproj.io/hook-delete-policy"] == nil {
		t.Errorf("the migration is not a PreSync hook with a delete policy: %v", ann)
	}
	if got := strs(containers(t, objs, "Job/"+name+"-migrate")["migrate"]["args"]); !slices.Equal(got, a.migrate) {
		t.Errorf("migration runs %v, want %v", got, a.migrate)
	}
	w := containers(t, objs, "Deployment/"+name+"-worker")["worker"]
	if w == nil {
		t.Fatalf("no worker Deployment")
	}
	if got := strs(w["args"]); !slices.Equal(got, a.worker) || w["command"] != nil {
		t.Errorf("worker runs %v %v, want args %v", w["command"], got, a.worker)
	}
}

// lintWorkflow runs actionlint (built by ci/lint.sh) over a workflow init wrote.
func lintWorkflow(t *testing.T, path string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	actionlint := filepath.Join(filepath.Dir(file), "..", "..", "bin", "actionlint")
	if _, err := os.Stat(actionlint); err != nil {
		if os.Getenv("CI") == "true" {
			t.Errorf("no %s (ci/lint.sh builds it)", actionlint)
		}
		return
	}
	if out, err := exec.Command(actionlint, path).CombinedOutput(); err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}

func podSpec(o map[string]any) map[string]any {
	spec, _ := o["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	ps, _ := tmpl["spec"].(map[string]any)
	return ps
}

func byName(l any) map[string]map[string]any {
	out := map[string]map[string]any{}
	cs, _ := l.([]any)
	for _, c := range cs {
		m := c.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

func containers(t *testing.T, objs map[string]map[string]any, key string) map[string]map[string]any {
	t.Helper()
	o := objs[key]
	if o == nil {
		t.Fatalf("no %s", key)
	}
	return byName(podSpec(o)["containers"])
}

func initContainers(t *testing.T, o map[string]any) map[string]map[string]any {
	t.Helper()
	return byName(podSpec(o)["initContainers"])
}

// TestInitAssetsOfThePreviousRelease: init's Deployment gives nginx the
// assets of the release before the current one as well, because release
// moves app-previous to what app pinned. Two releases of an init'd app:
// staging runs the second, and its pods copy both releases' assets.
func TestInitAssetsOfThePreviousRelease(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "shop")
	repo := uniqueRepo(t)
	writeFiles(t, dir, map[string]string{
		"Gemfile":           "source \"https://rubygems.org\"\ngem \"rails\"\ngem \"pg\"\n",
		"bin/rails":         "#!/usr/bin/env ruby\n",
		"config/routes.rb":  "Rails.application.routes.draw do\nend\n",
		"static/app-1.css":  "one\n",
		"public/robots.txt": "release 1\n",
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	mustShipit(t, dir, nil, "init", "--registry", repo)
	// The images are built from the test base (no image can be pulled
	// here), with the app's files where init's Dockerfile puts them
	// (public/assets is built, and .dockerignore keeps it out: static/
	// stands for assets:precompile).
	cfg := mustRead(t, filepath.Join(dir, "shipit.yaml"))
	deploy := cfg[strings.Index(cfg, "deploy:"):]
	writeFiles(t, dir, map[string]string{
		"Dockerfile":              "ARG BASE\nFROM ${BASE} AS runtime\nWORKDIR /rails\nCOPY public/ /rails/public/\nCOPY static/ /rails/public/assets/\n",
		"docker/nginx/Dockerfile": "ARG BASE\nFROM ${BASE} AS runtime\n",
		"shipit.yaml": "registry: " + repo + "\nimages:\n  app:\n    context: .\n    target: runtime\n    args: {BASE: \"" + base + "\"}\n" +
			"  nginx:\n    context: docker/nginx\n    args: {BASE: \"" + base + "\"}\n" + deploy,
	})
	origin := filepath.Join(t.TempDir(), "origin.git")
	git(t, "", "", "init", "-q", "--bare", "-b", "main", origin)
	git(t, dir, "", "remote", "add", "origin", origin)
	git(t, dir, "", "add", "-A")
	git(t, dir, time.Now().Add(-time.Hour).Format(time.RFC3339), "commit", "-qm", "release 1")
	git(t, dir, "", "push", "-q", "origin", "HEAD:main")
	mustShipit(t, dir, nil, "build", "--progress", "quiet")
	mustShipit(t, dir, nil, "release")
	first, _ := readRecord(t, dir)

	git(t, dir, "", "pull", "-q", "--rebase", "origin", "main")
	git(t, dir, "", "rm", "-q", "static/app-1.css")
	writeFiles(t, dir, map[string]string{"static/app-2.css": "two\n", "public/robots.txt": "release 2\n"})
	git(t, dir, "", "add", "-A")
	// after the pin commit release 1 made on top of it
	git(t, dir, time.Now().Add(time.Minute).Format(time.RFC3339), "commit", "-qm", "release 2")
	git(t, dir, "", "push", "-q", "origin", "HEAD:main")
	mustShipit(t, dir, nil, "build", "--progress", "quiet")
	mustShipit(t, dir, nil, "release")
	second, _ := readRecord(t, dir)

	work := filepath.Join(t.TempDir(), "w")
	git(t, "", "", "clone", "-q", origin, work)
	checkAssetsServed(t, work, first, second)
	// init's previews configuration works as written: a preview of this
	// build, at the URL of init's Ingress.
	checkInitPreview(t, dir, work)
}

// checkAssetsServed: staging's pods, as rendered, copy both releases'
// assets for nginx, the second's last.
func checkAssetsServed(t *testing.T, work string, first, second record) {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(work, "k8s/overlays/staging")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	var dep map[string]any
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		if o["kind"] == "Deployment" && o["metadata"].(map[string]any)["name"] == "shop" {
			dep = o
		}
	}
	if dep == nil {
		t.Fatalf("no Deployment shop:\n%s", out)
	}
	appOf := func(r record) string {
		return r.Images[0].Repository + ":" + r.Images[0].Tag + "@" + r.Images[0].Digest
	}
	if first.Images[0].Name != "app" || second.Images[0].Name != "app" {
		t.Fatalf("records: %+v %+v", first.Images, second.Images)
	}
	inits := initContainers(t, dep)
	if got := inits["assets-previous"]["image"]; got != appOf(first) {
		t.Errorf("assets-previous runs %v, want the first release %s", got, appOf(first))
	}
	if got := inits["assets"]["image"]; got != appOf(second) {
		t.Errorf("assets runs %v, want the second release %s", got, appOf(second))
	}
	if got := byName(podSpec(dep)["containers"])["app"]["image"]; got != appOf(second) {
		t.Errorf("app runs %v, want %s", got, appOf(second))
	}
	// What the two init containers copy, in order, is what nginx serves:
	// both releases' assets, and the current release's other files.
	served := map[string]string{}
	for _, ref := range []string{appOf(first), appOf(second)} {
		img, err := remote.Image(mustRef(t, ref))
		if err != nil {
			t.Fatal(err)
		}
		for p, c := range imageFiles(t, img) {
			if rel, ok := strings.CutPrefix(p, "rails/public/"); ok {
				served[rel] = c
			}
		}
	}
	if served["assets/app-1.css"] != "one\n" || served["assets/app-2.css"] != "two\n" || served["robots.txt"] != "release 2\n" {
		t.Errorf("nginx would serve %v", served)
	}
}

// checkInitPreview: preview up with init's configuration gives the URL of
// init's Ingress, in a namespace of its own.
func checkInitPreview(t *testing.T, dir, work string) {
	t.Helper()
	r := mustShipit(t, dir, nil, "preview", "up", "pr-1", "--output", "json")
	var up struct{ URL, Namespace string }
	if err := json.Unmarshal([]byte(r.stdout), &up); err != nil || up.URL != "https://pr-1.preview.example.com" || up.Namespace != "shop-pr-1" {
		t.Errorf("preview up with init's configuration: %v %s", err, r.stdout)
	}
	git(t, work, "", "pull", "-q")
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(work, "k8s/previews/pr-1")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "namespace: shop-pr-1") || !strings.Contains(string(out), "host: pr-1.preview.example.com") {
		t.Errorf("kubectl kustomize k8s/previews/pr-1: %v\n%s", err, out)
	}
}

// realApps are the fixture apps of internal/scaffold/testdata/apps
// (modelled on the real apps' files), with their default branches.
var realApps = map[string]string{
	"lobsters": "main", "once-campfire": "main", "openstreetmap-website": "master", "human-essentials": "main",
	"dawarich": "master", "manyfold": "main", "mastodon": "main", "chatwoot": "develop",
}

// TestInitRealApps runs init as a user would on each app, cloned from an
// origin whose default branch is the app's: it exits 0, writes the app's
// branch, its overlays render, every container runs a program the image
// has (a file of the app, bundle, sh, or rails behind bundle exec), and a
// second run changes nothing.
func TestInitRealApps(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	fixtures := filepath.Join(filepath.Dir(file), "..", "..", "internal", "scaffold", "testdata", "apps")
	for app, branch := range realApps {
		t.Run(app, func(t *testing.T) {
			t.Parallel()
			dir := cloneFixture(t, filepath.Join(fixtures, app), app, branch)
			mustShipit(t, dir, nil, "init")
			files := tree(t, dir)
			if !strings.Contains(files["shipit.yaml"], "  branch: "+branch+"\n") {
				t.Errorf("shipit.yaml's branch is not %s:\n%s", branch, files["shipit.yaml"])
			}
			for _, env := range []string{"staging", "production"} {
				for key, o := range renderOverlay(t, dir, env) {
					for _, field := range []string{"initContainers", "containers"} {
						for name, c := range byName(podSpec(o)[field]) {
							checkProgram(t, files, key+" "+name, c)
						}
					}
				}
			}
			r := mustShipit(t, dir, nil, "init")
			if strings.TrimSpace(r.stdout) != "" || !maps(tree(t, dir), files) {
				t.Errorf("the second run changed the tree: %s", r.stdout)
			}
		})
	}
}

// cloneFixture makes a repository of a fixture app, pushes it to a bare
// origin whose HEAD is branch, and clones it, as a user's checkout.
func cloneFixture(t *testing.T, fixture, app, branch string) string {
	t.Helper()
	seed := filepath.Join(t.TempDir(), app)
	if out, err := exec.Command("cp", "-r", fixture, seed).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	origin := filepath.Join(t.TempDir(), app+".git")
	git(t, "", "", "init", "-q", "--bare", "-b", branch, origin)
	git(t, seed, "", "init", "-q", "-b", branch)
	git(t, seed, "", "add", "-A")
	git(t, seed, "", "commit", "-qm", app)
	git(t, seed, "", "push", "-q", origin, branch)
	dir := filepath.Join(t.TempDir(), app)
	git(t, "", "", "clone", "-q", origin, dir)
	return dir
}

// renderOverlay renders an overlay with kubectl kustomize: its workloads
// (Deployments and Jobs) by Kind/name.
func renderOverlay(t *testing.T, dir, env string) map[string]map[string]any {
	t.Helper()
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(dir, "k8s/overlays", env)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", env, err, out)
	}
	objs := map[string]map[string]any{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		if o["kind"] == "Deployment" || o["kind"] == "Job" {
			objs[o["kind"].(string)+"/"+o["metadata"].(map[string]any)["name"].(string)] = o
		}
	}
	return objs
}

// checkProgram: what a container runs is a program its image has.
func checkProgram(t *testing.T, files map[string]string, who string, c map[string]any) {
	t.Helper()
	run := append(strs(c["command"]), strs(c["args"])...)
	if len(run) == 0 {
		return // the image's own CMD (nginx)
	}
	prog := run[0]
	switch {
	case prog == "bundle" || prog == "sh" || prog == "cp":
	case prog == "rails" && c["command"] == nil: // an args-only rails command behind ENTRYPOINT bundle exec
	case strings.HasPrefix(prog, "./"):
		if _, ok := files[strings.TrimPrefix(prog, "./")]; !ok {
			t.Errorf("%s runs %s, which the app does not have", who, prog)
		}
	default:
		t.Errorf("%s runs %v: not a program the image has", who, run)
	}
}
