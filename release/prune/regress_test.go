package prune

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipit-dev/shipit/internal/gitops/gitopstest"
	"github.com/shipit-dev/shipit/internal/progress"
	shipitreg "github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
	"github.com/shipit-dev/shipit/release"
)

// releases is an in-process registry holding n release tags of team/web,
// one manifest each, oldest first, with a hook run on each DELETE before
// the registry answers it.
type releases struct {
	host    string
	repo    string
	reg     *shipitreg.Client
	tags    []string
	digests map[string]string
	mu      sync.Mutex
	deleted []string // digests DELETE requests named
	onDel   func(n int)
}

func newReleases(t *testing.T, n int) *releases {
	t.Helper()
	r := &releases{reg: registrytest.Client(), digests: map[string]string{}}
	r.host = registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodDelete {
				r.mu.Lock()
				r.deleted = append(r.deleted, req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:])
				n, hook := len(r.deleted), r.onDel
				r.mu.Unlock()
				if hook != nil {
					hook(n)
				}
			}
			h.ServeHTTP(w, req)
		})
	})
	r.repo = r.host + "/team/web"
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		tg := fmt.Sprintf("%s-%07x", base.Add(time.Duration(i)*time.Hour).Format("20060102-150405"), i)
		r.tags = append(r.tags, tg)
		r.digests[tg] = r.put(t, tg)
	}
	return r
}

// put pushes a new random image under a tag and returns its digest.
func (r *releases) put(t *testing.T, tg string) string {
	t.Helper()
	img, _ := random.Image(64, 1)
	if err := remote.Write(mustTag(t, r.repo+":"+tg), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

func (r *releases) wasDeleted(tg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.deleted, r.digests[tg])
}

func (r *releases) exists(t *testing.T, tg string) bool {
	t.Helper()
	d, err := r.reg.Lookup(context.Background(), r.repo, tg)
	if err != nil {
		t.Fatal(err)
	}
	return d != ""
}

func (r *releases) image() []release.PinImage {
	return []release.PinImage{{Name: "web", Repository: r.repo}}
}

// pinFile is an overlay's kustomization pinning web at tg.
func (r *releases) pinFile(tg, comment string) string {
	return "resources: [../../base]\n# " + comment + "\nimages:\n  - name: web\n    newName: " + r.repo + "\n    newTag: \"" + tg + "\"\n"
}

const (
	stagingKust    = "k8s/overlays/staging/kustomization.yaml"
	productionKust = "k8s/overlays/production/kustomization.yaml"
)

// defaults are prune's default flags (shipit prune with no flag).
func defaults(o Options) Options {
	o.KeepHistory, o.Keep, o.MinAge = 20, 30, 7*24*time.Hour
	o.Now = func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }
	return o
}

