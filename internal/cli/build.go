package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/regauth"
)

type buildOptions struct {
	push     bool
	output   string
	progress string
	tag      string
	noCache  bool
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
	f.String("builder", "", "BuildKit address (builder.addr; default $BUILDKIT_HOST or "+"unix:///run/buildkit/buildkitd.sock)")
	f.String("registry", "", "registry host[:port][/prefix] (registry)")
	return cmd
}

func runBuild(cmd *cobra.Command, g *globals, o *buildOptions, args []string) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	switch o.progress {
	case "auto", "tty", "plain", "rawjson", "quiet":
	default:
		return usagef("--progress %q: use auto, tty, plain, rawjson or quiet", o.progress)
	}
	if f, ok := stderr.(*os.File); o.progress == "tty" && (!ok || !term.IsTerminal(int(f.Fd()))) { //nolint:gosec // a file descriptor fits an int
		return usagef("--progress tty needs a terminal on stderr: use auto (tty when there is one) or plain")
	}
	cfg, err := loadConfig(cmd, g, map[string]string{"builder": "builder.addr", "registry": "registry.url"})
	if err != nil {
		return err
	}
	names := cfg.ImageNames()
	if len(args) > 0 {
		for _, a := range args {
			if _, ok := cfg.Images[a]; !ok {
				return usagef("no image %q in %s (images: %s)", a, cfg.File, strings.Join(names, ", "))
			}
		}
		names = dedupe(args)
	}
	if err := cfg.CheckInputs(names, os.Getenv); err != nil {
		return err
	}
	if o.push {
		if err := cfg.CheckRegistry(names); err != nil {
			return err
		}
	}
	// Reach the daemon while git is read: both are on the way to the first
	// solve, and neither needs the other.
	type conn struct {
		c   *client.Client
		err error
	}
	connCtx, cancelConn := context.WithCancel(ctx)
	defer cancelConn()
	connected := make(chan conn, 1)
	go func() {
		c, err := connectBuilder(connCtx, cfg)
		connected <- conn{c, err}
	}()
	closeConn := func() {
		cancelConn()
		if cn := <-connected; cn.c != nil {
			_ = cn.c.Close()
		}
	}

	head, err := readHead(ctx, cfg)
	if err != nil {
		closeConn()
		return err
	}
	t, stamp, err := releaseTag(cfg, head, o.tag)
	if err != nil {
		closeConn()
		return err
	}
	plan := build.Plan{Config: cfg, Head: head, Tag: t, Time: stamp, Images: names, Push: o.push, NoCache: o.noCache}
	reqs, warnings, err := build.Requests(plan)
	if err != nil {
		closeConn()
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if o.push {
		var repos []string
		for _, r := range reqs {
			repos = append(repos, r.Repository)
		}
		if err := ensureRepositories(ctx, cfg, repos, stderr); err != nil {
			closeConn()
			return err
		}
	}
	cn := <-connected
	if cn.err != nil {
		return cn.err
	}
	c := cn.c
	defer c.Close()

	kc := regauth.NewKeychain(nil)
	g.logf(stderr, "building %s as %s on %s; first solve request %s after main started (unix time %d ns)", strings.Join(names, ", "), t, cfg.Builder.Addr, time.Since(g.start).Round(time.Microsecond), time.Now().UnixNano())
	rec, err := build.Run(ctx, build.Options{
		Solver:   c,
		Auth:     regauth.Session(kc),
		Progress: stderr,
		Mode:     progressui.DisplayMode(o.progress),
	}, kc, plan, reqs)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		build.PrintSources(stderr, err)
		return err
	}
	out := cmd.OutOrStdout()
	if o.output == "json" {
		return writeJSON(out, rec)
	}
	built := map[string]bool{}
	for _, n := range names {
		built[n] = true
	}
	for _, im := range rec.Images {
		if built[im.Name] {
			if _, err := fmt.Fprintln(out, im.Ref()); err != nil {
				return err
			}
		}
	}
	if head.Dirty && o.tag == "" {
		fmt.Fprintln(stderr, "note: the work tree has uncommitted changes, so the tag ends in -dirty and shipit release will refuse it; commit and build again to release")
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
