package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/ecr"
	"github.com/shipit-dev/shipit/release/prune"
)

type pruneOptions struct {
	keepHistory  int
	keep         int
	minAge       string
	includeOther bool
	dryRun       bool
	output       string
}

func newPruneCmd(g *globals) *cobra.Command {
	o := &pruneOptions{}
	cmd := &cobra.Command{
		Use:   "prune [IMAGE...]",
		Short: "Delete release tags nothing needs, never what runs",
		Long: `Delete the release tags (and the manifests left with no tag) of each image
(or the named ones) that nothing needs. Registries cannot know what a GitOps
repository pins, so age- or count-based lifecycle rules delete the image
production runs; prune decides from the pins. It keeps:

  - every tag or digest pinned by a deploy overlay at the head of deploy.branch:
    in its kustomization, in what it renders to, or set by an
    .argocd-source*.yaml beside it
  - the last --keep-history distinct pins of each overlay and image (the
    rollback targets), each overlay at its own pace: the walk reads at most
    the last 1000 commits of deploy.branch
  - every held tag (the tag a .shipit-hold.yaml holds a pin at)
  - the newest --keep release tags of each image (per tag prefix)
  - every tag younger than --min-age: on ECR, every image pushed within it
    too (imagePushedAt); elsewhere by the tag's own time
  - tags that are not shipit release tags (latest, buildcache, other
    tools'), unless --include-other
  - with deploy.mode: image-updater, the newest release tag and the
    updater's pick

If the GitOps repository or a configured overlay cannot be read or
rendered, nothing is deleted. The plan is printed before anything is deleted (-v lists every
tag); --dry-run stops there. Before each batch of deletes the GitOps head
(and on the registry API the tag list) is read again: what a pin made
meanwhile keeps is not deleted, with a line saying so. On the registry API a manifest is deleted with all its tags, so a
tag that shares its digest with a kept tag stays; on Amazon ECR tags are
deleted by name with BatchDeleteImage, 100 at a time.`,
		Example: `  shipit prune --dry-run
  shipit prune --keep 10 --min-age 14d
  shipit prune web --output json`,
		GroupID: "main",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrune(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.keepHistory, "keep-history", 20, "keep the last this many distinct pins of each overlay and image")
	f.IntVar(&o.keep, "keep", 30, "keep the newest this many release tags of each image")
	f.StringVar(&o.minAge, "min-age", "7d", "keep tags younger than this, by the tag's time (on ECR also images pushed within it); a duration: 36h, 14d")
	f.BoolVar(&o.includeOther, "include-other", false, "also delete tags that are not shipit release tags (latest, buildcache, other tools')")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan; delete nothing")
	f.StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

func runPrune(cmd *cobra.Command, g *globals, o *pruneOptions, args []string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	minAge, err := parseAge(o.minAge)
	if err != nil {
		return usagef("--min-age %q: %v", o.minAge, err)
	}
	if o.keep < 0 || o.keepHistory < 1 {
		return usagef("--keep must be 0 or more, and --keep-history 1 or more")
	}
	d, err := g.resolve(cmd, nil, newRenderer(stderr, progressPlain, g.verbose, g.start))
	if err != nil {
		return err
	}
	imgs, err := d.pinImages(args)
	if err != nil {
		return err
	}
	dep, err := d.deploy(ctx, d.cfg.AllOverlays())
	if err != nil {
		return err
	}
	prefix, err := d.tagPrefix()
	if err != nil {
		return err
	}
	po := prune.Options{
		Images: imgs, Registry: d.registry, Deleter: d.registry, Deploy: dep,
		KeepHistory: o.keepHistory, Keep: o.keep, MinAge: minAge, IncludeOther: o.includeOther,
		UpdaterMode: d.cfg.Deploy.Mode == config.ModeImageUpdater, Prefix: prefix, DryRun: o.dryRun, Events: d.events,
	}
	if p := d.cfg.Deploy.Previews; p != nil {
		po.PreviewDir = p.Dir
	}
	if host, _, _ := strings.Cut(imgs[0].Repository, "/"); ecr.IsECR(host) {
		d := &ecr.Deleter{}
		po.TagDeleter, po.PushTimes = d, d
	}
	res, err := prune.Run(ctx, po)
	if res != nil && len(res.Images) > 0 {
		if perr := printPrune(cmd.OutOrStdout(), stderr, o.output, res, g.verbose); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// parseAge reads a duration, with d for days.
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("write a number of days (14d) or a duration (36h)")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("write a number of days (14d) or a duration (36h)")
	}
	return d, nil
}

func printPrune(out, stderr io.Writer, format string, res *prune.Result, verbose bool) error {
	if format == "json" {
		return writeJSON(out, res)
	}
	verb := "deleted"
	if res.DryRun {
		verb = "would delete"
	}
	for _, im := range res.Images {
		reasons := map[string]int{}
		for _, k := range im.Kept {
			reasons[strings.Join(k.Keep, "+")]++
		}
		var parts []string
		for r, n := range reasons {
			parts = append(parts, fmt.Sprintf("%d %s", n, r))
		}
		fmt.Fprintf(out, "%s: kept %d (%s), %s %d\n", im.Repository, len(im.Kept), strings.Join(slices.Sorted(slices.Values(parts)), ", "), verb, len(im.Deleted))
		if verbose {
			for _, k := range im.Kept {
				fmt.Fprintf(out, "  keep    %s  %s\n", k.Tag, strings.Join(k.Keep, ", "))
			}
			for _, d := range im.Deleted {
				fmt.Fprintf(out, "  %s  %s\n", map[bool]string{true: "would delete", false: "delete "}[res.DryRun], d.Tag)
			}
		}
		if len(im.Failed) > 0 {
			fmt.Fprintf(stderr, "shipit: %s: deleting failed for %s\n", im.Repository, strings.Join(im.Failed, ", "))
		}
	}
	return nil
}

func newLifecyclePolicyCmd() *cobra.Command {
	var days int
	cmd := &cobra.Command{
		Use:   "lifecycle-policy",
		Short: "Print an ECR lifecycle policy that is safe beside shipit prune",
		Long: `Print an Amazon ECR lifecycle policy (JSON) that expires untagged images
after --untagged-days and has no rule for tagged images.

Age- or count-based rules on release tags are unsafe: ECR cannot know which
tag production runs, so "expire images older than 30 days" or "keep the
newest 100" deletes the image a quiet service still runs, or the one a
rollback needs. shipit prune keeps what the GitOps repository pins, holds
and may roll back to, and deletes the rest; this policy then removes the
manifests prune left without a tag.`,
		Example: `  shipit lifecycle-policy > policy.json
  aws ecr put-lifecycle-policy --repository-name team/web --lifecycle-policy-text file://policy.json`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return usagef("--untagged-days must be at least 1")
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), ecr.LifecyclePolicy(days))
			return err
		},
	}
	cmd.Flags().IntVar(&days, "untagged-days", 14, "expire untagged images after this many days")
	return cmd
}
