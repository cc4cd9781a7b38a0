package prune

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipit-dev/shipit/internal/ecr"
	"github.com/shipit-dev/shipit/internal/ecr/ecrtest"
	"github.com/shipit-dev/shipit/internal/progress"
	shipitreg "github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/release"
)

const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// ecrRegistry serves an ECR repository's registry API from the
// in-process registry: the ECR API goes to the stand-in, the images to it.
type ecrRegistry struct {
	*shipitreg.Client
	local string // the in-process registry's host
}

func (e ecrRegistry) local2(repo string) string { return strings.Replace(repo, ecrHost, e.local, 1) }

func (e ecrRegistry) Tags(ctx context.Context, repo string) ([]string, error) {
	return e.Client.Tags(ctx, e.local2(repo))
}

func (e ecrRegistry) Lookup(ctx context.Context, repo, tg string) (string, error) {
	return e.Client.Lookup(ctx, e.local2(repo), tg)
}

// TestPruneMinAgeOnECR: --min-age was counted from the commit's time, so
// a hotfix built from a 10-day-old commit was deleted seconds after its
// push. On ECR an image pushed within --min-age is now kept whatever its
// tag's time (imagePushedAt); elsewhere prune says it counts from the
// tag's time. Not parallel: the AWS SDK reads the process environment.
func TestPruneMinAgeOnECR(t *testing.T) {
	api, srv := ecrtest.New(t, "team/web")
	for k, v := range ecrtest.Env(t, srv.URL) {
		t.Setenv(k, v)
	}
	r := newReleases(t, 4) // commits of 2026-01-01
	now := time.Date(2026, 1, 11, 0, 0, 0, 0, time.UTC)
	hotfix := r.tags[0] // the oldest commit, built and pushed a minute ago
	var imgs []ecrtest.Image
	for i, tg := range r.tags {
		at := now.Add(-9 * 24 * time.Hour).Add(time.Duration(i) * time.Minute)
		if tg == hotfix {
			at = now.Add(-time.Minute)
		}
		imgs = append(imgs, ecrtest.Image{Digest: r.digests[tg], Tags: []string{tg}, PushedAt: at})
	}
	api.SetImages("team/web", imgs...)
	d := &ecr.Deleter{}
	o := Options{
		Images:   []release.PinImage{{Name: "web", Repository: ecrHost + "/team/web"}},
		Registry: ecrRegistry{r.reg, r.host}, TagDeleter: d, PushTimes: d,
		KeepHistory: 1, Keep: 0, MinAge: 7 * 24 * time.Hour, Now: func() time.Time { return now },
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(api.Deleted, hotfix) {
		t.Errorf("the hotfix pushed a minute ago was deleted (deleted %v)", api.Deleted)
	}
	slices.Sort(api.Deleted)
	if want := r.tags[1:]; !slices.Equal(api.Deleted, want) {
		t.Errorf("deleted %v, want %v", api.Deleted, want)
	}
	if res.MinAgeFrom != "push" || len(res.Images[0].Kept) != 1 || res.Images[0].Kept[0].Keep[0] != KeepYoung {
		t.Errorf("result %+v", res)
	}

	// Elsewhere, the tag's time, said so.
	var rec progress.Recorder
	o = Options{Images: r.image(), Registry: r.reg, Deleter: r.reg, KeepHistory: 1, MinAge: 7 * 24 * time.Hour, Now: func() time.Time { return now }, DryRun: true, Events: &rec}
	res, err = Run(context.Background(), o)
	if err != nil || res.MinAgeFrom != "tag" || len(res.Images[0].Deleted) != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	if msgs := strings.Join(rec.Messages(progress.Info), "\n"); !strings.Contains(msgs, "--min-age is counted from each tag's own time") {
		t.Errorf("no line says what --min-age counts from:\n%s", msgs)
	}
}
