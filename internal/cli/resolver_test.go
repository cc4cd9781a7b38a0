package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/registry"
)

func loadConfig(t *testing.T, yaml string) *deps {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"web", "nginx"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "shipit.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return &deps{cfg: cfg, registry: &registry.Client{}}
}

// TestBuildPlan: shipit.yaml becomes build specs and solve requests.
func TestBuildPlan(t *testing.T) {
	t.Parallel()
	d := loadConfig(t, `registry: 127.0.0.1:5000/team
cache: {export: registry}
images:
  web:
    context: web
    target: runtime
    args: {GREETING: hi, NPM_TOKEN: oops}
    secrets: [{id: gem, src: gem.txt}, {id: npm, env: NPM}]
    ssh: [default, deploy=keys/deploy]
  nginx:
    context: nginx
    repository: ecr.example.com/nginx
`)
	cfg := d.cfg
	if err := os.WriteFile(filepath.Join(cfg.Dir(), "gem.txt"), []byte("gem-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := gitinfo.Head{SHA: "0123456789abcdef", Time: time.Unix(1700000000, 0).UTC(), Source: "https://github.com/acme/app"}
	reqs, warnings, err := build.Requests(d.buildPlan([]string{"web", "nginx"}, head, "20231114-221320-0123456", time.Time{}, false, false))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Name != "nginx" || reqs[1].Name != "web" {
		t.Fatalf("requests = %+v", reqs)
	}
	nginx, web := reqs[0], reqs[1]
	if nginx.Repository != "ecr.example.com/nginx" || nginx.Insecure {
		t.Errorf("nginx: %s insecure=%v", nginx.Repository, nginx.Insecure)
	}
	if web.Repository != "127.0.0.1:5000/team/web" || !web.Insecure {
		t.Errorf("web: %s insecure=%v: a loopback registry speaks plain HTTP", web.Repository, web.Insecure)
	}
	if web.Args["SOURCE_DATE_EPOCH"] != "1700000000" || web.Args["GREETING"] != "hi" {
		t.Errorf("args = %v", web.Args)
	}
	if web.Labels[build.LabelRevision] != head.SHA || web.Labels[build.LabelCreated] != "2023-11-14T22:13:20Z" || web.Labels[build.LabelSource] != head.Source {
		t.Errorf("labels = %v", web.Labels)
	}
	if web.Secrets[0].File != filepath.Join(cfg.Dir(), "gem.txt") || web.Secrets[1].Env != "NPM" {
		t.Errorf("secrets = %+v", web.Secrets)
	}
	if web.SSH[1].ID != "deploy" || web.SSH[1].Paths[0] != filepath.Join(cfg.Dir(), "keys/deploy") {
		t.Errorf("ssh = %+v", web.SSH)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "NPM_TOKEN looks like a secret") || strings.Contains(warnings[0], "oops") {
		t.Errorf("warnings = %q: want one naming NPM_TOKEN and not its value", warnings)
	}
	ex := web.CacheExports[0].Attrs
	if ex["ref"] != "127.0.0.1:5000/team/web:buildcache" || ex["image-manifest"] != "true" || ex["oci-mediatypes"] != "true" || ex["mode"] != "max" {
		t.Errorf("cache export = %v: ECR needs image-manifest and OCI media types", ex)
	}

	if web.LayoutDir != build.LayoutPath(cfg.StatePath(), "web") {
		t.Errorf("layout = %s", web.LayoutDir)
	}
}

// TestDaemonHint: the hint to start a daemon names an address buildkitd
// can listen on, not a docker-container:// one.
func TestDaemonHint(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"unix:///tmp/b.sock":                    "unix:///tmp/b.sock",
		"tcp://127.0.0.1:1234":                  "tcp://127.0.0.1:1234",
		"docker-container://buildx_buildkit_x0": "unix:///run/buildkit/buildkitd.sock",
		"kube-pod://buildkitd-0?namespace=ci":   "unix:///run/buildkit/buildkitd.sock",
	} {
		if got := daemonAddr(addr); got != want {
			t.Errorf("daemonAddr(%s) = %s, want %s", addr, got, want)
		}
	}
}
