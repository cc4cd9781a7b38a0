package release

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

func goodRecord() (*build.Record, map[string]string) {
	rec := &build.Record{Version: 1, Commit: "c0ffee", Tag: tB, Images: []build.Image{
		{Name: "web", Repository: "r.example.com/team/web", Tag: tB, Commit: "c0ffee", Digest: "sha256:" + strings.Repeat("a", 64), Layout: "images/web"},
	}}
	return rec, map[string]string{"web": "r.example.com/team/web", "worker": "r.example.com/team/worker"}
}

// TestCheckRecordTampered: each field of a record that reaches the
// registry, the pins or a commit message is checked against shipit.yaml.
func TestCheckRecordTampered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(*build.Record)
		want   string
	}{
		{"another repository", func(r *build.Record) { r.Images[0].Repository = "127.0.0.1:5099/evil/web" }, "images[0].repository"},
		{"layout out of the directory", func(r *build.Record) { r.Images[0].Layout = "../../../elsewhere" }, "images[0].layout"},
		{"absolute layout", func(r *build.Record) { r.Images[0].Layout = "/tmp/elsewhere" }, "images[0].layout"},
		{"an image shipit.yaml does not build", func(r *build.Record) {
			r.Images = append(r.Images, build.Image{Name: "extra", Repository: "r.example.com/team/extra", Tag: tB, Commit: "c0ffee", Digest: r.Images[0].Digest, Layout: "images/extra"})
		}, "images[1].name"},
		{"a newline in a name", func(r *build.Record) { r.Images[0].Name = "web\nSigned-off-by: Mallory <m@example.com>" }, "images[0].name"},
		{"a digest that is not one", func(r *build.Record) { r.Images[0].Digest = "sha256:../../x" }, "images[0].digest"},
		{"twice the same image", func(r *build.Record) { r.Images = append(r.Images, r.Images[0]) }, "images[1].name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, repos := goodRecord()
			tc.tamper(rec)
			err := CheckRecord(rec, ".shipit/build.json", "c0ffee", repos)
			var re *RecordError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a RecordError naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "\nSigned-off-by") {
				t.Error("the error carries the forged line")
			}
		})
	}
	rec, repos := goodRecord()
	if err := CheckRecord(rec, ".shipit/build.json", "c0ffee", repos); err != nil {
		t.Errorf("an untampered record: %v", err)
	}
}

// TestTamperedLayoutIsNotPushed: a layer whose bytes are not its digest is
// refused before any upload of any image, and nothing is pinned.
func TestTamperedLayoutIsNotPushed(t *testing.T) {
	t.Parallel()
	var uploads atomic.Int64 // blob uploads, of any image
	host := registrytest.Serve(t, registrytest.Count(&uploads, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/blobs/uploads") }))
	rec, dir := recordFor(t, host, tB)
	// Overwrite web's layer blob with other bytes of the same size.
	blobs := filepath.Join(dir, "images", "web", "blobs", "sha256")
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	raw, err := os.ReadFile(filepath.Join(blobs, strings.TrimPrefix(rec.Images[0].Digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(blobs, strings.TrimPrefix(m.Layers[0].Digest, "sha256:"))
	data, _ := os.ReadFile(layer)
	for i := range data {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(layer, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bare := gitOpsRemote(t)
	head := gitT(t, bare, "rev-parse", "main")
	_, err = Run(context.Background(), Options{Record: rec, RecordDir: dir, Registry: registrytest.Client(), Deploy: testDeploy(bare, "k8s/overlays/staging")})
	var te *TamperedError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a TamperedError", err)
	}
	if got := gitT(t, bare, "rev-parse", "main"); got != head {
		t.Error("a tampered image was pinned")
	}
	if n := uploads.Load(); n != 0 {
		t.Errorf("%d upload requests: a release with a tampered image pushed something", n)
	}
}

// FuzzCheckRecord: whatever the bytes, loading and checking a record
// never panics, and a record it accepts names only configured images, in
// their repositories, with layouts under the record's directory.
func FuzzCheckRecord(f *testing.F) {
	rec, _ := goodRecord()
	seed, _ := json.Marshal(rec)
	f.Add(seed)
	f.Add([]byte(`{"version":1,"commit":"c0ffee","tag":"` + tB + `","images":[{"name":"web","layout":"../x"}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := build.ParseRecord(data)
		if err != nil {
			return
		}
		_, repos := goodRecord()
		if CheckRecord(r, "build.json", "c0ffee", repos) != nil {
			return
		}
		for _, im := range r.Images {
			if repos[im.Name] != im.Repository {
				t.Fatalf("accepted %q in %q", im.Name, im.Repository)
			}
			if !im.Pushed && !filepath.IsLocal(im.Layout) {
				t.Fatalf("accepted layout %q", im.Layout)
			}
		}
	})
}
