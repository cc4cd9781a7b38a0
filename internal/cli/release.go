package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/ecr"
	"github.com/shipit-dev/shipit/internal/regauth"
	"github.com/shipit-dev/shipit/internal/tag"
	"github.com/shipit-dev/shipit/release"
	"github.com/shipit-dev/shipit/release/gitops"
	"github.com/shipit-dev/shipit/release/kustomize"
)

type releaseOptions struct {
	record       string
	dryRun       bool
	keepExisting bool
	output       string
}

func newReleaseCmd(g *globals) *cobra.Command {
	o := &releaseOptions{}
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Push the built images and bump the kustomize pins in the deploy overlays",
		Long: `Release what shipit build made (.shipit/build.json):

 1. Every image goes to the registry under its release tag. Only what is
    missing is pushed, and only the layers the registry lacks are uploaded.
    A tag that already points at the same digest is success; a tag is never
    overwritten (--keep-existing keeps the registry's image instead).
 2. In each overlay of deploy.overlays, the images entry of each image is
    set as kustomize edit set image would, editing kustomization.yaml in
    place; the overlay is rendered with the kustomize library first, and
    every container that runs the image must run the new reference. All
    overlays change or none. A pin that is already newer stays: releases
    only move forward (shipit pin rolls back).
 3. The change is committed and pushed to deploy.branch of deploy.repo. If
    the branch moved meanwhile, shipit fetches, applies the change again on
    the new head and retries; it never force-pushes.

A failure or Ctrl-C leaves the overlays and the remote as they were.

stdout: one repository:tag@digest line per image, then the pin commit's id
(--output json: everything). --dry-run prints what it would push and the
diff it would commit, and changes nothing.`,
		Example: `  shipit build && shipit release          # CI on every merge
  shipit release --dry-run
  shipit release --output json`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRelease(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.record, "record", "", "build record to release (default .shipit/build.json beside shipit.yaml)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would be pushed and the diff that would be committed; change nothing")
	f.BoolVar(&o.keepExisting, "keep-existing", false, "when a tag already holds another digest, keep the registry's image and release it")
	f.StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

func runRelease(cmd *cobra.Command, g *globals, o *releaseOptions) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	cfg, err := loadConfig(cmd, g, nil)
	if err != nil {
		return err
	}
	recPath := o.record
	if recPath == "" {
		recPath = filepath.Join(cfg.StatePath(), build.RecordFile)
	}
	rec, err := build.ReadRecord(recPath)
	if err != nil {
		return &usageError{err}
	}
	head, err := readHead(ctx, cfg)
	if err != nil {
		return err
	}
	if err := checkRecord(rec, recPath, head.SHA); err != nil {
		return err
	}
	for _, im := range rec.Images {
		if !config.NamesRegistry(im.Repository) {
			return usagef("%s: image %s was built for %s, which names no registry: set registry in %s and build again", recPath, im.Name, im.Repository, cfg.File)
		}
	}
	deploy, err := deployTarget(ctx, cfg)
	if err != nil {
		return err
	}
	if !o.dryRun {
		if err := ensureRepositories(ctx, cfg, rec.Repositories(), stderr); err != nil {
			return err
		}
	}
	res, err := release.Run(ctx, release.Options{
		Record:       rec,
		RecordDir:    filepath.Dir(recPath),
		Registry:     &release.Remote{Keychain: regauth.NewKeychain(stderr), Jobs: 4},
		KeepExisting: o.keepExisting,
		DryRun:       o.dryRun,
		Deploy:       deploy,
		Log:          stderr,
		KustomizeNames: func() map[string]string {
			m := map[string]string{}
			for n, im := range cfg.Images {
				if im.KustomizeName != "" {
					m[n] = im.KustomizeName
				}
			}
			return m
		}(),
	})
	if err != nil {
		return err
	}
	return printRelease(cmd.OutOrStdout(), stderr, o.output, res)
}

// checkRecord refuses records a release must not ship.
func checkRecord(rec *build.Record, path, headSHA string) error {
	if len(rec.Images) == 0 {
		return usagef("%s lists no images: run `shipit build` first", path)
	}
	if rec.Commit != headSHA {
		return usagef("%s was built from commit %.7s, but HEAD is %.7s: run `shipit build` for HEAD first (or check out %.7s)", path, rec.Commit, headSHA, rec.Commit)
	}
	if strings.HasSuffix(rec.Tag, tag.DirtySuffix) {
		return usagef("%s is tagged %s: it was built from a work tree with uncommitted changes, which is never released. Commit, then `shipit build` again", path, rec.Tag)
	}
	if _, err := tag.Parse(rec.Tag); err != nil {
		return usagef("%s: tag %s is not a release tag (built with --tag?): releases need YYYYMMDD-HHMMSS-<sha7> tags, which sort in commit order", path, rec.Tag)
	}
	for _, im := range rec.Images {
		if im.Tag != rec.Tag || im.Commit != rec.Commit {
			return usagef("%s: image %s is from another build (%s)", path, im.Name, im.Tag)
		}
	}
	return nil
}

