package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"

	// Connection helpers for docker-container:// and kube-pod:// builders.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/ecr"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/regauth"
	"github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/tag"
	"github.com/shipit-dev/shipit/release"
)

// This file is the composition root: the one place that turns
// configuration into the parts commands work with (registry keychain and
// client, BuildKit client, git remote, deploy target, build specs). Below
// it, packages receive what they use and never read shipit.yaml, flags or
// the environment themselves.

// builderTimeout bounds how long shipit waits for an unreachable daemon.
const builderTimeout = 8 * time.Second

// deps are what a command works with, made once from its configuration.
type deps struct {
	cfg      *config.Config
	keychain *regauth.Keychain
	registry *registry.Client
	events   progress.Sink
}

// resolve loads shipit.yaml with the command's flags layered on top (flag
// name to configuration key in flagKeys), and makes the parts from it.
// Progress and notices go to events.
func (g *globals) resolve(cmd *cobra.Command, flagKeys map[string]string, events progress.Sink) (*deps, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	set := map[string]string{}
	for flag, key := range flagKeys {
		if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
			set[key] = f.Value.String()
		}
	}
	cfg, err := config.Load(config.Options{File: g.configFile, Dir: wd, Flags: set})
	if err != nil {
		return nil, err
	}
	if cmd.Name() != "tag" {
		if err := cfg.CheckPlaceholders(); err != nil {
			return nil, err
		}
	}
	events = progress.Or(events)
	// The AWS SDK's own diagnostics are for -v.
	awsLog := io.Discard
	if g.verbose {
		awsLog = cmd.ErrOrStderr()
	}
	kc := regauth.NewKeychain(awsLog)
	return &deps{
		cfg:      cfg,
		keychain: kc,
		registry: &registry.Client{Keychain: kc, Policy: registry.Policy{Insecure: cfg.InsecureRegistries, Idle: stallTimeout()}, Events: events},
		events:   events,
	}, nil
}

// stallTimeout is how long a remote may send nothing: SHIPIT_STALL_TIMEOUT
// (a Go duration) or registry.DefaultIdle.
func stallTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SHIPIT_STALL_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return registry.DefaultIdle
}

// images selects configured images by name (all when names is empty).
func (d *deps) images(names []string) ([]string, error) {
	all := d.cfg.ImageNames()
	if len(names) == 0 {
		return all, nil
	}
	for _, n := range names {
		if _, ok := d.cfg.Images[n]; !ok {
			return nil, usagef("no image %q in %s (images: %s)", n, d.cfg.File, strings.Join(all, ", "))
		}
	}
	return dedupe(names), nil
}

// pinImages are the selected images as release pins them.
func (d *deps) pinImages(names []string) ([]release.PinImage, error) {
	sel, err := d.images(names)
	if err != nil {
		return nil, err
	}
	var out []release.PinImage
	for _, n := range sel {
		out = append(out, release.PinImage{Name: n, Repository: d.cfg.RepositoryFor(n), KustomizeName: d.cfg.Images[n].KustomizeName})
	}
	return out, nil
}

// deploy resolves deploy.* into where pins are written, for the given
// overlays.
func (d *deps) deploy(ctx context.Context, overlays []string) (release.Deploy, error) {
	c := d.cfg.Deploy
	spec := release.DeploySpec{
		Repo: c.Repo, Dir: d.cfg.Dir(), Branch: c.Branch, Overlays: overlays,
		Pin: kustomize.Mode(c.Pin), ImageUpdater: c.Mode == config.ModeImageUpdater,
	}
	if c.Author != "" {
		spec.Author.Name, spec.Author.Email, _ = config.ParseAuthor(c.Author)
	}
	spec.Stall, spec.Events = stallTimeout(), d.events
	dep, err := release.ResolveDeploy(ctx, spec)
	if errors.Is(err, release.ErrNoOrigin) {
		return dep, &config.Error{File: d.cfg.File, Key: "deploy.repo", Msg: err.Error(), Err: err}
	}
	return dep, err
}

// env finds an environment by name ("" is the first), for --env.
func (d *deps) env(name, flag string) (config.Environment, error) {
	envs := d.cfg.Envs()
	if len(envs) == 0 {
		return config.Environment{}, usagef("no deploy.environments (or deploy.overlays) in %s: there are no pins to move", d.cfg.File)
	}
	if name == "" {
		return envs[0], nil
	}
	e, ok := d.cfg.Env(name)
	if !ok {
		return e, usagef("%s %s: no such environment in %s (environments: %s)", flag, name, d.cfg.File, strings.Join(d.cfg.EnvNames(), ", "))
	}
	return e, nil
}

