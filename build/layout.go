package build

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// pruneLayout keeps an image's OCI layout to the image just built: the
// index names only it, and blobs no longer reachable are removed. Blobs the
// new image shares with the old one stay, so the next build writes only
// what changed.
//
// It works through an os.Root of the layout, so nothing outside it is ever
// read or removed, whatever links a repository planted there.
func pruneLayout(dir, keep string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
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
	reachable := map[string]bool{}
	for _, d := range kept {
		if err := walk(root, d.Digest, reachable); err != nil {
			return err
		}
	}
	if len(kept) != len(manifests) {
		raw, err := json.Marshal(kept)
		if err != nil {
			return err
		}
		idx["manifests"] = raw
		out, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(dir, "index.json"), out); err != nil {
			return err
		}
	}
	blobs, err := root.Open(filepath.Join("blobs", "sha256"))
	if err != nil {
		return err
	}
	entries, err := blobs.ReadDir(-1)
	_ = blobs.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return &StateError{Path: filepath.Join(dir, "blobs", "sha256", e.Name()), Why: "is not a regular file"}
		}
		if !reachable["sha256:"+e.Name()] {
			if err := root.Remove(filepath.Join("blobs", "sha256", e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    json.RawMessage   `json:"platform,omitempty"`
}

// walk marks a blob and, for manifests and indexes, everything they name.
func walk(root *os.Root, dgst string, seen map[string]bool) error {
	if seen[dgst] {
		return nil
	}
	seen[dgst] = true
	algo, hex, ok := strings.Cut(dgst, ":")
	if !ok {
		return nil
	}
	data, err := root.ReadFile(filepath.Join("blobs", algo, hex))
	if err != nil {
		return err
	}
	var m struct {
		MediaType string          `json:"mediaType"`
		Config    *ociDescriptor  `json:"config"`
		Layers    []ociDescriptor `json:"layers"`
		Manifests []ociDescriptor `json:"manifests"`
	}
	if json.Unmarshal(data, &m) != nil || (m.Config == nil && m.Manifests == nil) {
		return nil // a layer or config blob
	}
	if m.Config != nil {
		seen[m.Config.Digest] = true
	}
	for _, l := range m.Layers {
		seen[l.Digest] = true
	}
	for _, c := range m.Manifests {
		if err := walk(root, c.Digest, seen); err != nil {
			return err
		}
	}
	return nil
}
