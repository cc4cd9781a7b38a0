package updater

import (
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The fields a test reads back from the printed ImageUpdater resources.
type printed struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name, Namespace string
		Annotations     map[string]string
	}
	Spec struct {
		WriteBackConfig struct {
			Method    string
			GitConfig struct {
				Branch          string
				WriteBackTarget string `yaml:"writeBackTarget"`
			} `yaml:"gitConfig"`
		} `yaml:"writeBackConfig"`
		ApplicationRefs []struct {
			NamePattern          string `yaml:"namePattern"`
			CommonUpdateSettings struct {
				UpdateStrategy string `yaml:"updateStrategy"`
				AllowTags      string `yaml:"allowTags"`
			} `yaml:"commonUpdateSettings"`
			Images []struct {
				Alias           string
				ImageName       string `yaml:"imageName"`
				ManifestTargets struct {
					Kustomize struct{ Name string }
				} `yaml:"manifestTargets"`
			}
		} `yaml:"applicationRefs"`
	}
}

// docs parses a YAML stream, every document of it.
func docs(t *testing.T, s string) []printed {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(s))
	var out []printed
	for {
		var p printed
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("the output is not YAML: %v\n%s", err, s)
		}
		out = append(out, p)
	}
}

// commented reads the v0.x annotations Render prints as comments: the
// "#   " lines after each resource, a YAML document each.
func commented(t *testing.T, s string) []printed {
	t.Helper()
	var stream []string
	for _, l := range strings.Split(s, "\n") {
		switch {
		case l == "---":
			stream = append(stream, l)
		case strings.HasPrefix(l, "#   metadata:"):
			stream = append(stream, strings.TrimPrefix(l, "#   "))
		case strings.HasPrefix(l, "#     "):
			stream = append(stream, strings.TrimPrefix(l, "#   "))
		}
	}
	return docs(t, strings.Join(stream, "\n"))
}

var shop = Config{
	Branch: "main",
	Images: []Image{
		{Alias: "app", Repository: "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/shop/app", KustomizeName: "app"},
		{Alias: "nginx", Repository: "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/shop/nginx", KustomizeName: "shop-nginx"},
	},
	Targets: []Target{
		{Env: "staging", Namespace: "argocd", Application: "shop-staging", Path: "services/shop/k8s/overlays/staging"},
		{Env: "production", Namespace: "ops", Application: "shop-production", Path: "services/shop/k8s/overlays/production"},
	},
}

// TestRenderEveryTarget: one ImageUpdater per Application, in the
// Application's namespace, naming it, writing to its overlay's
// kustomization by a path the updater reads from the repository's root,
// with shipit's tags and kustomize names.
func TestRenderEveryTarget(t *testing.T) {
	t.Parallel()
	out, err := Render(shop)
	if err != nil {
		t.Fatal(err)
	}
	got := docs(t, out)
	if len(got) != len(shop.Targets) {
		t.Fatalf("%d documents for %d targets:\n%s", len(got), len(shop.Targets), out)
	}
	for i, d := range got {
		want := shop.Targets[i]
		if d.APIVersion != "argocd-image-updater.argoproj.io/v1alpha1" || d.Kind != "ImageUpdater" {
			t.Errorf("document %d is %s %s", i, d.APIVersion, d.Kind)
		}
		if d.Metadata.Name != want.Application || d.Metadata.Namespace != want.Namespace {
			t.Errorf("document %d is %s/%s, want %s/%s", i, d.Metadata.Namespace, d.Metadata.Name, want.Namespace, want.Application)
		}
		wb := d.Spec.WriteBackConfig
		if wb.Method != "git" || wb.GitConfig.Branch != "main" {
			t.Errorf("%s: write-back %+v", want.Application, wb)
		}
		// The updater joins the target to the Application's source path,
		// which is the overlay: it must land on the overlay itself.
		if dir, err := Join(wb.GitConfig.WriteBackTarget, want.Path); err != nil || dir != want.Path {
			t.Errorf("%s: the updater looks for the kustomization in %q (%v), want %s", want.Application, dir, err, want.Path)
		}
		if len(d.Spec.ApplicationRefs) != 1 {
			t.Fatalf("%s: %d applicationRefs", want.Application, len(d.Spec.ApplicationRefs))
		}
		ref := d.Spec.ApplicationRefs[0]
		if ref.NamePattern != want.Application || ref.CommonUpdateSettings.UpdateStrategy != Alphabetical {
			t.Errorf("%s: applicationRef %+v", want.Application, ref)
		}
		checkAllow(t, ref.CommonUpdateSettings.AllowTags, "")
		if len(ref.Images) != 2 || ref.Images[1].Alias != "nginx" || ref.Images[1].ImageName != shop.Images[1].Repository || ref.Images[1].ManifestTargets.Kustomize.Name != "shop-nginx" {
			t.Errorf("%s: images %+v", want.Application, ref.Images)
		}
	}
	// The v0.x annotations after each resource say the same.
	ann := commented(t, out)
	if len(ann) != len(shop.Targets) {
		t.Fatalf("%d annotation blocks for %d targets:\n%s", len(ann), len(shop.Targets), out)
	}
	for i, a := range ann {
		checkAnnotations(t, a.Metadata.Annotations, shop, shop.Targets[i])
	}
}

