package kustomize

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Mode says what a pin holds.
type Mode string

// Pin modes: deploy.pin in shipit.yaml.
const (
	ModeTag          Mode = "tag"
	ModeDigest       Mode = "digest"
	ModeTagAndDigest Mode = "tag+digest"
)

// Image is an image to pin.
type Image struct {
	Name       string // shipit's name for it; the images entry name unless the overlay names it otherwise
	Entry      string // the images entry name to use, when configured (kustomize_name)
	Repository string
	Tag        string
	Digest     string
}

// Keep decides whether an overlay keeps its current pin of an image; it
// returns why, or "" to let the pin change.
type Keep func(image string, current Entry, next Pin) string

// ImageChange is what happens to one image in one overlay.
type ImageChange struct {
	Image   string   // shipit's image name
	Entry   string   // the images entry's name
	Old     Entry    // as it was; not Found() when the entry is added
	New     Pin      // the pin wanted
	Changed bool     // the entry changes
	Kept    string   // why the current pin stays (forward-only, a hold)
	Uses    []string // Kind/name/container of what runs the image after the edit
}

// Change is the edit of one overlay.
type Change struct {
	Dir    string
	File   string
	Before []byte
	After  []byte
	Images []ImageChange
}

// Changed reports whether the file changes.
func (c *Change) Changed() bool { return !bytes.Equal(c.Before, c.After) }

// Plan computes the edit of one overlay without writing anything, and
// checks it: the overlay must render with the kustomize library, and every
// container that runs a pinned image must run the new reference.
func Plan(fs filesys.FileSystem, dir string, imgs []Image, mode Mode, keep Keep) (*Change, error) {
	file, err := FindFile(fs, dir)
	if err != nil {
		return nil, err
	}
	before, err := fs.ReadFile(file)
	if err != nil {
		return nil, err
	}
	entries, err := Images(before)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	c := &Change{Dir: dir, File: file, Before: before, After: before}
	pins, aliases, err := c.pinImages(fs, entries, imgs, mode, keep)
	if err != nil {
		return nil, err
	}
	followers, err := c.pinFollowers(entries)
	if err != nil {
		return nil, err
	}
	pins = append(pins, followers...)
	if !c.Changed() {
		return c, nil
	}
	if err := c.verify(fs, pins, aliases); err != nil {
		return nil, err
	}
	return c, nil
}

// pinImages sets each image's entry in c.After, unless keep keeps the
// current pin, and records what happens in c.Images. It returns the pins
// set and, by entry, the repositories the entries pointed at before (the
// workloads may still name them).
func (c *Change) pinImages(fs filesys.FileSystem, entries map[string]Entry, imgs []Image, mode Mode, keep Keep) ([]Pin, map[string][]string, error) {
	var current []Container // the overlay as it renders now, when needed
	var pins []Pin
	aliases := map[string][]string{}
	for _, im := range imgs {
		name, ok := im.Entry, im.Entry != ""
		if !ok {
			name, ok = entryName(entries, im)
		}
		if !ok {
			if current == nil {
				var err error
				if current, err = Render(fs, c.Dir, nil); err != nil {
					return nil, nil, fmt.Errorf("overlay %s does not render: %w", c.Dir, err)
				}
			}
			name = discoverName(current, im)
		}
		pin := pinOf(name, im, mode)
		ic := ImageChange{Image: im.Name, Entry: name, Old: entries[name], New: pin}
		if ic.Old.Found() && keep != nil {
			if why := keep(im.Name, ic.Old, pin); why != "" {
				ic.Kept = why
				c.Images = append(c.Images, ic)
				continue
			}
		}
		after, err := SetImage(c.After, pin)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: setting image %s: %w", c.File, name, err)
		}
		ic.Changed = !bytes.Equal(after, c.After)
		c.After = after
		if ic.Old.NewName != "" {
			aliases[name] = append(aliases[name], ic.Old.NewName)
		}
		pins = append(pins, pin)
		c.Images = append(c.Images, ic)
	}
	return pins, aliases, nil
}

