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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	shipitreg "github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/registry/registrytest"
	"github.com/shipit-dev/shipit/release"
)

// pruneFixture is a registry with release tags of web, a GitOps remote whose
// staging overlay pins one tag, whose production overlay pinned another
// two commits ago and now a third (by digest only), and a hold.
type pruneFixture struct {
	host    string
	bare    string
	reg     *shipitreg.Client
	deletes *atomic.Int64
	refuse  *atomic.Bool
	mu      sync.Mutex
	deleted []string // the references DELETE requests named
	tags    []string // release tags, oldest first
	digests map[string]string
}

func newPruneFixture(t *testing.T, n int) *pruneFixture {
	t.Helper()
	f := &pruneFixture{deletes: &atomic.Int64{}, refuse: &atomic.Bool{}, digests: map[string]string{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			f.deletes.Add(1)
			f.mu.Lock()
			f.deleted = append(f.deleted, r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
			f.mu.Unlock()
			if f.refuse.Load() {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusMethodNotAllowed)
				fmt.Fprint(w, `{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`)
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.host = strings.TrimPrefix(srv.URL, "http://")
	f.reg = registrytest.Client()
	repo := f.host + "/team/web"
	put := func(tg string) string {
		img, _ := random.Image(64, 1)
		ref, _ := name.NewTag(repo + ":" + tg)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		tg := fmt.Sprintf("%s-%07x", base.Add(time.Duration(i)*time.Hour).Format("20060102-150405"), i)
		f.tags = append(f.tags, tg)
		f.digests[tg] = put(tg)
	}
	put("latest")
	put("buildcache")
	// A second tag on the digest production pins by digest.
	ref, _ := name.NewTag(repo + ":" + "20250101-000000-0000000")
	img, _ := remote.Image(mustTag(t, repo+":"+f.tags[2]))
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	f.bare = gitOpsRemote(t)
	work := filepath.Join(t.TempDir(), "w")
	gitT(t, filepath.Dir(work), "clone", "-q", f.bare, work)
	pin := func(ov, body string) {
		if err := os.WriteFile(filepath.Join(work, "k8s/overlays", ov, "kustomization.yaml"), []byte("resources: [../../base]\nimages:\n  - name: web\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
		gitT(t, work, "commit", "-qam", "pin "+ov)
	}
	pin("production", "    newName: "+repo+"\n    newTag: \""+f.tags[1]+"\"\n") // in history only
	pin("production", "    newName: "+repo+"\n    digest: "+f.digests[f.tags[2]]+"\n")
	pin("staging", "    newName: "+repo+"\n    newTag: \""+f.tags[3]+"\"\n")
	if err := os.WriteFile(filepath.Join(work, "k8s/overlays/staging", HoldFile), []byte("holds:\n  web: {pinned: \""+f.tags[3]+"\", until: \""+f.tags[4]+"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitT(t, work, "add", "-A")
	gitT(t, work, "commit", "-qm", "hold")
	gitT(t, work, "push", "-q", "origin", "HEAD:main")
	return f
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	ref, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (f *pruneFixture) options() Options {
	return Options{
		Images:   []release.PinImage{{Name: "web", Repository: f.host + "/team/web"}},
		Registry: f.reg, Deleter: f.reg,
		Deploy:      testDeploy(f.bare, "k8s/overlays/staging", "k8s/overlays/production"),
		KeepHistory: 20, Keep: 3,
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	f := newPruneFixture(t, 12)
	ctx := context.Background()

	// Dry run: the plan, no delete.
	o := f.options()
	o.DryRun = true
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if f.deletes.Load() != 0 {
		t.Fatal("a dry run deleted")
	}
	var deleted []string
	for _, d := range res.Images[0].Deleted {
		deleted = append(deleted, d.Tag)
	}
	sort.Strings(deleted)
	// Kept: tags[1] (history), tags[2] and the other tag on its digest
	// (pinned by digest), tags[3] (pinned, held), tags[9..11] (newest 3),
	// latest and buildcache (not release tags). tags[4], the tag the hold
	// rolled back from, is needed by nothing.
	want := []string{f.tags[0], f.tags[4], f.tags[5], f.tags[6], f.tags[7], f.tags[8]}
	if strings.Join(deleted, " ") != strings.Join(want, " ") {
		t.Fatalf("would delete %v\nwant %v", deleted, want)
	}

	// For real: one DELETE per manifest of those tags, by digest (the
	// registry API deletes a manifest with its tags; the e2e test checks
	// that they answer 404 in the distribution registry).
	o.DryRun = false
	res, err = Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var wantDigests []string
	for _, tg := range want {
		wantDigests = append(wantDigests, f.digests[tg])
	}
	sort.Strings(wantDigests)
	f.mu.Lock()
	got := append([]string(nil), f.deleted...)
	f.mu.Unlock()
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(wantDigests, " ") || res.Requests != len(want) {
		t.Errorf("DELETE requests for %v (%d counted)\nwant %v", got, res.Requests, wantDigests)
	}

	// Once the registry has dropped those tags, a second prune deletes
	// nothing.
	o.Registry = dropTags{f.reg, want}
	f.deletes.Store(0)
	res, err = Run(ctx, o)
	if err != nil || len(res.Images[0].Deleted) != 0 || f.deletes.Load() != 0 {
		t.Errorf("second prune: %v, %d deleted, %d DELETE requests", err, len(res.Images[0].Deleted), f.deletes.Load())
	}
}

// dropTags hides tags, as a registry that deleted their manifest does.
type dropTags struct {
	*shipitreg.Client
	gone []string
}

func (d dropTags) Tags(ctx context.Context, repo string) ([]string, error) {
	all, err := d.Client.Tags(ctx, repo)
	var out []string
	for _, t := range all {
		if !contains(d.gone, t) {
			out = append(out, t)
		}
	}
	return out, err
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestPruneNeverDecidesBlind: an unreachable GitOps remote, or a registry
// that refuses deletes, deletes nothing.
func TestPruneNeverDecidesBlind(t *testing.T) {
	t.Parallel()
	f := newPruneFixture(t, 8)
	ctx := context.Background()
	o := f.options()
	o.Deploy.Branch.URL = filepath.Join(t.TempDir(), "gone.git")
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("unreachable GitOps remote: %v", err)
	}
	if n := f.deletes.Load(); n != 0 {
		t.Errorf("%d DELETE requests without the pins", n)
	}

	f.refuse.Store(true)
	_, err := Run(ctx, f.options())
	if err == nil || !strings.Contains(err.Error(), "refuses deletes") || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("a registry refusing deletes: %v", err)
	}
	if n := f.deletes.Load(); n != 1 {
		t.Errorf("%d DELETE requests to a registry that refused the first", n)
	}
}

// TestPruneKeepsThePrevious: what a <entry>-previous entry pins runs (the
// assets of init's Deployment), so prune keeps it even with no history.
func TestPruneKeepsThePrevious(t *testing.T) {
	t.Parallel()
	f := newPruneFixture(t, 12)
	repo := f.host + "/team/web"
	f.pushFile(t, "k8s/overlays/staging/kustomization.yaml", "resources: [../../base]\nimages:\n  - name: web\n    newName: "+repo+"\n    newTag: \""+f.tags[7]+"\"\n"+
		"  - name: web-previous\n    newName: "+repo+"\n    newTag: \""+f.tags[6]+"\"\n")
	o := f.options()
	o.KeepHistory = 1
	deleted := wouldDelete(t, o)
	if contains(deleted, f.tags[6]) || contains(deleted, f.tags[7]) || !contains(deleted, f.tags[5]) {
		t.Errorf("would delete %v: want %s and %s kept, %s deleted", deleted, f.tags[6], f.tags[7], f.tags[5])
	}
}

// TestPruneKeepsPreviews: every tag a live preview pins is kept.
func TestPruneKeepsPreviews(t *testing.T) {
	t.Parallel()
	f := newPruneFixture(t, 12)
	repo := f.host + "/team/web"
	f.pushFile(t, "k8s/previews/pr-1/kustomization.yaml", "resources: [../../overlays/staging]\nnamespace: web-pr-1\nimages:\n  - name: "+repo+
		"\n    newName: "+repo+"\n    newTag: \""+f.tags[5]+"\"\n    digest: "+f.digests[f.tags[5]]+"\n")
	o := f.options()
	o.KeepHistory = 1
	for _, dir := range []string{"", "k8s/previews"} {
		o.PreviewDir = dir
		deleted := wouldDelete(t, o)
		if got := contains(deleted, f.tags[5]); got != (dir == "") {
			t.Errorf("previews in %q: deleting %s is %v (%v)", dir, f.tags[5], got, deleted)
		}
	}
}

// wouldDelete runs a dry prune and lists the tags it would delete.
func wouldDelete(t *testing.T, o Options) []string {
	t.Helper()
	o.DryRun = true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, d := range res.Images[0].Deleted {
		deleted = append(deleted, d.Tag)
	}
	return deleted
}

// pushFile commits one file to the fixture's GitOps remote.
func (f *pruneFixture) pushFile(t *testing.T, path, content string) {
	t.Helper()
	work := filepath.Join(t.TempDir(), "w")
	gitT(t, filepath.Dir(work), "clone", "-q", f.bare, work)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(work, path)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, path), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitT(t, work, "add", "-A")
	gitT(t, work, "commit", "-qm", "change "+path)
	gitT(t, work, "push", "-q", "origin", "HEAD:main")
}