// TestPruneKeepsEveryEnvironmentsRollback: --keep-history counted the
// last commits of the whole branch. After 31 staging releases, default
// prune deleted production's previous release, and pinning production
// back to it failed with "no such tag". Now each overlay keeps its last N
// distinct pins, at its own pace.
func TestPruneKeepsEveryEnvironmentsRollback(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 34)
	bare := gitopstest.Remote(t, nil)
	blobless(t, bare)
	// Production: tags[0], then tags[1]; then a commit that changes
	// nothing it pins (a comment): not a pin of its own.
	gitopstest.Push(t, bare, map[string]string{productionKust: r.pinFile(r.tags[0], "first")}, "production "+r.tags[0])
	gitopstest.Push(t, bare, map[string]string{productionKust: r.pinFile(r.tags[1], "second")}, "production "+r.tags[1])
	gitopstest.Push(t, bare, map[string]string{productionKust: r.pinFile(r.tags[1], "reworded")}, "production: a comment")
	// 31 staging releases, tags[2..32]; tags[33] is built, never pinned.
	for _, tg := range r.tags[2:33] {
		gitopstest.Push(t, bare, map[string]string{stagingKust: r.pinFile(tg, "staging")}, "staging "+tg)
	}
	dep := testDeploy(bare, "k8s/overlays/staging", "k8s/overlays/production")
	res, err := Run(context.Background(), defaults(Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, Deploy: dep}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range r.tags[:2] {
		if r.wasDeleted(tg) || !r.exists(t, tg) {
			t.Errorf("production's %s was deleted (kept: %+v)", tg, res.Images[0].Kept)
		}
	}
	// Both environments can roll back to their previous pin.
	for _, c := range []struct{ env, tag string }{{"k8s/overlays/production", r.tags[0]}, {"k8s/overlays/staging", r.tags[31]}} {
		if _, err := release.Pin(context.Background(), release.PinOptions{Tag: c.tag, Images: r.image(), Registry: r.reg, Deploy: testDeploy(bare, c.env)}); err != nil {
			t.Errorf("pin %s back to %s after prune: %v", c.env, c.tag, err)
		}
	}

	// --keep-history 2, --keep 1: each overlay's current and previous
	// pins and the newest tag, nothing else.
	r2 := newReleases(t, 34)
	bare2 := gitopstest.Remote(t, nil)
	blobless(t, bare2)
	gitopstest.Push(t, bare2, map[string]string{productionKust: r2.pinFile(r2.tags[0], "first")}, "p0")
	gitopstest.Push(t, bare2, map[string]string{productionKust: r2.pinFile(r2.tags[1], "second")}, "p1")
	gitopstest.Push(t, bare2, map[string]string{productionKust: r2.pinFile(r2.tags[1], "reworded")}, "p1 again")
	for _, tg := range r2.tags[2:33] {
		gitopstest.Push(t, bare2, map[string]string{stagingKust: r2.pinFile(tg, "staging")}, "s "+tg)
	}
	o := Options{Images: r2.image(), Registry: r2.reg, Deleter: r2.reg, KeepHistory: 2, Keep: 1, DryRun: true,
		Deploy: testDeploy(bare2, "k8s/overlays/staging", "k8s/overlays/production")}
	res, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, k := range res.Images[0].Kept {
		kept = append(kept, k.Tag+"="+strings.Join(k.Keep, "+"))
	}
	want := []string{r2.tags[33] + "=newest", r2.tags[32] + "=pinned", r2.tags[31] + "=rollback", r2.tags[1] + "=pinned", r2.tags[0] + "=rollback"}
	if strings.Join(kept, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v\nwant %v", kept, want)
	}
}

// TestPruneKeepsArgoSourceImages: an .argocd-source file beside the
// overlay sets the image Argo CD runs; prune deleted it. Now its images
// count as pins, and one prune cannot read stops it.
func TestPruneKeepsArgoSourceImages(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 6)
	bare := gitopstest.Remote(t, nil)
	blobless(t, bare)
	gitopstest.Push(t, bare, map[string]string{
		productionKust: r.pinFile(r.tags[0], "what shipit pinned"),
		// Image Updater's write-back, aliased and by digest, as Argo CD
		// reads them: kustomize edit set image arguments.
		"k8s/overlays/production/.argocd-source-web-production.yaml": "kustomize:\n  images:\n  - web=" + r.repo + ":" + r.tags[3] + "\n",
		"k8s/overlays/production/.argocd-source.yaml":                "kustomize:\n  images:\n  - " + r.repo + "@" + r.digests[r.tags[2]] + "\n",
	}, "updater write-back")
	o := Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, KeepHistory: 1, Keep: 0, DryRun: true, Deploy: testDeploy(bare, "k8s/overlays/production")}
	deleted := wouldDelete(t, o)
	slices.Sort(deleted)
	if want := []string{r.tags[1], r.tags[4], r.tags[5]}; !slices.Equal(deleted, want) {
		t.Errorf("would delete %v, want %v (tags[0] pinned, tags[2] and tags[3] set by .argocd-source files)", deleted, want)
	}

	// The override of the previous commit is a rollback target too.
	gitopstest.Push(t, bare, map[string]string{"k8s/overlays/production/.argocd-source-web-production.yaml": "kustomize:\n  images:\n  - web=" + r.repo + ":" + r.tags[4] + "\n"}, "updater again")
	o.KeepHistory = 2
	if deleted := wouldDelete(t, o); slices.Contains(deleted, r.tags[3]) || slices.Contains(deleted, r.tags[4]) {
		t.Errorf("would delete %v: the override's current and previous pins must stay", deleted)
	}

	gitopstest.Push(t, bare, map[string]string{"k8s/overlays/production/.argocd-source.yaml": "kustomize:\n  images: {web: 1}\n"}, "broken")
	o.DryRun = false
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), ".argocd-source.yaml") || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("an unreadable .argocd-source file: %v", err)
	}
	if len(r.deleted) != 0 {
		t.Errorf("%d DELETE requests", len(r.deleted))
	}
}

