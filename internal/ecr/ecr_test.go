package ecr

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shipit-dev/shipit/internal/ecr/ecrtest"
)

const host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

func TestParse(t *testing.T) {
	t.Parallel()
	r, ok := Parse(host + "/team/web")
	if !ok || r.Account != "123456789012" || r.Region != "us-east-1" || r.Name != "team/web" {
		t.Errorf("Parse = %+v %v", r, ok)
	}
	for _, s := range []string{"ghcr.io/acme/web", "127.0.0.1:5000/web", "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example/web", "web"} {
		if _, ok := Parse(s); ok {
			t.Errorf("%s parsed as ECR", s)
		}
	}
}

// TestEnsure against the stand-in API (not parallel: the AWS SDK reads the
// process environment).
func TestEnsure(t *testing.T) {
	api, srv := ecrtest.New(t, "team/web")
	for k, v := range ecrtest.Env(t, srv.URL) {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	repos := []string{host + "/team/web", host + "/team/worker", "127.0.0.1:5000/team/other"}

	_, err := Ensure(ctx, repos, false, "buildcache")
	if err == nil || !strings.Contains(err.Error(), host+"/team/worker does not exist") || !strings.Contains(err.Error(), "create_repositories: true") {
		t.Errorf("a missing repository without create: %v", err)
	}
	if len(api.Created) != 0 {
		t.Error("created a repository without being asked to")
	}

	created, err := Ensure(ctx, repos, true, "buildcache")
	if err != nil || strings.Join(created, ",") != host+"/team/worker" {
		t.Fatalf("create: %v %v", created, err)
	}
	c := api.Created[0]
	if c["imageTagMutability"] != "IMMUTABLE_WITH_EXCLUSION" || !strings.Contains(strings.ToLower(strings.Join(flatten(c), " ")), "buildcache") {
		t.Errorf("created with %v: want immutable tags but for the cache tag", c)
	}
	for _, op := range api.Ops() {
		if op == "" {
			t.Error("a call without an operation")
		}
	}

	// Every repository there: one call for all of them, not one each.
	before := len(api.Ops())
	if _, err := Ensure(ctx, append(repos, host+"/team/web"), false, "buildcache"); err != nil {
		t.Fatal(err)
	}
	if ops := api.Ops()[before:]; strings.Join(ops, ",") != "DescribeRepositories" {
		t.Errorf("checking two repositories that exist: %v, want one DescribeRepositories", ops)
	}

	// No credentials: said as such.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	for _, rs := range [][]string{repos[:1], repos[:2]} {
		if _, err := Ensure(ctx, rs, false, "buildcache"); err == nil || !strings.Contains(err.Error(), "no AWS credentials") || !strings.Contains(err.Error(), "checking ECR repository "+host+"/team/web") {
			t.Errorf("no credentials, %d repositories: %v", len(rs), err)
		}
	}
}

// TestEnsureBatches: 150 repositories that exist are checked in two
// calls of at most 100 names; one missing among them is still found and
// created.
func TestEnsureBatches(t *testing.T) {
	var names, repos []string
	for i := range 150 {
		names = append(names, fmt.Sprintf("team/svc%03d", i))
		repos = append(repos, host+"/"+names[i])
	}
	api, srv := ecrtest.New(t, names[1:]...)
	for k, v := range ecrtest.Env(t, srv.URL) {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	created, err := Ensure(ctx, repos, true, "buildcache")
	if err != nil || strings.Join(created, ",") != repos[0] {
		t.Fatalf("one of 150 missing: created %v, %v", created, err)
	}
	before := len(api.Ops())
	if _, err := Ensure(ctx, repos, false, "buildcache"); err != nil {
		t.Fatal(err)
	}
	if ops := api.Ops()[before:]; strings.Join(ops, ",") != "DescribeRepositories,DescribeRepositories" {
		t.Errorf("150 repositories that exist: %v, want two DescribeRepositories", ops)
	}
}

func flatten(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k)
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				if mm, ok := e.(map[string]any); ok {
					out = append(out, flatten(mm)...)
				}
			}
		}
	}
	return out
}

// TestDeleteTagsBatches: 250 tags go in batches of at most 100.
func TestDeleteTagsBatches(t *testing.T) {
	api, srv := ecrtest.New(t, "team/web")
	for k, v := range ecrtest.Env(t, srv.URL) {
		t.Setenv(k, v)
	}
	var tags []string
	for i := 0; i < 250; i++ {
		tags = append(tags, fmt.Sprintf("20260101-%06d-aaaaaaa", i))
	}
	deleted, err := (&Deleter{}).DeleteTags(context.Background(), host+"/team/web", tags)
	if err != nil || len(deleted) != 250 {
		t.Fatalf("deleted %d: %v", len(deleted), err)
	}
	if fmt.Sprint(api.Batches) != "[100 100 50]" {
		t.Errorf("batches = %v", api.Batches)
	}
}

// TestPushedAt: the push time of every tagged image, over several pages
// of DescribeImages, each tag of a multi-tag image included.
func TestPushedAt(t *testing.T) {
	api, srv := ecrtest.New(t, "team/web")
	for k, v := range ecrtest.Env(t, srv.URL) {
		t.Setenv(k, v)
	}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var imgs []ecrtest.Image
	for i := 0; i < 7; i++ {
		imgs = append(imgs, ecrtest.Image{Digest: fmt.Sprintf("sha256:%064d", i), Tags: []string{fmt.Sprintf("t%d", i)}, PushedAt: base.Add(time.Duration(i) * time.Hour)})
	}
	imgs[6].Tags = append(imgs[6].Tags, "latest")
	api.SetImages("team/web", imgs...)
	api.PageSize = 3
	got, err := (&Deleter{}).PushedAt(context.Background(), host+"/team/web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || !got["t0"].Equal(base) || !got["latest"].Equal(base.Add(6*time.Hour)) || !got["t4"].Equal(base.Add(4*time.Hour)) {
		t.Errorf("PushedAt = %v", got)
	}
	if n := strings.Count(strings.Join(api.Ops(), " "), "DescribeImages"); n != 3 {
		t.Errorf("%d DescribeImages calls for 7 images in pages of 3", n)
	}
	if _, err := (&Deleter{}).PushedAt(context.Background(), host+"/team/none"); err == nil || !strings.Contains(err.Error(), "team/none") {
		t.Errorf("a missing repository: %v", err)
	}
}
