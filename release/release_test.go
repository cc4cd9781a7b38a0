package release

import (
	"context"
	"errors"
	"os"
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
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

// These tests run the release orchestration in process: go-containerregistry's
// registry, a bare git repository as the GitOps remote, the kustomize
// library. No BuildKit: records are made from random images in layouts.

func gitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gitopstest.Git(t, dir, args...)
}

func gitOpsRemote(t testing.TB) string { t.Helper(); return gitopstest.Remote(t, nil) }

// show reads a file at the head of the remote.
func show(t *testing.T, bare, path string) string {
	t.Helper()
	return gitT(t, bare, "show", "main:"+path)
}

// recordFor builds a record of web and worker at tag t, kept in layouts.
func recordFor(t testing.TB, host, tg string) (*build.Record, string) {
	t.Helper()
	dir := t.TempDir()
	rec := &build.Record{Version: build.RecordVersion, Commit: "c0ffee" + tg[len(tg)-7:], Tag: tg}
	for _, n := range []string{"web", "worker"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		p, err := layout.Write(filepath.Join(dir, "images", n), empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		rec.Images = append(rec.Images, build.Image{Name: n, Repository: host + "/team/" + n, Tag: tg, Digest: d.String(), Commit: rec.Commit, Layout: "images/" + n})
	}
	return rec, dir
}

func testDeploy(bare string, overlays ...string) Deploy {
	return Deploy{
		Target:   gitops.Target{Branch: gitops.Branch{URL: bare, Name: "main"}, Author: DefaultAuthor, Attempts: 3},
		Overlays: overlays, Mode: kustomize.ModeTagAndDigest,
	}
}

func TestRunPinStatusHistory(t *testing.T) {
	t.Parallel()
	host := registrytest.Serve(t)
	reg := registrytest.Client()
	bare := gitOpsRemote(t)
	dep := testDeploy(bare, "k8s/overlays/staging", "k8s/overlays/production")
	ctx := context.Background()
	imgs := []PinImage{{Name: "web", Repository: host + "/team/web"}, {Name: "worker", Repository: host + "/team/worker"}}

	type built struct {
		rec *build.Record
		dir string
	}
	records := map[string]built{}
	release := func(tg string) (*Result, *build.Record, *progress.Recorder) {
		t.Helper()
		b, ok := records[tg]
		if !ok {
			b.rec, b.dir = recordFor(t, host, tg)
			records[tg] = b
		}
		rec, dir := b.rec, b.dir
		var ev progress.Recorder
		res, err := Run(ctx, Options{Record: rec, RecordDir: dir, Registry: reg, Deploy: dep, Events: &ev})
		if err != nil {
			t.Fatalf("release %s: %v", tg, err)
		}
		return res, rec, &ev
	}

	// A release pushes both images and pins both overlays in one commit.
	before := gitT(t, bare, "rev-list", "--count", "main")
	res, recB, ev := release(tB)
	if res.Commit == "" || gitT(t, bare, "rev-list", "--count", "main") != "2" || before != "1" {
		t.Fatalf("one commit expected: %+v", res)
	}
	if pushed := len(ev.Events()); pushed == 0 {
		t.Error("no progress events for the pushes")
	}
	k := show(t, bare, "k8s/overlays/production/kustomization.yaml")
	for _, want := range []string{"newName: " + host + "/team/web # before shipit", `newTag: "` + tB + `"`, "digest: " + recB.Images[0].Digest, "- name: worker", "# pins"} {
		if !strings.Contains(k, want) {
			t.Errorf("production kustomization lacks %q:\n%s", want, k)
		}
	}
	msg := gitT(t, bare, "log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "shipit: release "+tB) || !strings.Contains(msg, "Source-Commit: "+recB.Commit) {
		t.Errorf("commit message:\n%s", msg)
	}

	// The same release again: nothing to push, no commit.
	res, _, _ = release(tB)
	if res.Commit != "" || res.Images[0].Action != ActionPresent {
		t.Errorf("a repeat release committed or pushed: %+v", res)
	}

	// An older release finishing late keeps the newer pins.
	res, _, ev = release(tA)
	if res.Commit != "" || len(ev.Messages(progress.Info)) == 0 || !strings.Contains(strings.Join(ev.Messages(progress.Info), "\n"), "releases only move forward") {
		t.Errorf("an older release moved the pins: %+v %v", res, ev.Messages(progress.Info))
	}

	// Roll production back to tA: one commit, a hold.
	prod := testDeploy(bare, "k8s/overlays/production")
	pr, err := Pin(ctx, PinOptions{Tag: tA, Images: imgs, Registry: reg, Deploy: prod})
	if err != nil || pr.Commit == "" {
		t.Fatalf("pin: %+v %v", pr, err)
	}
	if m := gitT(t, bare, "log", "-1", "--format=%s", "main"); m != "shipit: roll back from "+tB+" to "+tA {
		t.Errorf("pin commit subject %q", m)
	}
	if h := show(t, bare, "k8s/overlays/production/"+HoldFile); !strings.Contains(h, "until: "+tB) {
		t.Errorf("hold:\n%s", h)
	}
	// A pin to a tag some image lacks changes nothing.
	if _, err := Pin(ctx, PinOptions{Tag: tC, Images: imgs, Registry: reg, Deploy: prod}); !errors.Is(err, ErrNoSuchTag) {
		t.Errorf("pin to a missing tag: %v", err)
	}

	// Status: staging current, production held.
	overlays, err := ReadOverlays(ctx, dep, imgs)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Status(ctx, reg, imgs, overlays, "", false)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, e := range st {
		states[e.Overlay+" "+e.Image] = e.State
	}
	if states["k8s/overlays/staging web"] != StateCurrent || states["k8s/overlays/production web"] != StateHeld {
		t.Errorf("status = %v", states)
	}

	// History: newest first, with where each is pinned.
	hist, err := History(ctx, reg, imgs[:1], overlays, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Tag != tB || hist[1].Tag != tA {
		t.Fatalf("history = %+v", hist)
	}
	if strings.Join(hist[0].PinnedIn, ",") != "k8s/overlays/staging" || strings.Join(hist[1].PinnedIn, ",") != "k8s/overlays/production" {
		t.Errorf("pinned in: %v / %v", hist[0].PinnedIn, hist[1].PinnedIn)
	}
}

// TestWritePinsAllOrNothing: an overlay that does not render fails the
// release, and no overlay changes in the remote.
func TestWritePinsAllOrNothing(t *testing.T) {
	t.Parallel()
	bare := gitOpsRemote(t)
	work := filepath.Join(t.TempDir(), "w")
	gitT(t, filepath.Dir(work), "clone", "-q", bare, work)
	if err := os.WriteFile(filepath.Join(work, "k8s/overlays/production/kustomization.yaml"), []byte("resources: [../../missing]\nimages: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitT(t, work, "commit", "-qam", "break production")
	gitT(t, work, "push", "-q", "origin", "HEAD:main")
	head := gitT(t, bare, "rev-parse", "main")

	imgs := []kustomize.Image{{Name: "web", Repository: "registry.example.com/team/web", Tag: tB, Digest: "sha256:" + strings.Repeat("a", 64)}}
	res := &Result{}
	err := writePins(context.Background(), Options{Deploy: testDeploy(bare, "k8s/overlays/staging", "k8s/overlays/production")}, res, imgs, pinHooks{
		keep: releaseKeep, holds: releaseHolds, message: func(*Result) string { return "test" },
	})
	if err == nil || !strings.Contains(err.Error(), "k8s/overlays/production") {
		t.Fatalf("err = %v, want one naming the broken overlay", err)
	}
	if got := gitT(t, bare, "rev-parse", "main"); got != head {
		t.Errorf("the remote moved from %s to %s", head, got)
	}

	// A dry run of a good overlay computes the diff and pushes nothing.
	res = &Result{}
	err = writePins(context.Background(), Options{DryRun: true, Deploy: testDeploy(bare, "k8s/overlays/staging")}, res, imgs, pinHooks{
		keep: releaseKeep, holds: releaseHolds, message: func(*Result) string { return "test" },
	})
	if err != nil || !strings.Contains(res.Diff, "+    newTag: \""+tB+"\"") || res.Commit != "" {
		t.Errorf("dry run: %v, diff:\n%s", err, res.Diff)
	}
	if got := gitT(t, bare, "rev-parse", "main"); got != head {
		t.Errorf("a dry run moved the remote")
	}
}

// TestRestore: the pins before a command come back, held, in one commit.
func TestRestore(t *testing.T) {
	t.Parallel()
	host := registrytest.Serve(t)
	bare := gitOpsRemote(t)
	dep := testDeploy(bare, "k8s/overlays/staging")
	dep.Env = "staging"
	ctx := context.Background()
	reg := registrytest.Client()
	recA, dirA := recordFor(t, host, tA)
	if _, err := Run(ctx, Options{Record: recA, RecordDir: dirA, Registry: reg, Deploy: dep}); err != nil {
		t.Fatal(err)
	}
	good := show(t, bare, "k8s/overlays/staging/kustomization.yaml")
	recB, dirB := recordFor(t, host, tB)
	res, err := Run(ctx, Options{Record: recB, RecordDir: dirB, Registry: reg, Deploy: dep})
	if err != nil {
		t.Fatal(err)
	}
	back, err := Restore(ctx, dep, res.Overlays, "the release of "+tB+" did not become healthy", nil)
	if err != nil || back.Commit == "" {
		t.Fatalf("restore: %+v %v", back, err)
	}
	if got := show(t, bare, "k8s/overlays/staging/kustomization.yaml"); got != good {
		t.Errorf("kustomization after the restore:\n%s\nwant:\n%s", got, good)
	}
	if h := show(t, bare, "k8s/overlays/staging/"+HoldFile); !strings.Contains(h, "until: "+tB) {
		t.Errorf("hold:\n%s", h)
	}
	if m := gitT(t, bare, "log", "-1", "--format=%s", "main"); !strings.Contains(m, "roll back staging: the release of "+tB) {
		t.Errorf("commit subject %q", m)
	}
}
