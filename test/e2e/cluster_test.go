package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests here drive shipit against the project's test cluster
// (ci/cluster.sh): a real kube-apiserver with kwok's simulated node, and a
// real Argo CD syncing a bare GitOps repository on this machine.

func kubeconfig(t *testing.T) string {
	t.Helper()
	k := os.Getenv("SHIPIT_TEST_KUBECONFIG")
	if k == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no test cluster (SHIPIT_TEST_KUBECONFIG): run the tests through `make test`, which starts ci/cluster.sh")
		}
		t.Skip("no test cluster (SHIPIT_TEST_KUBECONFIG): `ci/cluster.sh up` starts one")
	}
	return k
}

func kubectl(t *testing.T, kc string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kc}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// clusterGitOps is a GitOps repository with staging and production
// overlays of one Deployment running web and worker.
func clusterGitOps(t *testing.T, id string) string {
	t.Helper()
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 1
  progressDeadlineSeconds: 8
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
      - {name: web, image: web}
      - {name: worker, image: worker}
`
	overlay := "resources: [../../base]\nimages:\n  - name: web\n    newName: registry.example/web\n    newTag: \"20200101-000000-0000000\"\n  - name: worker\n    newName: registry.example/worker\n    newTag: \"20200101-000000-0000000\"\n"
	dir := t.TempDir()
	bare := filepath.Join(dir, "gitops-"+id+".git")
	git(t, dir, "", "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(dir, "work")
	git(t, dir, "", "clone", "-q", bare, work)
	writeFiles(t, work, map[string]string{
		"base/kustomization.yaml":             "resources: [deployment.yaml]\n",
		"base/deployment.yaml":                deploy,
		"overlays/staging/kustomization.yaml": overlay,
		"overlays/prod/kustomization.yaml":    overlay,
	})
	git(t, work, "", "add", "-A")
	git(t, work, "", "commit", "-qm", "gitops")
	git(t, work, "", "push", "-q", "origin", "HEAD:main")
	return bare
}

func application(name, bare, path, ns string) string {
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: %s, namespace: argocd}
spec:
  project: default
  source: {repoURL: "file://%s", targetRevision: main, path: %s}
  destination: {server: https://kubernetes.default.svc, namespace: %s}
  syncPolicy:
    automated: {prune: true}
    syncOptions: [CreateNamespace=true]
`, name, bare, path, ns)
}

