// Command shipit-testenv makes the test environment's images:
//
//	shipit-testenv base --busybox /bin/busybox --ref 127.0.0.1:5055/base/busybox:1
//	shipit-testenv base --busybox /bin/busybox --arm64 PATH --ref 127.0.0.1:5055/base/busybox-multi:1
//	shipit-testenv scanner --busybox /bin/busybox --scanner PATH --ref 127.0.0.1:5055/base/sbom-scanner:1
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shipit-dev/shipit/internal/testenv"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "base" && os.Args[1] != "scanner") {
		fmt.Fprintln(os.Stderr, "usage: shipit-testenv base --busybox PATH --ref REF | scanner --busybox PATH --scanner PATH --ref REF")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	busybox := fs.String("busybox", "/bin/busybox", "a static busybox binary")
	ref := fs.String("ref", "", "where to push the image")
	arm64 := fs.String("arm64", "", "an arm64 static busybox: push an index of linux/amd64 and linux/arm64")
	scanner := fs.String("scanner", "", "the SBOM scanner binary (tools/sbom-scanner) to add as the entrypoint")
	_ = fs.Parse(os.Args[2:])
	if *ref == "" || (os.Args[1] == "scanner" && *scanner == "") {
		fmt.Fprintln(os.Stderr, "--ref is required, and --scanner for scanner")
		os.Exit(2)
	}
	var d fmt.Stringer
	var err error
	switch {
	case os.Args[1] == "scanner":
		img, ierr := testenv.ScannerImage(*busybox, *scanner)
		if err = ierr; err == nil {
			err = testenv.Push(*ref, img)
			d, _ = img.Digest()
		}
	case *arm64 != "":
		idx, ierr := testenv.BusyboxIndex(*busybox, *arm64)
		if err = ierr; err == nil {
			err = testenv.PushIndex(*ref, idx)
			d, _ = idx.Digest()
		}
	default:
		img, ierr := testenv.BusyboxImage(*busybox)
		if err = ierr; err == nil {
			err = testenv.Push(*ref, img)
			d, _ = img.Digest()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "shipit-testenv: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s@%s\n", *ref, d)
}
