package e2e

import (
	"strings"
	"testing"
	"time"
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
