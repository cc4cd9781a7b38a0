package prune

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/gitops/gitopstest"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
	"github.com/shipit-dev/shipit/release"
)

// TestImageNamesWithDoubleSeparators: shipit.yaml accepts web__api and
// web--api; after `shipit pin` wrote their hold, every later release, pin
// and prune of the overlay refused the hold file (it had a narrower name
// rule of its own). Now release, pin, release again and prune all work.
func TestImageNamesWithDoubleSeparators(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"web__api", "web--api"} {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			host := registrytest.Serve(t)
			reg := registrytest.Client()
			files := gitopstest.Files()
			files["k8s/base/deploy.yaml"] = strings.ReplaceAll(gitopstest.Base, "image: web}", "image: "+n+"}")
			files["k8s/overlays/production/kustomization.yaml"] = "resources: [../../base]\n"
			bare := gitopstest.Remote(t, files)
			dep := testDeploy(bare, "k8s/overlays/production")
			im := release.PinImage{Name: n, Repository: host + "/team/" + n}
			ctx := context.Background()
			tags := []string{"20260101-000000-aaaaaaa", "20260102-000000-bbbbbbb", "20260103-000000-ccccccc"}
			for _, tg := range tags[:2] {
				rec, dir := record(t, im, tg)
				if _, err := release.Run(ctx, release.Options{Record: rec, RecordDir: dir, Registry: reg, Deploy: dep}); err != nil {
					t.Fatalf("release %s: %v", tg, err)
				}
			}
			if _, err := release.Pin(ctx, release.PinOptions{Tag: tags[0], Images: []release.PinImage{im}, Registry: reg, Deploy: dep}); err != nil {
				t.Fatalf("pin: %v", err)
			}
			if h := gitT(t, bare, "show", "main:k8s/overlays/production/"+HoldFile); !strings.Contains(h, n+":") {
				t.Fatalf("no hold of %s:\n%s", n, h)
			}
			rec, dir := record(t, im, tags[2])
			res, err := release.Run(ctx, release.Options{Record: rec, RecordDir: dir, Registry: reg, Deploy: dep})
			if err != nil || res.Commit == "" {
				t.Fatalf("release after the pin: %+v %v", res, err)
			}
			if _, err := release.Pin(ctx, release.PinOptions{Tag: tags[1], Images: []release.PinImage{im}, Registry: reg, Deploy: dep}); err != nil {
				t.Fatalf("a second pin: %v", err)
			}
			pr, err := Run(ctx, Options{Images: []release.PinImage{im}, Registry: reg, Deleter: reg, Deploy: dep, KeepHistory: 20, Keep: 1, DryRun: true})
			if err != nil {
				t.Fatalf("prune: %v", err)
			}
			if len(pr.Images) != 1 || len(pr.Images[0].Kept) == 0 {
				t.Errorf("prune plan: %+v", pr.Images)
			}
		})
	}
}

// record is a build record of one image at tag tg, kept in a layout.
func record(t *testing.T, im release.PinImage, tg string) (*build.Record, string) {
	t.Helper()
	dir := t.TempDir()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(filepath.Join(dir, "images", im.Name), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	commit := "c0ffee" + tg[len(tg)-7:]
	return &build.Record{Version: build.RecordVersion, Commit: commit, Tag: tg, Images: []build.Image{{
		Name: im.Name, Repository: im.Repository, Tag: tg, Digest: d.String(), Commit: commit, Layout: "images/" + im.Name,
	}}}, dir
}
