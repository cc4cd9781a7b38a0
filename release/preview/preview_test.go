package preview

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/gitops/gitopstest"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
	"github.com/shipit-dev/shipit/release"
)

const tA = "20260101-000000-aaaaaaa"

// clusterObjects are what staging's base holds outside a namespace, as
// real apps' bases do: a ClusterRole and its binding, a CRD, and a
// custom resource of a cluster-scoped kind that CRD defines.
const clusterObjects = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shop-reader}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: shop-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shop-reader}
subjects: [{kind: ServiceAccount, name: web, namespace: shop-staging}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: tenants.shop.example.com}
spec:
  group: shop.example.com
  scope: Cluster
  names: {kind: Tenant, plural: tenants}
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
---
apiVersion: shop.example.com/v1
kind: Tenant
metadata: {name: acme}
`

type fixture struct {
	bare string
	opt  UpOptions
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	host := registrytest.Serve(t)
	files := gitopstest.Files()
	files["k8s/base/cluster.yaml"] = clusterObjects
	files["k8s/base/kustomization.yaml"] = "resources: [deploy.yaml, cluster.yaml]\n"
	files["k8s/overlays/staging/kustomization.yaml"] = "namespace: shop-staging\n" + gitopstest.Overlay
	files["k8s/overlays/production/kustomization.yaml"] = "namespace: shop\n" + gitopstest.Overlay
	bare := gitopstest.Remote(t, files)
	dir := t.TempDir()
	rec := &build.Record{Version: build.RecordVersion, Commit: "c0ffee1", Tag: tA}
	for _, n := range []string{"web", "worker"} {
		img, _ := random.Image(128, 1)
		p, err := layout.Write(filepath.Join(dir, "images", n), empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		rec.Images = append(rec.Images, build.Image{Name: n, Repository: host + "/team/" + n, Tag: tA, Digest: d.String(), Commit: rec.Commit, Layout: "images/" + n})
	}
	dep := release.Deploy{
		Target:   gitops.Target{Branch: gitops.Branch{URL: bare, Name: "main"}, Author: release.DefaultAuthor, Attempts: 3},
		Overlays: []string{"k8s/overlays/staging"}, Mode: kustomize.ModeTagAndDigest, Env: "staging",
	}
	return &fixture{bare: bare, opt: UpOptions{
		Options: release.Options{Record: rec, RecordDir: dir, Registry: registrytest.Client(), Deploy: dep},
		Name:    "pr-7",
		Spec: Spec{Dir: "k8s/previews", From: dep.Overlays, Namespace: "shop-pr-7", Reserved: []string{"argocd", "gitops"},
			Environments: []string{"k8s/overlays/staging", "k8s/overlays/production"}},
	}}
}

// TestPreviewLeavesOutClusterObjects: a preview of an overlay holding a
// ClusterRole, its binding, a CRD and a cluster-scoped custom resource
// renders none of them (taking the preview down would delete staging's),
// and says which.
func TestPreviewLeavesOutClusterObjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	res, err := Up(context.Background(), f.opt)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ClusterRole/shop-reader", "ClusterRoleBinding/shop-reader", "CustomResourceDefinition/tenants.shop.example.com", "Tenant/acme"}
	if strings.Join(res.LeftOut, ",") != strings.Join(want, ",") {
		t.Errorf("left out %v, want %v", res.LeftOut, want)
	}
	work := filepath.Join(t.TempDir(), "w")
	gitopstest.Git(t, filepath.Dir(work), "clone", "-q", f.bare, work)
	out, err := kustomize.RenderAll(kustomize.DiskFS(), filepath.Join(work, "k8s/previews/pr-7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.ClusterScoped) > 0 || len(out.Containers) == 0 {
		t.Errorf("the preview renders %v (and %d containers)", out.ClusterScoped, len(out.Containers))
	}
	for _, ns := range out.Namespaces {
		if ns != "shop-pr-7" {
			t.Errorf("the preview renders into %s", ns)
		}
	}
}

// TestPreviewNamespaceOfItsOwn: a preview into an environment's namespace,
// the cluster's own or Argo CD's is refused as bad input, with nothing
// committed.
func TestPreviewNamespaceOfItsOwn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	head := gitopstest.Git(t, f.bare, "rev-parse", "main")
	for _, ns := range []string{"shop", "shop-staging", "default", "kube-system", "kube-public", "argocd", "gitops"} {
		o := f.opt
		o.Spec.Namespace = ns
		_, err := Up(context.Background(), o)
		var ne *NamespaceError
		if !errors.As(err, &ne) || !ne.BadInput() || !strings.Contains(err.Error(), ns) {
			t.Errorf("namespace %s: err = %v, want a NamespaceError", ns, err)
		}
	}
	if gitopstest.Git(t, f.bare, "rev-parse", "main") != head {
		t.Error("a refused preview was committed")
	}
}
