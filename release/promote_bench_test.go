package release

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

// BenchmarkPromote: promote of two images over two overlays, against a
// shallow clone, commit and push by hand of the same repository (what
// promote cannot do without), counting registry requests.
//
//	go test ./release -run '^$' -bench Promote -benchtime 10x
func BenchmarkPromote(b *testing.B) {
	var reqs atomic.Int64
	host := registrytest.Serve(b, registrytest.Count(&reqs, func(r *http.Request) bool { return r.URL.Path != "/v2/" }))
	reg := registrytest.Client()
	ctx := context.Background()
	imgs := []PinImage{{Name: "web", Repository: host + "/team/web"}, {Name: "worker", Repository: host + "/team/worker"}}
	var promote, git time.Duration
	rec, dir := recordFor(b, host, tB)
	for i := 0; i < b.N; i++ {
		// A fresh repository each round: staging at a release, production
		// at none, both overlays of each environment.
		bare := gitOpsRemote(b)
		staging := testDeploy(bare, "k8s/overlays/staging")
		staging.Env = "staging"
		if _, err := Run(ctx, Options{Record: rec, RecordDir: dir, Registry: reg, Deploy: staging}); err != nil {
			b.Fatal(err)
		}
		prod := testDeploy(bare, "k8s/overlays/production")
		prod.Env = "production"
		reqs.Store(0)
		start := time.Now()
		res, err := Promote(ctx, PromoteOptions{From: staging, To: prod, Images: imgs, Registry: reg})
		promote += time.Since(start)
		if err != nil || res.Commit == "" {
			b.Fatalf("%v %+v", err, res)
		}
		b.ReportMetric(float64(reqs.Load()), "registry-requests")

		// The same repository by hand: shallow clone, one file, commit, push.
		start = time.Now()
		work := filepath.Join(b.TempDir(), "w")
		repo, err := gitops.Branch{URL: bare, Name: "main"}.Clone(ctx, work, 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "touched"), []byte(time.Now().String()), 0o644); err != nil {
			b.Fatal(err)
		}
		if _, err := repo.Commit(ctx, []string{"touched"}, "by hand", DefaultAuthor); err != nil {
			b.Fatal(err)
		}
		if err := repo.Push(ctx); err != nil {
			b.Fatal(err)
		}
		git += time.Since(start)
	}
	b.ReportMetric(float64(promote.Milliseconds())/float64(b.N), "ms/promote")
	b.ReportMetric(float64(git.Milliseconds())/float64(b.N), "ms/git-clone+commit+push")
}
