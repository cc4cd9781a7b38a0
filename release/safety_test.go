package release

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/gitops/gitopstest"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

// safetyFixture is an in-process registry, a GitOps remote with staging
// and production, and releases of tA and tB to both.
type safetyFixture struct {
	host, bare     string
	reg            Registry
	staging, prod  Deploy
	imgs           []PinImage
	recs           map[string]*build.Record
	dirs           map[string]string
	stagingOverlay string
}

func newSafetyFixture(t *testing.T, tags ...string) *safetyFixture {
	t.Helper()
	f := &safetyFixture{host: registrytest.Serve(t), bare: gitOpsRemote(t), reg: registrytest.Client(),
		recs: map[string]*build.Record{}, dirs: map[string]string{}, stagingOverlay: "k8s/overlays/staging"}
	f.staging = testDeploy(f.bare, f.stagingOverlay)
	f.staging.Env = "staging"
	f.prod = testDeploy(f.bare, "k8s/overlays/production")
	f.prod.Env = "production"
	f.imgs = []PinImage{{Name: "web", Repository: f.host + "/team/web"}, {Name: "worker", Repository: f.host + "/team/worker"}}
	for _, tg := range tags {
		f.release(t, tg, f.staging, f.prod)
	}
	return f
}

// release releases tag tg (one record per tag) to each target.
func (f *safetyFixture) release(t *testing.T, tg string, to ...Deploy) []*Result {
	t.Helper()
	if f.recs[tg] == nil {
		f.recs[tg], f.dirs[tg] = recordFor(t, f.host, tg)
	}
	var out []*Result
	for _, d := range to {
		res, err := Run(context.Background(), Options{Record: f.recs[tg], RecordDir: f.dirs[tg], Registry: f.reg, Deploy: d})
		if err != nil {
			t.Fatalf("release %s to %s: %v", tg, d.Env, err)
		}
		out = append(out, res)
	}
	return out
}

// edit writes an overlay's kustomization by hand, as a person would.
func (f *safetyFixture) edit(t *testing.T, overlay, images string) {
	t.Helper()
	gitopstest.Push(t, f.bare, map[string]string{overlay + "/kustomization.yaml": "resources:\n  - ../../base\nimages:\n" + images}, "by hand")
}

func (f *safetyFixture) digest(tg, image string) string {
	for _, im := range f.recs[tg].Images {
		if im.Name == image {
			return im.Digest
		}
	}
	return ""
}

// TestPromoteRefusesWhatNoReleaseWrote: a hand-edited staging entry naming
// another registry, a tag that is not a release, or a digest no release
// tag holds is refused, naming the overlay, the image and the field, and
// production does not move.
func TestPromoteRefusesWhatNoReleaseWrote(t *testing.T) {
	t.Parallel()
	f := newSafetyFixture(t, tA)
	web, worker := f.host+"/team/web", f.host+"/team/worker"
	okWorker := "  - name: worker\n    newName: " + worker + "\n    newTag: \"" + tA + "\"\n    digest: " + f.digest(tA, "worker") + "\n"
	for _, tc := range []struct {
		name, web, field string
	}{
		{"another registry", "  - name: web\n    newName: evil.example.com/web\n    newTag: \"" + tA + "\"\n    digest: " + f.digest(tA, "web") + "\n", "newName"},
		{"not a release tag", "  - name: web\n    newName: " + web + "\n    newTag: latest\n", "newTag"},
		{"a far-future tag", "  - name: web\n    newName: " + web + "\n    newTag: \"29991231-235959-fffffff\"\n", "newTag"},
		{"a digest no release holds", "  - name: web\n    newName: " + web + "\n    digest: sha256:" + strings.Repeat("e", 64) + "\n", "digest"},
		{"a tag on another digest", "  - name: web\n    newName: " + web + "\n    newTag: \"" + tA + "\"\n    digest: " + f.digest(tA, "worker") + "\n", "digest"},
	} {
		f.edit(t, f.stagingOverlay, tc.web+okWorker)
		head := gitT(t, f.bare, "rev-parse", "main")
		prodBefore := show(t, f.bare, "k8s/overlays/production/kustomization.yaml")
		_, err := Promote(context.Background(), PromoteOptions{From: f.staging, To: f.prod, Images: f.imgs, Registry: f.reg})
		var se *SourceError
		if !errors.As(err, &se) || se.Field != tc.field || se.Image != "web" || !strings.Contains(err.Error(), f.stagingOverlay) {
			t.Errorf("%s: err = %v, want a refusal naming %s, web and %s", tc.name, err, f.stagingOverlay, tc.field)
		}
		if gitT(t, f.bare, "rev-parse", "main") != head || show(t, f.bare, "k8s/overlays/production/kustomization.yaml") != prodBefore {
			t.Errorf("%s: production moved", tc.name)
		}
	}
}

