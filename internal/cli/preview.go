package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shipit-dev/shipit/internal/argocd"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/release"
	"github.com/shipit-dev/shipit/release/preview"
)

func newPreviewCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "Per-pull-request environments: one overlay folder each, in the GitOps repository",
		Long: `A preview is one more folder in the GitOps repository, <deploy.previews.dir>/<NAME>/,
that an Argo CD ApplicationSet (git directory generator) turns into an
Application: the environment deploy.previews.from, in a namespace of its
own, running one build's exact digests, with every Ingress host made the
preview's. shipit init writes the ApplicationSet and a workflow that runs
these commands from pull request comments and events.

Build pull requests with a tag prefix (SHIPIT_TAG_PREFIX=pr-42-), so that
the Image Updater's newest-tag rule and prune tell them from release tags.`,
		Example: `  SHIPIT_TAG_PREFIX=pr-42- shipit build && shipit preview up pr-42 --wait
  shipit preview list
  shipit preview down pr-42
  shipit preview gc --keep pr-41,pr-42`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPreviewUpCmd(g), newPreviewDownCmd(g), newPreviewListCmd(g), newPreviewGCCmd(g))
	return cmd
}

// previewWait is --wait (and the kubeconfig flags) of preview up and down.
type previewWait struct{ waitOptions }

