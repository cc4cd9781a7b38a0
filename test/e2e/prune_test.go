package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func (p *countingProxy) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.log {
		if strings.HasPrefix(l, method+" ") {
			n++
		}
	}
	return n
}

// TestPrune against the distribution registry with deletes enabled:
// releases of several commits, pins in two overlays, a rollback (a hold),
// pins in the GitOps history, and tags that are not shipit's.
func TestPrune(t *testing.T) {
	t.Parallel()
	proxy := newCountingProxy(t)
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	cfg := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "overlays: [overlays/prod]", "overlays: [overlays/prod, overlays/staging]", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-05-06T08:00:00Z", "commit", "-qam", "two overlays")

	var tags []string
	for i, release := range []bool{true, true, true, true, false, false} {
		writeFiles(t, a.dir, map[string]string{"web/app.sh": fmt.Sprintf("#!/bin/sh\necho %d\n", i)})
		git(t, a.dir, fmt.Sprintf("2026-05-06T09:%02d:00Z", i), "commit", "-qam", fmt.Sprint("commit ", i))
		tags = append(tags, strings.TrimSpace(mustShipit(t, a.dir, nil, "tag").stdout))
		mustShipit(t, a.dir, a.env(), "build", "--push", "--progress", "quiet")
		if release {
			mustShipit(t, a.dir, nil, "release")
		}
	}
	// Production rolls back to tags[1]: a hold until tags[3].
	mustShipit(t, a.dir, nil, "pin", tags[1], "--overlay", "overlays/prod")
	// Tags that are not shipit's.
	for _, other := range []string{"latest", "buildcache"} {
		img, _ := random.Image(64, 1)
		ref, _ := name.NewTag(a.repo + "/web:" + other)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}

	// History: the last two commits are the pin and the release of
	// tags[3]; tags[2] and tags[0] were pinned before that. Newest 3:
	// tags[3..5].
	args := []string{"prune", "--keep", "3", "--min-age", "0s", "--keep-history", "2", "--output", "json"}
	r := mustShipit(t, a.dir, nil, append(args, "--dry-run")...)
	if n := proxy.count("DELETE"); n != 0 {
		t.Fatalf("a dry run sent %d DELETE requests", n)
	}
	var plan struct {
		Images []struct {
			Image string
			Kept  []struct {
				Tag  string
				Keep []string
			}
			Deleted []struct{ Tag, Digest string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	for _, im := range plan.Images {
		var deleted []string
		for _, d := range im.Deleted {
			deleted = append(deleted, d.Tag)
		}
		if strings.Join(deleted, " ") != tags[2]+" "+tags[0] {
			t.Errorf("%s: would delete %v, want %s and %s; kept %+v", im.Image, deleted, tags[2], tags[0], im.Kept)
		}
	}

	r = mustShipit(t, a.dir, nil, args...)
	for _, im := range plan.Images {
		for _, d := range im.Deleted {
			if got := headStatus(t, a.repo+"/"+im.Image+"@"+d.Digest); got != 404 {
				t.Errorf("%s@%s (%s) answers %d after prune", im.Image, d.Digest, d.Tag, got)
			}
		}
		for _, k := range im.Kept {
			if got := headStatus(t, a.repo+"/"+im.Image+":"+k.Tag); got != 200 {
				t.Errorf("kept %s:%s answers %d", im.Image, k.Tag, got)
			}
		}
	}
	// A second prune deletes nothing.
	r = mustShipit(t, a.dir, nil, "prune", "--keep", "3", "--min-age", "0s", "--keep-history", "2")
	if !strings.Contains(r.stdout, "deleted 0") || strings.Contains(r.stdout, "deleted 1") {
		t.Errorf("second prune:\n%s", r.stdout)
	}

	// An unreachable GitOps remote: nothing deleted, exit 1.
	proxy.reset()
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": strings.Replace(cfg, "repo: "+bare, "repo: "+bare+".gone", 1)})
	git(t, a.dir, "2026-05-06T10:00:00Z", "commit", "-qam", "gone")
	r = shipitRun(t, a.dir, nil, "prune", "--keep", "0", "--min-age", "0s")
	if r.code != 1 || proxy.count("DELETE") != 0 {
		t.Errorf("unreachable GitOps remote: exit %d, %d DELETE requests:\n%s", r.code, proxy.count("DELETE"), r.stderr)
	}
}

func headStatus(t *testing.T, ref string) int {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(r); err != nil {
		if strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
			return 404
		}
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return 200
}
