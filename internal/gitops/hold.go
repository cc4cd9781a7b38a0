package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/safeyaml"
	"github.com/shipit-dev/shipit/internal/tag"
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

// Holds reads the hold file of an overlay (relative to the root); none
// is no holds.
func (w *Workspace) Holds(overlay string) (Holds, error) {
	data, err := w.ReadFile(filepath.Join(overlay, HoldFile))
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
		if !validTag(h.Pinned) || !validTag(h.Until) || !registry.ValidImageName(img) {
			return nil, fmt.Errorf("%s: the hold of %q is not a pair of release tags: fix or delete it", HoldFile, firstLine(img))
		}
	}
	if f.Holds == nil {
		f.Holds = Holds{}
	}
	return f.Holds, nil
}

// WriteHolds writes an overlay's holds, or removes the file when there are none.
// It reports whether the file changed.
func (w *Workspace) WriteHolds(overlay string, h Holds) (bool, error) {
	p := filepath.Join(overlay, HoldFile)
	old, err := w.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if len(h) == 0 {
		if old == nil {
			return false, nil
		}
		return true, w.Remove(p)
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
	return true, w.WriteFile(p, data)
}

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
