package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests here run what shipit releases on the test cluster's real node
// (ci/cluster.sh: kubelet, containerd and runc beside kwok), with images
// shipit builds from the example app (examples/app: web serves HTTP). The
// node is tainted; the Deployments here choose it and tolerate the taint.

const realNode = "shipit-node"

// requireNode is the test cluster's kubeconfig, once its real node is
// Ready; under CI=true a missing node fails the test.
func requireNode(t *testing.T) string {
	t.Helper()
	kc := kubeconfig(t)
	out, err := exec.Command("kubectl", "--kubeconfig", kc, "get", "node", realNode, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "True" {
		msg := fmt.Sprintf("no real node %s Ready in the test cluster (ci/cluster.sh up starts one): %v %s", realNode, err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return kc
}

// nodeDeployment is the example app's web as a team would run it: a
// readiness probe on /healthz and a short progress deadline, so that a
// release that does not run becomes Degraded within seconds; on the real
// node.
const nodeDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  progressDeadlineSeconds: 12
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: ` + realNode + `}
      tolerations: [{key: shipit.dev/node, operator: Equal, value: real, effect: NoSchedule}]
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: web
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 64Mi}}
`

// nodeGitOps is a GitOps repository with staging and production overlays
// of nodeDeployment.
func nodeGitOps(t *testing.T) string {
	t.Helper()
	overlay := "resources: [../../base]\nimages:\n  - name: web\n    newName: registry.example/web\n    newTag: \"20200101-000000-0000000\"\n"
	dir := t.TempDir()
	bare := filepath.Join(dir, "gitops.git")
	git(t, dir, "", "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(dir, "work")
	git(t, dir, "", "clone", "-q", bare, work)
	writeFiles(t, work, map[string]string{
		"base/kustomization.yaml":             "resources: [deployment.yaml]\n",
		"base/deployment.yaml":                nodeDeployment,
		"overlays/staging/kustomization.yaml": overlay,
		"overlays/prod/kustomization.yaml":    overlay,
	})
	git(t, work, "", "add", "-A")
	git(t, work, "", "commit", "-qm", "gitops")
	git(t, work, "", "push", "-q", "origin", "HEAD:main")
	return bare
}

// exampleApp copies examples/app into a git repository of its own whose
// images go to a repository no other test uses under reg, with its deploy
// section replaced by staging and production environments of bare, each
// with its Argo CD Application.
func exampleApp(t *testing.T, reg, bare, staging, production string) *app {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "examples", "app")
	a := &app{dir: t.TempDir(), repo: strings.Replace(uniqueRepo(t), registry, reg, 1)}
	files := map[string]string{}
	for _, f := range []string{"web/Dockerfile", "web/app.sh", "proxy/Dockerfile", "proxy/proxy.conf"} {
		files[f] = mustRead(t, filepath.Join(src, f))
	}
	cfg := mustRead(t, filepath.Join(src, "shipit.yaml"))
	cfg = cfg[:strings.Index(cfg, "deploy:")]
	cfg = strings.ReplaceAll(cfg, "127.0.0.1:5055/base/busybox:1", base)
	cfg = strings.Replace(cfg, "registry: 127.0.0.1:5055/demo", "registry: "+a.repo, 1)
	cfg += "deploy:\n  repo: " + bare + "\n  branch: main\n  environments:\n" +
		"    - name: staging\n      overlays: [overlays/staging]\n      argocd: {applications: [" + staging + "]}\n" +
		"    - name: production\n      overlays: [overlays/prod]\n      argocd: {applications: [" + production + "]}\n"
	files["shipit.yaml"] = cfg
	files[".gitignore"] = ".shipit/\n"
	writeFiles(t, a.dir, files)
	if err := os.Chmod(filepath.Join(a.dir, "web/app.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, a.dir, "", "init", "-q", "-b", "main")
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, "2026-06-01T08:00:00Z", "commit", "-qm", "example app")
	return a
}

// demoEnv is what the example app's build needs: its secret.
var demoEnv = []string{"DEMO_API_TOKEN=e2e-token"}

// nodeApps applies the Argo CD Applications of staging and production
// (namespaces of their own) and deletes them at the end.
func nodeApps(t *testing.T, kc, bare, id string) (staging, production, nsS, nsP string) {
	t.Helper()
	staging, production = "web-staging-"+id, "web-production-"+id
	kubectl(t, kc, application(staging, bare, "overlays/staging", staging)+"---\n"+application(production, bare, "overlays/prod", production), "apply", "-f", "-")
	t.Cleanup(func() {
		_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "application", staging, production, "--wait=false").Run()
		_ = exec.Command("kubectl", "--kubeconfig", kc, "delete", "namespace", staging, production, "--wait=false").Run()
	})
	return staging, production, staging, production
}

// runningPods lists the web pods of a namespace, each as imageID, ready,
// phase and node.
func runningPods(t *testing.T, kc, ns string) []string {
	t.Helper()
	out := kubectl(t, kc, "", "-n", ns, "get", "pods", "-l", "app=web", "-o",
		`jsonpath={range .items[*]}{.status.containerStatuses[0].imageID} {.status.containerStatuses[0].ready} {.status.phase} {.spec.nodeName}{"\n"}{end}`)
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// eventually polls cond every half second for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(500 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// runsOnly waits until every web pod of ns is on the real node, ready and
// running digest (and there is at least one).
func runsOnly(t *testing.T, kc, ns, digest string) {
	t.Helper()
	var pods []string
	ok := eventually(60*time.Second, func() bool {
		pods = runningPods(t, kc, ns)
		for _, p := range pods {
			if !strings.Contains(p, "@"+digest+" true Running "+realNode) {
				return false
			}
		}
		return len(pods) > 0
	})
	if !ok {
		t.Errorf("%s does not run only %s on %s; its pods (imageID ready phase node):\n%s", ns, digest, realNode, strings.Join(pods, "\n"))
	}
}

// pinnedDigest is the digest the Deployment of ns runs by, as Argo CD
// applied it.
func pinnedDigest(t *testing.T, kc, ns string) string {
	t.Helper()
	img := kubectl(t, kc, "", "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	_, d, ok := strings.Cut(img, "@")
	if !ok {
		t.Fatalf("%s runs %s, not pinned by digest", ns, img)
	}
	return d
}

// TestNodeRelease: a release built from the example app runs on the real
// node by the pinned digest; a release whose container exits 1 fails the
// wait with the exit code and the container's last lines, and
// --rollback-on-failure runs the previous digest again; promote --wait
// runs production on staging's digest.
func TestNodeRelease(t *testing.T) {
	t.Parallel()
	kc := requireNode(t)
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	bare := nodeGitOps(t)
	staging, production, nsS, nsP := nodeApps(t, kc, bare, id)
	a := exampleApp(t, registry, bare, staging, production)
	env := []string{"KUBECONFIG=" + kc}

	mustShipit(t, a.dir, demoEnv, "build", "web", "--push", "--progress", "quiet")
	rec, _ := readRecord(t, a.dir)
	good := rec.Images[0].Digest
	start := time.Now()
	r := mustShipit(t, a.dir, env, "release", "--wait=3m", "--output", "json")
	t.Logf("release --wait to Healthy on the real node: %.1fs", time.Since(start).Seconds())
	var out struct {
		Commit       string
		Applications []struct{ Name, Health, Revision string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Applications) != 1 || out.Applications[0].Health != "Healthy" {
		t.Fatalf("release --wait: %v %s\n%s", err, r.stdout, r.stderr)
	}
	if d := pinnedDigest(t, kc, nsS); d != good {
		t.Errorf("staging pins %s, the build made %s", d, good)
	}
	runsOnly(t, kc, nsS, good)

	// A release whose container exits 1: Degraded, with the reason; the
	// rollback runs the previous digest again.
	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho \"web: cannot reach the database at db:5432\" >&2\nexit 1\n"})
	git(t, a.dir, "2026-06-01T08:10:00Z", "commit", "-qam", "broken")
	mustShipit(t, a.dir, demoEnv, "build", "web", "--push", "--progress", "quiet")
	start = time.Now()
	r = shipitRun(t, a.dir, env, "release", "--wait=3m", "--rollback-on-failure", "--output", "json")
	t.Logf("release --wait of a crashing container to the rollback's end: %.1fs", time.Since(start).Seconds())
	for _, want := range []string{staging, "Degraded", "exit code 1", "cannot reach the database at db:5432", "rolled back"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("a crashing release: exit %d, no %q in:\n%s", r.code, want, r.stderr)
		}
	}
	var failed struct{ Failed []failedApp }
	if err := json.Unmarshal([]byte(r.stdout), &failed); err != nil || len(failed.Failed) != 1 || !failed.Failed[0].crashed("cannot reach the database") {
		t.Errorf("--output json does not hold the crash: %v\n%s", err, r.stdout)
	}
	runsOnly(t, kc, nsS, good)

	// Promote: production runs staging's digest.
	mustShipit(t, a.dir, env, "promote", "production", "--image", "web", "--wait=3m")
	if d := pinnedDigest(t, kc, nsP); d != good {
		t.Errorf("production pins %s, staging runs %s", d, good)
	}
	runsOnly(t, kc, nsP, good)
}

// failedApp is an Application that failed a wait, as --output json says.
type failedApp struct {
	Resources []struct {
		Kind string
		Pods []struct {
			Reason   string
			ExitCode *int
			Logs     []string
		}
	}
}

// crashed says whether a Deployment's pod exited 1 with log in its last
// lines.
func (a failedApp) crashed(log string) bool {
	for _, r := range a.Resources {
		for _, p := range r.Pods {
			if r.Kind == "Deployment" && p.ExitCode != nil && *p.ExitCode == 1 && strings.Contains(strings.Join(p.Logs, "\n"), log) {
				return true
			}
		}
	}
	return false
}

// TestNodeReleaseFailures: a release whose image does not pull, one from a
// registry the node has no credentials for, and one for another platform
// each fail --wait naming the reason the kubelet gives.
func TestNodeReleaseFailures(t *testing.T) {
	t.Parallel()
	kc := requireNode(t)
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, a *app, bare string) []string // the environment of shipit's build and release
		want    []string
		reasons []string // one of them in --output json
	}{
		// The kubelet says ErrImagePull, then ImagePullBackOff whose
		// message holds ErrImagePull's.
		{"deleted", deleteOnPin, []string{"ErrImagePull", "not found"}, pullReasons},
		{"no credentials", withAuthRegistry, []string{"ErrImagePull", "401 Unauthorized"}, pullReasons},
		{"s390x", s390xApp, []string{"exec format error", "is for linux/s390x, node " + realNode + " is linux/amd64"}, []string{"exec format error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
			bare := nodeGitOps(t)
			staging, production, _, _ := nodeApps(t, kc, bare, id)
			a := exampleApp(t, registry, bare, staging, production)
			env := append(tc.setup(t, a, bare), "KUBECONFIG="+kc)
			mustShipit(t, a.dir, append(env, demoEnv...), "build", "web", "--push", "--progress", "quiet")
			if tc.name == "deleted" {
				installDeleteHook(t, a, bare)
			}
			start := time.Now()
			r := shipitRun(t, a.dir, env, "release", "--wait=3m", "--output", "json")
			t.Logf("release --wait to the failure: %.1fs", time.Since(start).Seconds())
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
			}
			for _, want := range append(tc.want, staging, "pod web-") {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the failure does not say %q:\n%s", want, r.stderr)
				}
			}
			var out struct{ Failed []failedApp }
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("--output json: %v\n%s", err, r.stdout)
			}
			found := false
			for _, a := range out.Failed {
				for _, res := range a.Resources {
					for _, p := range res.Pods {
						found = found || slices.Contains(tc.reasons, p.Reason)
					}
				}
			}
			if !found {
				t.Errorf("--output json does not hold the reason (%s):\n%s", strings.Join(tc.reasons, " or "), r.stdout)
			}
		})
	}
}

var pullReasons = []string{"ErrImagePull", "ImagePullBackOff"}

// deleteOnPin is a release whose image is gone from the registry by the
// time the node pulls it (a retention rule, a cleanup): nothing to set up
// before the build; installDeleteHook deletes it when the pin is pushed.
func deleteOnPin(*testing.T, *app, string) []string { return nil }

// installDeleteHook makes the GitOps repository delete the build's image
// from the registry as the pin commit arrives, before Argo CD can see it.
func installDeleteHook(t *testing.T, a *app, bare string) {
	t.Helper()
	rec, _ := readRecord(t, a.dir)
	im := rec.Images[0]
	path := strings.TrimPrefix(im.Repository, registry+"/")
	hook := fmt.Sprintf("#!/bin/sh\ncurl -fsS -X DELETE -o /dev/null http://%s/v2/%s/manifests/%s\n", registry, path, im.Digest)
	p := filepath.Join(bare, "hooks", "pre-receive")
	if err := os.WriteFile(p, []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
}

// withAuthRegistry sends the app's images to the registry that answers 401
// without credentials: shipit has them, the node does not.
func withAuthRegistry(t *testing.T, a *app, _ string) []string {
	t.Helper()
	reg, pwFile := os.Getenv("SHIPIT_TEST_AUTH_REGISTRY"), os.Getenv("SHIPIT_TEST_AUTH_PASSWORD_FILE")
	if reg == "" || pwFile == "" {
		t.Fatal("SHIPIT_TEST_AUTH_REGISTRY is not set: run the tests through `make test`")
	}
	auth := base64.StdEncoding.EncodeToString([]byte(os.Getenv("SHIPIT_TEST_AUTH_USER") + ":" + strings.TrimSpace(mustRead(t, pwFile))))
	dockerConfig := t.TempDir()
	writeFiles(t, dockerConfig, map[string]string{"config.json": `{"auths": {"` + reg + `": {"auth": "` + auth + `"}}}`})
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "registry: "+a.repo, "registry: "+strings.Replace(a.repo, registry, reg, 1), 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-06-01T08:01:00Z", "commit", "-qam", "private registry")
	return []string{"DOCKER_CONFIG=" + dockerConfig}
}

// s390xApp makes web a Go server built for linux/s390x, which this amd64
// node cannot run (arm64 would run, under QEMU).
func s390xApp(t *testing.T, a *app, _ string) []string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "server.go")
	writeFiles(t, filepath.Dir(src), map[string]string{"server.go": "package main\n\nimport \"net/http\"\n\nfunc main() { _ = http.ListenAndServe(\":8080\", nil) }\n"})
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(a.dir, "web", "server"), src)
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=s390x", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the s390x server: %v\n%s", err, out)
	}
	writeFiles(t, a.dir, map[string]string{"web/Dockerfile": "FROM scratch\nCOPY server /server\nENTRYPOINT [\"/server\"]\n"})
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	cfg = strings.Replace(cfg, "    context: web\n    target: runtime\n", "    context: web\n    platforms: [linux/s390x]\n", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, "2026-06-01T08:01:00Z", "commit", "-qm", "s390x")
	return nil
}

// TestNodePreview: a preview's pods run in its namespace on the real node
// with the pull request's digest; preview down --wait leaves no pod.
func TestNodePreview(t *testing.T) {
	t.Parallel()
	kc := requireNode(t)
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e8)
	bare := nodeGitOps(t)
	set := "web-previews-" + id
	kubectl(t, kc, strings.ReplaceAll(previewAppSet(set, bare, id), "'shop-"+id, "'web-"+id), "apply", "-f", "-")
	t.Cleanup(func() {
		_ = exec.Command("kubectl", "--kubeconfig", kc, "-n", "argocd", "delete", "applicationset", set, "--wait=false").Run()
	})
	a := exampleApp(t, registry, bare, "web-staging-"+id, "web-production-"+id)
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml")) +
		"  previews:\n    dir: previews\n    namespace: \"web-" + id + "-{{.Name}}\"\n" +
		"    argocd: {application: \"web-" + id + "-{{.Name}}\", applicationset: " + set + "}\n"
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-06-01T08:02:00Z", "commit", "-qam", "previews")
	env := []string{"KUBECONFIG=" + kc}

	mustShipit(t, a.dir, append([]string{"SHIPIT_TAG_PREFIX=pr-5-"}, demoEnv...), "build", "web", "--push", "--progress", "quiet")
	rec, _ := readRecord(t, a.dir)
	ns := "web-" + id + "-pr-5"
	t.Cleanup(func() {
		_ = exec.Command("kubectl", "--kubeconfig", kc, "delete", "namespace", ns, "--wait=false").Run()
	})
	start := time.Now()
	mustShipit(t, a.dir, env, "preview", "up", "pr-5", "--wait=3m")
	t.Logf("preview up --wait on the real node: %.1fs", time.Since(start).Seconds())
	runsOnly(t, kc, ns, rec.Images[0].Digest)

	start = time.Now()
	mustShipit(t, a.dir, env, "preview", "down", "pr-5", "--wait=3m")
	t.Logf("preview down --wait: %.1fs", time.Since(start).Seconds())
	if pods := kubectl(t, kc, "", "-n", ns, "get", "pods", "-o", "name"); pods != "" {
		t.Errorf("preview down --wait left pods in %s:\n%s", ns, pods)
	}
}