// checkAllow: the allow-tags regexp takes the prefix's release tags and
// nothing else.
func checkAllow(t *testing.T, allow, prefix string) {
	t.Helper()
	p, ok := strings.CutPrefix(allow, "regexp:")
	if !ok {
		t.Fatalf("allow-tags %q is not a regexp", allow)
	}
	re := regexp.MustCompile(p)
	for s, want := range map[string]bool{
		prefix + "20260506-060000-abcdef0":       true,
		prefix + "20260506-060000-abcdef0-dirty": false,
		"latest":                                 false,
		"x" + prefix + "20260506-060000-abcdef0": false,
		prefix + "buildcache":                    false,
	} {
		if re.MatchString(s) != want {
			t.Errorf("allow-tags %s matches %s: %v", allow, s, !want)
		}
	}
}

func checkAnnotations(t *testing.T, a map[string]string, c Config, want Target) {
	t.Helper()
	const p = "argocd-image-updater.argoproj.io/"
	if a[p+"write-back-method"] != "git" || a[p+"git-branch"] != c.Branch {
		t.Errorf("%s: annotations %v", want.Application, a)
	}
	if dir, err := Join(a[p+"write-back-target"], want.Path); err != nil || dir != want.Path {
		t.Errorf("%s: the v0.x updater looks in %q (%v), want %s", want.Application, dir, err, want.Path)
	}
	var list []string
	for _, im := range c.Images {
		list = append(list, im.Alias+"="+im.Repository)
		if a[p+im.Alias+".update-strategy"] != c.strategy() || a[p+im.Alias+".kustomize.image-name"] != im.KustomizeName {
			t.Errorf("%s: %s annotations %v", want.Application, im.Alias, a)
		}
		checkAllow(t, a[p+im.Alias+".allow-tags"], c.TagPrefix)
	}
	if a[p+"image-list"] != strings.Join(list, ",") {
		t.Errorf("%s: image-list %q", want.Application, a[p+"image-list"])
	}
}

// TestRenderAnnotations: the merge patches, one per Application, each
// naming the command that applies it.
func TestRenderAnnotations(t *testing.T) {
	t.Parallel()
	c := shop
	c.TagPrefix = "pr-12-"
	out, err := RenderAnnotations(c)
	if err != nil {
		t.Fatal(err)
	}
	got := docs(t, out)
	if len(got) != 2 {
		t.Fatalf("%d documents:\n%s", len(got), out)
	}
	for i, d := range got {
		if d.Kind != "" || d.Metadata.Name != "" {
			t.Errorf("a merge patch of the Application has only annotations: %+v", d)
		}
		checkAnnotations(t, d.Metadata.Annotations, c, c.Targets[i])
	}
	if !strings.Contains(out, "kubectl -n ops patch application shop-production --type merge") {
		t.Errorf("no command for the production Application in ops:\n%s", out)
	}
}

// TestNewestBuildWarns: the strategy asked for is printed, under a warning
// that it never rolls back; the default's comment says why not to use it.
func TestNewestBuildWarns(t *testing.T) {
	t.Parallel()
	def, err := Render(shop)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def, "Do not use newest-build") {
		t.Errorf("the default output does not say why not newest-build:\n%s", def)
	}
	c := shop
	c.Strategy = NewestBuild
	out, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs(t, out) {
		if s := d.Spec.ApplicationRefs[0].CommonUpdateSettings.UpdateStrategy; s != NewestBuild {
			t.Errorf("strategy %q", s)
		}
	}
	for i, a := range commented(t, out) {
		checkAnnotations(t, a.Metadata.Annotations, c, c.Targets[i])
	}
	if !strings.Contains(out, "WARNING: updateStrategy newest-build never rolls back") {
		t.Errorf("no warning:\n%s", out)
	}
	c.Strategy = "semver"
	if _, err := Render(c); err == nil {
		t.Error("semver rendered")
	}
}