// deployTarget resolves deploy.* into where pins are written.
func deployTarget(ctx context.Context, cfg *config.Config) (release.Deploy, error) {
	d := release.Deploy{
		Branch:       cfg.Deploy.Branch,
		Mode:         kustomize.Mode(cfg.Deploy.Pin),
		Attempts:     15,
		ImageUpdater: cfg.Deploy.Mode == config.ModeImageUpdater,
	}
	overlays := append([]string(nil), cfg.Deploy.Overlays...)
	if cfg.Deploy.Repo == "." {
		// The app repository itself, through its origin remote, so that the
		// user's work tree is never touched.
		url, err := gitOut(ctx, cfg.Dir(), "remote", "get-url", "origin")
		if err != nil || url == "" {
			return d, &config.Error{File: cfg.File, Key: "deploy.repo", Msg: "is \".\" (this repository), but it has no origin remote to push pins to: add one, or set deploy.repo to the GitOps repository's URL"}
		}
		top, err := gitOut(ctx, cfg.Dir(), "rev-parse", "--show-toplevel")
		if err != nil {
			return d, err
		}
		prefix, _ := filepath.Rel(top, cfg.Dir())
		for i := range overlays {
			overlays[i] = filepath.Join(prefix, overlays[i])
		}
		d.URL, d.SkipCI = url, true
	} else {
		d.URL = cfg.Deploy.Repo
		if !strings.Contains(d.URL, "://") && !strings.Contains(d.URL, "@") && !filepath.IsAbs(d.URL) {
			d.URL = cfg.Abs(d.URL) // a path relative to shipit.yaml
		}
	}
	d.Overlays = overlays
	d.Author = gitops.Author{Name: "shipit", Email: "shipit@users.noreply.localhost"}
	if a := cfg.Deploy.Author; a != "" {
		d.Author.Name, d.Author.Email, _ = config.ParseAuthor(a)
	} else if n, err := gitOut(ctx, cfg.Dir(), "config", "user.name"); err == nil && n != "" {
		if e, err := gitOut(ctx, cfg.Dir(), "config", "user.email"); err == nil && e != "" {
			d.Author = gitops.Author{Name: n, Email: e}
		}
	}
	return d, nil
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
	return strings.TrimSpace(string(out)), err
}

func printRelease(out, stderr io.Writer, format string, res *release.Result) error {
	if format == "json" {
		return writeJSON(out, res)
	}
	for _, im := range res.Images {
		fmt.Fprintf(stderr, "shipit: %s: %s\n", im.Name, im.Action)
		fmt.Fprintln(out, im.Ref)
	}
	for _, ov := range res.Overlays {
		for _, im := range ov.Images {
			switch {
			case im.Kept != "":
			case im.From == im.To:
				fmt.Fprintf(stderr, "shipit: %s: %s already pinned\n", ov.Path, im.Image)
			case im.Added:
				fmt.Fprintf(stderr, "shipit: %s: %s pinned to %s (added)\n", ov.Path, im.Image, im.To)
			default:
				fmt.Fprintf(stderr, "shipit: %s: %s %s -> %s\n", ov.Path, im.Image, im.From, im.To)
			}
		}
	}
	if res.DryRun {
		if res.Diff == "" {
			fmt.Fprintln(stderr, "shipit: dry run: no pin would change")
		} else {
			fmt.Fprintln(stderr, "shipit: dry run: this change would be committed:")
			fmt.Fprint(out, res.Diff)
		}
		return nil
	}
	if res.Commit != "" {
		fmt.Fprintln(out, res.Commit)
	} else if len(res.Overlays) > 0 {
		fmt.Fprintln(stderr, "shipit: nothing to change: no commit")
	}
	return nil
}

// ensureRepositories checks (and, with registry.create_repositories,
// creates) the ECR repositories images go to.
func ensureRepositories(ctx context.Context, cfg *config.Config, repos []string, log io.Writer) error {
	created, err := ecr.Ensure(ctx, repos, cfg.Registry.CreateRepositories, build.CacheTag)
	for _, r := range created {
		fmt.Fprintf(log, "shipit: created ECR repository %s\n", r)
	}
	return err
}