// TestPromoteDigestOnlyRespectsHold: a staging entry pinned by digest only
// is resolved to its release tag, so production's hold applies to it: a
// rolled-back production does not run the bad release again.
func TestPromoteDigestOnlyRespectsHold(t *testing.T) {
	t.Parallel()
	f := newSafetyFixture(t, tA, tB)
	ctx := context.Background()
	if _, err := Pin(ctx, PinOptions{Tag: tA, Images: f.imgs, Registry: f.reg, Deploy: f.prod}); err != nil {
		t.Fatal(err)
	}
	f.edit(t, f.stagingOverlay,
		"  - name: web\n    newName: "+f.host+"/team/web\n    digest: "+f.digest(tB, "web")+"\n"+
			"  - name: worker\n    newName: "+f.host+"/team/worker\n    digest: "+f.digest(tB, "worker")+"\n")
	res, err := Promote(ctx, PromoteOptions{From: f.staging, To: f.prod, Images: f.imgs, Registry: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != "" {
		t.Errorf("the held production moved to the rolled-back release:\n%s", show(t, f.bare, "k8s/overlays/production/kustomization.yaml"))
	}
	for _, im := range res.Images {
		if im.NewTag != tB {
			t.Errorf("%s: the digest-only pin resolved to %q, want %s", im.Name, im.NewTag, tB)
		}
	}
}

// TestForeignFutureTagDoesNotBlock: a hand-written pin of another
// repository with a far-future tag is not "newer": the next release
// replaces it, and says so.
func TestForeignFutureTagDoesNotBlock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, newName string }{
		{"another repository", "evil.example.com/web"},
		{"a tag from the future", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newSafetyFixture(t, tA)
			newName := tc.newName
			if newName == "" {
				newName = f.host + "/team/web"
			}
			f.edit(t, "k8s/overlays/production", "  - name: web\n    newName: "+newName+"\n    newTag: \"29991231-235959-fffffff\"\n")
			f.recs[tB], f.dirs[tB] = recordFor(t, f.host, tB)
			var ev progress.Recorder
			res, err := Run(context.Background(), Options{Record: f.recs[tB], RecordDir: f.dirs[tB], Registry: f.reg, Deploy: f.prod, Events: &ev})
			if err != nil || res.Commit == "" {
				t.Fatalf("the release was blocked: %+v %v", res, err)
			}
			if k := show(t, f.bare, "k8s/overlays/production/kustomization.yaml"); !strings.Contains(k, `newTag: "`+tB+`"`) {
				t.Errorf("production does not pin %s:\n%s", tB, k)
			}
			if msgs := strings.Join(ev.Messages(progress.Info), "\n"); !strings.Contains(msgs, "29991231-235959-fffffff") {
				t.Errorf("nothing said about the replaced pin: %s", msgs)
			}
		})
	}
}

// TestRestoreLeavesANewerRelease: --rollback-on-failure after a release
// during which a newer release landed restores nothing of what moved, and
// leaves the newer release pinned.
func TestRestoreLeavesANewerRelease(t *testing.T) {
	t.Parallel()
	f := newSafetyFixture(t, tA)
	failed := f.release(t, tB, f.prod)[0]
	f.release(t, tC, f.prod)
	var ev progress.Recorder
	res, err := Restore(context.Background(), f.prod, failed.Overlays, "the release of "+tB+" did not become healthy", &ev)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != "" {
		t.Errorf("the rollback wrote over the newer release: %+v", res)
	}
	k := show(t, f.bare, "k8s/overlays/production/kustomization.yaml")
	if !strings.Contains(k, `newTag: "`+tC+`"`) {
		t.Errorf("production does not pin the newer %s:\n%s", tC, k)
	}
	if msgs := strings.Join(ev.Messages(progress.Info), "\n"); !strings.Contains(msgs, "is not rolled back") {
		t.Errorf("nothing said about the images left: %s", msgs)
	}
}

// TestLaterNeedsThePins: --wait counts a later commit of the branch as the
// release only while it still pins what the release wrote.
func TestLaterNeedsThePins(t *testing.T) {
	t.Parallel()
	f := newSafetyFixture(t, tA)
	res := f.release(t, tB, f.prod)[0]
	later := Later(f.prod, res.Overlays)
	ctx := context.Background()
	keep := gitopstest.Push(t, f.bare, map[string]string{"unrelated.txt": "x\n"}, "another app")
	if !later(ctx, res.Revision, keep) {
		t.Error("a later commit that keeps the pins is not counted")
	}
	if _, err := Pin(ctx, PinOptions{Tag: tA, Images: f.imgs, Registry: f.reg, Deploy: f.prod}); err != nil {
		t.Fatal(err)
	}
	back := gitT(t, f.bare, "rev-parse", "main")
	if later(ctx, res.Revision, back) {
		t.Error("a later commit that rolled the release back is counted as the release")
	}
}

// TestRecordFromTheFuture: a build record whose tag is more than
// FutureSkew ahead of the clock is not released.
func TestRecordFromTheFuture(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(48*time.Hour).UTC().Format("20060102-150405") + "-abcdef0"
	rec := &build.Record{Commit: "c", Tag: future, Images: []build.Image{{Name: "web", Repository: "r/web", Tag: future, Commit: "c", Digest: "sha256:" + strings.Repeat("a", 64), Layout: "images/web"}}}
	err := CheckRecord(rec, ".shipit/build.json", "c", map[string]string{"web": "r/web"})
	var re *RecordError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "skewed clock") {
		t.Errorf("err = %v, want a refusal of the future tag", err)
	}
	if fromTheFuture(time.Now().Add(5*time.Minute).UTC().Format("20060102-150405")+"-abcdef0", time.Now()) {
		t.Error("a tag 5 minutes ahead (within the allowance) is from the future")
	}
}
