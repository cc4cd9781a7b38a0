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

// BenchmarkPreviewUp times shipit preview up of a build whose images are
// already in the registry (each run a new preview, so each commits),
// against what it cannot avoid: git clone --depth 1 of the GitOps branch,
// a commit of one file, and the push, done with git alone, alternately.
//
//	go test ./test/e2e -run '^$' -bench PreviewUp -benchtime 10x
func BenchmarkPreviewUp(b *testing.B) {
	bare := newGitOpsOverlays(b, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	a := newApp(b)
	withEnvironments(b, a, registry, bare, false)
	withPreviews(b, a, bare, "")
	cfg := strings.Replace(mustRead(b, a.dir+"/shipit.yaml"), "    max: 2\n", "", 1)
	writeFiles(b, a.dir, map[string]string{"shipit.yaml": cfg})
	git(b, a.dir, "2026-05-06T07:09:50+02:00", "commit", "-qam", "no max")
	mustShipit(b, a.dir, a.env(), "build", "--push", "--progress", "quiet")
	var shipitTime, gitTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		mustShipit(b, a.dir, nil, "preview", "up", fmt.Sprintf("pr-%d", i))
		shipitTime += time.Since(start)

		start = time.Now()
		work := b.TempDir() + "/w"
		git(b, "", "", "clone", "-q", "--depth", "1", "-b", "main", "file://"+bare, work)
		writeFiles(b, work, map[string]string{fmt.Sprintf("bench/%d.yaml", i): "x: 1\n"})
		git(b, work, "", "add", "-A")
		git(b, work, "", "commit", "-qm", "bench")
		git(b, work, "", "push", "-q", "origin", "HEAD:main")
		gitTime += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(shipitTime.Milliseconds())/n, "ms/preview-up")
	b.ReportMetric(float64(gitTime.Milliseconds())/n, "ms/git-clone-commit-push")
	b.ReportMetric(float64((shipitTime-gitTime).Milliseconds())/n, "ms/overhead")
}
