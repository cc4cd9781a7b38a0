package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// write lays out files under a temp dir and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const good = `registry: 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/team
builder:
  addr: tcp://buildkitd:1234
  insecure: true
images:
  web:
    context: web
    target: runtime
    args: {GREETING: hi, RUBY_VERSION: "3.3", WORKERS: 4}
    secrets:
      - {id: gem_token, src: token.txt}
      - {id: npm_token, env: NPM_TOKEN}
    platforms: [linux/amd64]
  Nginx-proxy:
    context: nginx
deploy:
  overlays: [k8s/overlays/production]
`

func TestLoadGood(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{"shipit.yaml": strings.Replace(good, "Nginx-proxy", "nginx", 1)})
	sub := filepath.Join(dir, "deep", "er")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Options{Dir: sub})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != filepath.Join(dir, "shipit.yaml") {
		t.Errorf("found %s, want the shipit.yaml two directories up", cfg.File)
	}
	web := cfg.Images["web"]
	if web.Args["GREETING"] != "hi" || web.Args["WORKERS"] != "4" {
		t.Errorf("args lost their case or value: %v", web.Args)
	}
	if web.Dockerfile != "Dockerfile" || cfg.Cache.Export != CacheNone || cfg.Deploy.Branch != "main" || cfg.Deploy.Repo != "." {
		t.Errorf("defaults not applied: %+v %+v %+v", web, cfg.Cache, cfg.Deploy)
	}
	if got := cfg.RepositoryFor("web"); got != "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/team/web" {
		t.Errorf("repository = %s", got)
	}
	if got := cfg.SecretPath(web.Secrets[0]); got != filepath.Join(dir, "token.txt") {
		t.Errorf("secret src resolves to %s, want it relative to shipit.yaml", got)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want string // the whole message after the file name
	}{
		{"unknown top key", "regstry: x\nimages: {web: {context: .}}\n",
			`:1: regstry: unknown key, did you mean "registry"? (known keys here: registry, builder, tag, cache, provenance, attest, platforms, insecure-registries, images, deploy, sign, verify)`},
		{"unknown image key", "images:\n  web:\n    contxt: web\n",
			`:3: images.web.contxt: unknown key, did you mean "context"? (known keys here: repository, context, dockerfile, target, args, secrets, ssh, platforms, attest, kustomize_name)`},
		{"images is a list", "images: [web, api]\n",
			`:1: images: expected a mapping, got a list`},
		{"args is a list", "images:\n  web:\n    context: .\n    args: [A=1]\n",
			`:4: images.web.args: expected a mapping, got a list`},
		{"context is a map", "images:\n  web:\n    context: {dir: .}\n",
			`:3: images.web.context: expected a string, got a mapping`},
		{"no context", "images:\n  web:\n    target: x\n",
			`:2: images.web: the image has no context: set ` + "`context:`" + ` to its build directory, relative to shipit.yaml`},
		{"no images", "registry: r.example.com\n",
			`: images: no images are configured: add at least one under ` + "`images:`" + `, each with a ` + "`context:`"},
		{"bad cache", "cache: {export: s3}\nimages: {web: {context: .}}\n",
			`:1: cache.export: "s3" is not a cache mode: use registry, local or none`},
		{"secret with both", "images:\n  web:\n    context: .\n    secrets:\n      - {id: a, src: f, env: E}\n",
			`:5: images.web.secrets[0]: secret "a" needs exactly one of src (a file) or env (an environment variable)`},
		{"bad builder", "builder: {addr: buildkitd:1234}\nimages: {web: {context: .}}\n",
			`:1: builder.addr: "buildkitd:1234" is not a BuildKit address: use unix:///path, tcp://host:port, docker-container://name or kube-pod://name`},
		{"upper-case image name", "images:\n  Web:\n    context: .\n",
			`:2: images.Web: "Web" cannot be an image name: use lower-case letters, digits and single '.', '_' or '-' between them (it is the last part of the repository)`},
		{"bad platform", "images:\n  web:\n    context: .\n    platforms: [linux/amd64, windoze]\n",
			`:4: images.web.platforms[1]: "windoze" is not a platform: write os/arch[/variant], for example linux/amd64`},
		{"not yaml", "images: {web: [\n", `: not valid YAML: line 1: did not find expected node content`},
		{"repo as an option", "deploy: {repo: \"--upload-pack=touch /tmp/pwned\"}\nimages: {web: {context: .}}\n",
			`:1: deploy.repo: "--upload-pack=touch /tmp/pwned" begins with "-", which git would read as an option: write a repository URL or path, and a branch name`},
		{"branch as an option", "deploy: {branch: -f}\nimages: {web: {context: .}}\n",
			`:1: deploy.branch: "-f" begins with "-", which git would read as an option: write a repository URL or path, and a branch name`},
		{"tcp builder without TLS", "builder: {addr: tcp://10.1.2.3:1234}\nimages: {web: {context: .}}\n",
			`:1: builder.addr: tcp://10.1.2.3:1234 is a tcp:// builder off this machine without TLS: build secrets and registry credentials would cross the network in the clear. Set builder.tls (ca, cert, key), or builder.insecure: true if the network is trusted`},
		{"insecure registry with a path", "insecure-registries: [r.example.com/team]\nimages: {web: {context: .}}\n",
			`:1: insecure-registries[0]: "r.example.com/team" is not a registry host: write host or host:port`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := write(t, map[string]string{"shipit.yaml": tc.yaml})
			_, err := Load(Options{Dir: dir})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			file := filepath.Join(dir, "shipit.yaml")
			if got := err.Error(); got != file+tc.want {
				t.Errorf("message\n got: %s\nwant: %s", got, file+tc.want)
			}
		})
	}
}

