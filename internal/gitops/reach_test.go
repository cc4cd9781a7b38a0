package gitops

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shipit-dev/shipit/internal/gitops/gitopstest"
	"github.com/shipit-dev/shipit/internal/kustomize"
)

// monorepo is a platform team's GitOps repository in small: an app whose
// overlay reaches its base, a shared component, a generator's file and a
// patch outside the app's directory, and another app nobody reads.
func monorepo() map[string]string {
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: web}]\n"
	return map[string]string{
		"README.md":                         "platform gitops\n",
		"apps/shop/base/kustomization.yaml": "resources: [deploy.yaml]\n",
		"apps/shop/base/deploy.yaml":        deploy,
		"apps/shop/overlays/prod/kustomization.yaml": `resources: [../../base, ../../../../shared/limits]
components: [../../../../components/monitoring]
images:
  - {name: web, newName: r.example.com/shop/web, newTag: "20260101-000000-aaaaaaa"}
`,
		"components/monitoring/kustomization.yaml":    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [cm.yaml]\nconfigMapGenerator:\n  - name: app\n    files: [app.env=cfg/app.env]\npatches:\n  - path: patches/replicas.yaml\n",
		"components/monitoring/cm.yaml":               "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: monitoring}\n",
		"components/monitoring/cfg/app.env":           "A=1\n",
		"components/monitoring/patches/replicas.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 2}\n",
		"shared/limits/kustomization.yaml":            "resources: [limits.yaml]\n",
		"shared/limits/limits.yaml":                   "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\n",
		"apps/other/base/kustomization.yaml":          "resources: [deploy.yaml]\n",
		"apps/other/base/deploy.yaml":                 deploy,
	}
}

// TestSparseReach: a workspace that includes an overlay checks out what
// its kustomization reaches, wherever it is in the repository, and nothing
// of the other apps; the overlay renders. The same with a server that
// refuses partial clones (git clones it whole, and says so).
func TestSparseReach(t *testing.T) {
	t.Parallel()
	for _, filter := range []bool{true, false} {
		bare := gitopstest.Remote(t, monorepo())
		gitopstest.Git(t, bare, "config", "uploadpack.allowFilter", map[bool]string{true: "true", false: "false"}[filter])
		w, err := Open(context.Background(), Target{Branch: Branch{URL: bare, Name: "main"}}, 1, "apps/shop/overlays/prod")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if w.repo.NoFilter == filter {
			t.Errorf("allowFilter %v: NoFilter is %v", filter, w.repo.NoFilter)
		}
		for _, p := range []string{"apps/shop/base/deploy.yaml", "components/monitoring/cm.yaml", "components/monitoring/cfg/app.env", "shared/limits/limits.yaml", "README.md"} {
			if _, err := os.Stat(w.Abs(p)); err != nil {
				t.Errorf("allowFilter %v: %s is not checked out: %v", filter, p, err)
			}
		}
		if _, err := os.Stat(w.Abs("apps/other/base/deploy.yaml")); err == nil {
			t.Errorf("allowFilter %v: another app's files are checked out", filter)
		}
		out, err := kustomize.RenderAll(kustomize.DiskFS(), w.Abs("apps/shop/overlays/prod"), nil)
		if err != nil {
			t.Fatalf("allowFilter %v: the overlay does not render: %v", filter, err)
		}
		if len(out.Containers) != 1 || out.Containers[0].Image != "r.example.com/shop/web:20260101-000000-aaaaaaa" {
			t.Errorf("allowFilter %v: rendered %+v", filter, out.Containers)
		}
	}
}

// TestSparseWrite: a change in a sparse workspace commits and pushes, and
// the other files of the repository stay as they were.
func TestSparseWrite(t *testing.T) {
	t.Parallel()
	bare := gitopstest.Remote(t, monorepo())
	w, err := Open(context.Background(), Target{Branch: Branch{URL: bare, Name: "main"}, Author: Author{Name: "t", Email: "t@example.com"}}, 1, "apps/shop/overlays/prod")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := filepath.Join("apps/shop/overlays/prod", HoldFile)
	sha, err := w.Publish(context.Background(), func(context.Context) ([]string, string, error) {
		return []string{p}, "hold", w.WriteFile(p, []byte("holds: {}\n"))
	})
	if err != nil || sha == "" {
		t.Fatalf("publish: %q %v", sha, err)
	}
	if got := gitopstest.Git(t, bare, "ls-tree", "-r", "--name-only", "main"); len(got) == 0 || !containsLine(got, "apps/other/base/deploy.yaml") || !containsLine(got, p) {
		t.Errorf("the pushed tree:\n%s", got)
	}
}

func containsLine(s, line string) bool { return slices.Contains(strings.Split(s, "\n"), line) }
