package cli

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/release"
)

type promoteOptions struct {
	from   string
	images []string
	dryRun bool
	output string
	wait   waitOptions
}

func newPromoteCmd(g *globals) *cobra.Command {
	o := &promoteOptions{}
	cmd := &cobra.Command{
		Use:   "promote ENV",
		Short: "Move an environment to exactly what the one before it runs",
		Long: `Move ENV to exactly what the environment before it in deploy.environments
(or --from ENV) pins now, at the head of deploy.branch: the same newName,
newTag and digest, read from that environment's overlays in git. Nothing is
rebuilt, no tag is resolved again, the build record is not read: promote
works from any checkout with a shipit.yaml.

The source's overlays must agree on each image. Each image must be in the
registry with that digest (one HEAD request). Like a release, a promotion
only moves forward: an image that ENV already pins at a newer tag stays,
with a line saying so, and holds (shipit pin) are respected. One commit
names the environments, images, tags and digests, pushed with release's
fetch, re-plan and retry. Nothing to change: no commit, exit 0.

--wait waits for ENV's Argo CD Applications, as release does.`,
		Example: `  shipit promote production
  shipit promote production --dry-run
  shipit promote production --image web --wait --rollback-on-failure`,
		GroupID: "main",
		Args:    argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPromote(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "the environment to promote from (default: the one before ENV)")
	f.StringSliceVar(&o.images, "image", nil, "promote only these images (repeatable)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the diff that would be committed; change nothing")
	f.StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	o.wait.flags(f)
	return cmd
}

func runPromote(cmd *cobra.Command, g *globals, o *promoteOptions, target string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	d, err := g.resolve(cmd, nil, newRenderer(stderr, progressPlain, g.verbose, g.start))
	if err != nil {
		return err
	}
	to, err := d.env(target, "promote")
	if err != nil {
		return err
	}
	names := d.cfg.EnvNames()
	from := o.from
	if from == "" {
		i := slices.Index(names, target)
		if i == 0 {
			return usagef("%s is the first environment: there is none before it to promote from (name one with --from)", target)
		}
		from = names[i-1]
	}
	src, err := d.env(from, "--from")
	if err != nil {
		return err
	}
	if src.Name == to.Name {
		return usagef("--from %s: an environment cannot be promoted from itself", from)
	}
	imgs, err := d.pinImages(o.images)
	if err != nil {
		return err
	}
	fromDep, err := d.deployEnv(ctx, src)
	if err != nil {
		return err
	}
	toDep, err := d.deployEnv(ctx, to)
	if err != nil {
		return err
	}
	if err := o.wait.check(to, toDep); err != nil {
		return err
	}
	gate, err := d.gate(to)
	if err != nil {
		return err
	}
	res, err := release.Promote(ctx, release.PromoteOptions{From: fromDep, To: toDep, Images: imgs, Registry: d.registry, DryRun: o.dryRun, Events: d.events, Gate: gate})
	if err != nil {
		return err
	}
	werr := o.wait.after(ctx, d, to, toDep, revision(res.Revision, o.dryRun), res.Overlays, "the promotion of "+from+" to "+target)
	if perr := printPromote(cmd.OutOrStdout(), stderr, o, res); perr != nil {
		return perr
	}
	return werr
}

func printPromote(out, stderr io.Writer, o *promoteOptions, res *release.PromoteResult) error {
	if o.output == "json" {
		return writeJSON(out, struct {
			*release.PromoteResult
			waitReport
		}{res, o.wait.report()})
	}
	printOverlays(stderr, res.Overlays)
	printChange(out, stderr, res.Change, changeText{
		would:      fmt.Sprintf("promoting %s to %s would commit", res.From, res.To),
		nothingDry: fmt.Sprintf("%s already runs what %s pins", res.To, res.From),
		nothing:    fmt.Sprintf("nothing to promote: %s already pins what %s does (or newer)", res.To, res.From),
	})
	return nil
}