// updaterMode reports whether Argo CD Image Updater writes the pins.
func (d *deps) updaterMode() bool { return d.cfg.Deploy.Mode == config.ModeImageUpdater }

// deployEnv is the deploy target of one environment.
func (d *deps) deployEnv(ctx context.Context, e config.Environment) (release.Deploy, error) {
	dep, err := d.deploy(ctx, e.Overlays)
	dep.Env = e.Name
	return dep, err
}

// tagPrefix is tag.prefix expanded over the environment.
func (d *deps) tagPrefix() (string, error) {
	p, err := tag.ExpandPrefix(d.cfg.Tag.Prefix, os.Environ())
	if err != nil {
		return "", &config.Error{File: d.cfg.File, Key: "tag.prefix", Msg: err.Error()}
	}
	return p, nil
}

// readHead reads the commit that shipit.yaml's repository has checked out.
func (d *deps) readHead(ctx context.Context) (gitinfo.Head, error) {
	h, err := gitinfo.Read(ctx, d.cfg.Dir(), config.StateDir)
	if errors.Is(err, gitinfo.ErrNotRepository) {
		return h, &usageError{err}
	}
	return h, err
}

// releaseTag is the tag for HEAD, or the validated --tag override, and
// the time images are stamped with (SOURCE_DATE_EPOCH, created): the tag's.
func (d *deps) releaseTag(h gitinfo.Head, override string) (string, time.Time, error) {
	if override != "" {
		if err := tag.Validate(override); err != nil {
			return "", time.Time{}, usagef("--tag: %v", err)
		}
		return override, h.Time, nil
	}
	prefix, err := d.tagPrefix()
	if err != nil {
		return "", time.Time{}, err
	}
	t, err := tag.New(prefix, tag.Commit{SHA: h.SHA, Time: h.Time, Ancestors: h.Ancestors, Dirty: h.Dirty})
	if err != nil {
		if errors.Is(err, tag.ErrClockSkew) {
			return "", time.Time{}, err
		}
		return "", time.Time{}, &config.Error{File: d.cfg.File, Key: "tag.prefix", Msg: err.Error()}
	}
	return t.String(), t.Time, nil
}

// buildPlan turns the configured images into what build builds.
func (d *deps) buildPlan(names []string, head gitinfo.Head, t string, stamp time.Time, push, noCache bool) build.Plan {
	cfg := d.cfg
	p := build.Plan{
		StateDir: cfg.StatePath(), Head: head, Tag: t, Time: stamp, Push: push, NoCache: noCache,
	}
	switch cfg.Cache.Export {
	case config.CacheRegistry:
		p.Cache.Registry = true
	case config.CacheLocal:
		p.Cache.LocalDir = filepath.Join(cfg.StatePath(), "cache")
	}
	for _, n := range names {
		im := cfg.Images[n]
		repo := cfg.RepositoryFor(n)
		host, _, _ := strings.Cut(repo, "/")
		plats := im.Platforms
		if len(plats) == 0 {
			plats = cfg.Platforms // the top level's apply to every image without its own
		}
		spec := build.Spec{
			Name: n, Repository: repo, Context: cfg.Abs(im.Context),
			Dockerfile: filepath.Join(cfg.Abs(im.Context), im.Dockerfile), Target: im.Target, Args: im.Args, Platforms: plats,
			Insecure: d.registry.Policy.PlainHTTP(host),
		}
		a := cfg.AttestFor(n) // the image's, the top level's, or the older provenance key
		spec.Attest = build.Attest{Provenance: a.Provenance, SBOM: a.SBOM, SBOMGenerator: a.SBOMGenerator}
		for _, s := range im.Secrets {
			sec := build.Secret{ID: s.ID, Env: s.Env}
			if s.Src != "" {
				sec.File = cfg.SecretPath(s)
			}
			spec.Secrets = append(spec.Secrets, sec)
		}
		for _, s := range im.SSH {
			id, paths, _ := strings.Cut(s, "=")
			var ps []string
			if paths != "" {
				for _, p := range strings.Split(paths, ",") {
					ps = append(ps, cfg.Abs(p))
				}
			}
			spec.SSH = append(spec.SSH, build.SSH{ID: id, Paths: ps})
		}
		p.Images = append(p.Images, spec)
	}
	return p
}

// ensureRepositories checks (and, with registry.create_repositories,
// creates) the ECR repositories images go to.
func (d *deps) ensureRepositories(ctx context.Context, repos []string) error {
	created, err := ecr.Ensure(ctx, repos, d.cfg.Registry.CreateRepositories, build.CacheTag)
	for _, r := range created {
		progress.Infof(d.events, "created ECR repository %s", r)
	}
	return err
}

