package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	blob := func(dgst string) ([]byte, error) {
		algo, hex, _ := strings.Cut(dgst, ":")
		return root.ReadFile(filepath.Join("blobs", algo, hex))
	}
	keep := desc.Digest.String()
	raw, err := blob(keep)
	if err != nil {
		return stats{}, fmt.Errorf("the image layout %s does not hold %s: %w", dir, keep, err)
	}
	st, err := sizeOf(raw, desc.Platform, blob)
	if err != nil {
		return stats{}, err
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
	data, err := root.ReadFile("index.json")
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
