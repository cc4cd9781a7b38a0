package build

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/shipit-dev/shipit/internal/confine"
)

// RecordVersion is the version of the build record's format.
const RecordVersion = 1

// RecordFile is the build record's name in the state directory.
const RecordFile = "build.json"

// Record is .shipit/build.json: what a build produced, for release and for
// any other tool to read.
type Record struct {
	Version    int       `json:"version"`
	Commit     string    `json:"commit"`
	CommitTime time.Time `json:"commitTime"`
	Tag        string    `json:"tag"`
	Images     []Image   `json:"images"`
}

// Image is one built image.
type Image struct {
	Name       string    `json:"name"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Digest     string    `json:"digest"`
	Platforms  []string  `json:"platforms"`
	Size       int64     `json:"size"`
	Commit     string    `json:"commit"`
	CommitTime time.Time `json:"commitTime"`
	Pushed     bool      `json:"pushed"`
	// Nodes names the builder node that built each platform, when the
	// builder has several.
	Nodes map[string]string `json:"nodes,omitempty"`
	// Layout is the OCI image layout that holds the image, relative to the
	// record's directory; empty when the image was pushed and not kept.
	Layout string `json:"layout,omitempty"`
	// Attestations are the attestation manifests of the image's index,
	// one per platform manifest they describe.
	Attestations []Attestation `json:"attestations,omitempty"`
	// Inputs is the key of what the solve read (build/inputs.go): a
	// build whose inputs have the same key keeps this image. Empty when
	// there is none (a file had just changed, a base image could not be
	// looked up, --no-cache).
	Inputs string `json:"inputs,omitempty"`
}

// Attestation is one attestation manifest of an image index: in-toto
// statements (provenance, SBOM) about one of its platform manifests.
type Attestation struct {
	// Digest is the attestation manifest's.
	Digest string `json:"digest"`
	// Subject is the platform manifest it describes (its
	// vnd.docker.reference.digest annotation), and Platform that
	// manifest's platform.
	Subject  string `json:"subject"`
	Platform string `json:"platform"`
	// PredicateTypes are its statements' predicate types, for example
	// https://slsa.dev/provenance/v1 and https://spdx.dev/Document.
	PredicateTypes []string `json:"predicateTypes"`
}

// Ref is repository:tag@digest.
func (i Image) Ref() string { return i.Repository + ":" + i.Tag + "@" + i.Digest }

// Repositories lists the record's repositories.
func (r *Record) Repositories() []string {
	var out []string
	for _, im := range r.Images {
		out = append(out, im.Repository)
	}
	return out
}

// ErrNoRecord is returned by ReadRecord when there is no record.
var ErrNoRecord = errors.New("no build record")

// ReadRecord reads a build record: a regular file of bounded size (it may
// have travelled between CI jobs as an artifact, and is input like any
// other).
func ReadRecord(path string) (*Record, error) {
	data, err := confine.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (run `shipit build` first)", path, ErrNoRecord)
	}
	if err != nil {
		return nil, err
	}
	r, err := ParseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ParseRecord decodes a build record and checks its version.
func ParseRecord(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("not a build record: %w", err)
	}
	if r.Version != RecordVersion {
		return nil, fmt.Errorf("build record version %d is not supported (this shipit reads version %d): run `shipit build` again", r.Version, RecordVersion)
	}
	return &r, nil
}

// Merge adds images to the record that a build of the same tag made, so
// that building one image after another leaves a record of both. A record
// of another tag is replaced. Only a partial build merges.
func (r *Record) Merge(prev *Record) {
	if prev == nil || prev.Tag != r.Tag || prev.Commit != r.Commit {
		return
	}
	have := map[string]bool{}
	for _, im := range r.Images {
		have[im.Name] = true
	}
	for _, im := range prev.Images {
		if !have[im.Name] {
			r.Images = append(r.Images, im)
		}
	}
	sort.Slice(r.Images, func(i, j int) bool { return r.Images[i].Name < r.Images[j].Name })
}

// WriteRecord writes the record atomically: a reader (or an interrupted
// build) sees the old record or the new one, never half of one.
func WriteRecord(path string, r *Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	return writeAtomic(path, data)
}

// writeAtomic writes path through an os.Root of its directory, so that a
// symbolic link planted there is never followed out of it, synced to disk
// before it replaces the old file.
func writeAtomic(path string, data []byte) error { return replaceFile(path, data, true) }

// replaceFile writes data to a temporary file beside path and renames it
// over path, inside an os.Root of its directory; durable syncs it to disk
// first. The temporary name is random: a run killed after making it
// leaves no name the next one must have (a pid is the same from run to
// run in a container).
func replaceFile(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tmp := "." + filepath.Base(path) + "." + randomHex() + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer root.Remove(tmp) //nolint:errcheck // gone after the rename
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Rename(tmp, filepath.Base(path))
}

// randomHex is 8 random bytes in hex.
func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
