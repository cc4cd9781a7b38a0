// Package testenv makes what shipit's tests and demo need and cannot pull
// here: a base image with a shell, built from Debian's static busybox.
package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipit-dev/shipit/internal/registry"
)

// BusyboxImage is a linux/amd64 image whose one layer holds a static
// busybox with a link for each applet, /tmp, and /etc/passwd with root and
// nobody.
func BusyboxImage(busybox string) (v1.Image, error) {
	out, err := exec.CommandContext(context.Background(), busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	return busyboxImage(busybox, string(out), "amd64")
}

// BusyboxIndex is an index of BusyboxImage for linux/amd64 and the same
// from an arm64 static busybox (Debian's busybox-static:arm64), with the
// amd64 binary's applets: made without running the arm64 one.
func BusyboxIndex(amd64, arm64 string) (v1.ImageIndex, error) {
	out, err := exec.CommandContext(context.Background(), amd64, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", amd64, err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []struct{ bin, arch string }{{amd64, "amd64"}, {arm64, "arm64"}} {
		img, err := busyboxImage(p.bin, string(out), p.arch)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: "linux", Architecture: p.arch},
		}})
	}
	return idx, nil
}

func busyboxImage(busybox, applets, arch string) (v1.Image, error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	out := []byte(applets)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dir := func(p string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p, Mode: mode, ModTime: epoch})
	}
	file := func(p string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin/", "etc/", "root/", "home/"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp/", 0o1777); err != nil {
		return nil, err
	}
	if err := file("bin/busybox", 0o755, bb); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/sh\n")); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return nil, err
	}
	layer, err := closeLayer(tw, &buf)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Env = []string{"PATH=/bin"}
	cf.Config.Cmd = []string{"sh"}
	return mutate.ConfigFile(img, cf)
}

// Push pushes an image with shipit's registry client (credentials from
// the Docker config).
func Push(ref string, img v1.Image) error {
	repo, tag, err := split(ref)
	if err != nil {
		return err
	}
	return (&registry.Client{}).Push(context.Background(), repo, tag, img, nil, "")
}

// PushIndex pushes an index with shipit's registry client.
func PushIndex(ref string, idx v1.ImageIndex) error {
	repo, tag, err := split(ref)
	if err != nil {
		return err
	}
	return (&registry.Client{}).Push(context.Background(), repo, tag, nil, idx, "")
}

// split parses repo:tag.
func split(ref string) (repo, tag string, err error) {
	t, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return "", "", err
	}
	return t.Context().Name(), t.TagStr(), nil
}

// ScannerImage is BusyboxImage with an SBOM scanner (a static binary
// following BuildKit's scanner protocol, tools/sbom-scanner) added as
// /bin/sbom-scanner and made the entrypoint: BuildKit runs an SBOM
// generator image's entrypoint and cmd.
func ScannerImage(busybox, scanner string) (v1.Image, error) {
	base, err := BusyboxImage(busybox)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(scanner)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/sbom-scanner", Mode: 0o755, Size: int64(len(bin)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	layer, err := closeLayer(tw, &buf)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.Entrypoint = []string{"/bin/sbom-scanner"}
	cf.Config.Cmd = nil
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "shipit test SBOM scanner (syft)"}
	return mutate.ConfigFile(img, cf)
}

// closeLayer finishes the tar archive tw writes into buf and makes it an
// uncompressed OCI layer.
func closeLayer(tw *tar.Writer, buf *bytes.Buffer) (v1.Layer, error) {
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
