package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/regauth"
	"github.com/shipit-dev/shipit/release"
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
	progress.Debugf(d.events, "configuration read")
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
	progress.Debugf(d.events, "git read")
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
	var mismatch <-chan []string
	if dial.multi {
		if bo.Nodes, err = dial.Nodes(d.events); err != nil {
			return err
		}
	} else {
		c, err := dial.Client()
		if err != nil {
			return err
		}
		bo.Solver = c
		mismatch = d.platformCheck(ctx, c, names)
	}
	rec, err := build.Run(ctx, bo, plan)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		build.PrintSources(stderr, err)
		return err
	}
	if mismatch != nil {
		// The check reads the GitOps repository and the registry beside the
		// build; a build done first waits a little for it, not more.
		select {
		case ws := <-mismatch:
			for _, w := range ws {
				progress.Warnf(d.events, "%s", w)
			}
		case <-time.After(platformCheckGrace):
		}
		progress.Debugf(d.events, "platform check done or given up")
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

// platformCheck looks, beside the build, for the classic mistake: an image
// with no platforms built on a daemon whose own platform (an Apple-silicon
// laptop's linux/arm64) is not what the release pinned in the first
// environment runs. It is advice: anything it cannot read says nothing, and
// it gives up after platformCheckTimeout.
func (d *deps) platformCheck(ctx context.Context, c *client.Client, names []string) <-chan []string {
	out := make(chan []string, 1)
	var unset []string
	for _, n := range names {
		if len(d.cfg.Images[n].Platforms) == 0 && len(d.cfg.Platforms) == 0 {
			unset = append(unset, n)
		}
	}
	envs := d.cfg.Envs()
	if len(unset) == 0 || len(envs) == 0 {
		out <- nil
		return out
	}
	go func() {
		var warnings []string
		defer func() { out <- warnings }()
		ctx, cancel := context.WithTimeout(ctx, platformCheckTimeout)
		defer cancel()
		plats, err := workerPlatforms(ctx, c)
		if err != nil || len(plats) == 0 {
			return
		}
		native := plats[0]
		dep, err := d.deployEnv(ctx, envs[0])
		if err != nil || dep.ImageUpdater {
			return
		}
		imgs, err := d.pinImages(unset)
		if err != nil {
			return
		}
		states, err := release.ReadOverlays(ctx, dep, imgs, "")
		if err != nil || len(states) == 0 {
			return
		}
		for _, im := range imgs {
			e, ok := states[0].Entries[im.Name]
			if !ok || e.NewTag == "" {
				continue
			}
			repo := e.NewName
			if repo == "" {
				repo = im.Repository
			}
			pinned, err := d.registry.Platforms(ctx, repo, e.NewTag)
			if err != nil || len(pinned) == 0 || slices.Contains(pinned, native) {
				continue
			}
			warnings = append(warnings, fmt.Sprintf("image %s has no platforms, so it was built for this daemon's own, %s; but %s runs %s (%s): set platforms in %s (init writes [linux/amd64]), or this image will not start there",
				im.Name, native, envs[0].Name, strings.Join(pinned, ", "), e.NewTag, d.cfg.File))
		}
	}()
	return out
}

// platformCheckTimeout bounds platformCheck; platformCheckGrace is how
// long a build that is done waits for it.
const (
	platformCheckTimeout = 10 * time.Second
	platformCheckGrace   = 3 * time.Second
)
