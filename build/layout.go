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
func pruneLayout(dir, keep string) error {
	indexPath := filepath.Join(dir, "index.json")
	data, err := os.ReadFile(indexPath)
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
		if err := walk(dir, d.Digest, reachable); err != nil {
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
		if err := writeAtomic(indexPath, out); err != nil {
			return err
		}
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !reachable["sha256:"+e.Name()] {
			if err := os.Remove(filepath.Join(blobs, e.Name())); err != nil {
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
func walk(dir, dgst string, seen map[string]bool) error {
	if seen[dgst] {
		return nil
	}
	seen[dgst] = true
	algo, hex, ok := strings.Cut(dgst, ":")
	if !ok {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, "blobs", algo, hex))
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
		if err := walk(dir, c.Digest, seen); err != nil {
			return err
		}
	}
	return nil
}
