package kustomize

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	ecr     = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// app lays out a base with a Deployment (rails and nginx) and a migration
// Job, and one overlay per name.
func app(t testing.TB, overlays map[string]string) filesys.FileSystem {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	write := func(p, s string) {
		if err := fs.MkdirAll(filepath.Dir(p)); err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile(p, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("/repo/base/kustomization.yaml", "resources: [deployment.yaml, job.yaml]\n")
	write("/repo/base/deployment.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - {name: assets, image: app-rails}
      containers:
      - {name: rails, image: app-rails}
      - {name: nginx, image: app-nginx:latest}
`)
	write("/repo/base/job.yaml", `apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      containers:
      - {name: migrate, image: app-rails, command: [rails, db:migrate]}
`)
	for name, k := range overlays {
		write("/repo/overlays/"+name+"/kustomization.yaml", k)
	}
	return fs
}

func images(tag string, d string) []Image {
	return []Image{
		{Name: "app-rails", Repository: ecr + "/app-rails", Tag: tag, Digest: d},
		{Name: "app-nginx", Repository: ecr + "/app-nginx", Tag: tag, Digest: d},
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	fs := app(t, map[string]string{"prod": `# production
resources:
- ../../base
images:
# rails, pinned by shipit
- name: app-rails
  newName: ` + ecr + `/app-rails
  newTag: 20260101-000000-aaaaaaa
  digest: ` + digestA + `
`})
	c, err := Plan(fs, "/repo/overlays/prod", images("20260102-000000-bbbbbbb", digestB), ModeTagAndDigest, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `# production
resources:
- ../../base
images:
# rails, pinned by shipit
- name: app-rails
  newName: ` + ecr + `/app-rails
  newTag: 20260102-000000-bbbbbbb
  digest: ` + digestB + `
- name: app-nginx
  newName: ` + ecr + `/app-nginx
  newTag: 20260102-000000-bbbbbbb
  digest: ` + digestB + `
`
	if string(c.After) != want {
		t.Errorf("after:\n%s\nwant:\n%s", c.After, want)
	}
	rails, nginx := c.Images[0], c.Images[1]
	if !rails.Changed || rails.Old.NewTag != "20260101-000000-aaaaaaa" || nginx.Old.Found() {
		t.Errorf("changes = %+v", c.Images)
	}
	if got := strings.Join(rails.Uses, ","); got != "Deployment/web/assets,Deployment/web/rails,Job/migrate/migrate" {
		t.Errorf("rails runs in %s", got)
	}
	if got := strings.Join(nginx.Uses, ","); got != "Deployment/web/nginx" {
		t.Errorf("nginx runs in %s", got)
	}
	// Nothing was written.
	if b, _ := fs.ReadFile("/repo/overlays/prod/kustomization.yaml"); string(b) != string(c.Before) {
		t.Error("Plan wrote the file")
	}

	// Forward only: a keep function holds a newer pin.
	c, err = Plan(fs, "/repo/overlays/prod", images("20251231-000000-ccccccc", digestB), ModeTag,
		func(image string, cur Entry, next Pin) string {
			if cur.NewTag > next.NewTag {
				return "newer pinned"
			}
			return ""
		})
	if err != nil {
		t.Fatal(err)
	}
	if c.Images[0].Kept != "newer pinned" || c.Images[1].Kept != "" || !strings.Contains(string(c.After), "newTag: 20260101-000000-aaaaaaa") {
		t.Errorf("forward-only: %+v\n%s", c.Images, c.After)
	}
}

func TestPlanFindsTheManifestsName(t *testing.T) {
	t.Parallel()
	fs := app(t, map[string]string{"prod": "resources: [../../base]\n"})
	// The base names the image by its full repository.
	b, _ := fs.ReadFile("/repo/base/deployment.yaml")
	if err := fs.WriteFile("/repo/base/deployment.yaml", []byte(strings.ReplaceAll(string(b), "image: app-nginx:latest", "image: "+ecr+"/app-nginx:old"))); err != nil {
		t.Fatal(err)
	}
	c, err := Plan(fs, "/repo/overlays/prod", images("t2", digestB), ModeDigest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Images[1].Entry != ecr+"/app-nginx" || len(c.Images[1].Uses) != 1 {
		t.Errorf("nginx entry %q uses %v", c.Images[1].Entry, c.Images[1].Uses)
	}
	if strings.Contains(string(c.After), "newTag") {
		t.Errorf("digest mode wrote a tag:\n%s", c.After)
	}
}

// TestPlanFindsEntryByNewName: an entry named after the manifests' image
// ("rails") that already points at the repository is the image's entry.
func TestPlanFindsEntryByNewName(t *testing.T) {
	t.Parallel()
	fs := app(t, map[string]string{"prod": "resources: [../../base]\nimages:\n- name: app-rails\n  newName: " + ecr + "/app-rails\n  newTag: old\n"})
	c, err := Plan(fs, "/repo/overlays/prod", []Image{{Name: "web", Repository: ecr + "/app-rails", Tag: "new", Digest: digestA}}, ModeTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Images[0].Entry != "app-rails" || !c.Images[0].Old.Found() || strings.Count(string(c.After), "- name:") != 1 || len(c.Images[0].Uses) != 3 {
		t.Errorf("%+v\n%s", c.Images[0], c.After)
	}
}

// TestPlanConfiguredEntry: kustomize_name names the entry outright.
func TestPlanConfiguredEntry(t *testing.T) {
	t.Parallel()
	fs := app(t, map[string]string{"prod": "resources: [../../base]\n"})
	c, err := Plan(fs, "/repo/overlays/prod", []Image{{Name: "web", Entry: "app-rails", Repository: ecr + "/web", Tag: "t", Digest: digestA}}, ModeTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Images[0].Entry != "app-rails" || len(c.Images[0].Uses) != 3 || !strings.Contains(string(c.After), "- name: app-rails\n  newName: "+ecr+"/web\n") {
		t.Errorf("%+v\n%s", c.Images[0], c.After)
	}
}

func TestPlanFailures(t *testing.T) {
	t.Parallel()
	fs := app(t, map[string]string{
		"broken": "resources: [../../base, missing.yaml]\n",
		"patched": `resources: [../../base]
patches:
- target: {kind: Job, name: migrate}
  patch: |
    - op: replace
      path: /spec/template/spec/containers/0/image
      value: ` + ecr + `/app-rails:pinned-by-hand
`,
	})
	_, err := Plan(fs, "/repo/overlays/broken", images("t", digestA), ModeTag, nil)
	if err == nil || !strings.Contains(err.Error(), "overlay /repo/overlays/broken does not render") || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("broken overlay: %v", err)
	}
	_, err = Plan(fs, "/repo/overlays/patched", images("t", digestA), ModeTag, nil)
	var stale *StaleError
	if !errors.As(err, &stale) || stale.Container.Resource != "Job/migrate" {
		t.Errorf("a patch that hard-codes the image: %v", err)
	}
	if _, err := Plan(fs, "/repo/overlays/none", images("t", digestA), ModeTag, nil); err == nil || !strings.Contains(err.Error(), "no such directory") {
		t.Errorf("missing overlay: %v", err)
	}
}

// BenchmarkPlan plans and render-checks 1, 10 and 100 overlays of the
// base: pin editing and render checks, what release and pin do per overlay.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("overlays=%d", n), func(b *testing.B) {
			overlays := map[string]string{}
			for i := 0; i < n; i++ {
				overlays[fmt.Sprintf("o%03d", i)] = "resources: [../../base]\nnamespace: ns" + fmt.Sprint(i) + "\nimages:\n- name: app-rails\n  newTag: old\n"
			}
			fs := app(b, overlays)
			b.ResetTimer()
			for range b.N {
				for i := 0; i < n; i++ {
					if _, err := Plan(fs, fmt.Sprintf("/repo/overlays/o%03d", i), images("new", digestA), ModeTagAndDigest, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestPlanPreviousFollows: an entry named <entry>-previous takes the pin
// its entry had whenever that one moves, and the render check accepts the
// containers that run it.
func TestPlanPreviousFollows(t *testing.T) {
	t.Parallel()
	fs := app(t, map[string]string{"prod": `resources: [../../base]
images:
- name: app-rails
  newName: ` + ecr + `/app-rails
- name: app-rails-previous
  newName: ` + ecr + `/app-rails
`})
	// The assets init container runs the previous release.
	dep, _ := fs.ReadFile("/repo/base/deployment.yaml")
	if err := fs.WriteFile("/repo/base/deployment.yaml", []byte(strings.Replace(string(dep), "{name: assets, image: app-rails}", "{name: assets, image: app-rails-previous}", 1))); err != nil {
		t.Fatal(err)
	}
	dir := "/repo/overlays/prod"
	step := func(tag, digest string, keep Keep) *Change {
		t.Helper()
		c, err := Plan(fs, dir, images(tag, digest), ModeTagAndDigest, keep)
		if err != nil {
			t.Fatalf("plan %s: %v", tag, err)
		}
		if err := fs.WriteFile(c.File, c.After); err != nil {
			t.Fatal(err)
		}
		return c
	}
	entries := func() map[string]Entry {
		b, _ := fs.ReadFile(dir + "/kustomization.yaml")
		e, err := Images(b)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// The first release: nothing before it, so both run it.
	step("t1", digestA, nil)
	if e := entries(); e["app-rails-previous"].NewTag != "t1" || e["app-rails-previous"].Digest != digestA || e["app-rails"].NewTag != "t1" {
		t.Fatalf("after the first release: %+v", e)
	}
	// The second: previous is what app-rails pinned.
	c := step("t2", digestB, nil)
	if e := entries(); e["app-rails-previous"].NewTag != "t1" || e["app-rails-previous"].Digest != digestA || e["app-rails"].NewTag != "t2" {
		t.Fatalf("after the second release: %+v", e)
	}
	for _, ic := range c.Images {
		if ic.Image == "app-rails" && !slices.Contains(ic.Uses, "Deployment/web/rails") {
			t.Errorf("uses of app-rails: %v", ic.Uses)
		}
	}
	rendered, err := Render(fs, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range rendered {
		want := ecr + "/app-rails:t2@" + digestB
		if ct.Name == "assets" {
			want = ecr + "/app-rails:t1@" + digestA
		}
		if strings.Contains(ct.Image, "app-rails") && ct.Image != want {
			t.Errorf("%s runs %s, want %s", ct.Name, ct.Image, want)
		}
	}
	// The same release again, or a kept pin: previous does not move.
	step("t2", digestB, nil)
	step("t3", digestA, func(string, Entry, Pin) string { return "held" })
	if e := entries(); e["app-rails-previous"].NewTag != "t1" || e["app-rails"].NewTag != "t2" {
		t.Fatalf("previous moved without its entry: %+v", e)
	}
}
