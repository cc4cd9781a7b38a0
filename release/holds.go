package release

import (
	"fmt"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/tag"
)

// HoldFile records rollbacks beside an overlay (gitops.HoldFile).
const HoldFile = gitops.HoldFile

// Holds are an overlay's holds by image name.
type Holds = gitops.Holds

// Hold is one image's rollback in one overlay.
type Hold = gitops.Hold

// releaseKeep is what a release leaves alone: newer pins (forward only)
// and pins held by a rollback.
func releaseKeep(h Holds) kustomize.Keep {
	return func(image string, cur kustomize.Entry, next kustomize.Pin) string {
		if why := Forward(cur, next); why != "" {
			return why
		}
		if hold, ok := h[image]; ok && next.NewTag != "" && !tag.Less(hold.Until, next.NewTag) {
			return fmt.Sprintf("held at %s by a rollback (shipit pin): releases up to %s leave it; a newer commit moves it forward", hold.Pinned, hold.Until)
		}
		return ""
	}
}

// releaseHolds lifts the holds a release moved past.
func releaseHolds(h Holds, c *kustomize.Change) {
	for _, ic := range c.Images {
		if hold, ok := h[ic.Image]; ok && ic.Kept == "" && ic.New.NewTag != "" && tag.Less(hold.Until, ic.New.NewTag) {
			delete(h, ic.Image)
		}
	}
}

// pinHolds records the rollbacks of an explicit pin: moving an image back
// holds every tag up to the one it was on; moving it forward past the
// hold lifts it.
func pinHolds(h Holds, c *kustomize.Change) {
	for _, ic := range c.Images {
		from, to := ic.Old.NewTag, ic.New.NewTag
		if to == "" || from == "" || from == to {
			continue
		}
		hold, held := h[ic.Image]
		switch {
		case tag.Less(to, from): // back
			if !held || tag.Less(hold.Until, from) {
				hold.Until = from
			}
			hold.Pinned = to
			h[ic.Image] = hold
		case held && !tag.Less(to, hold.Until): // forward past the hold
			delete(h, ic.Image)
		case held:
			hold.Pinned = to
			h[ic.Image] = hold
		}
	}
}
