package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
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

	// History, per overlay: prod's last two distinct pins are tags[1]
	// (the pin) and tags[3]; staging's tags[3] and tags[2]. tags[0] was
	// pinned before that. Newest 3: tags[3..5].
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
		if strings.Join(deleted, " ") != tags[0] {
			t.Errorf("%s: would delete %v, want %s; kept %+v", im.Image, deleted, tags[0], im.Kept)
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

// stagingRelease commits a change to web and releases it (build --push,
// release: staging only, with environments), at 09:<minute>; it returns
// the release tag.
func stagingRelease(t *testing.T, a *app, minute int) string {
	t.Helper()
	writeFiles(t, a.dir, map[string]string{"web/app.sh": fmt.Sprintf("#!/bin/sh\necho %d\n", minute), "worker/job.sh": fmt.Sprintf("#!/bin/sh\necho job %d\n", minute)})
	git(t, a.dir, fmt.Sprintf("2026-05-06T09:%02d:00Z", minute), "commit", "-qam", fmt.Sprint("change ", minute))
	tg := a.tagNow(t)
	mustShipit(t, a.dir, a.env(), "build", "--push", "--progress", "quiet")
	mustShipit(t, a.dir, nil, "release")
	return tg
}

// TestPruneKeepsEveryEnvironmentsRollback: --keep-history counted the
// last commits of the whole GitOps branch, so after 31 staging releases
// default prune deleted production's previous release, and `shipit pin
// <previous> --env production` failed with "no such tag". Now each
// overlay keeps its own last distinct pins: with the default flags every
// environment keeps its current and previous pins, and pinning back to
// them works.
func TestPruneKeepsEveryEnvironmentsRollback(t *testing.T) {
	t.Parallel()
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	// Served as hosted git serves it: workspaces are blobless, and prune's
	// walk fetches the old overlays' files.
	git(t, bare, "", "config", "uploadpack.allowFilter", "true")
	a := newApp(t)
	withEnvironments(t, a, registry, bare, false)
	var tags []string
	for i := 0; i < 2; i++ { // production: two releases, promoted
		tags = append(tags, stagingRelease(t, a, i))
		mustShipit(t, a.dir, nil, "promote", "production")
	}
	for i := 2; i < 33; i++ { // 31 staging releases
		tags = append(tags, stagingRelease(t, a, i))
	}
	r := mustShipit(t, a.dir, nil, "prune")
	for _, img := range []string{"web", "worker"} {
		for _, tg := range []string{tags[0], tags[1], tags[31], tags[32]} {
			if got := headStatus(t, a.repo+"/"+img+":"+tg); got != 200 {
				t.Errorf("%s:%s answers %d after prune:\n%s%s", img, tg, got, r.stdout, r.stderr)
			}
		}
		// The oldest staging release is nobody's rollback target now, and
		// not among the newest 30: prune did delete.
		if got := headStatus(t, a.repo+"/"+img+":"+tags[2]); got != 404 {
			t.Errorf("%s:%s answers %d: prune deleted nothing", img, tags[2], got)
		}
	}
	mustShipit(t, a.dir, nil, "pin", tags[0], "--env", "production")
	mustShipit(t, a.dir, nil, "pin", tags[31], "--env", "staging")
	if !strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), tags[0]) || !strings.Contains(showFile(t, bare, "overlays/staging/kustomization.yaml"), tags[31]) {
		t.Error("the pins back did not land")
	}
}

// pausingProxy sits in front of the test registry and runs a hook on the
// first DELETE before forwarding it.
type pausingProxy struct {
	host    string
	mu      sync.Mutex
	deletes []string // the digests DELETE requests named
	hook    func()
}

func newPausingProxy(t *testing.T) *pausingProxy {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &pausingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			p.mu.Lock()
			p.deletes = append(p.deletes, r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
			hook := p.hook
			if len(p.deletes) == 1 {
				p.hook = nil
			} else {
				hook = nil
			}
			p.mu.Unlock()
			if hook != nil {
				hook()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// TestPruneConcurrentPin: prune planned once and never looked again, so
// a `shipit pin` made while it ran pointed production at a digest prune
// then deleted (the registry answered 404 for what production pins). Now
// the GitOps head is read again before each batch of deletes.
func TestPruneConcurrentPin(t *testing.T) {
	t.Parallel()
	proxy := newPausingProxy(t)
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	var tags []string
	for i := 0; i < 4; i++ {
		writeFiles(t, a.dir, map[string]string{"web/app.sh": fmt.Sprintf("#!/bin/sh\necho %d\n", i), "worker/job.sh": fmt.Sprintf("#!/bin/sh\necho job %d\n", i)})
		git(t, a.dir, fmt.Sprintf("2026-05-06T09:%02d:00Z", i), "commit", "-qam", fmt.Sprint("commit ", i))
		tags = append(tags, a.tagNow(t))
		mustShipit(t, a.dir, a.env(), "build", "--push", "--progress", "quiet")
		mustShipit(t, a.dir, nil, "release")
	}
	// The plan deletes tags[0..2], newest first. While the first delete
	// is in flight, someone rolls production back to tags[0].
	var pin result
	proxy.hook = func() { pin = shipitRun(t, a.dir, nil, "pin", tags[0]) }
	r := mustShipit(t, a.dir, nil, "prune", "--keep", "0", "--min-age", "0s", "--keep-history", "1")
	if pin.code != 0 {
		t.Fatalf("the pin during prune: exit %d\n%s", pin.code, pin.stderr)
	}
	for _, img := range []string{"web", "worker"} {
		if got := headStatus(t, a.repo+"/"+img+":"+tags[0]); got != 200 {
			t.Errorf("%s:%s, pinned while prune ran, answers %d", img, tags[0], got)
		}
		if got := headStatus(t, a.repo+"/"+img+":"+tags[1]); got != 404 {
			t.Errorf("%s:%s answers %d: the rest of the plan should go", img, tags[1], got)
		}
	}
	if !strings.Contains(r.stderr, tags[0]+" is not deleted") {
		t.Errorf("no line says why %s stayed:\n%s", tags[0], r.stderr)
	}
	if !strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), tags[0]) {
		t.Error("production does not pin the rolled-back tag")
	}
}