// TestWaitPromoteRollback: a release to staging waits until Argo CD says
// Synced and Healthy; promoting it makes production run staging's exact
// digests; a release that cannot become healthy fails the wait, naming the
// Application, and --rollback-on-failure restores and holds the previous
// pin; a missing Application fails clearly.
func TestWaitPromoteRollback(t *testing.T) {
	kc := kubeconfig(t)
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	bare := clusterGitOps(t, id)
	staging, production := "shop-staging-"+id, "shop-production-"+id
	nsS, nsP := "shop-staging-"+id, "shop-production-"+id
	kubectl(t, kc, application(staging, bare, "overlays/staging", nsS)+"---\n"+application(production, bare, "overlays/prod", nsP), "apply", "-f", "-")
	t.Cleanup(func() {
		_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "application", staging, production, "--wait=false").Run()
	})

	a := newApp(t)
	withDeploy(t, a, registry, bare)
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "  overlays: [overlays/prod]\n",
		"  environments:\n    - name: staging\n      overlays: [overlays/staging]\n      argocd: {applications: ["+staging+"]}\n"+
			"    - name: production\n      overlays: [overlays/prod]\n      argocd: {applications: ["+production+"]}\n", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-05-06T07:10:00Z", "commit", "-qam", "environments")
	env := []string{"KUBECONFIG=" + kc}

	// A good release: Synced to the pushed commit and Healthy.
	mustShipit(t, a.dir, a.env(), "build", "--push", "--progress", "quiet")
	r := mustShipit(t, a.dir, env, "release", "--wait=3m", "--output", "json")
	ended := time.Now()
	// How long after Argo CD's own record of the sync shipit was done (the
	// issue's target: within 2 s); logged for the closing note's numbers.
	if fin, err := time.Parse(time.RFC3339, kubectl(t, kc, "", "-n", "argocd", "get", "application", staging, "-o", "jsonpath={.status.operationState.finishedAt}")); err == nil {
		t.Logf("release --wait ended %.1fs after Argo CD finished the sync (operationState.finishedAt)", ended.Sub(fin).Seconds())
	}
	var out struct {
		Commit       string
		Applications []struct{ Name, Sync, Revision, Health string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(out.Applications) != 1 || out.Applications[0].Health != "Healthy" || out.Applications[0].Revision != out.Commit {
		t.Fatalf("release --wait: %+v\n%s", out, r.stderr)
	}
	if !strings.Contains(r.stderr, staging) {
		t.Errorf("no progress naming the application on stderr:\n%s", r.stderr)
	}

	// Promote: production runs the exact digests staging runs.
	mustShipit(t, a.dir, env, "promote", "production", "--wait=3m")
	image := func(ns string) string {
		return kubectl(t, kc, "", "-n", ns, "get", "deployment", "shop", "-o", "jsonpath={.spec.template.spec.containers[*].image}")
	}
	if s, p := image(nsS), image(nsP); s != p || !strings.Contains(s, "@sha256:") {
		t.Errorf("production runs %q, staging %q", p, s)
	}
	good := image(nsS)

	// A release that never becomes healthy (kwok keeps never-ready-
	// images from becoming ready): the wait fails naming the Application,
	// and the previous pin comes back, held.
	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho broken\n"})
	git(t, a.dir, "2026-05-06T07:20:00Z", "commit", "-qam", "broken")
	bad := append(a.env(), "SHIPIT_TAG_PREFIX=never-ready-")
	mustShipit(t, a.dir, bad, "build", "--push", "--progress", "quiet")
	r = shipitRun(t, a.dir, append(env, "SHIPIT_TAG_PREFIX=never-ready-"), "release", "--wait=2m", "--rollback-on-failure")
	if r.code != 1 || !strings.Contains(r.stderr, staging) || !strings.Contains(r.stderr, "Degraded") || !strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("a release that cannot become healthy: exit %d\n%s", r.code, r.stderr)
	}
	if got := image(nsS); got != good {
		t.Errorf("after the rollback staging runs %q, want %q\nshipit said:\n%s\nstaging pins:\n%s", got, good, r.stderr, showFile(t, bare, "overlays/staging/kustomization.yaml"))
	}
	if h := showFile(t, bare, "overlays/staging/.shipit-hold.yaml"); !strings.Contains(h, "never-ready-") {
		t.Errorf("no hold after the rollback:\n%s", h)
	}
	// A promotion now does not move production (it already runs good).
	mustShipit(t, a.dir, env, "promote", "production")

	// An Application that does not exist.
	cfg = strings.Replace(cfg, "applications: ["+staging+"]", "applications: [no-such-app-"+id+"]", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-05-06T07:30:00Z", "commit", "-qam", "missing app")
	mustShipit(t, a.dir, a.env(), "build", "--push", "--progress", "quiet")
	r = shipitRun(t, a.dir, env, "release", "--wait=1m")
	if r.code != 1 || !strings.Contains(r.stderr, "no-such-app-"+id+" not found") {
		t.Errorf("a missing Application: exit %d\n%s", r.code, r.stderr)
	}
}

// previewAppSet is an ApplicationSet like the one shipit init writes: one
// Application per folder of previews/, pruned with what it ran.
func previewAppSet(name, bare, id string) string {
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: %s, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
    - git:
        repoURL: "file://%s"
        revision: main
        directories:
          - path: previews/*
  template:
    metadata:
      name: 'shop-%s-{{.path.basename}}'
      finalizers: [resources-finalizer.argocd.argoproj.io]
    spec:
      project: default
      source: {repoURL: "file://%s", targetRevision: main, path: '{{.path.path}}'}
      destination: {server: https://kubernetes.default.svc, namespace: 'shop-%s-{{.path.basename}}'}
      syncPolicy:
        automated: {prune: true, selfHeal: true}
        syncOptions: [CreateNamespace=true]
`, name, bare, id, bare, id)
}

// TestPreviewCluster: two previews go up at once from two processes and
// both become Healthy in their own namespaces, each running its own build;
// down --wait leaves no Application and no workload; max refuses; gc
// removes the rest.
func TestPreviewCluster(t *testing.T) {
	kc := kubeconfig(t)
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	bare := clusterGitOps(t, id)
	work := filepath.Join(t.TempDir(), "w")
	git(t, "", "", "clone", "-q", bare, work)
	writeFiles(t, work, map[string]string{
		"base/kustomization.yaml": "resources: [deployment.yaml, ingress.yaml]\n",
		"base/ingress.yaml":       ingressYAML,
	})
	git(t, work, "", "add", "-A")
	git(t, work, "", "commit", "-qm", "ingress")
	git(t, work, "", "push", "-q", "origin", "HEAD:main")
	set := "shop-previews-" + id
	kubectl(t, kc, previewAppSet(set, bare, id), "apply", "-f", "-")
	t.Cleanup(func() {
		_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "applicationset", set, "--wait=false").Run()
	})

	a := newApp(t)
	withDeploy(t, a, registry, bare)
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "  overlays: [overlays/prod]\n",
		"  environments:\n    - name: staging\n      overlays: [overlays/staging]\n"+
			"  previews:\n    dir: previews\n    namespace: \"shop-"+id+"-{{.Name}}\"\n    host: \"{{.Name}}.preview.example.test\"\n    max: 2\n"+
			"    argocd: {application: \"shop-"+id+"-{{.Name}}\", applicationset: "+set+"}\n", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-05-06T07:10:00Z", "commit", "-qam", "previews")
	env := []string{"KUBECONFIG=" + kc}

	// Two pull requests' builds, each record kept aside.
	records := map[string]string{}
	digests := map[string]string{}
	for _, pr := range []string{"pr-1", "pr-2"} {
		mustShipit(t, a.dir, append(a.env(), "SHIPIT_TAG_PREFIX="+pr+"-"), "build", "--progress", "quiet")
		dir := filepath.Join(t.TempDir(), pr)
		if out, err := exec.Command("cp", "-a", filepath.Join(a.dir, ".shipit"), dir).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		records[pr] = filepath.Join(dir, "build.json")
		rec, _ := readRecord(t, a.dir)
		digests[pr] = rec.Images[0].Digest
	}

	// Both at once, from two processes.
	type upResult struct {
		r     result
		ended time.Time
	}
	results := make(chan upResult, 2)
	for _, pr := range []string{"pr-1", "pr-2"} {
		go func() {
			r := shipitRun(t, a.dir, env, "preview", "up", pr, "--record", records[pr], "--wait=3m", "--output", "json")
			results <- upResult{r, time.Now()}
		}()
	}
	for range 2 {
		u := <-results
		if u.r.code != 0 {
			t.Fatalf("preview up --wait: exit %d\n%s", u.r.code, u.r.stderr)
		}
		var out struct {
			Name, URL, Commit string
			Applications      []struct{ Name, Health, Revision string }
		}
		if err := json.Unmarshal([]byte(u.r.stdout), &out); err != nil {
			t.Fatalf("%v: %s", err, u.r.stdout)
		}
		if out.URL != "https://"+out.Name+".preview.example.test" || len(out.Applications) != 1 || out.Applications[0].Health != "Healthy" {
			t.Errorf("preview up %s: %+v\n%s", out.Name, out, u.r.stderr)
		}
		app := "shop-" + id + "-" + out.Name
		if fin, err := time.Parse(time.RFC3339, kubectl(t, kc, "", "-n", "argocd", "get", "application", app, "-o", "jsonpath={.status.operationState.finishedAt}")); err == nil {
			t.Logf("preview up %s --wait ended %.1fs after Argo CD finished the sync (operationState.finishedAt)", out.Name, u.ended.Sub(fin).Seconds())
		}
	}
	for _, pr := range []string{"pr-1", "pr-2"} {
		ns := "shop-" + id + "-" + pr
		img := kubectl(t, kc, "", "-n", ns, "get", "deployment", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if !strings.HasSuffix(img, "@"+digests[pr]) || !strings.Contains(img, ":"+pr+"-") {
			t.Errorf("%s runs %s, want its own build %s", ns, img, digests[pr])
		}
		if h := kubectl(t, kc, "", "-n", ns, "get", "ingress", "web", "-o", "jsonpath={.spec.rules[*].host}"); h != pr+".preview.example.test "+pr+".preview.example.test" {
			t.Errorf("%s Ingress hosts: %q", ns, h)
		}
	}

	// down --wait: no Application, no workload.
	mustShipit(t, a.dir, env, "preview", "down", "pr-2", "--wait=3m")
	if out, err := exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "get", "application", "shop-"+id+"-pr-2").CombinedOutput(); err == nil {
		t.Errorf("the Application is still there:\n%s", out)
	}
	if out := kubectl(t, kc, "", "-n", "shop-"+id+"-pr-2", "get", "deployment,ingress", "-o", "name"); out != "" {
		t.Errorf("workloads left behind: %s", out)
	}

	// max: 2 previews are up (pr-1, pr-3): a third is refused.
	mustShipit(t, a.dir, env, "preview", "up", "pr-3", "--record", records["pr-2"])
	if r := shipitRun(t, a.dir, env, "preview", "up", "pr-4", "--record", records["pr-2"]); r.code != 1 || !strings.Contains(r.stderr, "pr-1 (") || !strings.Contains(r.stderr, "pr-3 (") {
		t.Errorf("past max: exit %d\n%s", r.code, r.stderr)
	}
	// list shows the Applications' state: pr-1's, Healthy (Argo CD may be
	// comparing it with the commits just pushed: ask again for a while).
	var list []struct {
		Name        string
		Application *struct{ Sync, Health string }
	}
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		list = nil
		err = json.Unmarshal([]byte(mustShipit(t, a.dir, env, "preview", "list", "--output", "json").stdout), &list)
		if err == nil && len(list) == 2 && list[0].Application != nil && list[0].Application.Health == "Healthy" || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || len(list) != 2 || list[0].Application == nil || list[0].Application.Health != "Healthy" {
		t.Errorf("preview list: %v %+v", err, list)
	}

	// gc --keep pr-1 removes pr-3; then pr-1 goes too.
	mustShipit(t, a.dir, env, "preview", "gc", "--keep", "pr-1")
	mustShipit(t, a.dir, env, "preview", "down", "pr-1", "--wait=3m")
	if out := git(t, bare, "", "ls-tree", "-r", "--name-only", "main", "previews"); out != "" {
		t.Errorf("previews left: %s", out)
	}
}