// TestPruneRenamedOverlay: a configured overlay missing at the head (the
// GitOps repository renamed it) counted as pinning nothing, and prune
// planned to delete what production runs from the new path. Now it is an
// error naming the path, and nothing is deleted.
func TestPruneRenamedOverlay(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 4)
	bare := gitopstest.Remote(t, nil)
	blobless(t, bare)
	gitopstest.Push(t, bare, map[string]string{productionKust: ""}, "remove")
	gitopstest.Push(t, bare, map[string]string{"k8s/overlays/prod/kustomization.yaml": r.pinFile(r.tags[0], "renamed")}, "renamed")
	o := Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, KeepHistory: 2, Keep: 0, Deploy: testDeploy(bare, "k8s/overlays/staging", "k8s/overlays/production")}
	_, err := Run(context.Background(), o)
	var oe *OverlayError
	if !errors.As(err, &oe) || oe.Overlay != "k8s/overlays/production" || !strings.Contains(err.Error(), "nothing was deleted") || !strings.Contains(err.Error(), "deploy.overlays") {
		t.Fatalf("a missing overlay: %v", err)
	}
	var bad interface{ BadInput() bool }
	if !errors.As(err, &bad) || !bad.BadInput() {
		t.Errorf("a missing overlay is not a configuration error (exit 2): %v", err)
	}
	if len(r.deleted) != 0 || !r.exists(t, r.tags[0]) {
		t.Errorf("%d DELETE requests", len(r.deleted))
	}
}

// TestPruneConcurrentPin: the plan was made once, so a `shipit pin` made
// while prune ran pointed production at a digest prune then deleted. Now
// the head is read again before each batch, and what it keeps stays.
func TestPruneConcurrentPin(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 8)
	bare := gitopstest.Remote(t, nil)
	blobless(t, bare)
	gitopstest.Push(t, bare, map[string]string{productionKust: r.pinFile(r.tags[7], "current")}, "production")
	dep := testDeploy(bare, "k8s/overlays/production")
	// While the first delete is in flight, production rolls back to the
	// oldest tag, which the plan deletes last.
	var pinErr error
	r.onDel = func(n int) {
		if n == 1 {
			_, pinErr = release.Pin(context.Background(), release.PinOptions{Tag: r.tags[0], Images: r.image(), Registry: r.reg, Deploy: dep})
		}
	}
	var rec progress.Recorder
	res, err := Run(context.Background(), Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, KeepHistory: 1, Keep: 0, Deploy: dep, Events: &rec})
	if err != nil || pinErr != nil {
		t.Fatalf("prune: %v; pin: %v", err, pinErr)
	}
	if r.wasDeleted(r.tags[0]) || !r.exists(t, r.tags[0]) {
		t.Fatalf("the tag pinned while prune ran was deleted")
	}
	if !r.wasDeleted(r.tags[6]) || !r.wasDeleted(r.tags[1]) {
		t.Errorf("deleted %v: the others should go", r.deleted)
	}
	if msgs := strings.Join(rec.Messages(progress.Info), "\n"); !strings.Contains(msgs, r.tags[0]+" is not deleted") {
		t.Errorf("no line says why %s stayed:\n%s", r.tags[0], msgs)
	}
	var kept []string
	for _, k := range res.Images[0].Kept {
		kept = append(kept, k.Tag+"="+strings.Join(k.Keep, "+"))
	}
	for _, d := range res.Images[0].Deleted {
		if d.Tag == r.tags[0] {
			t.Errorf("the result says %s was deleted", d.Tag)
		}
	}
	if !slices.Contains(kept, r.tags[0]+"="+KeepPinned) {
		t.Errorf("kept %v: want %s pinned", kept, r.tags[0])
	}
}

// TestPruneRelistsTags: on the registry API a manifest goes with all its
// tags, so a tag pushed onto a planned digest while prune runs (a retag)
// keeps that manifest.
func TestPruneRelistsTags(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 6)
	var pushErr error
	r.onDel = func(n int) {
		if n == 1 {
			img, err := remote.Image(mustTag(t, r.repo+":"+r.tags[0]))
			if err == nil {
				ref, _ := name.NewTag(r.repo + ":keep-me")
				err = remote.Write(ref, img)
			}
			pushErr = err
		}
	}
	var rec progress.Recorder
	_, err := Run(context.Background(), Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, KeepHistory: 1, Keep: 0, Events: &rec})
	if err != nil || pushErr != nil {
		t.Fatalf("prune: %v; push: %v", err, pushErr)
	}
	if r.wasDeleted(r.tags[0]) || !r.exists(t, "keep-me") {
		t.Errorf("the manifest a new tag points at was deleted")
	}
	if !r.wasDeleted(r.tags[1]) {
		t.Errorf("deleted %v", r.deleted)
	}
	if msgs := strings.Join(rec.Messages(progress.Info), "\n"); !strings.Contains(msgs, "tag keep-me points at it now") {
		t.Errorf("no line says why:\n%s", msgs)
	}
}