func TestCheckRegistry(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{"shipit.yaml": "images:\n  web: {context: .}\n  api: {context: ., repository: ghcr.io/acme/api}\n"})
	cfg, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckRegistry([]string{"api"}); err != nil {
		t.Errorf("a full repository: %v", err)
	}
	err = cfg.CheckRegistry([]string{"web"})
	if err == nil || !strings.Contains(err.Error(), "registry: image web would go to web, which names no registry") {
		t.Errorf("no registry: %v", err)
	}
}

func TestFindNone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Load(Options{Dir: dir})
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no shipit.yaml found in "+dir) || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err = %v", err)
	}
}

func TestOverrides(t *testing.T) { // not parallel: it sets the process environment
	dir := write(t, map[string]string{"shipit.yaml": "registry: file.example.com\nbuilder: {addr: unix:///file.sock}\nimages:\n  web:\n    context: .\n    target: file\n"})
	env := map[string]string{
		"SHIPIT_REGISTRY":          "env.example.com/team",
		"BUILDKIT_HOST":            "tcp://buildkit-host:1234",
		"SHIPIT_BUILDER_INSECURE":  "true",
		"SHIPIT_IMAGES_WEB_TARGET": "env-target",
		"SHIPIT_DEPLOY_OVERLAYS":   "a, b",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry.URL != "env.example.com/team" || cfg.Builder.Addr != "tcp://buildkit-host:1234" || cfg.Images["web"].Target != "env-target" {
		t.Errorf("environment did not win over the file: %s %s %s", cfg.Registry.URL, cfg.Builder.Addr, cfg.Images["web"].Target)
	}
	if got := strings.Join(cfg.Deploy.Overlays, "|"); got != "a|b" {
		t.Errorf("overlays from env = %q", got)
	}

	t.Setenv("SHIPIT_BUILDER_ADDR", "unix:///shipit-env.sock")
	cfg, err = Load(Options{Dir: dir, Flags: map[string]string{"registry.url": "flag.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry.URL != "flag.example.com" {
		t.Errorf("flag did not win: registry = %s", cfg.Registry.URL)
	}
	if cfg.Builder.Addr != "unix:///shipit-env.sock" {
		t.Errorf("SHIPIT_BUILDER_ADDR should win over BUILDKIT_HOST, and an unset flag change nothing: %s", cfg.Builder.Addr)
	}
}

func TestCheckInputs(t *testing.T) {
	t.Parallel()
	dir := write(t, map[string]string{
		"shipit.yaml":    "images:\n  web:\n    context: web\n    secrets:\n      - {id: tok, src: secrets/tok}\n      - {id: npm, env: NPM_TOKEN}\n  api:\n    context: api\n    dockerfile: build/Dockerfile\n",
		"web/Dockerfile": "FROM scratch\n",
		"api/Dockerfile": "FROM scratch\n",
	})
	file := filepath.Join(dir, "shipit.yaml")
	cfg, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	err = cfg.CheckInputs([]string{"web"}, getenv)
	want := file + ":5: images.web.secrets[0].src: secret \"tok\": file " + filepath.Join(dir, "secrets/tok") + " does not exist: create it or point src at the file that holds the secret"
	if err == nil || err.Error() != want {
		t.Errorf("missing secret file:\n got: %v\nwant: %s", err, want)
	}

	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets/tok"), []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckInputs([]string{"web"}, getenv)
	want = file + ":6: images.web.secrets[1].env: secret \"npm\": environment variable NPM_TOKEN is not set or empty: export it before running shipit"
	if err == nil || err.Error() != want {
		t.Errorf("missing secret variable:\n got: %v\nwant: %s", err, want)
	}
	env["NPM_TOKEN"] = "s3cret-value"
	if err := cfg.CheckInputs([]string{"web"}, getenv); err != nil {
		t.Errorf("all inputs present: %v", err)
	}

	err = cfg.CheckInputs([]string{"api"}, getenv)
	if err == nil || !strings.Contains(err.Error(), "images.api.dockerfile: no Dockerfile at "+filepath.Join(dir, "api/build/Dockerfile")) {
		t.Errorf("missing Dockerfile: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "web")); err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckInputs([]string{"web"}, getenv)
	if err == nil || !strings.Contains(err.Error(), ":3: images.web.context: directory "+filepath.Join(dir, "web")+" does not exist") {
		t.Errorf("missing context: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("images: {web: {context: ., args: {A: [1]}}}"))
	f.Add([]byte("&a {images: *a}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("shipit.yaml", data)
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
		if err == nil {
			cfg.defaults()
			_ = cfg.Validate()
		}
	})
}

// TestTCPBuilderTLS: plain tcp:// is fine on loopback or when said to be.
func TestTCPBuilderTLS(t *testing.T) {
	t.Parallel()
	for _, y := range []string{
		"builder: {addr: tcp://127.0.0.1:1234}\nimages: {web: {context: .}}\n",
		"builder: {addr: tcp://buildkitd:1234, insecure: true}\nimages: {web: {context: .}}\n",
	} {
		if _, err := Load(Options{Dir: write(t, map[string]string{"shipit.yaml": y})}); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
}

// TestAliasBomb: an alias-heavy shipit.yaml is refused at once, not after
// seconds and gigabytes.
func TestAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("images: {web: {context: .}}\ntag: {prefix: x}\nx0: &a0 [" + strings.Repeat("lol, ", 9) + "lol]\n")
	for i := 1; i < 30; i++ {
		fmt.Fprintf(&b, "x%d: &a%d [%s*a%d]\n", i, i, strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9), i-1)
	}
	for b.Len() < 85_000 {
		b.WriteString("# padding to the size seen in the review\n")
	}
	dir := write(t, map[string]string{"shipit.yaml": b.String()})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Load(Options{Dir: dir})
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if took > time.Second {
		t.Errorf("took %v", took)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 100<<20 {
		t.Errorf("allocated %d MB", grew>>20)
	}
}

func TestEnvironments(t *testing.T) {
	t.Parallel()
	good := "images: {web: {context: .}}\ndeploy:\n  environments:\n    - {name: staging, overlays: [k8s/overlays/staging], argocd: {applications: [shop-staging]}}\n    - {name: production, overlays: [k8s/overlays/production], argocd: {applications: [shop-production], namespace: ops}}\n"
	cfg, err := Load(Options{Dir: write(t, map[string]string{"shipit.yaml": good})})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.EnvNames(), ","); got != "staging,production" {
		t.Errorf("environments = %s", got)
	}
	if e, _ := cfg.Env("staging"); e.ArgoCD.Namespace != "argocd" {
		t.Errorf("namespace default = %q", e.ArgoCD.Namespace)
	}
	if e, _ := cfg.Env("production"); e.ArgoCD.Namespace != "ops" {
		t.Errorf("namespace = %q", e.ArgoCD.Namespace)
	}
	signed, err := Load(Options{Dir: write(t, map[string]string{"shipit.yaml": "images: {web: {context: .}}\nsign: {key: keys/cosign.key}\nverify: {keys: [keys/cosign.pub, env:PUB]}\ndeploy:\n  environments: [{name: p, overlays: [a], require: {signature: true, provenance: true}}]\n"})})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := signed.Env("p"); !e.Require.Signature || !e.Require.Provenance || signed.SignKey() != signed.Abs("keys/cosign.key") || signed.VerifyKeys()[1] != "env:PUB" {
		t.Errorf("sign, verify, require: %+v %s %v", e.Require, signed.SignKey(), signed.VerifyKeys())
	}
	old, err := Load(Options{Dir: write(t, map[string]string{"shipit.yaml": "images: {web: {context: .}}\ndeploy: {overlays: [k8s/a, k8s/b]}\n"})})
	if err != nil || len(old.Envs()) != 1 || old.Envs()[0].Name != DefaultEnvironment || len(old.Envs()[0].Overlays) != 2 {
		t.Errorf("deploy.overlays as one environment: %+v %v", old.Envs(), err)
	}
	for _, tc := range []struct{ yaml, key string }{
		{"deploy:\n  overlays: [a]\n  environments: [{name: s, overlays: [b]}]\n", "deploy.environments"},
		{"deploy:\n  environments: [{name: s, overlays: [a]}, {name: s, overlays: [b]}]\n", "deploy.environments[1].name"},
		{"deploy:\n  environments: [{name: s, overlay: [a]}]\n", "deploy.environments[0].overlay"},
		{"deploy:\n  environments: [{name: s}]\n", "deploy.environments[0].overlays"},
		{"deploy:\n  environments: [{name: Prod, overlays: [a]}]\n", "deploy.environments[0].name"},
		{"deploy:\n  environments: [{name: p, overlays: [a], require: {signature: true}}]\n", "deploy.environments[0].require.signature"},
		{"deploy:\n  environments: [{name: p, overlays: [a], require: {signed: true}}]\n", "deploy.environments[0].require.signed"},
		{"sign: {}\n", "sign.key"},
		{"sign: {key: \"env:NOT-A-NAME\"}\n", "sign.key"},
		{"verify: {keys: [\"\"]}\n", "verify.keys[0]"},
	} {
		_, err := Load(Options{Dir: write(t, map[string]string{"shipit.yaml": "images: {web: {context: .}}\n" + tc.yaml})})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%q: %v, want an error naming %s", tc.yaml, err, tc.key)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	t.Parallel()
	cfg, err := Load(Options{Dir: write(t, map[string]string{"shipit.yaml": "registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com/shop\nimages: {web: {context: .}}\n"})})
	if err != nil {
		t.Fatal(err)
	}
	var ce *Error
	if err := cfg.CheckPlaceholders(); !errors.As(err, &ce) || ce.Key != "registry" || !strings.Contains(err.Error(), "placeholder") {
		t.Errorf("the init placeholder: %v", err)
	}
	cfg.Registry.URL = "210987654321.dkr.ecr.us-east-1.amazonaws.com/shop"
	if err := cfg.CheckPlaceholders(); err != nil {
		t.Errorf("a real registry: %v", err)
	}
}

// TestAttest: attest at the top level and per image (the image's keys
// win, one by one), the older provenance key mapped, a disagreement of
// the two forms, an unknown key and a bad generator refused by name.
func TestAttest(t *testing.T) { // not parallel: it sets the process environment
	load := func(y string) (*Config, error) {
		return Load(Options{Dir: write(t, map[string]string{"shipit.yaml": y})})
	}
	cfg, err := load("attest: {provenance: true, sbom: true, sbomGenerator: 127.0.0.1:5055/scanner:1}\n" +
		"images:\n  web: {context: .}\n  worker: {context: ., attest: {sbom: false}}\n  plain: {context: ., attest: {provenance: false, sbomGenerator: r.example.com/own:2}}\n")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Attestations{
		"web":    {Provenance: "max", SBOM: true, SBOMGenerator: "127.0.0.1:5055/scanner:1"},
		"worker": {Provenance: "max", SBOMGenerator: "127.0.0.1:5055/scanner:1"},
		"plain":  {SBOM: true, SBOMGenerator: "r.example.com/own:2"},
	} {
		if got := cfg.AttestFor(name); got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	cfg, err = load("images:\n  web: {context: .}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.AttestFor("web"); got != (Attestations{}) {
		t.Errorf("default: %+v, want everything off", got)
	}
	for old, want := range map[string]string{"min": "min", "max": "max", "off": ""} {
		cfg, err = load("provenance: " + old + "\nimages:\n  web: {context: .}\n")
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.AttestFor("web").Provenance; got != want {
			t.Errorf("provenance: %s gives %q, want %q", old, got, want)
		}
	}
	if _, err := load("provenance: max\nattest: {provenance: true}\nimages:\n  web: {context: .}\n"); err != nil {
		t.Errorf("provenance: max agrees with attest.provenance: true: %v", err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"provenance: min\nattest: {provenance: true}\nimages:\n  web: {context: .}\n",
			":2: attest.provenance: true disagrees with the older top-level key provenance: min"},
		{"provenance: max\nimages:\n  web: {context: ., attest: {provenance: false}}\n",
			":3: images.web.attest.provenance: false disagrees with the older top-level key provenance: max"},
		{"attest: {provenance: true, sbom_generator: x}\nimages:\n  web: {context: .}\n",
			`:1: attest.sbom_generator: unknown key, did you mean "sbomGenerator"? (known keys here: provenance, sbom, sbomGenerator)`},
		{"images:\n  web: {context: ., attest: {slsa: true}}\n",
			":2: images.web.attest.slsa: unknown key (known keys here: provenance, sbom, sbomGenerator)"},
		{"attest: {sbom: yes please}\nimages:\n  web: {context: .}\n",
			`:1: attest.sbom: expected true or false, got "yes please"`},
		{"attest: {sbom: true, sbomGenerator: \"Not A Ref!\"}\nimages:\n  web: {context: .}\n",
			`:1: attest.sbomGenerator: "Not A Ref!" is not an image reference`},
	} {
		_, err := load(tc.yaml)
		if err == nil || !strings.Contains(err.Error(), "shipit.yaml"+tc.want) {
			t.Errorf("%q: got %v, want …shipit.yaml%s…", tc.yaml, err, tc.want)
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: %T is not a config error (exit 2)", tc.yaml, err)
		}
	}
	// The environment sets an image's key, which then wins over the top level's.
	t.Setenv("SHIPIT_IMAGES_WEB_ATTEST_PROVENANCE", "false")
	t.Setenv("SHIPIT_ATTEST_SBOM", "true")
	cfg, err = load("attest: {provenance: true}\nimages:\n  web: {context: .}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.AttestFor("web"); got != (Attestations{SBOM: true}) {
		t.Errorf("from the environment: %+v", got)
	}
}
