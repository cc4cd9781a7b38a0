package scaffold

import (
	"path"
	"strings"

	"github.com/shipit-dev/shipit/internal/lazyre"
)

var (
	cableRedis  = lazyre.New(`(?s)production:.*?adapter:\s*redis`)
	pumaWorkers = lazyre.New(`workers\s*\(?\s*ENV\.fetch\(\s*["']([A-Z_]+)["']`)
	pumaPidfile = lazyre.New(`pidfile\s*\(?\s*ENV\.fetch\(\s*["']PIDFILE["']`)
	// healthGet is a route to a health endpoint: Rails' /up, or a
	// health/healthz/health_check action.
	healthGet   = lazyre.New(`^\s*get\s*\(?\s*["'](/?(?:up|health|healthz|health_check|healthcheck|status))["']`)
	railsHealth = lazyre.New(`rails/health#show`)
	routeScope  = lazyre.New(`^\s*(?:namespace\s*\(?\s*:(\w+)|scope\s*\(?\s*(?:path:\s*)?["']/?([\w/-]+)["'])`)
)

// readRedis says what needs Redis: the job gems, kredis, or Action Cable's
// production adapter.
func (r *Rails) readRedis() error {
	for _, g := range []string{"sidekiq", "resque", "kredis", "redis"} {
		if from := r.gems.has(g); from != "" {
			r.Redis = "gem " + g
			r.found("Redis (gem "+g+"): REDIS_URL in the Secret (k8s/base/secret.example.yaml)", from)
			return nil
		}
	}
	cable, _, err := r.read("config/cable.yml")
	if err != nil {
		return err
	}
	if cableRedis.MatchString(cable) {
		r.Redis = "Action Cable"
		r.found("Redis (Action Cable's production adapter): REDIS_URL in the Secret (k8s/base/secret.example.yaml)", "config/cable.yml")
	}
	return nil
}

// readBoot reads what the web server and the tests need: puma.rb's
// variables, rspec, config/storage.yml.
func (r *Rails) readBoot() error {
	puma, ok, err := r.read("config/puma.rb")
	if err != nil {
		return err
	}
	if ok {
		if m := pumaWorkers.FindStringSubmatch(puma); m != nil {
			r.Puma.Workers = m[1]
		}
		r.Puma.Pidfile = pumaPidfile.MatchString(puma)
	}
	if r.Puma.Workers == "" {
		r.Puma.Workers = "WEB_CONCURRENCY"
	}
	what := r.Puma.Workers + "=2 in the ConfigMap: puma forks that many workers, not one per node CPU, within the 1Gi limit"
	if r.Puma.Pidfile {
		what += "; PIDFILE=/tmp/puma.pid, a path the container can write"
	}
	if ok {
		r.found(what, "config/puma.rb")
	} else {
		r.assumed(what+" (no config/puma.rb)", "k8s/base/configmap.yaml", false)
	}
	if (r.gems.has("rspec-rails") != "" || r.gems.devOnly("rspec-rails") != "") && r.isDir("spec") {
		r.RSpec = true
		r.found("rspec-rails and spec/: the CI test step runs bundle exec rspec", r.gems["rspec-rails"].from)
	}
	if !r.exists("config/storage.yml") && (r.exists("config/example.storage.yml") || r.exists("config/storage.yml.example") || r.exists("config/storage.yml.sample")) {
		r.Findings = append(r.Findings, Finding{Warning: true, From: "config/", What: "no config/storage.yml (only an example of it): Active Storage does not boot without it",
			Change: "commit a config/storage.yml with production's service"})
	}
	return nil
}

// readHealth finds the app's health endpoint in config/routes.rb, with the
// namespaces and scopes around it.
func (r *Rails) readHealth() error {
	routes, ok, err := r.read("config/routes.rb")
	if err != nil {
		return err
	}
	var stack []string
	for _, line := range strings.Split(routes, "\n") {
		code := strings.TrimSpace(stripComment(line))
		if code == "end" || strings.HasPrefix(code, "end ") {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if m := healthGet.FindStringSubmatch(code); m != nil && (r.Health == "" || railsHealth.MatchString(code)) {
			r.Health = "/" + path.Join(append(scopes(stack), strings.TrimPrefix(m[1], "/"))...)
		}
		if opensBlock(code) {
			scope := ""
			if m := routeScope.FindStringSubmatch(code); m != nil {
				scope = m[1] + m[2]
			}
			stack = append(stack, scope)
		}
	}
	switch {
	case !ok:
		r.found("no config/routes.rb: TCP probes", "config/routes.rb")
	case r.Health != "":
		r.found("health check "+r.Health+": HTTP readiness, liveness and startup probes", "config/routes.rb")
	default:
		r.found("no health route: TCP probes (add `get \"up\" => \"rails/health#show\"` for HTTP ones)", "config/routes.rb")
	}
	return nil
}

// scopes is the non-empty parts of a route's scopes.
func scopes(stack []string) []string {
	var out []string
	for _, s := range stack {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
