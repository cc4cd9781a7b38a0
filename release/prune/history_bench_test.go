package prune

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipit-dev/shipit/internal/registry/registrytest"
	"github.com/shipit-dev/shipit/release"
)

// manyTags is an in-process registry whose team/web holds n release tags
// (on a handful of manifests), counting the requests made to it.
func manyTags(b *testing.B, n int) (string, *atomic.Int64) {
	b.Helper()
	var reqs atomic.Int64
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			reqs.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(64, 1)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		tg := fmt.Sprintf("%s-%07x", base.Add(time.Duration(i)*time.Minute).Format("20060102-150405"), i)
		ref, _ := name.NewTag(host + "/team/web:" + tg)
		if err := remote.Write(ref, img); err != nil {
			b.Fatal(err)
		}
	}
	return host, &reqs
}

// BenchmarkHistory: history --limit 10 and status cost a tag list and a
// few manifest requests whatever the number of tags.
//
//	go test ./release/prune -run '^$' -bench 'History|StatusScale' -benchtime 5x
func BenchmarkHistory(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			host, reqs := manyTags(b, n)
			reg := registrytest.Client()
			imgs := []release.PinImage{{Name: "web", Repository: host + "/team/web"}}
			reqs.Store(0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h, err := release.History(context.Background(), reg, imgs, nil, 10)
				if err != nil || len(h) != 10 {
					b.Fatalf("%d entries: %v", len(h), err)
				}
			}
			b.ReportMetric(float64(reqs.Load())/float64(b.N), "requests/op")
		})
	}
}

func BenchmarkStatusScale(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			host, reqs := manyTags(b, n)
			reg := registrytest.Client()
			imgs := []release.PinImage{{Name: "web", Repository: host + "/team/web"}}
			reqs.Store(0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := release.Status(context.Background(), reg, imgs, nil, "", true); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(reqs.Load())/float64(b.N), "requests/op")
		})
	}
}

// BenchmarkPrune: prune of 1000 release tags on 1000 manifests, keeping
// the newest 30: time, and registry requests (the tag list, a HEAD per
// tag, a DELETE per deleted manifest).
//
//	go test ./release/prune -run '^$' -bench Prune -benchtime 1x
func BenchmarkPrune(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var reqs, deletes atomic.Int64
		h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2/" {
				reqs.Add(1)
			}
			if r.Method == http.MethodDelete {
				deletes.Add(1)
			}
			h.ServeHTTP(w, r)
		}))
		host := strings.TrimPrefix(srv.URL, "http://")
		base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		for j := 0; j < 1000; j++ {
			img, _ := random.Image(32, 1)
			ref, _ := name.NewTag(fmt.Sprintf("%s/team/web:%s-%07x", host, base.Add(time.Duration(j)*time.Minute).Format("20060102-150405"), j))
			if err := remote.Write(ref, img); err != nil {
				b.Fatal(err)
			}
		}
		reg := registrytest.Client()
		o := Options{
			Images: []release.PinImage{{Name: "web", Repository: host + "/team/web"}}, Registry: reg, Deleter: reg,
			Deploy: testDeploy(gitOpsRemote(b), "k8s/overlays/staging"), KeepHistory: 20, Keep: 30,
		}
		reqs.Store(0)
		b.StartTimer()
		res, err := Run(context.Background(), o)
		b.StopTimer()
		if err != nil || len(res.Images[0].Deleted) != 970 {
			b.Fatalf("%v, %d deleted", err, len(res.Images[0].Deleted))
		}
		b.ReportMetric(float64(reqs.Load()), "requests")
		b.ReportMetric(float64(deletes.Load()), "deletes")
		srv.Close()
	}
}

// BenchmarkPruneHistoryWalk: a dry prune whose production overlay last
// changed 900 commits ago (staging moved in every commit since): the walk
// deepens the clone to find production's previous pin.
//
//	go test ./release/prune -run '^$' -bench HistoryWalk -benchtime 3x
func BenchmarkPruneHistoryWalk(b *testing.B) {
	host, _ := manyTags(b, 3)
	repo := host + "/team/web"
	bare := gitOpsRemote(b)
	gitT(b, bare, "config", "uploadpack.allowFilter", "true") // a blobless workspace, as with hosted git
	work := filepath.Join(b.TempDir(), "w")
	gitT(b, filepath.Dir(work), "clone", "-q", bare, work)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tagAt := func(i int) string {
		return fmt.Sprintf("%s-%07x", base.Add(time.Duration(i)*time.Minute).Format("20060102-150405"), i)
	}
	pin := func(ov, tg string, n int) {
		body := fmt.Sprintf("resources: [../../base]\n# %d\nimages:\n  - name: web\n    newName: %s\n    newTag: %q\n", n, repo, tg)
		if err := os.WriteFile(filepath.Join(work, "k8s/overlays", ov, "kustomization.yaml"), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
		gitT(b, work, "commit", "-qam", "pin")
	}
	pin("production", tagAt(0), 0)
	pin("production", tagAt(1), 1)
	for i := 0; i < 900; i++ {
		pin("staging", tagAt(2), i)
	}
	gitT(b, work, "push", "-q", "origin", "HEAD:main")
	reg := registrytest.Client()
	o := Options{
		Images: []release.PinImage{{Name: "web", Repository: repo}}, Registry: reg, Deleter: reg, DryRun: true,
		Deploy: testDeploy(bare, "k8s/overlays/staging", "k8s/overlays/production"), KeepHistory: 2, Keep: 0,
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), o)
		if err != nil || len(res.Images[0].Deleted) != 0 {
			b.Fatalf("%v, %+v", err, res.Images[0].Deleted)
		}
	}
}
