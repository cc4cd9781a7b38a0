package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shipit-dev/shipit/build"
)

// nodesEnv is the two node daemons of the test environment (ci/testenv.sh).
func nodesEnv(t *testing.T) (amd, arm, multiBase string) {
	t.Helper()
	amd, arm, multiBase = os.Getenv("SHIPIT_TEST_NODE_AMD64"), os.Getenv("SHIPIT_TEST_NODE_ARM64"), os.Getenv("SHIPIT_TEST_BASE_MULTI")
	if amd == "" || arm == "" || multiBase == "" {
		t.Fatal("no builder nodes (SHIPIT_TEST_NODE_AMD64, SHIPIT_TEST_NODE_ARM64, SHIPIT_TEST_BASE_MULTI): run the tests through `make test`")
	}
	return amd, arm, multiBase
}

type builderInfo struct {
	Name      string
	Reachable bool
	Version   string
	Native    []string
	Emulated  []string
	CacheSize int64
}

func builders(t *testing.T, dir string) map[string]builderInfo {
	t.Helper()
	var list []builderInfo
	r := mustShipit(t, dir, nil, "builders", "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	out := map[string]builderInfo{}
	for _, b := range list {
		out[b.Name] = b
	}
	return out
}

// TestMultiNode: a builder of an amd64 node and an arm64 node (arm64 under
// QEMU here) builds a two-image, two-platform app: each node solves its
// platform only, each index holds both, with the right architecture inside
// and the digest of a single-node build; an unreachable third node is
// skipped with a warning naming it.
func TestMultiNode(t *testing.T) {
	t.Parallel()
	amd, arm, base := nodesEnv(t)
	gone := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	repo := uniqueRepo(t)
	dockerfile := "ARG BASE\nFROM ${BASE}\nCOPY id /id\nRUN uname -m > /arch\n"
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + repo + "\nplatforms: [linux/amd64, linux/arm64]\nbuilder:\n  nodes:\n" +
			"    - {name: amd, addr: \"" + amd + "\", platforms: [linux/amd64]}\n" +
			"    - {name: arm, addr: \"" + arm + "\", platforms: [linux/arm64]}\n" +
			"    - {name: gone, addr: \"" + gone + "\", platforms: [linux/amd64]}\n" +
			"images:\n  web: {context: web, args: {BASE: \"" + base + "\"}}\n  worker: {context: worker, args: {BASE: \"" + base + "\"}}\n",
		"web/Dockerfile": dockerfile, "web/id": randomSecret(t, "web"),
		"worker/Dockerfile": dockerfile, "worker/id": randomSecret(t, "worker"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "two platforms")

	before := builders(t, dir)
	if !before["amd"].Reachable || !before["arm"].Reachable || before["gone"].Reachable || before["amd"].Version == "" {
		t.Fatalf("shipit builders: %+v", before)
	}
	r := mustShipit(t, dir, nil, "build", "--push", "--progress", "plain")
	if !strings.Contains(r.stderr, "builder node gone is unreachable") {
		t.Errorf("no warning naming the unreachable node:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "[web@arm]") || !strings.Contains(r.stderr, "[worker@amd]") {
		t.Errorf("the progress does not name the node in each vertex:\n%s", r.stderr)
	}
	multi, _ := readRecord(t, dir)
	var recNodes struct {
		Images []struct {
			Name  string
			Nodes map[string]string
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ".shipit", "build.json"))
	_ = json.Unmarshal(raw, &recNodes)
	for _, im := range recNodes.Images {
		if im.Nodes["linux/amd64"] != "amd" || im.Nodes["linux/arm64"] != "arm" {
			t.Errorf("%s: the record names nodes %v", im.Name, im.Nodes)
		}
	}

	// Each index holds both platforms, and the arm64 variant ran as aarch64.
	for _, im := range multi.Images {
		idx, err := remote.Index(mustRef(t, im.Repository+"@"+im.Digest))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := idx.IndexManifest()
		if len(m.Manifests) != 2 {
			t.Fatalf("%s: %d manifests", im.Name, len(m.Manifests))
		}
		for _, d := range m.Manifests {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"}[d.Platform.Architecture]
			if got := imageFiles(t, img)["arch"]; got != want {
				t.Errorf("%s %s: /arch is %q, want %q", im.Name, d.Platform, got, want)
			}
		}
	}

	// The digests equal a single-node build of the same commit.
	r = mustShipit(t, dir, nil, "build", "--push", "--progress", "quiet", "--builder", os.Getenv("BUILDKIT_HOST"))
	single, _ := readRecord(t, dir)
	for i := range multi.Images {
		if multi.Images[i].Digest != single.Images[i].Digest {
			t.Errorf("%s: two nodes made %s, one made %s", multi.Images[i].Name, multi.Images[i].Digest, single.Images[i].Digest)
		}
	}

	// Sticky: a second build lands on the same nodes (and is all cache;
	// --rebuild, or the images would be kept without a solve).
	mustShipit(t, dir, nil, "build", "--rebuild", "--progress", "quiet")
	raw, _ = os.ReadFile(filepath.Join(dir, ".shipit", "build.json"))
	var again struct {
		Images []struct{ Nodes map[string]string }
	}
	_ = json.Unmarshal(raw, &again)
	for i, im := range again.Images {
		if fmt.Sprint(im.Nodes) != fmt.Sprint(recNodes.Images[i].Nodes) {
			t.Errorf("second build routed %v, first %v", im.Nodes, recNodes.Images[i].Nodes)
		}
	}

	// A part left by a build stopped before assembly is made afresh: a
	// blob of it cut short would be skipped by the export, and taken into
	// the image's layout by the assembly.
	layoutDir := filepath.Join(dir, ".shipit", "images", "web")
	layer := amd64Layer(t, layoutDir)
	stale := filepath.Join(layoutDir+".parts", "amd-linux-amd64", "blobs", "sha256")
	if err := os.RemoveAll(layoutDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, layer.Digest.Encoded()), []byte("cut short"), 0o444); err != nil {
		t.Fatal(err)
	}
	mustShipit(t, dir, nil, "build", "--rebuild", "--progress", "quiet")
	if fi, err := os.Stat(filepath.Join(layoutDir, "blobs", "sha256", layer.Digest.Encoded())); err != nil || fi.Size() != layer.Size {
		size := int64(-1)
		if err == nil {
			size = fi.Size()
		}
		t.Errorf("after a build over a stale part holding layer %s cut short: the layout's copy is %d bytes (%v), want %d", layer.Digest, size, err, layer.Size)
	}
	if _, err := os.Stat(layoutDir + ".parts"); !os.IsNotExist(err) {
		t.Errorf("the parts are still there after assembly (%v)", err)
	}

	// Each node solves only its platform: an arm64-only change grows the
	// arm node's cache and leaves the amd node's as it was.
	writeFiles(t, dir, map[string]string{"web/id": randomSecret(t, "web2")})
	git(t, dir, "2026-05-06T08:10:00Z", "commit", "-qam", "arm64 only")
	mid := builders(t, dir)
	mustShipit(t, dir, []string{"SHIPIT_PLATFORMS=linux/arm64"}, "build", "web", "--progress", "quiet")
	after := builders(t, dir)
	if after["arm"].CacheSize <= mid["arm"].CacheSize || after["amd"].CacheSize != mid["amd"].CacheSize {
		t.Errorf("cache sizes: arm %d -> %d, amd %d -> %d", mid["arm"].CacheSize, after["arm"].CacheSize, mid["amd"].CacheSize, after["amd"].CacheSize)
	}
}

// TestMultiNodeKilled: a node killed mid-build fails only its images,
// naming it; the images of the other node are built and pushed. With
// --retry-other-node, the killed node's images are built on the other one.
// Not parallel: it shares the amd node, and TestMultiNode measures its
// cache.
func TestMultiNodeKilled(t *testing.T) {
	t.Run("fails", func(t *testing.T) { killedNode(t, false) })
	t.Run("retried", func(t *testing.T) { killedNode(t, true) })
}

func killedNode(t *testing.T, retry bool) {
	amd, _, base := nodesEnv(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	doomed := startDaemon(t, "--addr", "unix://"+sock)
	for range 100 {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Names the rendezvous hash spreads over both nodes.
	ns := []*build.Node{{Name: "amd", Native: []string{"linux/amd64"}}, {Name: "doomed", Native: []string{"linux/amd64"}}}
	var names []string
	on := map[string]string{}
	split := func() bool {
		return strings.Contains(fmt.Sprint(on), "amd") && strings.Contains(fmt.Sprint(on), "doomed")
	}
	for k := 0; len(names) < 4 || !split(); k++ {
		n := fmt.Sprintf("img%d", k)
		names = append(names, n)
		var reqs []build.Request
		for _, m := range names {
			reqs = append(reqs, build.Request{Name: m, Platforms: []string{"linux/amd64"}})
		}
		jobs, _, err := build.Route(reqs, ns)
		if err != nil {
			t.Fatal(err)
		}
		on = map[string]string{}
		for _, j := range build.JobNodes(jobs) {
			on[j[0]] = j[1]
		}
	}
	dir := t.TempDir()
	repo := uniqueRepo(t)
	cfg := "registry: " + repo + "\nplatforms: [linux/amd64]\nbuilder:\n  nodes:\n" +
		"    - {name: amd, addr: \"" + amd + "\", platforms: [linux/amd64]}\n" +
		"    - {name: doomed, addr: \"unix://" + sock + "\", platforms: [linux/amd64]}\nimages:\n"
	files := map[string]string{}
	for _, n := range names {
		cfg += "  " + n + ": {context: " + n + ", args: {BASE: \"" + base + "\"}}\n"
		files[n+"/Dockerfile"] = "ARG BASE\nFROM ${BASE}\nCOPY id /id\nRUN sleep 3\n"
		files[n+"/id"] = randomSecret(t, n)
	}
	files["shipit.yaml"] = cfg
	writeFiles(t, dir, files)
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "slow")

	args := []string{"build", "--push", "--progress", "plain"}
	if retry {
		args = append(args, "--retry-other-node")
	}
	done := make(chan result, 1)
	go func() { done <- shipitRun(t, dir, nil, args...) }()
	time.Sleep(1500 * time.Millisecond)
	_ = doomed.Process.Signal(syscall.SIGKILL)
	r := <-done
	if retry {
		if r.code != 0 || !strings.Contains(r.stderr, "again on amd (--retry-other-node)") {
			t.Fatalf("--retry-other-node: exit %d\n%s", r.code, r.stderr)
		}
		for n := range on {
			if _, err := remote.Head(mustRef(t, repo+"/"+n+":"+tagOf(t, dir))); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
		return
	}
	if r.code != 1 || !strings.Contains(r.stderr, "builder node doomed") {
		t.Fatalf("exit %d, want 1 naming the node:\n%s", r.code, r.stderr)
	}
	for n, node := range on {
		_, err := remote.Head(mustRef(t, repo+"/"+n+":"+tagOf(t, dir)))
		if node == "doomed" {
			if !strings.Contains(r.stderr, "building "+n+":") || err == nil {
				t.Errorf("%s (on the killed node): not named as failed, or pushed (%v)", n, err)
			}
		} else if err != nil || strings.Contains(r.stderr, "building "+n+":") {
			t.Errorf("%s (on amd): failed with the other node: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".shipit", "build.json")); err == nil {
		t.Error("a record was written for a build that failed")
	}
}

// tagOf is the release tag of the repository's HEAD.
func tagOf(t *testing.T, dir string) string {
	t.Helper()
	return strings.TrimSpace(mustShipit(t, dir, nil, "tag").stdout)
}

// TestPlatformMismatchWarning: an image with no platforms, built on a
// daemon whose own platform is not what staging runs (an arm64 release),
// gets a warning naming both.
func TestPlatformMismatchWarning(t *testing.T) {
	t.Parallel()
	_, _, base := nodesEnv(t)
	bare := newGitOpsOverlays(t, map[string]string{"staging": "resources: [../../base]\n", "prod": "resources: [../../base]\n"})
	dir := t.TempDir()
	repo := uniqueRepo(t)
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + repo + "\nimages:\n  web: {context: web, args: {BASE: \"" + base + "\"}}\n  worker: {context: web, args: {BASE: \"" + base + "\"}}\n" +
			"deploy:\n  repo: " + bare + "\n  environments:\n    - {name: staging, overlays: [overlays/staging]}\n",
		"web/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY id /id\n", "web/id": randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "app")
	// Staging runs an arm64 build.
	mustShipit(t, dir, []string{"SHIPIT_PLATFORMS=linux/arm64"}, "build", "--progress", "quiet")
	mustShipit(t, dir, nil, "release")
	// This daemon's own platform is linux/amd64.
	r := mustShipit(t, dir, nil, "build", "--progress", "quiet")
	if !strings.Contains(r.stderr, "image web has no platforms, so it was built for this daemon's own, linux/amd64; but staging runs linux/arm64") {
		t.Errorf("no warning:\n%s", r.stderr)
	}
	// With platforms set, none.
	if r := mustShipit(t, dir, []string{"SHIPIT_PLATFORMS=linux/amd64"}, "build", "--progress", "quiet"); strings.Contains(r.stderr, "has no platforms") {
		t.Errorf("a warning with platforms set:\n%s", r.stderr)
	}
}

// amd64Layer is the first layer of the linux/amd64 image in the OCI
// layout of a two-platform image.
func amd64Layer(t *testing.T, layoutDir string) ocispecs.Descriptor {
	t.Helper()
	read := func(v any, p ...string) {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(append([]string{layoutDir}, p...)...))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
	}
	var top, idx ocispecs.Index
	read(&top, "index.json")
	if len(top.Manifests) != 1 {
		t.Fatalf("the layout names %d images, want 1", len(top.Manifests))
	}
	read(&idx, "blobs", "sha256", top.Manifests[0].Digest.Encoded())
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.Architecture == "amd64" {
			var man ocispecs.Manifest
			read(&man, "blobs", "sha256", m.Digest.Encoded())
			if len(man.Layers) == 0 {
				t.Fatal("the amd64 image has no layer")
			}
			return man.Layers[0]
		}
	}
	t.Fatalf("no amd64 image in %s", layoutDir)
	return ocispecs.Descriptor{}
}