// pinOf is the pin of entry name for im: the tag, the digest or both, as
// mode says.
func pinOf(name string, im Image, mode Mode) Pin {
	pin := Pin{Name: name, NewName: im.Repository}
	if mode != ModeDigest {
		pin.NewTag = im.Tag
	}
	if mode != ModeTag {
		pin.Digest = im.Digest
	}
	return pin
}

// pinFollowers moves the followers of the entries that changed, in
// c.After, and returns the pins set.
//
// An entry named <entry>-previous follows its entry one release
// behind: when the entry's pin moves, it takes the pin the entry had
// (or the new one, the first time). A Deployment uses it to keep the
// previous release's files at hand (shipit init's assets).
func (c *Change) pinFollowers(entries map[string]Entry) ([]Pin, error) {
	var pins []Pin
	for _, ic := range c.Images {
		follower, ok := entries[ic.Entry+PreviousSuffix]
		if !ok || !ic.Changed || planned(c.Images, follower.Name) {
			continue
		}
		prev := ic.Old
		if ic.Old.NewTag == "" && ic.Old.Digest == "" {
			prev = ic.New
		}
		prev.Name = follower.Name
		if prev.NewName == "" {
			prev.NewName = ic.New.NewName
		}
		after, err := SetImage(c.After, prev)
		if err != nil {
			return nil, fmt.Errorf("%s: setting image %s: %w", c.File, prev.Name, err)
		}
		c.After = after
		pins = append(pins, prev)
	}
	return pins, nil
}

// verify renders the overlay with c.After and checks that every container
// that runs a pinned image runs its new reference; it records in c.Images
// what runs each image.
func (c *Change) verify(fs filesys.FileSystem, pins []Pin, aliases map[string][]string) error {
	rendered, err := Render(fs, c.Dir, map[string][]byte{c.File: c.After})
	if err != nil {
		return fmt.Errorf("overlay %s does not render with the new pins: %w", c.Dir, err)
	}
	uses, err := CheckPins(c.Dir, rendered, pins, aliases)
	if err != nil {
		return err
	}
	for i := range c.Images {
		c.Images[i].Uses = uses[c.Images[i].Entry]
	}
	return nil
}

// PreviousSuffix names the images entry that follows another one release
// behind: app-previous follows app.
const PreviousSuffix = "-previous"

func planned(ics []ImageChange, entry string) bool {
	for _, ic := range ics {
		if ic.Entry == entry {
			return true
		}
	}
	return false
}

// EntryFor finds the images entry that means an image: by its name or by
// its repository.
func EntryFor(entries map[string]Entry, name, repository string) (Entry, bool) {
	n, ok := entryName(entries, Image{Name: name, Repository: repository})
	return entries[n], ok
}

// entryName finds the images entry that means im: by shipit's name or by
// the repository.
func entryName(entries map[string]Entry, im Image) (string, bool) {
	for _, n := range []string{im.Name, im.Repository} {
		if _, ok := entries[n]; ok {
			return n, true
		}
	}
	// An entry named otherwise that already points at the repository.
	var names []string
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if base, ok := strings.CutSuffix(n, PreviousSuffix); ok && entries[base].Found() {
			continue // a follower is never the image's own entry
		}
		if Repository(n) == im.Repository || (entries[n].NewName != "" && Repository(entries[n].NewName) == im.Repository) {
			return n, true
		}
	}
	return "", false
}

// discoverName picks the name an added entry needs to reach the workloads:
// the repository the manifests use for the image (its full repository, or
// one whose last part is the image's name), else the image's name.
func discoverName(cs []Container, im Image) string {
	for _, want := range []func(string) bool{
		func(r string) bool { return r == im.Name },
		func(r string) bool { return r == im.Repository },
		func(r string) bool { return path.Base(r) == im.Name },
	} {
		for _, c := range cs {
			if r := Repository(c.Image); want(r) {
				return r
			}
		}
	}
	return im.Name
}
