package release

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shipit-dev/shipit/internal/confine"
	"github.com/shipit-dev/shipit/internal/safeyaml"
	"github.com/shipit-dev/shipit/internal/tag"
	"github.com/shipit-dev/shipit/release/kustomize"
)

// HoldFile records rollbacks beside an overlay's kustomization.yaml, in
// the GitOps repository, so that they survive fresh clones: a release
// whose tag sorts at or before an image's Until leaves that image's pin
// alone. A release of a newer commit moves forward and lifts the hold.
const HoldFile = ".shipit-hold.yaml"

// Hold is one image's rollback in one overlay.
type Hold struct {
	Pinned string `yaml:"pinned" json:"pinned"` // the tag rolled back to
	Until  string `yaml:"until" json:"until"`   // releases up to this tag are held back
}

// Holds are an overlay's holds by image name.
type Holds map[string]Hold

const holdHeader = `# Written by shipit pin: a rollback that releases must not undo.
# A release whose tag sorts at or before an image's "until" leaves that
# image's pin alone; a release of a newer commit moves it forward and lifts
# the hold. Delete an entry (or the file) to lift a hold by hand.
`

func readHolds(dir string) (Holds, error) {
	data, err := confine.ReadFile(filepath.Join(dir, HoldFile))
	if errors.Is(err, os.ErrNotExist) {
		return Holds{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Holds Holds `yaml:"holds"`
	}
	doc, err := safeyaml.Parse(data)
	if err == nil {
		err = doc.Decode(&f)
	}
	if err != nil {
		// yaml's messages quote no more than a line and column: the file's
		// content (which may be anything) stays out of the error.
		return nil, fmt.Errorf("%s: not a hold file (%s): fix or delete it", HoldFile, firstLine(err.Error()))
	}
	for img, h := range f.Holds {
		if !validTag(h.Pinned) || !validTag(h.Until) || !imageNameRE.MatchString(img) {
			return nil, fmt.Errorf("%s: the hold of %q is not a pair of release tags: fix or delete it", HoldFile, firstLine(img))
		}
	}
	if f.Holds == nil {
		f.Holds = Holds{}
	}
	return f.Holds, nil
}

// writeHolds writes the holds, or removes the file when there are none.
// It reports whether the file changed.
func writeHolds(repoDir, dir string, h Holds) (bool, error) {
	p := filepath.Join(dir, HoldFile)
	old, err := confine.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if len(h) == 0 {
		if old == nil {
			return false, nil
		}
		return true, removeInRepo(repoDir, p)
	}
	var b bytes.Buffer
	b.WriteString(holdHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]Holds{"holds": h}); err != nil {
		return false, err
	}
	data := b.Bytes()
	if string(data) == string(old) {
		return false, nil
	}
	return true, writeInRepo(repoDir, p, data)
}

var imageNameRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)

func validTag(t string) bool {
	_, err := tag.Parse(t)
	return err == nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

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