// overlaySelection narrows the deploy target to the --overlay ones.
func (d *deps) overlaySelection(dep *release.Deploy, overlays []string) error {
	if len(overlays) == 0 {
		return nil
	}
	var sel []string
	for _, ov := range overlays {
		i := slices.Index(dep.Overlays, filepath.Clean(ov))
		if i < 0 {
			return usagef("--overlay %s is not one of the overlays of %s (%s)", ov, dep.Env, strings.Join(dep.Overlays, ", "))
		}
		sel = append(sel, dep.Overlays[i])
	}
	dep.Overlays = sel
	return nil
}

// checkState refuses a state directory (.shipit) that git tracks, that is
// a symbolic link, or that holds one: its content must come from builds
// on this machine, and nothing may lead shipit's writes out of it.
func (d *deps) checkState(ctx context.Context, dir string) error {
	if err := build.CheckState(dir); err != nil {
		return err
	}
	files, err := gitinfo.Tracked(ctx, filepath.Dir(dir), filepath.Base(dir))
	if err != nil {
		return err
	}
	if len(files) > 0 {
		return &build.TrackedStateError{Dir: dir, Files: files}
	}
	return nil
}

// dialing is the BuildKit connections being made in the background, so
// that they overlap reading git; Close releases them however the command
// ends. With builder.nodes there is one per node.
type dialing struct {
	cancel context.CancelFunc
	done   chan struct{}
	nodes  []*nodeConn // builder.nodes; or the one daemon of builder.addr
	multi  bool
}

// nodeConn is one daemon being reached.
type nodeConn struct {
	cfg  config.Node
	c    *client.Client
	info *client.Info
	// platforms are the workers' platforms: the native one first, then
	// those it emulates.
	platforms []string
	err       error
}

// dialBuilder starts connecting to BuildKit: builder.addr, or every node
// of builder.nodes at once.
func (d *deps) dialBuilder(ctx context.Context) *dialing {
	ctx, cancel := context.WithCancel(ctx)
	dl := &dialing{cancel: cancel, done: make(chan struct{}), multi: len(d.cfg.Builder.Nodes) > 0}
	if dl.multi {
		for _, n := range d.cfg.Builder.Nodes {
			dl.nodes = append(dl.nodes, &nodeConn{cfg: n})
		}
	} else {
		b := d.cfg.Builder
		dl.nodes = []*nodeConn{{cfg: config.Node{Name: "default", Addr: b.Addr, TLS: b.TLS, Insecure: b.Insecure}}}
	}
	go func() {
		defer close(dl.done)
		var wg sync.WaitGroup
		for _, n := range dl.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.c, n.info, n.platforms, n.err = connectBuilder(ctx, d.cfg, n.cfg, dl.multi)
			}()
		}
		wg.Wait()
	}()
	return dl
}

// Client waits for the connection to builder.addr.
func (dl *dialing) Client() (*client.Client, error) {
	<-dl.done
	return dl.nodes[0].c, dl.nodes[0].err
}

// Nodes waits for every node and returns the reachable ones; each
// unreachable one is a warning naming it. None reachable is an error.
func (dl *dialing) Nodes(events progress.Sink) ([]*build.Node, error) {
	<-dl.done
	var out []*build.Node
	var errs []error
	for _, n := range dl.nodes {
		if n.err != nil {
			progress.Warnf(events, "builder node %s is unreachable, skipped (its images go to the next node): %v", n.cfg.NodeName(), n.err)
			errs = append(errs, n.err)
			continue
		}
		bn := &build.Node{Name: n.cfg.NodeName(), Addr: n.cfg.Addr, Solver: n.c, Native: n.cfg.Platforms, Emulated: beyond(n.cfg.Platforms, n.platforms)}
		out = append(out, bn)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no builder node is reachable: %w", errors.Join(errs...))
	}
	return out, nil
}

// Identity names the daemons reached, their BuildKit versions and
// platforms, for the build's inputs (an image is kept from the last build
// only when the same daemons would build it); "" when one did not say
// them.
func (dl *dialing) Identity() string {
	<-dl.done
	var parts []string
	for _, n := range dl.nodes {
		if n.err != nil {
			continue
		}
		if n.info == nil || n.info.BuildkitVersion.Version == "" || len(n.platforms) == 0 {
			return ""
		}
		// The platforms too: an image with none is built for the
		// daemon's own, which the same address may not always have.
		parts = append(parts, n.cfg.NodeName()+"="+n.cfg.Addr+"@"+n.info.BuildkitVersion.Version+"+"+n.info.BuildkitVersion.Revision+"["+strings.Join(n.platforms, ",")+"]")
	}
	return strings.Join(parts, ",")
}

