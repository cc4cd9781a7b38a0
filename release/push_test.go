package release

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

// fixture is an in-process registry and a build record whose one image is
// kept in an OCI layout.
func fixture(t *testing.T) (string, *build.Record, string, *atomic.Int64) {
	t.Helper()
	var uploads atomic.Int64
	host := registrytest.Serve(t, registrytest.Count(&uploads, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/blobs/uploads") }))
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(filepath.Join(dir, "images/web"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	rec := &build.Record{Version: build.RecordVersion, Commit: "c", Tag: tA, Images: []build.Image{{
		Name: "web", Repository: host + "/team/web", Tag: tA, Digest: d.String(), Layout: "images/web",
	}}}
	return host, rec, dir, &uploads
}

func TestEnsureImages(t *testing.T) {
	t.Parallel()
	host, rec, dir, uploads := fixture(t)
	reg := registrytest.Client()
	o := Options{Record: rec, RecordDir: dir, Registry: reg}
	ctx := context.Background()

	got, err := ensureImages(ctx, o)
	if err != nil || got[0].Action != ActionPushed {
		t.Fatalf("first push: %+v %v", got, err)
	}
	if uploads.Load() == 0 {
		t.Fatal("nothing was uploaded")
	}
	uploads.Store(0)
	got, err = ensureImages(ctx, o)
	if err != nil || got[0].Action != ActionPresent || uploads.Load() != 0 {
		t.Errorf("repeat: %+v %v, %d uploads", got, err, uploads.Load())
	}

	// Another image under the same tag: never overwritten.
	other, _ := random.Image(512, 1)
	ref, _ := name.NewTag(host + "/team/api:" + tA)
	if err := remote.Write(ref, other); err != nil {
		t.Fatal(err)
	}
	od, _ := other.Digest()
	rec.Images[0].Repository = host + "/team/api"
	_, err = ensureImages(ctx, o)
	if err == nil || !strings.Contains(err.Error(), od.String()) || !strings.Contains(err.Error(), rec.Images[0].Digest) {
		t.Errorf("tag on another digest: %v", err)
	}
	o.KeepExisting = true
	got, err = ensureImages(ctx, o)
	if err != nil || got[0].Action != ActionKeptExisting || got[0].Digest != od.String() {
		t.Errorf("--keep-existing: %+v %v", got, err)
	}

	// A record that claims a push that is not there.
	rec.Images[0].Repository, rec.Images[0].Pushed = host+"/team/missing", true
	if _, err := ensureImages(ctx, Options{Record: rec, RecordDir: dir, Registry: reg}); err == nil || !strings.Contains(err.Error(), "build again") {
		t.Errorf("a missing pushed image: %v", err)
	}
}

// TestCrossRepositoryMount: two images that share layers, in two
// repositories of one registry: the shared layers go up once.
func TestCrossRepositoryMount(t *testing.T) {
	t.Parallel()
	var patches, mounts atomic.Int64
	host := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A blob upload that carries data: a PATCH or the final PUT of an
			// upload, whatever its Content-Length says (chunked has none).
			if (r.Method == http.MethodPatch || r.Method == http.MethodPut) && strings.Contains(r.URL.Path, "/blobs/uploads") {
				data, _ := io.ReadAll(r.Body)
				if len(data) > 0 {
					patches.Add(1)
				}
				r.Body = io.NopCloser(bytes.NewReader(data))
			}
			if r.URL.Query().Get("mount") != "" {
				mounts.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	base, _ := random.Image(4096, 3)
	extra, _ := random.Layer(1024, types.OCILayer)
	worker, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rec := &build.Record{Version: build.RecordVersion, Commit: "c", Tag: tA}
	for _, im := range []struct {
		name string
		img  v1.Image
	}{{"web", base}, {"worker", worker}} {
		p, err := layout.Write(filepath.Join(dir, "images", im.name), empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(im.img); err != nil {
			t.Fatal(err)
		}
		d, _ := im.img.Digest()
		rec.Images = append(rec.Images, build.Image{Name: im.name, Repository: host + "/team/" + im.name, Tag: tA, Digest: d.String(), Layout: "images/" + im.name})
	}
	got, err := ensureImages(context.Background(), Options{Record: rec, RecordDir: dir, Registry: registrytest.Client()})
	if err != nil || got[0].Action != ActionPushed || got[1].Action != ActionPushed {
		t.Fatalf("%+v %v", got, err)
	}
	// Both images are complete in their repositories.
	for _, im := range rec.Images {
		ref, _ := name.NewTag(im.Repository + ":" + tA)
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(img); err != nil {
			t.Errorf("%s: %v", im.Name, err)
		}
	}
	// web uploads its 3 layers and its config; worker only what is its own
	// (one layer, its config): the 3 shared layers are mounted, not sent.
	if got := patches.Load(); got != 6 {
		t.Errorf("%d blob uploads with data, want 6 (4 for web, 2 for worker): shared layers went up twice", got)
	}
	// The in-process registry keeps one blob store for all repositories,
	// so it finds the shared layers without a mount; TestRelease (e2e)
	// checks the mounts against the distribution registry.
	if mounts.Load() == 0 {
		t.Error("no cross-repository mount was asked for")
	}
}

func validate(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
