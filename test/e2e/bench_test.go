package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BenchmarkPin times shipit pin of two images over three overlays, end to
// end on loopback, alternating between two releases, and counts the
// registry requests (beyond the /v2/ ping) and blob uploads it makes.
//
//	go test ./test/e2e -run '^$' -bench Pin -benchtime 10x
func BenchmarkPin(b *testing.B) {
	for _, mode := range []string{"git", "image-updater"} {
		b.Run(mode, func(b *testing.B) {
			proxy := newCountingProxy(b)
			bare := newGitOpsOverlays(b, map[string]string{"prod": overlayYAML, "staging": overlayYAML, "canary": overlayYAML})
			a := newApp(b)
			withDeploy(b, a, proxy.host, bare)
			cfg := mustRead(b, a.dir+"/shipit.yaml")
			cfg = strings.Replace(cfg, "overlays: [overlays/prod]", "overlays: [overlays/prod, overlays/staging, overlays/canary]\n  mode: "+mode, 1)
			writeFiles(b, a.dir, map[string]string{"shipit.yaml": cfg})
			tagA := commitAt(b, a, "2026-05-06T06:00:00Z", "A")
			buildAndRelease(b, a)
			writeFiles(b, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho B\n", "worker/job.sh": "#!/bin/sh\necho B\n"})
			tagB := commitAt(b, a, "2026-05-06T06:01:00Z", "B")
			buildAndRelease(b, a)
			proxy.reset()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				to := tagA
				if i%2 == 1 {
					to = tagB
				}
				mustShipit(b, a.dir, nil, "pin", to)
			}
			b.StopTimer()
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/pin")
			b.ReportMetric(float64(proxy.requests.Load())/float64(b.N), "registry-requests/pin")
			b.ReportMetric(float64(proxy.uploads.Load())/float64(b.N), "blob-uploads/pin")
		})
	}
}

// BenchmarkHistoryCLI: shipit history --limit 10 over a repository of 1000
// release tags in the distribution registry, through a counting proxy.
//
//	go test ./test/e2e -run '^$' -bench HistoryCLI -benchtime 10x
func BenchmarkHistoryCLI(b *testing.B) {
	proxy := newCountingProxy(b)
	a := newApp(b)
	repo := strings.Replace(a.repo, registry, proxy.host, 1)
	writeFiles(b, a.dir, map[string]string{"shipit.yaml": strings.Replace(mustRead(b, a.dir+"/shipit.yaml"), "registry: "+a.repo, "registry: "+repo, 1)})
	img, _ := random.Image(64, 1)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		ref, _ := name.NewTag(fmt.Sprintf("%s/web:%s-%07x", strings.Replace(repo, proxy.host, registry, 1), base.Add(time.Duration(i)*time.Minute).Format("20060102-150405"), i))
		if err := remote.Write(ref, img); err != nil {
			b.Fatal(err)
		}
	}
	proxy.reset()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r := mustShipit(b, a.dir, nil, "history", "web", "--limit", "10")
		if n := strings.Count(r.stdout, "\n"); n != 11 {
			b.Fatalf("%d lines:\n%s", n, r.stdout)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/history")
	b.ReportMetric(float64(proxy.requests.Load())/float64(b.N), "registry-requests/history")
}
