package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/shipit-dev/shipit"

// TestDependencyDirection keeps the layering visible and enforced, the way
// crane's depcheck test does: it asks the go command what each package
// imports, directly or not, and fails on an import against the direction.
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	deps := goList(t, "Deps")
	imports := goList(t, "Imports")
	if len(deps) < 10 {
		t.Fatalf("go list found %d packages: the test would check nothing", len(deps))
	}
	for _, tc := range []struct {
		pkg       string // the package (and those below it, with a trailing /...)
		forbidden func(dep string) bool
		why       string
	}{
		{"build/...", prefixed(module + "/release"), "build never imports release: release depends on build's record, not the reverse"},
		{"internal/kustomize", prefixed(module), "the pin editor imports no shipit package"},
		{"internal/tag", prefixed(module), "the release tag imports no shipit package"},
		{"internal/updater", func(d string) bool { return prefixed(module)(d) && d != module+"/internal/tag" }, "the Image Updater's rules import no shipit package but the tag"},
		{"build/...", nameIs(module + "/internal/config"), "build takes build specs from the composition root, not the configuration"},
		{"release/...", nameIs(module + "/internal/config"), "release takes its deploy target from the composition root, not the configuration"},
		// cli -> command families (build, release, release/preview,
		// release/prune, internal/scaffold) -> internal leaves and adapters.
		{"build/...", commandLine, "command families never import the command line"},
		{"release/...", commandLine, "command families never import the command line"},
		{"internal/scaffold", commandLine, "command families never import the command line"},
		{"release", nameIs(module + "/release/preview"), "the pin verbs never import the features built on them"},
		{"release", nameIs(module + "/release/prune"), "the pin verbs never import the features built on them"},
		{"release/preview", nameIs(module + "/release/prune"), "previews never import retention"},
	} {
		for pkg, ds := range deps {
			if !matches(pkg, module+"/"+tc.pkg) {
				continue
			}
			for _, d := range ds {
				if d != pkg && tc.forbidden(d) {
					t.Errorf("%s imports %s: %s", pkg, d, tc.why)
				}
			}
		}
	}
	// What several families use lives in internal/, below them all.
	for pkg, ds := range deps {
		if !strings.HasPrefix(pkg, module+"/internal/") || matches(pkg, module+"/internal/cli") || matches(pkg, module+"/internal/scaffold") {
			continue
		}
		for _, d := range ds {
			if family(d) {
				t.Errorf("%s imports %s: a leaf or adapter in internal/ never imports a command family", pkg, d)
			}
		}
	}
	// One registry client: only internal/registry speaks to registries
	// through go-containerregistry's remote and transport packages, so
	// every request has shipit's network policy (TLS, idle limit, retries).
	for pkg, ds := range imports {
		if matches(pkg, module+"/internal/registry/...") {
			continue
		}
		for _, d := range ds {
			if d == ggcrRemote || d == ggcrRemote+"/transport" {
				t.Errorf("%s imports %s: registry requests go through internal/registry's client", pkg, d)
			}
		}
	}
	// Signatures: only internal/sign imports sigstore's packages (the
	// signature and payload formats), and its requests go through
	// internal/registry's client. cosign's own packages are the tests'
	// oracle only: they link a transparency-log client and a Kubernetes
	// clientset, whose start-up every command would pay.
	for pkg, ds := range imports {
		for _, d := range ds {
			if strings.HasPrefix(d, "github.com/sigstore/cosign/") {
				t.Errorf("%s imports %s: cosign's packages are for tests; internal/sign writes its format", pkg, d)
			}
		}
		if matches(pkg, module+"/internal/sign") {
			if !slices.Contains(ds, module+"/internal/registry") {
				t.Errorf("%s does not import internal/registry: its requests must go through the registry client", pkg)
			}
			continue
		}
		for _, d := range ds {
			if strings.HasPrefix(d, "github.com/sigstore/") {
				t.Errorf("%s imports %s: signing and verifying go through internal/sign", pkg, d)
			}
		}
	}
	// Nothing below the command line imports the flag and command
	// libraries, and only the configuration loader imports viper.
	for pkg, ds := range imports {
		if pkg == module+"/internal/cli" || strings.HasPrefix(pkg, module+"/cmd/") {
			continue
		}
		for _, d := range ds {
			if d == "github.com/spf13/cobra" || d == "github.com/spf13/pflag" || (d == "github.com/spf13/viper" && pkg != module+"/internal/config") {
				t.Errorf("%s imports %s: only internal/cli may (and internal/config, viper)", pkg, d)
			}
		}
	}
}

// goList maps each of the module's packages to its Deps (everything it
// links) or Imports (what it names).
func goList(t *testing.T, field string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .`+field+` " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[f[0]] = f[1:]
	}
	return m
}

func matches(pkg, pattern string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == p || strings.HasPrefix(pkg, p+"/")
	}
	return pkg == pattern
}

const ggcrRemote = "github.com/google/go-containerregistry/pkg/v1/remote"

// commandLine is the command line's package.
func commandLine(d string) bool { return d == module+"/internal/cli" }

// family reports whether a package is a command family.
func family(d string) bool {
	return d == module+"/build" || strings.HasPrefix(d, module+"/build/") ||
		d == module+"/release" || strings.HasPrefix(d, module+"/release/") ||
		d == module+"/internal/scaffold" || d == module+"/internal/cli"
}

func prefixed(p string) func(string) bool {
	return func(d string) bool { return d == p || strings.HasPrefix(d, p+"/") }
}

func nameIs(p string) func(string) bool { return func(d string) bool { return d == p } }
