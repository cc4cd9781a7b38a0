package cli

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/regauth"
)

type buildOptions struct {
	retryOtherNode bool
	push           bool
	output         string
	progress       string
	tag            string
	noCache        bool
}

func newBuildCmd(g *globals) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [IMAGE...]",
		Short: "Build the images in shipit.yaml on BuildKit, concurrently",
		Long: `Build every image in shipit.yaml (or the named ones) concurrently on one
BuildKit daemon, tagged with HEAD's release tag (see shipit tag).

Builds are reproducible: SOURCE_DATE_EPOCH is HEAD's commit time and layer
timestamps are rewritten, so the same commit gives the same digest on any
daemon. Images carry the OCI labels org.opencontainers.image.revision,
.source and .created.

Without --push each image is kept as an OCI image layout under .shipit/
for shipit release to push; with --push BuildKit pushes each image
straight to its repository. Either way the build record .shipit/build.json
lists what was built.

Secrets reach the build only as secret mounts (images.NAME.secrets, read
with RUN --mount=type=secret,id=ID) or SSH forwarding (images.NAME.ssh),
never as build arguments.

stdout: one repository:tag@digest line per image (--output json: the
record). stderr: BuildKit's progress display.`,
		Example: `  shipit build                    # all images, kept under .shipit/ for shipit release
  shipit build --push             # build and push (a developer, locally)
  shipit build web --progress plain
  BUILDKIT_HOST=tcp://buildkitd:1234 shipit build --output json`,
		GroupID: "main",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.push, "push", false, "push each image to its repository instead of keeping it under .shipit/")
	f.StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	f.StringVar(&o.progress, "progress", "auto", "progress display on stderr: auto, tty, plain, rawjson or quiet")
	f.StringVar(&o.tag, "tag", "", "tag the images with this instead of HEAD's release tag")
	f.BoolVar(&o.noCache, "no-cache", false, "do not use the daemon's cache")
	f.String("builder", "", "BuildKit address (builder.addr, in place of builder.nodes; default $BUILDKIT_HOST or "+"unix:///run/buildkit/buildkitd.sock)")
	f.BoolVar(&o.retryOtherNode, "retry-other-node", false, "with builder.nodes: build a part that failed on one node again on the next node that can")
	f.String("registry", "", "registry host[:port][/prefix] (registry)")
	return cmd
}

func runBuild(cmd *cobra.Command, g *globals, o *buildOptions, args []string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	mode, err := checkProgress(o.progress, stderr)
	if err != nil {
		return err
	}
	d, err := g.resolve(cmd, map[string]string{"builder": "builder.addr", "registry": "registry.url"}, newRenderer(stderr, mode, g.verbose, g.start))
	if err != nil {
		return err
	}
	names, err := d.images(args)
	if err != nil {
		return err
	}
	if err := d.checkState(ctx, d.cfg.StatePath()); err != nil {
		return err
	}
	if err := d.cfg.CheckInputs(names, os.Getenv); err != nil {
		return err
	}
	if o.push {
		if err := d.cfg.CheckRegistry(names); err != nil {
			return err
		}
	}
	if cmd.Flags().Changed("builder") {
		d.cfg.Builder.Nodes = nil // --builder names the one daemon to use
	}
	// Reach the daemon while git is read: both are on the way to the first
	// solve, and neither needs the other.
	dial := d.dialBuilder(ctx)
	defer dial.Close()
	head, err := d.readHead(ctx)
	if err != nil {
		return err
	}
	t, stamp, err := d.releaseTag(head, o.tag)
	if err != nil {
		return err
	}
	plan := d.buildPlan(names, head, t, stamp, o.push, o.noCache)
	plan.Partial = len(names) < len(d.cfg.Images)
	if o.push {
		if err := d.ensureRepositories(ctx, plan.Repositories()); err != nil {
			return err
		}
	}
	bo := build.Options{
		Auth: regauth.Session(d.keychain), Keychain: d.keychain, RetryOtherNode: o.retryOtherNode,
		Progress: stderr, Mode: progressui.DisplayMode(o.progress), Events: d.events,
	}
	if dial.multi {
		if bo.Nodes, err = dial.Nodes(d.events); err != nil {
			return err
		}
	} else if bo.Solver, err = dial.Client(); err != nil {
		return err
	}
	rec, err := build.Run(ctx, bo, plan)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		build.PrintSources(stderr, err)
		return err
	}
	if err := printBuild(cmd.OutOrStdout(), o.output, rec, names); err != nil {
		return err
	}
	if head.Dirty && o.tag == "" {
		fmt.Fprintln(stderr, "note: the work tree has uncommitted changes, so the tag ends in -dirty and shipit release will refuse it; commit and build again to release")
	}
	return nil
}

// printBuild writes one repository:tag@digest line per image built (the
// record holds others' too), or the record as JSON.
func printBuild(out io.Writer, format string, rec *build.Record, names []string) error {
	if format == "json" {
		return writeJSON(out, rec)
	}
	for _, im := range rec.Images {
		if slices.Contains(names, im.Name) {
			if _, err := fmt.Fprintln(out, im.Ref()); err != nil {
				return err
			}
		}
	}
	return nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
