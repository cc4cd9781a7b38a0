package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/platforms"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// keepLayout reads what an image just built into an OCI layout takes (its
// size and platforms), and keeps the layout to that image: the index names
// only it, and blobs it does not use are removed. Blobs the new image
// shares with the old one stay, so the next build writes only what
// changed. Each manifest is read once.
//
// It works through an os.Root of the layout, so nothing outside it is ever
// read or removed, whatever links a repository planted there.
func keepLayout(dir string, desc ocispecs.Descriptor) (stats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return stats{}, err
	}
	defer root.Close()
	blob := func(d string) ([]byte, error) { return layoutDocument(root, dir, d) }
	keep := desc.Digest.String()
	raw, err := blob(keep)
	var st stats
	if err == nil {
		st, err = sizeOf(raw, desc.Platform, blob)
	}
	if err != nil {
		// BuildKit's export leaves a blob the layout already had, whatever
		// its content: nothing of such a layout can be trusted.
		return stats{}, fmt.Errorf("%w: remove %s and build again", err, dir)
	}
	reachable := map[string]bool{keep: true}
	for _, b := range st.blobs {
		reachable[b] = true
	}
	if err := keepIndex(root, dir, keep); err != nil {
		return stats{}, err
	}
	blobs, err := root.Open(filepath.Join("blobs", "sha256"))
	if err != nil {
		return stats{}, err
	}
	entries, err := blobs.ReadDir(-1)
	_ = blobs.Close()
	if err != nil {
		return stats{}, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return stats{}, &StateError{Path: filepath.Join(dir, "blobs", "sha256", e.Name()), Why: "is not a regular file"}
		}
		if !reachable["sha256:"+e.Name()] {
			if err := root.Remove(filepath.Join("blobs", "sha256", e.Name())); err != nil {
				return stats{}, err
			}
		}
	}
	return st, nil
}

// keepIndex rewrites the layout's index.json to name only the manifest
// keep, when it names others too.
func keepIndex(root *os.Root, dir, keep string) error {
	data, err := readIndex(root, dir)
	if err != nil {
		return err
	}
	var idx map[string]json.RawMessage
	if err := json.Unmarshal(data, &idx); err != nil {
		return err
	}
	var manifests []ociDescriptor
	if err := json.Unmarshal(idx["manifests"], &manifests); err != nil {
		return err
	}
	var kept []ociDescriptor
	for _, d := range manifests {
		if d.Digest == keep {
			kept = append(kept, d)
			break
		}
	}
	if len(kept) == len(manifests) {
		return nil
	}
	raw, err := json.Marshal(kept)
	if err != nil {
		return err
	}
	idx["manifests"] = raw
	out, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "index.json"), out)
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    json.RawMessage   `json:"platform,omitempty"`
}

// AttestationError is a build record naming attestations its image's
// layout does not hold as it says.
type AttestationError struct {
	Image, Msg string
}

func (e *AttestationError) Error() string {
	return fmt.Sprintf("image %s: %s: refusing a record whose attestations are not its image's (run `shipit build` again)", e.Image, e.Msg)
}

// BadInput marks the error as the user's to fix (exit code 2).
func (e *AttestationError) BadInput() bool { return true }

// CheckAttestations checks that every attestation the record names for
// an image is an attestation manifest of its index in the layout dir,
// referring to the platform manifest the record says.
func CheckAttestations(dir string, im Image) error {
	if len(im.Attestations) == 0 {
		return nil
	}
	_, idx, err := FromLayout(dir, im.Digest)
	if err != nil {
		return err
	}
	if idx == nil {
		return &AttestationError{Image: im.Name, Msg: fmt.Sprintf("the record names attestations, but %s in the layout %s is a single manifest, not an index", im.Digest, dir)}
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	return CheckAttestationsIn(raw, im, "the layout "+dir)
}

// SameImages reports whether two indexes (raw) hold the same platform
// manifests, in the same order, their attestation manifests aside: two
// builds of one commit whose provenance differs only in when they ran.
// Not an index, or one with no platform manifest: false.
func SameImages(a, b []byte) bool {
	x, y := imageManifests(a), imageManifests(b)
	return len(x) > 0 && slices.Equal(x, y)
}

// imageManifests lists an index's platform manifests (its attestation
// manifests left out) as "platform digest", in the index's order; none
// when raw is not an index.
func imageManifests(raw []byte) []string {
	var idx ocispecs.Index
	if json.Unmarshal(raw, &idx) != nil {
		return nil
	}
	var out []string
	for _, d := range idx.Manifests {
		if d.Annotations[AnnotationReferenceType] == ReferenceTypeAttestation {
			continue
		}
		p := ""
		if d.Platform != nil {
			p = platforms.Format(*d.Platform)
		}
		out = append(out, p+" "+d.Digest.String())
	}
	return out
}

// CheckAttestationsIn checks the record's attestations of an image
// against its index (raw, read from where), as CheckAttestations does.
func CheckAttestationsIn(raw []byte, im Image, where string) error {
	var m ocispecs.Index
	if err := json.Unmarshal(raw, &m); err != nil {
		return &AttestationError{Image: im.Name, Msg: fmt.Sprintf("%s in %s is not an index: %v", im.Digest, where, err)}
	}
	for _, a := range im.Attestations {
		found := false
		for _, d := range m.Manifests {
			if d.Digest.String() == a.Digest {
				found = d.Annotations[AnnotationReferenceType] == ReferenceTypeAttestation && d.Annotations[AnnotationReferenceDigest] == a.Subject
				break
			}
		}
		if !found {
			return &AttestationError{Image: im.Name, Msg: fmt.Sprintf("the record names attestation manifest %q for %q, which the index %s in %s does not hold as an attestation of that manifest", a.Digest, a.Subject, im.Digest, where)}
		}
	}
	return nil
}
