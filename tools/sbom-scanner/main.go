// Command sbom-scanner is an SBOM generator for BuildKit, built on the syft
// library. BuildKit's default generator image (docker/buildkit-syft-scanner)
// cannot be pulled on machines without internet, and its module is not on
// the Go proxy; ci/testenv.sh builds this one and wraps it in an image.
//
// It follows BuildKit's SBOM scanner protocol (docs/attestations/
// sbom-protocol.md in github.com/moby/buildkit): it scans the root
// filesystem named by BUILDKIT_SCAN_SOURCE and every directory inside
// BUILDKIT_SCAN_SOURCE_EXTRAS (optional), and writes one in-toto statement
// per target, whose predicate is an SPDX 2.3 JSON document, to
// BUILDKIT_SCAN_DESTINATION/<target>.spdx.json.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/format"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/source/directorysource"

	// syft's RPM cataloger reads rpmdb files with SQLite; the pure-Go driver
	// keeps the binary static (CGO_ENABLED=0) so it runs on any base.
	_ "modernc.org/sqlite"
)

const (
	statementType = "https://in-toto.io/Statement/v0.1"
	predicateSPDX = "https://spdx.dev/Document"
	spdxVersion   = "2.3"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "sbom-scanner:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	dest := os.Getenv("BUILDKIT_SCAN_DESTINATION")
	src := os.Getenv("BUILDKIT_SCAN_SOURCE")
	if dest == "" || src == "" {
		return errors.New("BUILDKIT_SCAN_SOURCE and BUILDKIT_SCAN_DESTINATION must both be set (BuildKit's SBOM scanner protocol)")
	}
	targets, err := scanTargets(src, os.Getenv("BUILDKIT_SCAN_SOURCE_EXTRAS"))
	if err != nil {
		return err
	}
	for _, target := range targets {
		if err := scan(ctx, target, dest); err != nil {
			return fmt.Errorf("scanning %s: %w", filepath.Base(target), err)
		}
	}
	return nil
}

// scanTargets is the main target and, when the extras directory exists,
// each directory in it. A missing or empty extras variable means no extras.
func scanTargets(src, extras string) ([]string, error) {
	targets := []string{src}
	if extras == "" {
		return targets, nil
	}
	entries, err := os.ReadDir(extras)
	if errors.Is(err, os.ErrNotExist) {
		return targets, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		targets = append(targets, filepath.Join(extras, n))
	}
	return targets, nil
}

// scan catalogs one root filesystem and writes its statement. The root is
// also the base for path resolution, so a symlink in the scanned image
// cannot lead the scanner outside it.
func scan(ctx context.Context, root, dest string) error {
	src, err := directorysource.New(directorysource.Config{Path: root, Base: root})
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()

	// The target is an image's root filesystem: catalog it as syft catalogs
	// an image (installed packages, binaries), not as a source tree.
	cfg := syft.DefaultCreateSBOMConfig().
		WithTool("shipit-sbom-scanner", "syft-v1.57.1").
		WithCatalogerSelection(cataloging.NewSelectionRequest().WithDefaults("image"))
	s, err := syft.CreateSBOM(ctx, src, cfg)
	if err != nil {
		return err
	}
	enc, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.EncoderConfig{Version: spdxVersion, DefaultVersion: spdxVersion})
	if err != nil {
		return err
	}
	doc, err := format.Encode(*s, enc)
	if err != nil {
		return err
	}
	stmt := struct {
		Type          string            `json:"_type"`
		PredicateType string            `json:"predicateType"`
		Subject       []json.RawMessage `json:"subject"`
		Predicate     json.RawMessage   `json:"predicate"`
	}{statementType, predicateSPDX, []json.RawMessage{}, bytes.TrimSpace(doc)}
	out, err := json.Marshal(stmt)
	if err != nil {
		return err
	}
	name := filepath.Join(dest, filepath.Base(root)+".spdx.json")
	return os.WriteFile(name, out, 0o644)
}