// TestRenderHostileValues: values that YAML would misread (a branch with
// ": " and "#", a path with a quote) come back as they went in.
func TestRenderHostileValues(t *testing.T) {
	t.Parallel()
	c := Config{Branch: "release: 1 # x", Images: shop.Images[:1],
		Targets: []Target{{Env: "e", Namespace: "argocd", Application: "a", Path: `k8s/"o": #1`}}}
	out, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	d := docs(t, out)
	if len(d) != 1 || d[0].Spec.WriteBackConfig.GitConfig.Branch != c.Branch || d[0].Spec.WriteBackConfig.GitConfig.WriteBackTarget != `kustomization:/k8s/"o": #1` {
		t.Errorf("%+v\n%s", d, out)
	}
	if a := commented(t, out); len(a) != 1 || a[0].Metadata.Annotations["argocd-image-updater.argoproj.io/git-branch"] != c.Branch {
		t.Errorf("annotations %+v\n%s", a, out)
	}
	// A line break in a value shown in a comment does not end the comment.
	c.Targets[0].Path = "k8s/o\n---\nkind: Secret\n"
	c.TagPrefix = "x\nkind: Secret\n#"
	for _, render := range []func(Config) (string, error){Render, RenderAnnotations} {
		out, err := render(c)
		if err != nil {
			t.Fatal(err)
		}
		if d := docs(t, out); len(d) != 1 || strings.Contains(out, "\nkind: Secret") {
			t.Errorf("a value broke out of its comment:\n%s", out)
		}
	}
	if _, err := Targets(Env{Name: "e", Namespace: "ops\n---", Overlays: []string{"o"}}, ""); !errors.Is(err, ErrNamespace) {
		t.Errorf("a namespace with a line break: %v", err)
	}
	if _, err := Targets(Env{Name: "e", Overlays: []string{"."}}, "shop"); !errors.Is(err, ErrNoName) {
		t.Errorf("an overlay with no name: %v", err)
	}
}

// TestJoin is the updater's rule (parseKustomizeBase in v0.18 and v1.2):
// a leading "/" is from the repository's root, anything else from the
// Application's source path. The relative target shipit used to print
// lands below the overlay, where there is no kustomization.
func TestJoin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ target, source, want string }{
		{"kustomization:/k8s/overlays/prod", "k8s/overlays/prod", "k8s/overlays/prod"},
		{"kustomization:k8s/overlays/prod", "k8s/overlays/prod", "k8s/overlays/prod/k8s/overlays/prod"},
		{"kustomization:.", "k8s/overlays/prod", "k8s/overlays/prod"},
		{"kustomization", "k8s/overlays/prod", "k8s/overlays/prod"},
		{"kustomization:../base", "k8s/overlays/prod", "k8s/overlays/base"},
		{WriteBackTarget("."), "apps", "."},
		{WriteBackTarget("./a//b/"), "x", "a/b"},
	} {
		if got, err := Join(c.target, c.source); err != nil || got != c.want {
			t.Errorf("Join(%q, %q) = %q, %v; want %q", c.target, c.source, got, err, c.want)
		}
	}
	for _, bad := range []string{"helmvalues:/values.yaml", "kustomizationx", ""} {
		if _, err := Join(bad, "a"); err == nil {
			t.Errorf("Join(%q) took it", bad)
		}
	}
}

// TestTargets pairs overlays and Applications, with the overlay paths
// from the repository's root.
func TestTargets(t *testing.T) {
	t.Parallel()
	got, err := Targets(Env{Name: "production", Overlays: []string{"k8s/overlays/production"}, Applications: []string{"shop-tokyo", "shop-osaka"}}, "services/shop")
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{Env: "production", Namespace: "argocd", Application: "shop-tokyo", Path: "services/shop/k8s/overlays/production"},
		{Env: "production", Namespace: "argocd", Application: "shop-osaka", Path: "services/shop/k8s/overlays/production"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("one overlay, two Applications: %+v", got)
	}
	got, err = Targets(Env{Name: "prod", Namespace: "ops", Overlays: []string{"overlays/a", "./overlays/b/"}, Applications: []string{"a", "b"}}, "")
	if err != nil || !slices.Equal(got, []Target{{"prod", "ops", "a", "overlays/a"}, {"prod", "ops", "b", "overlays/b"}}) {
		t.Errorf("two and two: %+v %v", got, err)
	}
	got, err = Targets(Env{Name: "default", Overlays: []string{"k8s/Overlays/prod_1"}}, "")
	if err != nil || !slices.Equal(got, []Target{{"default", "argocd", "k8s-overlays-prod-1", "k8s/Overlays/prod_1"}}) {
		t.Errorf("no Applications: %+v %v", got, err)
	}
	for _, apps := range [][]string{{"a"}, {"a", "b", "c"}} {
		if _, err := Targets(Env{Overlays: []string{"x", "y"}, Applications: apps}, ""); !errors.Is(err, ErrPairing) {
			t.Errorf("%d Applications for 2 overlays: %v", len(apps), err)
		}
	}
	c := shop
	c.Targets = append(c.Targets, Target{Env: "qa", Namespace: "ops", Application: "shop-production", Path: "elsewhere"})
	if _, err := Render(c); !errors.Is(err, ErrDuplicate) {
		t.Errorf("one Application for two overlays: %v", err)
	}
}