// Close ends the connections, or their making.
func (dl *dialing) Close() {
	dl.cancel()
	<-dl.done
	for _, n := range dl.nodes {
		if n.c != nil {
			_ = n.c.Close()
		}
	}
}

// daemonAddr is an address buildkitd itself can listen on: the one asked
// for when it is a socket or tcp://, else the default socket (a
// docker-container:// or kube-pod:// address is no place to start one).
func daemonAddr(addr string) string {
	if strings.HasPrefix(addr, "unix://") || strings.HasPrefix(addr, "tcp://") {
		return addr
	}
	return "unix:///run/buildkit/buildkitd.sock"
}

// connectBuilder connects to one BuildKit daemon and checks that it
// answers, so that an unreachable daemon fails in seconds with what to do;
// it returns its workers' platforms.
func connectBuilder(ctx context.Context, cfg *config.Config, n config.Node, multi bool) (*client.Client, *client.Info, []string, error) {
	addr := n.Addr
	hint := fmt.Sprintf("shipit builds on a BuildKit daemon. With Docker Desktop or Docker Engine: `docker buildx create --name shipit --driver docker-container --bootstrap`, then BUILDKIT_HOST=docker-container://buildx_buildkit_shipit0. On Kubernetes: a buildkitd Deployment, reached with BUILDKIT_HOST=kube-pod://<pod>?namespace=<ns> or tcp:// with TLS. On Linux as root: `buildkitd --addr %s`. Or set builder.addr in %s, or --builder", daemonAddr(addr), config.FileName)
	if multi {
		hint = "check builder.nodes in " + config.FileName
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, nil, nil, fmt.Errorf("cannot reach BuildKit at %s: the socket does not exist; %s", addr, hint)
		}
	}
	var opts []client.ClientOpt
	if t := n.TLS; t.CA != "" || t.Cert != "" {
		if t.CA != "" {
			opts = append(opts, client.WithServerConfig(t.ServerName, cfg.Abs(t.CA)))
		} else {
			opts = append(opts, client.WithServerConfigSystem(t.ServerName))
		}
		if t.Cert != "" {
			opts = append(opts, client.WithCredentials(cfg.Abs(t.Cert), cfg.Abs(t.Key)))
		}
	}
	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot reach BuildKit at %s: %w; %s", addr, err, hint)
	}
	pctx, cancel := context.WithTimeout(ctx, builderTimeout)
	defer cancel()
	info, err := c.Info(pctx)
	var plats []string
	if err == nil && multi {
		plats, err = workerPlatforms(pctx, c)
	} else if err == nil {
		// For the build's inputs (Identity) only: a daemon that does not
		// say keeps no image, and builds as before.
		plats, _ = workerPlatforms(pctx, c)
	}
	if err != nil {
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		return nil, nil, nil, fmt.Errorf("cannot reach BuildKit at %s: %w; %s", addr, err, hint)
	}
	return c, info, plats, nil
}

// beyond lists the platforms of plats whose OS and architecture are none
// of native's (linux/amd64/v2 is linux/amd64's, not emulated).
func beyond(native, plats []string) []string {
	arch := func(p string) string {
		pl, err := platforms.Parse(p)
		if err != nil {
			return p
		}
		return pl.OS + "/" + pl.Architecture
	}
	var out []string
	for _, p := range plats {
		if !slices.ContainsFunc(native, func(n string) bool { return arch(n) == arch(p) }) {
			out = append(out, p)
		}
	}
	return out
}

// workerPlatforms are a daemon's workers' platforms: its own first, then
// those it emulates.
func workerPlatforms(ctx context.Context, c *client.Client) ([]string, error) {
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, w := range ws {
		for _, p := range w.Platforms {
			if f := platforms.Format(p); !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// repositories maps each configured image to its repository.
func (d *deps) repositories() map[string]string {
	m := map[string]string{}
	for n := range d.cfg.Images {
		m[n] = d.cfg.RepositoryFor(n)
	}
	return m
}

// kustomizeNames are the configured images entry names, by image name.
func (d *deps) kustomizeNames() map[string]string {
	m := map[string]string{}
	for n, im := range d.cfg.Images {
		if im.KustomizeName != "" {
			m[n] = im.KustomizeName
		}
	}
	return m
}