// dupTags lists every tag twice, as a registry that repeats tags across
// pages does.
type dupTags struct{ *shipitreg.Client }

func (d dupTags) Tags(ctx context.Context, repo string) ([]string, error) {
	all, err := d.Client.Tags(ctx, repo)
	return append(all, all...), err
}

// TestPruneDuplicateTags: a tag list holding duplicates shrank --keep N
// (--keep 6 kept 3 distinct tags).
func TestPruneDuplicateTags(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 10)
	o := Options{Images: r.image(), Registry: dupTags{r.reg}, Deleter: r.reg, KeepHistory: 1, Keep: 6, DryRun: true}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, k := range res.Images[0].Kept {
		kept = append(kept, k.Tag)
	}
	if want := []string{r.tags[9], r.tags[8], r.tags[7], r.tags[6], r.tags[5], r.tags[4]}; !slices.Equal(kept, want) {
		t.Errorf("--keep 6 kept %v, want %v", kept, want)
	}
	if n := len(res.Images[0].Deleted); n != 4 {
		t.Errorf("%d deletions planned for 4 tags", n)
	}
}

// TestPruneWalksDeeperHistory: production's previous pin lies past the
// first clone's depth (100 staging releases later): the walk deepens the
// clone until it finds it.
func TestPruneWalksDeeperHistory(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 3)
	bare := gitopstest.Remote(t, nil)
	blobless(t, bare)
	work := filepath.Join(t.TempDir(), "w")
	gitT(t, filepath.Dir(work), "clone", "-q", bare, work)
	commit := func(path, content string) {
		if err := os.WriteFile(filepath.Join(work, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		gitT(t, work, "commit", "-qam", "pin "+path)
	}
	commit(productionKust, r.pinFile(r.tags[0], "first"))
	commit(productionKust, r.pinFile(r.tags[1], "second"))
	for i := 0; i < 100; i++ {
		commit(stagingKust, r.pinFile(r.tags[2], fmt.Sprint("staging ", i)))
	}
	gitT(t, work, "push", "-q", "origin", "HEAD:main")
	o := Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, KeepHistory: 2, Keep: 0, Deploy: testDeploy(bare, "k8s/overlays/staging", "k8s/overlays/production")}
	if deleted := wouldDelete(t, o); len(deleted) != 0 {
		t.Errorf("would delete %v: production's previous pin is %s", deleted, r.tags[0])
	}
	o.KeepHistory = 1
	if deleted := wouldDelete(t, o); !slices.Equal(deleted, []string{r.tags[0]}) {
		t.Errorf("--keep-history 1 would delete %v, want %s", deleted, r.tags[0])
	}
}

// TestPruneKeepsWhatTheOverlayRenders: an image the overlay runs without
// an images entry of its own (a literal reference in a base manifest) is
// kept: prune reads what the overlay renders to, not only its entries.
func TestPruneKeepsWhatTheOverlayRenders(t *testing.T) {
	t.Parallel()
	r := newReleases(t, 4)
	files := gitopstest.Files()
	files["k8s/base/deploy.yaml"] = strings.ReplaceAll(gitopstest.Base, "image: worker}", "image: \""+r.repo+":"+r.tags[2]+"\"}")
	files[productionKust] = "resources: [../../base]\n"
	bare := gitopstest.Remote(t, files)
	blobless(t, bare)
	o := Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, KeepHistory: 1, Keep: 0, DryRun: true, Deploy: testDeploy(bare, "k8s/overlays/production")}
	deleted := wouldDelete(t, o)
	slices.Sort(deleted)
	if want := []string{r.tags[0], r.tags[1], r.tags[3]}; !slices.Equal(deleted, want) {
		t.Errorf("would delete %v, want %v: the base runs %s", deleted, want, r.tags[2])
	}
	gitopstest.Push(t, bare, map[string]string{productionKust: "resources: [../../missing]\n"}, "broken")
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "does not render") {
		t.Errorf("an overlay that does not render: %v", err)
	}
}

// blobless lets the remote serve partial clones, as hosted git servers
// do: the workspace is then blobless, and history reads fetch content.
func blobless(t *testing.T, bare string) {
	t.Helper()
	gitT(t, bare, "config", "uploadpack.allowFilter", "true")
}