func (w *previewWait) flags(f *pflag.FlagSet, what string) {
	f.DurationVar(&w.wait, "wait", 0, what+" (up to this long; 10m when given alone); needs deploy.previews.argocd")
	f.Lookup("wait").NoOptDefVal = DefaultWait.String()
	f.StringVar(&w.kubeconfig, "kubeconfig", "", "kubeconfig for the cluster Argo CD runs in (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringVar(&w.context, "context", "", "the kubeconfig context to use")
}

func (w *previewWait) check(p *config.Previews) error {
	if w.wait < 0 {
		return usagef("--wait %s: write a positive duration such as 10m", w.wait)
	}
	if w.wait > 0 && p.ArgoCD == nil {
		return usagef("--wait: deploy.previews has no argocd (application, applicationset), so there is nothing to wait for: name the ApplicationSet that makes the previews' Applications")
	}
	return nil
}

// previews resolves deploy.previews for the command, a preview name given
// as an argument (checked first), and where previews are written: the deploy
// repository, with the source environment's overlays.
func (d *deps) previews(ctx context.Context, name string) (*config.Previews, release.Deploy, error) {
	p := d.cfg.Deploy.Previews
	if p == nil {
		return nil, release.Deploy{}, usagef("no deploy.previews in %s: configure previews first (see `shipit preview --help` and the README)", d.cfg.File)
	}
	if name != "" {
		if !config.PreviewName.MatchString(name) {
			return nil, release.Deploy{}, usagef("%q is not a preview name: use a DNS label of at most 40 characters (lower-case letters, digits and '-', starting and ending with a letter or digit), such as pr-42", name)
		}
		if _, ok := d.cfg.Env(name); ok {
			return nil, release.Deploy{}, usagef("%q is an environment's name: a preview needs a name of its own, such as pr-42", name)
		}
	}
	from, _ := d.cfg.Env(p.From)
	dep, err := d.deployEnv(ctx, from)
	return p, dep, err
}

func previewValue(tmpl, key, name string) (string, error) {
	v, err := config.PreviewValue(tmpl, name)
	if err != nil {
		return "", usagef("deploy.previews.%s: %v", key, err)
	}
	return v, nil
}

// previewUpOptions are preview up's flags.
type previewUpOptions struct {
	record   string
	output   string
	progress string
	dryRun   bool
	wait     previewWait
}

func newPreviewUpCmd(g *globals) *cobra.Command {
	o := &previewUpOptions{}
	cmd := &cobra.Command{
		Use:   "up NAME",
		Short: "Push this build and write the preview NAME: one commit",
		Long: `Push what shipit build built for HEAD (as release does), then write
<deploy.previews.dir>/NAME/kustomization.yaml in the GitOps repository: it
builds on the first overlay of deploy.previews.from, sets the namespace,
pins every image by tag and digest on top of that overlay's own pins,
and rewrites every Ingress host and TLS host to deploy.previews.host. One
commit, pushed with release's fetch, re-plan and retry.

A preview already running a newer build stays (exit 0); an unchanged one
makes no commit. Past deploy.previews.max, a new preview is refused (exit 1)
with the existing ones named. --wait asks the ApplicationSet to refresh and
waits until the preview's Application is Synced to the commit and Healthy.

stdout: the preview's URL (or its namespace, without deploy.previews.host);
--output json: name, namespace, URL, images and commit.`,
		Example: `  shipit preview up pr-42 --wait --output json
  shipit preview up pr-42 --dry-run`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPreviewUp(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.record, "record", "", "build record to preview (default .shipit/build.json beside shipit.yaml)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the folder's diff; push and change nothing")
	f.StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	f.StringVar(&o.progress, "progress", "auto", "progress on stderr: auto, tty, plain, rawjson or quiet")
	o.wait.flags(f, "after the push, wait until the preview's Application is Synced to the commit and Healthy")
	return cmd
}

// runPreviewUp pushes the build and writes the preview name, waits for it
// when asked, and prints what happened.
func runPreviewUp(cmd *cobra.Command, g *globals, o *previewUpOptions, name string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	d, err := g.resolveShown(cmd, nil, o.output, o.progress)
	if err != nil {
		return err
	}
	p, dep, err := d.previews(ctx, name)
	if err != nil {
		return err
	}
	if err := o.wait.check(p); err != nil {
		return err
	}
	if d.updaterMode() {
		return usagef("shipit preview writes pins in git, and deploy.mode is image-updater: previews need deploy.mode: git")
	}
	spec, err := d.previewSpec(p, dep, name)
	if err != nil {
		return err
	}
	rec, recPath, err := d.readRecord(ctx, o.record)
	if err != nil {
		return err
	}
	signer, err := d.releaseSigner()
	if err != nil {
		return err // before anything is pushed
	}
	if !o.dryRun {
		if err := d.ensureRepositories(ctx, rec.Repositories()); err != nil {
			return err
		}
	}
	res, err := preview.Up(ctx, preview.UpOptions{
		Options: release.Options{Record: rec, RecordDir: filepath.Dir(recPath), Registry: d.registry, Deploy: dep,
			DryRun: o.dryRun, Events: d.events, KustomizeNames: d.kustomizeNames(), Signer: signer},
		Name: name, Spec: spec,
	})
	if err != nil {
		return err
	}
	var werr error
	if o.wait.wait > 0 && res.Changed && !o.dryRun {
		werr = waitPreview(ctx, &o.wait, d, dep, p, name, res.Revision, true)
	}
	if err := printPreviewUp(cmd.OutOrStdout(), stderr, o, name, res); err != nil {
		return err
	}
	return werr
}

// printPreviewUp prints preview up's result: JSON with the wait's report,
// or the images and the commit on stderr and the preview's URL (or its
// namespace) on stdout; a dry run prints the diff instead.
func printPreviewUp(out, stderr io.Writer, o *previewUpOptions, name string, res *preview.UpResult) error {
	if o.output == "json" {
		return writeJSON(out, struct {
			*preview.UpResult
			waitReport
		}{res, o.wait.report()})
	}
	for _, im := range res.Images {
		fmt.Fprintf(stderr, "shipit: %s: %s %s\n", im.Name, im.Action, im.Ref)
	}
	switch {
	case res.Kept != "":
		fmt.Fprintf(stderr, "shipit: %s: no commit\n", res.Kept)
	case o.dryRun && res.Diff != "":
		fmt.Fprintln(stderr, "shipit: dry run: this change would be committed:")
		fmt.Fprint(out, res.Diff)
		return nil
	case o.dryRun:
		fmt.Fprintln(stderr, "shipit: dry run: the preview would not change")
		return nil
	case res.Commit == "":
		fmt.Fprintf(stderr, "shipit: preview %s already runs %s: no commit\n", name, res.Tag)
	default:
		fmt.Fprintf(stderr, "shipit: preview %s: %s in %s (commit %.7s)\n", name, res.Tag, res.Namespace, res.Commit)
	}
	if res.URL != "" {
		fmt.Fprintln(out, res.URL)
	} else {
		fmt.Fprintln(out, res.Namespace)
	}
	return nil
}

// waitPreview waits for the preview's Application: made and healthy (up),
// or gone (down).
func waitPreview(ctx context.Context, w *previewWait, d *deps, dep release.Deploy, p *config.Previews, name, revision string, up bool) error {
	client, err := w.connect(dep, nil)
	if err != nil {
		return err
	}
	client.Platforms = imagePlatforms(d.registry)
	app, err := previewValue(p.ArgoCD.Application, "argocd.application", name)
	if err != nil {
		return err
	}
	ns, set := p.ArgoCD.Namespace, p.ArgoCD.ApplicationSet
	if up {
		progress.Infof(d.events, "waiting up to %s for %s to be Synced to %.7s and Healthy", w.wait, app, revision)
		w.states, err = client.WaitCreated(ctx, ns, set, app, revision, w.wait, d.events)
		return err
	}
	progress.Infof(d.events, "waiting up to %s for %s to be gone", w.wait, app)
	return client.WaitDeleted(ctx, ns, set, app, w.wait, d.events)
}

func newPreviewDownCmd(g *globals) *cobra.Command {
	var dryRun bool
	var output string
	w := &previewWait{}
	cmd := &cobra.Command{
		Use:   "down NAME",
		Short: "Remove the preview NAME's folder: one commit",
		Long: `Remove <deploy.previews.dir>/NAME/ from the GitOps repository in one commit.
The ApplicationSet then deletes the preview's Application, and with it what
it ran. A preview that is not there is success with no commit: a
pull-request-closed event can fire twice. --wait waits until the
Application is gone.`,
		Example: `  shipit preview down pr-42 --wait`,
		Args:    argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			d, err := g.resolve(cmd, nil, nil)
			if err != nil {
				return err
			}
			p, dep, err := d.previews(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := w.check(p); err != nil {
				return err
			}
			return removePreviews(cmd, d, p, dep, []string{args[0]}, dryRun, output, w)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the diff; change nothing")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	w.flags(cmd.Flags(), "after the push, wait until the preview's Application is gone")
	return cmd
}

// removePreviews is preview down and gc: one commit, then (down --wait)
// the wait for each Application to go.
func removePreviews(cmd *cobra.Command, d *deps, p *config.Previews, dep release.Deploy, names []string, dryRun bool, output string, w *previewWait) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	res, err := preview.Down(ctx, dep, p.Dir, names, dryRun, d.events)
	if err != nil {
		return err
	}
	var werr error
	if w != nil && w.wait > 0 && !dryRun {
		for _, n := range names {
			if werr = waitPreview(ctx, w, d, dep, p, n, "", false); werr != nil {
				break
			}
		}
	}
	if output == "json" {
		if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
		return werr
	}
	removed := strings.Join(res.Removed, ", ")
	printChange(cmd.OutOrStdout(), stderr, res.Change, changeText{
		would:      "would remove " + removed + "; this change would be committed",
		nothingDry: "nothing to remove",
		nothing:    "nothing to remove",
		done:       "removed " + removed,
	})
	return werr
}

// previewState is one preview as list shows it.
type previewState struct {
	preview.Preview
	Age         string      `json:"age"`
	Application *argocd.App `json:"application,omitempty"`
}

func newPreviewListCmd(g *globals) *cobra.Command {
	var output string
	w := &previewWait{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the previews: name, images, age, URL, and Argo CD's sync and health",
		Long: `List the previews at the head of the deploy branch: name, namespace, images
and tags, age (from git: when its folder last changed) and URL. With
deploy.previews.argocd and a reachable cluster, each Application's sync and
health too.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := checkOutput(output); err != nil {
				return err
			}
			d, err := g.resolve(cmd, nil, nil)
			if err != nil {
				return err
			}
			p, dep, err := d.previews(ctx, "")
			if err != nil {
				return err
			}
			ps, err := preview.List(ctx, dep, p.Dir)
			if err != nil {
				return err
			}
			now := time.Now()
			states := make([]previewState, 0, len(ps))
			var client *argocd.Client
			if p.ArgoCD != nil && len(ps) > 0 {
				if client, err = w.connect(dep, nil); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "shipit: no Argo CD states: %v\n", err)
				}
			}
			for _, pr := range ps {
				s := previewState{Preview: pr, Age: pr.Age(now)}
				if client != nil {
					if app, err := previewValue(p.ArgoCD.Application, "argocd.application", pr.Name); err == nil {
						if a, err := client.Get(ctx, p.ArgoCD.Namespace, app); err == nil {
							s.Application = &a
						}
					}
				}
				states = append(states, s)
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), states)
			}
			return printPreviews(cmd.OutOrStdout(), states)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	cmd.Flags().StringVar(&w.kubeconfig, "kubeconfig", "", "kubeconfig for the cluster Argo CD runs in")
	cmd.Flags().StringVar(&w.context, "context", "", "the kubeconfig context to use")
	return cmd
}

func printPreviews(out io.Writer, states []previewState) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNAMESPACE\tAGE\tURL\tSYNC\tHEALTH\tIMAGES")
	for _, s := range states {
		sync, health := "-", "-"
		if a := s.Application; a != nil {
			sync, health = argocd.OrUnknown(a.Sync), argocd.OrUnknown(a.Health)
		}
		url := s.URL
		if url == "" {
			url = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Namespace, s.Age, url, sync, health, strings.Join(s.Images, " "))
	}
	return tw.Flush()
}

// previewGCOptions are preview gc's flags.
type previewGCOptions struct {
	keep      []string
	olderThan time.Duration
	dryRun    bool
	output    string
}

func newPreviewGCCmd(g *globals) *cobra.Command {
	o := &previewGCOptions{}
	cmd := &cobra.Command{
		Use:   "gc (--keep NAME,... | --older-than DURATION)",
		Short: "Remove, in one commit, every preview not kept, or not updated within DURATION",
		Long: `Remove previews in one commit: with --keep, every preview not named (the
open pull requests; --keep "" removes them all); with --older-than, every
preview whose folder has not changed within DURATION. One of the two is
required. --dry-run lists what would go and changes nothing.`,
		Example: `  shipit preview gc --keep pr-41,pr-42
  shipit preview gc --older-than 168h --dry-run`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPreviewGC(cmd, g, o)
		},
	}
	cmd.Flags().StringSliceVar(&o.keep, "keep", nil, "the previews to keep, comma-separated; every other one goes")
	cmd.Flags().DurationVar(&o.olderThan, "older-than", 0, "remove the previews not updated within this long (e.g. 168h)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "list what would be removed; change nothing")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

// runPreviewGC removes, in one commit, the previews --keep does not name
// or that --older-than finds stale; a dry run lists them.
func runPreviewGC(cmd *cobra.Command, g *globals, o *previewGCOptions) error {
	ctx := cmd.Context()
	keeping, aging := cmd.Flags().Changed("keep"), cmd.Flags().Changed("older-than")
	if keeping == aging {
		return usagef("preview gc needs one of --keep NAME,... (the previews to keep) or --older-than DURATION")
	}
	if aging && o.olderThan <= 0 {
		return usagef("--older-than %s: write a positive duration such as 168h", o.olderThan)
	}
	if err := checkOutput(o.output); err != nil {
		return err
	}
	d, err := g.resolve(cmd, nil, nil)
	if err != nil {
		return err
	}
	p, dep, err := d.previews(ctx, "")
	if err != nil {
		return err
	}
	for _, k := range o.keep {
		if k != "" && !config.PreviewName.MatchString(k) {
			return usagef("--keep: %q is not a preview name", k)
		}
	}
	ps, err := preview.List(ctx, dep, p.Dir)
	if err != nil {
		return err
	}
	gone := o.gone(ps, aging)
	if len(gone) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "shipit: no preview to remove")
		if o.output == "json" {
			return writeJSON(cmd.OutOrStdout(), preview.DownResult{Removed: []string{}, Change: gitops.Change{DryRun: o.dryRun}})
		}
		return nil
	}
	if o.dryRun && o.output != "json" {
		for _, n := range gone {
			fmt.Fprintln(cmd.OutOrStdout(), n)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "shipit: dry run: would remove %d preview(s); nothing changed\n", len(gone))
		return nil
	}
	return removePreviews(cmd, d, p, dep, gone, o.dryRun, o.output, nil)
}

// gone names the previews of ps that gc removes: those not updated within
// --older-than (aging), else those --keep does not name.
func (o *previewGCOptions) gone(ps []preview.Preview, aging bool) []string {
	if aging {
		return preview.OlderThan(ps, o.olderThan, time.Now())
	}
	var gone []string
	for _, pr := range ps {
		if !slices.Contains(o.keep, pr.Name) {
			gone = append(gone, pr.Name)
		}
	}
	return gone
}
