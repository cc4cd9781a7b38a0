package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The tests here apply `shipit updater-config`'s output, as printed, to the
// test cluster, and follow its write-back target the way Argo CD Image
// Updater (v0.18 and v1.2) does: from the ImageUpdater in the Application's
// namespace, to the Applications its namePattern selects there, to the
// directory the target names (with a leading "/", from the repository's
// root; without, from the Application's spec.source.path). That directory
// must be the overlay shipit.yaml configures, in the repository Argo CD
// reads. The cluster has no Image Updater, so the tests install its
// resource's definition (testdata/imageupdater-crd.yaml).

// updaterApp is an Argo CD Application that syncs path of bare (by hand:
// these tests only read it).
func updaterApp(name, ns, bare, path string) string {
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s, namespace: %s}
spec:
  project: default
  source: {repoURL: "file://%s", targetRevision: main, path: %s}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
`, name, ns, bare, path, name)
}

// updaterApplied is one ImageUpdater as the cluster holds it.
type updaterApplied struct {
	Metadata struct{ Name, Namespace string }
	Spec     struct {
		WriteBackConfig struct {
			Method    string
			GitConfig struct{ Branch, WriteBackTarget string }
		}
		ApplicationRefs []struct {
			NamePattern string
			Images      []struct {
				Alias, ImageName string
				ManifestTargets  struct{ Kustomize struct{ Name string } }
			}
		}
	}
}

// liveApp is an Application as the cluster holds it.
type liveApp struct {
	Metadata struct {
		Name, Namespace string
		Annotations     map[string]string
	}
	Spec struct {
		Source struct{ RepoURL, Path string }
	}
}

// joinTarget is where the updater looks for the kustomization: its rule
// (parseKustomizeBase), written here again so the test does not take
// shipit's word for it.
func joinTarget(t *testing.T, target, sourcePath string) string {
	t.Helper()
	p, ok := strings.CutPrefix(target, "kustomization:")
	if !ok {
		t.Fatalf("write-back target %q is not a kustomization", target)
	}
	if rest, abs := strings.CutPrefix(p, "/"); abs {
		return path.Clean(rest)
	}
	return path.Join(sourcePath, p)
}

func installUpdaterCRD(t *testing.T, kc string) {
	t.Helper()
	kubectl(t, kc, "", "apply", "--server-side", "-f", "testdata/imageupdater-crd.yaml")
	kubectl(t, kc, "", "wait", "--for", "condition=established", "--timeout=60s", "crd/imageupdaters.argocd-image-updater.argoproj.io")
}

// checkWriteBack applies updater-config's output in dir and follows each
// ImageUpdater to the directory its target names; want maps each
// "namespace/application" to the overlay's path in the repository.
func checkWriteBack(t *testing.T, kc, dir string, want map[string]string) {
	t.Helper()
	out := mustShipit(t, dir, nil, "updater-config").stdout
	applied := kubectl(t, kc, out, "apply", "-f", "-")
	t.Cleanup(func() {
		for key := range want {
			ns, name, _ := strings.Cut(key, "/")
			_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", ns, "delete", "imageupdater", name, "--ignore-not-found").Run()
		}
	})
	if n := strings.Count(applied, "imageupdater.argocd-image-updater.argoproj.io/"); n != len(want) {
		t.Errorf("kubectl apply made %d ImageUpdaters, want %d:\n%s", n, len(want), applied)
	}
	for key, overlay := range want {
		ns, name, _ := strings.Cut(key, "/")
		var iu updaterApplied
		if err := json.Unmarshal([]byte(kubectl(t, kc, "", "-n", ns, "get", "imageupdater", name, "-o", "json")), &iu); err != nil {
			t.Fatal(err)
		}
		var apps struct{ Items []liveApp }
		if err := json.Unmarshal([]byte(kubectl(t, kc, "", "-n", ns, "get", "applications", "-o", "json")), &apps); err != nil {
			t.Fatal(err)
		}
		// The Applications the ImageUpdater selects: in its namespace,
		// by namePattern (a glob, matched with filepath.Match).
		var picked []liveApp
		for _, a := range apps.Items {
			for _, ref := range iu.Spec.ApplicationRefs {
				if m, _ := filepath.Match(ref.NamePattern, a.Metadata.Name); m {
					picked = append(picked, a)
					break
				}
			}
		}
		if len(picked) != 1 || picked[0].Metadata.Name != name {
			t.Errorf("ImageUpdater %s selects %d Applications in %s, want just %s: %+v", key, len(picked), ns, name, picked)
			continue
		}
		got := joinTarget(t, iu.Spec.WriteBackConfig.GitConfig.WriteBackTarget, picked[0].Spec.Source.Path)
		if got != overlay {
			t.Errorf("ImageUpdater %s writes to %s (target %q, source path %s), want the overlay %s", key, got, iu.Spec.WriteBackConfig.GitConfig.WriteBackTarget, picked[0].Spec.Source.Path, overlay)
		}
		checkKustomization(t, strings.TrimPrefix(picked[0].Spec.Source.RepoURL, "file://"), iu.Spec.WriteBackConfig.GitConfig.Branch, got)
		if m := iu.Spec.WriteBackConfig.Method; m != "git" {
			t.Errorf("ImageUpdater %s write-back method %q", key, m)
		}
		if r := iu.Spec.ApplicationRefs[0]; len(r.Images) != 1 || r.Images[0].Alias != "web" || r.Images[0].ManifestTargets.Kustomize.Name != "web" {
			t.Errorf("ImageUpdater %s images %+v", key, r.Images)
		}
	}
}

// checkKustomization: the repository's branch has a kustomization in dir
// that pins the image web, which is what the updater edits.
func checkKustomization(t *testing.T, bare, branch, dir string) {
	t.Helper()
	k, err := gitMaybe(bare, "show", branch+":"+path.Join(dir, "kustomization.yaml"))
	if err != nil || !strings.Contains(k, "name: web") {
		t.Errorf("%s has no kustomization pinning web at %s/%s: %v\n%s", bare, branch, dir, err, k)
	}
}

// TestUpdaterConfigMonorepo: deploy.repo "." with shipit.yaml in
// services/shop: the overlays are below shipit.yaml's directory, and the
// target names them from the repository's root, where Argo CD's path
// starts.
func TestUpdaterConfigMonorepo(t *testing.T) {
	kc := kubeconfig(t)
	installUpdaterCRD(t, kc)
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	root := t.TempDir()
	bare := filepath.Join(root, "monorepo.git")
	git(t, root, "", "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(root, "work")
	git(t, root, "", "clone", "-q", bare, work)
	staging, production := "shop-staging-"+id, "shop-production-"+id
	overlay := "resources: [../../base]\nimages:\n  - name: web\n    newName: " + registry + "/shop/web\n    newTag: \"20260101-000000-0000000\"\n"
	writeFiles(t, work, map[string]string{
		"README.md": "a monorepo\n",
		"services/shop/shipit.yaml": "registry: " + registry + "/shop\nimages:\n  web: {context: .}\ndeploy:\n  repo: .\n  branch: main\n  mode: image-updater\n" +
			"  environments:\n    - name: staging\n      overlays: [k8s/overlays/staging]\n      argocd: {applications: [" + staging + "]}\n" +
			"    - name: production\n      overlays: [k8s/overlays/production]\n      argocd: {applications: [" + production + "]}\n",
		"services/shop/Dockerfile":                                 "FROM scratch\n",
		"services/shop/k8s/base/kustomization.yaml":                "resources: []\n",
		"services/shop/k8s/overlays/staging/kustomization.yaml":    overlay,
		"services/shop/k8s/overlays/production/kustomization.yaml": overlay,
	})
	git(t, work, "", "add", "-A")
	git(t, work, "", "commit", "-qm", "shop")
	git(t, work, "", "push", "-q", "origin", "HEAD:main")
	kubectl(t, kc, updaterApp(staging, "argocd", bare, "services/shop/k8s/overlays/staging")+"---\n"+
		updaterApp(production, "argocd", bare, "services/shop/k8s/overlays/production"), "apply", "-f", "-")
	t.Cleanup(func() {
		_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "application", staging, production, "--wait=false").Run()
	})
	checkWriteBack(t, kc, filepath.Join(work, "services/shop"), map[string]string{
		"argocd/" + staging:    "services/shop/k8s/overlays/staging",
		"argocd/" + production: "services/shop/k8s/overlays/production",
	})
}

// TestUpdaterConfigGitOpsRepo: a separate GitOps repository, with the
// production Applications outside argocd: each ImageUpdater lives where
// its Application does (the v1 resource selects only there), and the v0.x
// annotations, patched onto the Application as printed, name the same
// overlay.
func TestUpdaterConfigGitOpsRepo(t *testing.T) {
	kc := kubeconfig(t)
	installUpdaterCRD(t, kc)
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	bare := clusterGitOps(t, id)
	staging, production, ops := "shop-staging-"+id, "shop-production-"+id, "apps-"+id
	kubectl(t, kc, "", "create", "namespace", ops)
	t.Cleanup(func() {
		_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "application", staging, "--wait=false").Run()
		_ = exec.Command("kubectl", "--kubeconfig", kc, "delete", "namespace", ops, "--wait=false").Run()
	})
	kubectl(t, kc, updaterApp(staging, "argocd", bare, "overlays/staging")+"---\n"+updaterApp(production, ops, bare, "overlays/prod"), "apply", "-f", "-")
	dir := t.TempDir()
	git(t, dir, "", "init", "-q", "-b", "main")
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + registry + "/shop\nimages:\n  web: {context: .}\ndeploy:\n  repo: " + bare + "\n  branch: main\n  mode: image-updater\n" +
			"  environments:\n    - name: staging\n      overlays: [overlays/staging]\n      argocd: {applications: [" + staging + "]}\n" +
			"    - name: production\n      overlays: [overlays/prod]\n      argocd: {applications: [" + production + "], namespace: " + ops + "}\n",
		"Dockerfile": "FROM scratch\n",
	})
	checkWriteBack(t, kc, dir, map[string]string{
		"argocd/" + staging:    "overlays/staging",
		ops + "/" + production: "overlays/prod",
	})
	if out := kubectl(t, kc, "", "get", "imageupdaters", "-A", "--field-selector", "metadata.name="+production, "-o", "name"); strings.Count(out, "\n") != 0 || out == "" {
		t.Errorf("the production ImageUpdater is in more namespaces than %s:\n%s", ops, out)
	}

	// The v0.x form: the annotations, patched onto the Application.
	patch := filepath.Join(t.TempDir(), "patch.yaml")
	if err := os.WriteFile(patch, []byte(mustShipit(t, dir, nil, "updater-config", "--env", "production", "--annotations").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, kc, "", "-n", ops, "patch", "application", production, "--type", "merge", "--patch-file", patch)
	var a liveApp
	if err := json.Unmarshal([]byte(kubectl(t, kc, "", "-n", ops, "get", "application", production, "-o", "json")), &a); err != nil {
		t.Fatal(err)
	}
	const p = "argocd-image-updater.argoproj.io/"
	ann := a.Metadata.Annotations
	if got := joinTarget(t, ann[p+"write-back-target"], a.Spec.Source.Path); got != "overlays/prod" {
		t.Errorf("the v0.x annotations write to %s, want overlays/prod: %v", got, ann)
	}
	if ann[p+"image-list"] != "web="+registry+"/shop/web" || ann[p+"web.update-strategy"] != "alphabetical" || ann[p+"web.kustomize.image-name"] != "web" || ann[p+"git-branch"] != "main" {
		t.Errorf("annotations %v", ann)
	}

	// newest-build is printed as asked, with a warning on stderr.
	r := mustShipit(t, dir, nil, "updater-config", "--strategy", "newest-build", "--env", "staging")
	if !strings.Contains(r.stdout, "updateStrategy: newest-build") || !strings.Contains(r.stderr, "never rolls back") {
		t.Errorf("--strategy newest-build:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	if r := shipitRun(t, dir, nil, "updater-config", "--strategy", "semver"); r.code != 2 || !strings.Contains(r.stderr, "--strategy semver") {
		t.Errorf("--strategy semver: exit %d: %s", r.code, r.stderr)
	}
}

// TestUpdaterStatusDigest: in Image Updater mode status names the
// updater's pick, and warns of a digest in the overlay, which the
// updater's next write drops.
func TestUpdaterStatusDigest(t *testing.T) {
	t.Parallel()
	repo := uniqueRepo(t)
	var digest string
	tags := []string{"20260506-060000-aaaaaaa", "20260506-070000-bbbbbbb", "20260506-070000-bbbbbbb-dirty", "latest"}
	for _, tg := range tags {
		img, _ := random.Image(64, 1)
		ref, _ := name.NewTag(repo + "/web:" + tg)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); tg == tags[0] {
			digest = d.String()
		}
	}
	dir := t.TempDir()
	git(t, dir, "", "init", "-q", "-b", "main")
	status := func(pin string) ([]statusRow, string) {
		bare := newGitOps(t, "resources: [../../base]\nimages:\n  - name: web\n    newName: "+repo+"/web\n"+pin)
		writeFiles(t, dir, map[string]string{
			"shipit.yaml": "registry: " + repo + "\nimages:\n  web: {context: .}\ndeploy:\n  repo: " + bare + "\n  branch: main\n  mode: image-updater\n  overlays: [overlays/prod]\n",
			"Dockerfile":  "FROM scratch\n",
		})
		r := mustShipit(t, dir, nil, "status", "-o", "json", "--cluster=false")
		var rows []statusRow
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		return rows, r.stderr
	}
	rows, stderr := status("    newTag: \"" + tags[0] + "\"\n    digest: " + digest + "\n")
	if len(rows) != 1 || rows[0].UpdaterPick != tags[1] || rows[0].PinnedTag != tags[0] {
		t.Errorf("status: %+v", rows)
	}
	if !strings.Contains(stderr, "overlays/prod pins web by digest "+digest) || !strings.Contains(stderr, "drops the digest") {
		t.Errorf("no warning of the digest the updater drops:\n%s", stderr)
	}
	// A tag alone: the same pick, no warning.
	rows, stderr = status("    newTag: \"" + tags[0] + "\"\n")
	if len(rows) != 1 || rows[0].UpdaterPick != tags[1] || strings.Contains(stderr, "digest") {
		t.Errorf("a tag pin: %+v\n%s", rows, stderr)
	}
}
