package release

import (
	"strings"
	"testing"

	"github.com/shipit-dev/shipit/internal/kustomize"
)

const (
	tA = "20260101-000000-aaaaaaa"
	tB = "20260102-000000-bbbbbbb"
	tC = "20260103-000000-ccccccc"
)

func change(image, from, to string) *kustomize.Change {
	return &kustomize.Change{Images: []kustomize.ImageChange{{
		Image: image, Old: kustomize.Entry{Name: image, NewTag: from}, New: kustomize.Pin{Name: image, NewTag: to},
	}}}
}

func TestHolds(t *testing.T) {
	t.Parallel()
	h := Holds{}
	// Rolling back from C to A holds everything up to C.
	pinHolds(h, change("web", tC, tA))
	if h["web"] != (Hold{Pinned: tA, Until: tC}) {
		t.Fatalf("after rollback: %+v", h)
	}
	keep := releaseKeep(h)
	for _, tg := range []string{tB, tC} {
		if why := keep("web", kustomize.Entry{NewTag: tA}, kustomize.Pin{NewTag: tg}); !strings.Contains(why, "held at "+tA) {
			t.Errorf("a release of %s is not held: %q", tg, why)
		}
	}
	if why := keep("worker", kustomize.Entry{NewTag: tA}, kustomize.Pin{NewTag: tB}); why != "" {
		t.Errorf("another image is held: %q", why)
	}
	// Pinning forward to B (still at or before C) keeps the hold, at B.
	pinHolds(h, change("web", tA, tB))
	if h["web"] != (Hold{Pinned: tB, Until: tC}) {
		t.Errorf("after pin forward within the hold: %+v", h)
	}
	// A release newer than C moves forward and lifts it.
	const tD = "20260104-000000-ddddddd"
	if why := keep("web", kustomize.Entry{NewTag: tB}, kustomize.Pin{NewTag: tD}); why != "" {
		t.Errorf("a newer release is held: %q", why)
	}
	releaseHolds(h, change("web", tB, tD))
	if len(h) != 0 {
		t.Errorf("the hold survived a newer release: %+v", h)
	}

	// Forward only, without holds.
	if why := releaseKeep(Holds{})("web", kustomize.Entry{NewTag: tC}, kustomize.Pin{NewTag: tB}); !strings.Contains(why, "releases only move forward") {
		t.Errorf("an older release moved a newer pin: %q", why)
	}
	if why := Forward(kustomize.Entry{NewTag: "pr-1-" + tC}, kustomize.Pin{NewTag: tB}); why != "" {
		t.Errorf("tags of different prefixes were compared: %q", why)
	}
}
