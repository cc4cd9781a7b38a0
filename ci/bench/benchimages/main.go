// Command benchimages prints what ci/bench.sh build needs to ask buildctl
// and buildx bake for the images shipit builds from an app's shipit.yaml,
// so that the bench runs on any app without a list written by hand.
//
// The first line is the commit's stamp, tab-separated: "stamp", the
// SOURCE_DATE_EPOCH shipit passes, HEAD's SHA, the created time, and the
// source URL ("-" for none). Then one line an image: name, repository,
// context and Dockerfile (absolute), target, secrets (id=env=VAR or
// id=src=FILE, joined by |), build args (K=V joined by |) and platforms
// (joined by ,); "-" for none.
//
// An app whose images need what the bench does not give the other two
// clients (SSH forwarding, attestations, a cache export, several builder
// nodes) is refused by name, as are values the format cannot carry.
//
//	go run ./ci/bench/benchimages DIR
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/tag"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchimages APP-DIR")
		os.Exit(2)
	}
	out, err := describe(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchimages: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(out)
}

func describe(dir string) (string, error) {
	cfg, err := config.Load(config.Options{Dir: dir})
	if err != nil {
		return "", err
	}
	if err := mirrored(cfg); err != nil {
		return "", err
	}
	h, err := gitinfo.Read(context.Background(), cfg.Dir(), config.StateDir)
	if err != nil {
		return "", err
	}
	// The source goes into buildctl's comma-separated exporter options.
	if strings.ContainsAny(h.Source, ",\"\\\t\n") || strings.Contains(h.Source, "${") {
		return "", fmt.Errorf("%s: the origin remote's URL %q holds a character the bench cannot pass on (comma, quote, backslash, ${); bench a clone without it", cfg.Dir(), h.Source)
	}
	// The stamp build.Requests gives each image: the tag's release time.
	stamp := tag.ReleaseTime(tag.Commit{SHA: h.SHA, Time: h.Time, Ancestors: h.Ancestors, Dirty: h.Dirty})
	var b strings.Builder
	fmt.Fprintf(&b, "stamp\t%s\t%s\t%s\t%s\n", strconv.FormatInt(stamp.Unix(), 10), h.SHA,
		stamp.UTC().Format(time.RFC3339), orNone(h.Source))
	for _, n := range cfg.ImageNames() {
		line, err := imageLine(cfg, n)
		if err != nil {
			return "", err
		}
		b.WriteString(line)
	}
	return b.String(), nil
}

// mirrored refuses what the bench cannot ask buildctl and bake for in the
// same way shipit does, so that no comparison is of different builds.
func mirrored(cfg *config.Config) error {
	if len(cfg.Builder.Nodes) > 0 {
		return fmt.Errorf("%s: builder.nodes: the bench compares clients of one daemon; bench this app with builder.nodes removed", cfg.File)
	}
	if cfg.Cache.Export != config.CacheNone {
		return fmt.Errorf("%s: cache.export: %s: the bench does not export a cache from buildctl and bake; set it to none for the bench", cfg.File, cfg.Cache.Export)
	}
	for _, n := range cfg.ImageNames() {
		if len(cfg.Images[n].SSH) > 0 {
			return fmt.Errorf("%s: images.%s.ssh: the bench does not forward SSH for buildctl and bake; bench an app without it", cfg.File, n)
		}
		if a := cfg.AttestFor(n); a.Provenance != "" || a.SBOM {
			return fmt.Errorf("%s: images.%s: attestations (attest, provenance): the bench asks buildctl and bake for none; turn them off for the bench", cfg.File, n)
		}
	}
	return nil
}

func imageLine(cfg *config.Config, n string) (string, error) {
	im := cfg.Images[n]
	ctxDir := cfg.Abs(im.Context)
	dockerfile := filepath.Join(ctxDir, im.Dockerfile) // as shipit's plan has it
	var secrets []string
	for _, s := range im.Secrets {
		if s.Src != "" {
			secrets = append(secrets, s.ID+"=src="+cfg.SecretPath(s))
		} else {
			secrets = append(secrets, s.ID+"=env="+s.Env)
		}
	}
	keys := make([]string, 0, len(im.Args))
	for k := range im.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		args = append(args, k+"="+im.Args[k])
	}
	plats := im.Platforms
	if len(plats) == 0 {
		plats = cfg.Platforms
	}
	fields := []string{n, cfg.RepositoryFor(n), ctxDir, dockerfile, orNone(im.Target),
		joined(secrets, "|"), joined(args, "|"), joined(plats, ",")}
	for i, f := range fields {
		// Args are joined by |, fields by tabs, lines by newlines; bake's
		// HCL strings take no quotes or ${ unescaped.
		if strings.ContainsAny(f, "\t\n\r\"\\") || strings.Contains(f, "${") || (i != 5 && i != 6 && strings.Contains(f, "|")) {
			return "", fmt.Errorf("%s: images.%s: %q holds a character the bench cannot pass on (tab, newline, quote, backslash, ${ or |); bench an app without it", cfg.File, n, f)
		}
	}
	for _, a := range args {
		if strings.Contains(strings.SplitN(a, "=", 2)[1], "|") {
			return "", fmt.Errorf("%s: images.%s.args: %q holds |, which the bench joins arguments with; bench an app without it", cfg.File, n, a)
		}
	}
	return strings.Join(fields, "\t") + "\n", nil
}

func joined(s []string, sep string) string { return orNone(strings.Join(s, sep)) }

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
