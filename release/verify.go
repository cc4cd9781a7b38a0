package release

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipit-dev/shipit/build"
)

// TamperedError is an image layout whose bytes are not what its digests
// say: something changed it after the build.
type TamperedError struct {
	What string // which blob
	Want string // the digest that names it
	Got  string // the digest of its bytes
}

func (e *TamperedError) Error() string {
	return fmt.Sprintf("%s is named %s, but its bytes hash to %s: the image layout was changed after the build. Delete .shipit/images and run `shipit build` again", e.What, e.Want, e.Got)
}

// VerifyLayout checks that the image or index with digest dgst in an OCI
// layout is what its digests say, blob by blob.
func VerifyLayout(dir, dgst string) error {
	img, idx, err := build.FromLayout(dir, dgst)
	if err != nil {
		return err
	}
	if idx != nil {
		return verifyIndex(idx, dgst)
	}
	return verifyImage(img, dgst)
}

// verifyImage checks that an image's manifest hashes to want, and its
// config and every layer to the digests the manifest gives them, before
// anything of it is pushed and pinned.
func verifyImage(img v1.Image, want string) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	if got := sum(raw); got != want {
		return &TamperedError{What: "the manifest", Want: want, Got: got}
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if got := sum(cfg); got != m.Config.Digest.String() {
		return &TamperedError{What: "the config", Want: m.Config.Digest.String(), Got: got}
	}
	for _, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		_ = rc.Close()
		if err != nil {
			return err
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest.String() {
			return &TamperedError{What: "a layer", Want: d.Digest.String(), Got: got}
		}
	}
	return nil
}

// verifyIndex checks an index and every image it holds.
func verifyIndex(idx v1.ImageIndex, want string) error {
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	if got := sum(raw); got != want {
		return &TamperedError{What: "the index", Want: want, Got: got}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return err
			}
			if err := verifyIndex(child, d.Digest.String()); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			if err := verifyImage(img, d.Digest.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}
