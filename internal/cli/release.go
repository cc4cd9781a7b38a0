package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/release"
)

type releaseOptions struct {
	record       string
	dryRun       bool
	keepExisting bool
	output       string
	progress     string
	env          string
	wait         waitOptions
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
	f.StringVar(&o.env, "env", "", "the environment to pin (default: the first of deploy.environments)")
	o.wait.flags(f)
	f.StringVar(&o.progress, "progress", "auto", "progress on stderr: auto, tty (bytes pushed, in place), plain, rawjson (one JSON event a line) or quiet")
	return cmd
}

func runRelease(cmd *cobra.Command, g *globals, o *releaseOptions) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	d, err := g.resolveShown(cmd, nil, o.output, o.progress)
	if err != nil {
		return err
	}
	signerOf := d.signerAsync()
	rec, recPath, err := d.readRecord(ctx, o.record)
	if err != nil {
		return err
	}
	env, err := d.env(o.env, "--env")
	if err != nil && len(d.cfg.Envs()) > 0 {
		return err
	}
	deploy, err := d.deployEnv(ctx, env)
	if err != nil {
		return err
	}
	if err := o.wait.check(env, deploy); err != nil {
		return err
	}
	signer, err := signerOf()
	if err != nil {
		return err // before anything is pushed
	}
	gate, err := d.gate(env)
	if err != nil {
		return err
	}
	if !o.dryRun {
		if err := d.ensureRepositories(ctx, rec.Repositories()); err != nil {
			return err
		}
	}
	res, err := release.Run(ctx, release.Options{
		Record: rec, RecordDir: filepath.Dir(recPath), Registry: d.registry, Deploy: deploy,
		KeepExisting: o.keepExisting, DryRun: o.dryRun, Events: d.events, KustomizeNames: d.kustomizeNames(),
		Signer: signer, Gate: gate,
	})
	if err != nil {
		return err
	}
	if !o.dryRun {
		d.forgetPlatformCheck()
	}
	werr := o.wait.after(ctx, d, env, deploy, revision(res.Revision, o.dryRun), res.Overlays, "the release of "+res.Tag)
	if err := printRelease(cmd.OutOrStdout(), stderr, o.output, res, o.wait.report()); err != nil {
		return err
	}
	return werr
}

// printOverlays says on stderr what happened to each pin.
func printOverlays(stderr io.Writer, overlays []release.OverlayResult) {
	for _, ov := range overlays {
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
}

func printRelease(out, stderr io.Writer, format string, res *release.Result, wait waitReport) error {
	if format == "json" {
		return writeJSON(out, struct {
			*release.Result
			waitReport
		}{res, wait})
	}
	for _, im := range res.Images {
		fmt.Fprintf(stderr, "shipit: %s: %s\n", im.Name, im.Action)
		fmt.Fprintln(out, im.Ref)
	}
	printOverlays(stderr, res.Overlays)
	t := changeText{would: "this change would be committed", nothingDry: "no pin would change"}
	if len(res.Overlays) > 0 {
		t.nothing = "nothing to change"
	}
	printChange(out, stderr, res.Change, t)
	return nil
}

// revision is what --wait waits for: the GitOps head after the command,
// none in a dry run.
func revision(head string, dryRun bool) string {
	if dryRun {
		return ""
	}
	return head
}

// readRecord reads the build record to release (recPath, or the default)
// and checks it against HEAD and shipit.yaml.
func (d *deps) readRecord(ctx context.Context, recPath string) (*build.Record, string, error) {
	if recPath == "" {
		recPath = filepath.Join(d.cfg.StatePath(), build.RecordFile)
	}
	rec, err := build.ReadRecord(recPath)
	if err != nil {
		return nil, "", &usageError{err}
	}
	head, err := d.readHead(ctx)
	if err != nil {
		return nil, "", err
	}
	if err := release.CheckRecord(rec, recPath, head.SHA, d.repositories()); err != nil {
		return nil, "", err
	}
	for _, im := range rec.Images {
		if !config.NamesRegistry(im.Repository) {
			return nil, "", usagef("%s: image %s was built for %s, which names no registry: set registry in %s and build again", recPath, im.Name, im.Repository, d.cfg.File)
		}
	}
	return rec, recPath, nil
}
