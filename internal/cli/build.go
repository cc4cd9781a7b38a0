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
	"github.com/shipit-dev/shipit/internal/argocd"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/regauth"
	"github.com/shipit-dev/shipit/internal/sign"
	"github.com/shipit-dev/shipit/release"
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
	head, err := d.readBuildHead(ctx)
	if err != nil {
		return err
	}
	progress.Debugf(d.events, "git read")
	plan, err := d.planBuild(ctx, names, head, o)
	if err != nil {
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

// planBuild is what the build builds: the images, HEAD's tag (or --tag)
// and, with --push, repositories made sure of.
func (d *deps) planBuild(ctx context.Context, names []string, head gitinfo.Head, o *buildOptions) (build.Plan, error) {
	t, stamp, err := d.releaseTag(head, o.tag)
	if err != nil {
		return build.Plan{}, err
	}
	plan := d.buildPlan(names, head, t, stamp, o.push, o.noCache)
	plan.Rebuild = o.rebuild
	plan.Partial = len(names) < len(d.cfg.Images)
	if o.push {
		if err := d.ensureRepositories(ctx, plan.Repositories()); err != nil {
			return build.Plan{}, err
		}
	}
	return plan, nil
}

// builderOptions waits for the daemon (or the nodes) and starts, beside
// the build, the platform check of a single daemon.
func (d *deps) builderOptions(ctx context.Context, dial *dialing, names []string, o *buildOptions, stderr io.Writer) (build.Options, <-chan []string, error) {
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

// platformWarnings shows what the platform check found. It reads the
// GitOps repository and the registry beside the build; a build done first
// waits a little for it, not more.
func (d *deps) platformWarnings(mismatch <-chan []string) {
	if mismatch == nil {
		return
	}
	select {
	case ws := <-mismatch:
		for _, w := range ws {
			progress.Warnf(d.events, "%s", w)
		}
	case <-time.After(platformCheckGrace):
	}
	progress.Debugf(d.events, "platform check done or given up")
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
// it gives up after platformCheckTimeout. plats are the daemon's
// workers' platforms as the dial read them; none: they are asked again.
func (d *deps) platformCheck(ctx context.Context, c *client.Client, plats, names []string) <-chan []string {
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
		defer func() {
			progress.Debugf(d.events, "platform check finished")
			out <- warnings
		}()
		ctx, cancel := context.WithTimeout(ctx, platformCheckTimeout)
		defer cancel()
		if len(plats) == 0 {
			var err error
			if plats, err = workerPlatforms(ctx, c); err != nil || len(plats) == 0 {
				return
			}
		}
		native := plats[0]
		if ws, ok := d.nodeMismatch(ctx, native, unset, envs[0]); ok {
			warnings = ws
			return
		}
		warnings = d.pinnedMismatch(ctx, native, unset, envs[0])
	}()
	return out
}

// nodeMismatch compares the daemon's platform with what the nodes of the
// environment's cluster report, when it has Argo CD Applications and the
// Kubernetes API answers (the standard kubeconfig rules); ok is false
// when the cluster could not be asked.
func (d *deps) nodeMismatch(ctx context.Context, native string, unset []string, env config.Environment) ([]string, bool) {
	if len(env.ArgoCD.Applications) == 0 {
		return nil, false
	}
	c, err := argocd.Connect("", "")
	if err != nil {
		return nil, false
	}
	nodes, err := c.NodePlatforms(ctx)
	if err != nil || len(nodes) == 0 {
		return nil, false
	}
	if slices.Contains(nodes, native) {
		return nil, true
	}
	var ws []string
	for _, n := range unset {
		ws = append(ws, fmt.Sprintf("image %s has no platforms, so it was built for this daemon's own, %s; but the nodes of %s's cluster (%s) run %s: set platforms in %s (init writes [linux/amd64]), or this image will not start there",
			n, native, env.Name, c.Host, strings.Join(nodes, ", "), d.cfg.File))
	}
	return ws, true
}

// pinnedMismatch compares the daemon's platform with what the
// environment's pinned release runs, read from the GitOps repository and
// the registry.
func (d *deps) pinnedMismatch(ctx context.Context, native string, unset []string, env config.Environment) []string {
	dep, err := d.deployEnv(ctx, env)
	if err != nil || dep.ImageUpdater {
		return nil
	}
	imgs, err := d.pinImages(unset)
	if err != nil {
		return nil
	}
	states, err := release.ReadOverlays(ctx, dep, imgs)
	if err != nil || len(states) == 0 {
		return nil
	}
	var warnings []string
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
			im.Name, native, env.Name, strings.Join(pinned, ", "), e.NewTag, d.cfg.File))
	}
	return warnings
}

// platformCheckTimeout bounds platformCheck; platformCheckGrace is how
// long a build that is done waits for it.
const (
	platformCheckTimeout = 10 * time.Second
	platformCheckGrace   = 3 * time.Second
)
