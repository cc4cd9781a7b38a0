package prune

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipit-dev/shipit/internal/sign"
)

// TestPruneTakesSignaturesWithTheirDigest: the .sig, .att and referrers
// fallback tags of a digest prune deletes go with it; those of a digest
// it keeps stay, and are never counted as tags of their own.
func TestPruneTakesSignaturesWithTheirDigest(t *testing.T) {
	t.Parallel()
	f := newPruneFixture(t, 8)
	ctx := context.Background()
	repo := f.host + "/team/web"
	companion := map[string][]string{} // release tag -> its companions
	manifest := map[string]string{}    // companion -> its manifest's digest
	for _, tg := range f.tags {
		d := f.digests[tg]
		for _, c := range []string{sign.SignatureTag(d), strings.Replace(d, ":", "-", 1) + sign.AttSuffix, strings.Replace(d, ":", "-", 1)} {
			img, _ := random.Image(32, 1)
			if err := remote.Write(mustTag(t, repo+":"+c), img); err != nil {
				t.Fatal(err)
			}
			md, _ := img.Digest()
			companion[tg], manifest[c] = append(companion[tg], c), md.String()
		}
	}
	// The digest production pins by digest alone has a signature too.
	o := f.options()
	o.DryRun = true
	plan, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	doomed := map[string]bool{}
	for _, d := range plan.Images[0].Deleted {
		doomed[d.Tag] = true
	}
	for _, tg := range f.tags {
		for _, c := range companion[tg] {
			if doomed[c] != doomed[tg] {
				t.Errorf("plan: %s deleted=%v, but its digest's tag %s deleted=%v", c, doomed[c], tg, doomed[tg])
			}
		}
	}
	for _, k := range plan.Images[0].Kept {
		if strings.HasPrefix(k.Tag, "sha256-") && (len(k.Keep) != 1 || k.Keep[0] != KeepCompanion) {
			t.Errorf("%s kept for %v, want %s alone (not a tag of its own)", k.Tag, k.Keep, KeepCompanion)
		}
	}

	o.DryRun = false
	if _, err := Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	// The in-memory registry keeps tags of a deleted manifest: the DELETE
	// requests say what went (the e2e test checks the tags in a real one).
	f.mu.Lock()
	deleted := map[string]bool{}
	for _, d := range f.deleted {
		deleted[d] = true
	}
	f.mu.Unlock()
	for _, tg := range f.tags {
		for _, c := range companion[tg] {
			if deleted[manifest[c]] != doomed[tg] || deleted[f.digests[tg]] != doomed[tg] {
				t.Errorf("after prune: %s deleted=%v, its digest %s deleted=%v; want both %v", c, deleted[manifest[c]], f.digests[tg], deleted[f.digests[tg]], doomed[tg])
			}
		}
	}
	var anyDoomed bool
	for _, tg := range f.tags {
		anyDoomed = anyDoomed || doomed[tg]
	}
	if !anyDoomed {
		t.Fatal("the fixture deleted nothing: the test checks nothing")
	}
}
