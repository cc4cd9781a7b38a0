// Command pause writes the test node's sandbox ("pause") image as a
// tarball for `ctr images import`: the test base image (Debian's static
// busybox, as ci/testenv.sh makes it), sleeping forever. No image can be
// pulled here, and containerd stops sandboxes with SIGKILL, so a PID 1
// that ignores SIGTERM does no harm.
//
//	pause --busybox /bin/busybox --ref shipit.test/pause:1 --out pause.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shipit-dev/shipit/internal/testenv"
)

func main() {
	busybox := flag.String("busybox", "/bin/busybox", "a static busybox binary")
	ref := flag.String("ref", "", "the image's name in containerd (the node's sandbox_image)")
	out := flag.String("out", "", "the tarball to write")
	flag.Parse()
	if *ref == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: pause --busybox PATH --ref NAME --out FILE")
		os.Exit(2)
	}
	if err := write(*busybox, *ref, *out); err != nil {
		fmt.Fprintf(os.Stderr, "pause: %v\n", err)
		os.Exit(1)
	}
}

func write(busybox, ref, out string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("--ref %s: %w", ref, err)
	}
	img, err := testenv.BusyboxImage(busybox)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Config.Entrypoint, cf.Config.Cmd = []string{"/bin/sleep", "inf"}, nil
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return tarball.WriteToFile(out, tag, img)
}
