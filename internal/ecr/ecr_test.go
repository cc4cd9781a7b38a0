package ecr

import (
	"context"
	"fmt"
	"strings"
	"testing"

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

	// No credentials: said as such.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := Ensure(ctx, repos[:1], false, "buildcache"); err == nil || !strings.Contains(err.Error(), "AWS") {
		t.Errorf("no credentials: %v", err)
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
