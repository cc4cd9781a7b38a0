package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/tag"
	"github.com/shipit-dev/shipit/release"
)

type pinOptions struct {
	images   []string
	overlays []string
	dryRun   bool
	output   string
	env      string
	wait     waitOptions
}

func newPinCmd(g *globals) *cobra.Command {
	o := &pinOptions{}
	cmd := &cobra.Command{
		Use:   "pin <tag>",
		Short: "Roll the overlays' pins to an existing release tag (rollback)",
		Long: `Move the pins of every image (or --image ones) in every deploy overlay (or
--overlay ones) to an existing release tag: the explicit way to roll back.

The tag must exist in the registry for every selected image (its digest is
resolved there); otherwise nothing changes. The pins change through the
release machinery: edited in place, render-checked, all overlays or none,
one commit (its message says from which tag to which) pushed with retry.

A rollback sticks: shipit records a hold beside the overlay
(.shipit-hold.yaml in the GitOps repository), so re-running the release of
the rolled-back commit, or of anything before it, leaves the pin alone. A
release of a newer commit moves forward as usual and lifts the hold, as
does pinning a newer tag.

With deploy.mode: image-updater, Argo CD Image Updater writes the pins, so
shipit gives the tag's digest a new release tag that sorts after every
existing one (a manifest copy: no blob moves); the updater's alphabetical
strategy then rolls to it, and shipit history shows it as a rollback.`,
		Example: `  shipit history web                            # find the tag to go back to
  shipit pin 20261120-093000-1a2b3c4            # every image, every overlay
  shipit pin 20261120-093000-1a2b3c4 --image web --overlay k8s/overlays/production`,
		GroupID: "main",
		Args:    argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPin(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.images, "image", nil, "pin only these images (repeatable; default all in shipit.yaml)")
	f.StringSliceVar(&o.overlays, "overlay", nil, "pin only in these overlays of deploy.overlays (repeatable)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the diff that would be committed; change nothing")
	f.StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	f.StringVar(&o.env, "env", "", "the environment to roll back (needed when there are several)")
	o.wait.flags(f)
	return cmd
}

func runPin(cmd *cobra.Command, g *globals, o *pinOptions, t string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if parsed, err := tag.Parse(t); err != nil {
		return usagef("%v", err)
	} else if parsed.Dirty {
		return usagef("%s was built from a work tree with uncommitted changes and is never released", t)
	}
	d, err := g.resolve(cmd, nil, newRenderer(stderr, progressPlain, g.verbose, g.start))
	if err != nil {
		return err
	}
	imgs, err := d.pinImages(o.images)
	if err != nil {
		return err
	}
	if len(d.cfg.Envs()) > 1 && o.env == "" {
		return usagef("%s has %d environments (%s): say which one to roll back with --env", d.cfg.File, len(d.cfg.Envs()), strings.Join(d.cfg.EnvNames(), ", "))
	}
	env, err := d.env(o.env, "--env")
	if err != nil && !d.updaterMode() {
		return err
	}
	deploy, err := d.deployEnv(ctx, env)
	if err != nil {
		return err
	}
	if err := o.wait.check(env, deploy); err != nil {
		return err
	}
	if err := d.overlaySelection(&deploy, o.overlays); err != nil {
		return err
	}
	if !deploy.ImageUpdater && len(deploy.Overlays) == 0 {
		return usagef("no deploy.environments (or deploy.overlays) in %s: there are no pins to move", d.cfg.File)
	}
	res, err := release.Pin(ctx, release.PinOptions{Tag: t, Images: imgs, Registry: d.registry, Deploy: deploy, DryRun: o.dryRun, Events: d.events})
	if err != nil {
		return err
	}
	if !o.dryRun {
		d.forgetPlatformCheck()
	}
	werr := o.wait.after(ctx, d, env, deploy, revision(res.Revision, o.dryRun), res.Overlays, "the pin to "+t)
	if err := printPin(cmd.OutOrStdout(), stderr, o.output, res, o.wait.report()); err != nil {
		return err
	}
	return werr
}

func printPin(out, stderr io.Writer, format string, res *release.PinResult, wait waitReport) error {
	if format == "json" {
		return writeJSON(out, struct {
			*release.PinResult
			waitReport
		}{res, wait})
	}
	if res.RollbackTag != "" {
		verb := "tagged"
		if res.DryRun {
			verb = "would tag"
		}
		for _, im := range res.Images {
			fmt.Fprintf(stderr, "shipit: %s: %s %s:%s as %s, for Argo CD Image Updater to roll to\n", im.Name, verb, im.Repository, res.Tag, res.RollbackTag)
		}
	}
	for _, im := range res.Images {
		fmt.Fprintln(out, im.Ref)
	}
	for _, ov := range res.Overlays {
		for _, im := range ov.Images {
			if im.From == im.To {
				fmt.Fprintf(stderr, "shipit: %s: %s already pinned to %s\n", ov.Path, im.Image, res.Tag)
			} else {
				fmt.Fprintf(stderr, "shipit: %s: %s %s -> %s\n", ov.Path, im.Image, im.FromOrNone(), im.To)
			}
		}
	}
	t := changeText{would: "this change would be committed", nothingDry: "no pin would change"}
	if len(res.Overlays) > 0 {
		t.nothing = "already pinned"
	}
	printChange(out, stderr, res.Change, t)
	return nil
}
