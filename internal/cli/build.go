package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/regauth"
	"github.com/shipit-dev/shipit/internal/sign"
)

type buildOptions struct {
	retryOtherNode bool
	push           bool
	output         string
	progress       string
	tag            string
	noCache        bool
	rebuild        bool
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

An image whose inputs are what the last build read (the request, the
Dockerfile and .dockerignore, the context files by their metadata, the
digests its base images' tags point at now, the daemon) and which is still
in its layout or under its tag is kept, not solved again: "NAME unchanged
since the last build" on stderr. --rebuild solves every image.

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
  shipit build --rebuild          # solve every image, even one unchanged since the last build
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
	f.BoolVar(&o.noCache, "no-cache", false, "do not use the daemon's cache (implies --rebuild)")
	f.BoolVar(&o.rebuild, "rebuild", false, "solve every image, even one whose inputs are the last build's")
	f.String("builder", "", "BuildKit address (builder.addr, in place of builder.nodes; default $BUILDKIT_HOST or "+"unix:///run/buildkit/buildkitd.sock)")
	f.BoolVar(&o.retryOtherNode, "retry-other-node", false, "with builder.nodes: build a part that failed on one node again on the next node that can")
	f.String("registry", "", "registry host[:port][/prefix] (registry)")
	return cmd
}

func runBuild(cmd *cobra.Command, g *globals, o *buildOptions, args []string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	d, names, err := resolveBuild(cmd, g, o, args)
	if err != nil {
		return err
	}
	var signer *sign.Signer
	if o.push {
		if signer, err = d.signer(); err != nil {
			return err // before anything is pushed
		}
	}
	// Reach the daemon while git and the state directory are read: all are
	// on the way to the first solve, and none needs another.
	dial := d.dialBuilder(ctx)
	defer dial.Close()
	// And read what the images' solves read from their directories and
	// base images: whether a solve is needed at all (build.Sources).
	specs := d.buildPlan(names, gitinfo.Head{}, "", time.Time{}, o.push, o.noCache).Images
	sources := build.ReadSources(ctx, d.registry, specs, d.cfg.StatePath())
	repos := d.lookForRepositories(ctx, build.Plan{Images: specs}, o.push)
	head, err := d.readBuildHead(ctx)
	if err != nil {
		return err
	}
	progress.Debugf(d.events, "git read")
	plan, err := d.planBuild(names, head, o)
	if err != nil {
		return err
	}
	if err := d.madeSureOfRepositories(ctx, repos, plan, o.push); err != nil {
		return err
	}
	plan.Sources = sources
	bo, mismatch, err := d.builderOptions(ctx, dial, names, o, stderr)
	if err != nil {
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
	d.platformWarnings(mismatch)
	if err := d.signPushed(ctx, signer, rec, names); err != nil {
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

// resolveBuild checks the options and the configuration of a build, and
// returns the images to build.
func resolveBuild(cmd *cobra.Command, g *globals, o *buildOptions, args []string) (*deps, []string, error) {
	d, err := g.resolveShown(cmd, map[string]string{"builder": "builder.addr", "registry": "registry.url"}, o.output, o.progress)
	if err != nil {
		return nil, nil, err
	}
	progress.Debugf(d.events, "configuration read")
	names, err := d.images(args)
	if err != nil {
		return nil, nil, err
	}
	if err := d.cfg.CheckInputs(names, os.Getenv); err != nil {
		return nil, nil, err
	}
	if o.push {
		if err := d.cfg.CheckRegistry(names); err != nil {
			return nil, nil, err
		}
	}
	if cmd.Flags().Changed("builder") {
		d.cfg.Builder.Nodes = nil // --builder names the one daemon to use
	}
	return d, names, nil
}

// readBuildHead reads HEAD and checks the state directory, concurrently:
// each runs git.
func (d *deps) readBuildHead(ctx context.Context) (gitinfo.Head, error) {
	state := make(chan error, 1)
	go func() { state <- d.checkState(ctx, d.cfg.StatePath()) }()
	head, err := d.readHead(ctx)
	if serr := <-state; serr != nil {
		return head, serr
	}
	return head, err
}

// lookForRepositories makes sure, with push, of the plan's ECR
// repositories beside git and the dial (they come from the configuration
// alone), unless they may be created: nothing is created before git was
// read (madeSureOfRepositories).
func (d *deps) lookForRepositories(ctx context.Context, plan build.Plan, push bool) <-chan error {
	out := make(chan error, 1)
	if push && !d.cfg.Registry.CreateRepositories {
		go func() { out <- d.ensureRepositories(ctx, plan.Repositories()) }()
	} else {
		out <- nil
	}
	return out
}

// madeSureOfRepositories is lookForRepositories' answer, or with
// registry.create_repositories the repositories made sure of now.
func (d *deps) madeSureOfRepositories(ctx context.Context, looked <-chan error, plan build.Plan, push bool) error {
	if err := <-looked; err != nil {
		return err
	}
	if push && d.cfg.Registry.CreateRepositories {
		return d.ensureRepositories(ctx, plan.Repositories())
	}
	return nil
}

// planBuild is what the build builds: the images and HEAD's tag (or
// --tag).
func (d *deps) planBuild(names []string, head gitinfo.Head, o *buildOptions) (build.Plan, error) {
	t, stamp, err := d.releaseTag(head, o.tag)
	if err != nil {
		return build.Plan{}, err
	}
	plan := d.buildPlan(names, head, t, stamp, o.push, o.noCache)
	plan.Rebuild = o.rebuild
	plan.Partial = len(names) < len(d.cfg.Images)
	return plan, nil
}

// builderOptions waits for the daemon (or the nodes) and starts, beside
// the build, the platform check of a single daemon.
func (d *deps) builderOptions(ctx context.Context, dial *dialing, names []string, o *buildOptions, stderr io.Writer) (build.Options, <-chan platformResult, error) {
	bo := build.Options{
		Auth: regauth.Session(d.keychain), Registry: d.registry, RetryOtherNode: o.retryOtherNode,
		Progress: stderr, Mode: progressui.DisplayMode(o.progress), Events: d.events,
	}
	if dial.multi {
		nodes, err := dial.Nodes(d.events)
		bo.Nodes, bo.Builder = nodes, dial.Identity()
		return bo, nil, err
	}
	c, err := dial.Client()
	if err != nil {
		return bo, nil, err
	}
	bo.Solver, bo.Builder = c, dial.Identity()
	return bo, d.platformCheck(ctx, c, dial.nodes[0].platforms, names), nil
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
