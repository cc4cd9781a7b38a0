package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/argocd"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/release"
)

// checkOutput validates --output.
func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return usagef("--output %q: use text or json", output)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newStatusCmd(g *globals) *cobra.Command {
	var output string
	var cluster bool
	var kube waitOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what each overlay pins, and whether it is current, behind or held",
		Long: `For each overlay and image: the pinned tag and reference, the newest release
tag in the registry, and the state: current, behind (a newer release
exists), held (rolled back by shipit pin; see .shipit-hold.yaml), unpinned,
or unknown (the pin is not a release tag). With deploy.mode: image-updater
it also shows the tag Argo CD Image Updater's alphabetical strategy will
pick, computed with the updater's own tag sort, and warns of a pin that
holds a digest: the updater writes tags only, and drops it.

Rows are grouped by environment. For environments with argocd.applications,
each Application's sync and health state is shown too when the cluster is
reachable (--cluster=false skips it).`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			d, imgs, overlays, err := g.pinState(cmd, nil, true)
			if err != nil {
				return err
			}
			prefix, err := d.tagPrefix()
			if err != nil {
				return err
			}
			updater := d.cfg.Deploy.Mode == config.ModeImageUpdater
			st, err := release.Status(cmd.Context(), d.registry, imgs, overlays, prefix, updater)
			if err != nil {
				return err
			}
			if updater {
				warnDigests(d.events, st)
			}
			// Group the rows by environment, in promotion order.
			order := d.cfg.EnvNames()
			sort.SliceStable(st, func(i, j int) bool {
				return slices.Index(order, st[i].Environment) < slices.Index(order, st[j].Environment)
			})
			var apps []envApp
			if cluster {
				apps = liveApps(cmd.Context(), d, kube.kubeconfig, kube.context)
			}
			return printStatus(cmd.OutOrStdout(), output, st, apps, updater)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	cmd.Flags().BoolVar(&cluster, "cluster", true, "show the Argo CD Applications' live state (needs the cluster; false: skip)")
	cmd.Flags().StringVar(&kube.kubeconfig, "kubeconfig", "", "kubeconfig for the cluster Argo CD runs in")
	cmd.Flags().StringVar(&kube.context, "context", "", "the kubeconfig context to use")
	return cmd
}

// warnDigests warns of the pins that hold a digest in Image Updater mode:
// the updater writes tags only, and its next write drops the digest.
func warnDigests(events progress.Sink, st []release.StatusEntry) {
	for _, e := range st {
		if _, digest, ok := strings.Cut(e.PinnedRef, "@"); ok {
			progress.Warnf(events, "%s pins %s by digest %s: Argo CD Image Updater writes tags only, and its next write drops the digest (shipit's release tags never move, so the tag still names that image; to keep digest pins, use deploy.mode: git)", e.Overlay, e.Image, digest)
		}
	}
}

// envApp is an Application's live state, under its environment.
type envApp struct {
	Environment string `json:"environment"`
	argocd.App
	Error string `json:"error,omitempty"`
}

// liveApps reads the Applications of every environment that names some;
// an unreachable cluster is a warning, not a failure of status.
func liveApps(ctx context.Context, d *deps, kubeconfig, kubeContext string) []envApp {
	var out []envApp
	var client *argocd.Client
	for _, e := range d.cfg.Envs() {
		for _, a := range e.ArgoCD.Applications {
			if client == nil {
				c, err := argocd.Connect(kubeconfig, kubeContext)
				if err != nil {
					progress.Warnf(d.events, "no live state: %v", err)
					return nil
				}
				client = c
			}
			app, err := client.Get(ctx, e.ArgoCD.Namespace, a)
			ea := envApp{Environment: e.Name, App: app}
			if err != nil {
				ea.Error = err.Error()
			}
			out = append(out, ea)
		}
	}
	return out
}

func printStatus(out io.Writer, format string, st []release.StatusEntry, apps []envApp, updater bool) error {
	if format == "json" {
		// One row per overlay and image, as before; each carries its
		// environment's Applications when the cluster was read.
		type row struct {
			release.StatusEntry
			Applications []envApp `json:"applications,omitempty"`
		}
		rows := make([]row, len(st))
		for i, e := range st {
			rows[i].StatusEntry = e
			for _, a := range apps {
				if a.Environment == e.Environment {
					rows[i].Applications = append(rows[i].Applications, a)
				}
			}
		}
		return writeJSON(out, rows)
	}
	defer func() {
		if len(apps) == 0 {
			return
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nENVIRONMENT\tAPPLICATION\tSYNC\tREVISION\tHEALTH")
		for _, a := range apps {
			if a.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Environment, a.Name, a.Error)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Environment, a.Name, dash(a.Sync), short(a.Revision), dash(a.Health))
		}
		_ = tw.Flush()
	}()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	head := "ENVIRONMENT\tOVERLAY\tIMAGE\tPINNED\tNEWEST\tSTATE"
	if updater {
		head += "\tUPDATER PICKS"
	}
	fmt.Fprintln(tw, head)
	for _, e := range st {
		state := e.State
		if e.Hold != nil {
			state += fmt.Sprintf(" (hold at %s until %s)", e.Hold.Pinned, e.Hold.Until)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", dash(e.Environment), e.Overlay, e.Image, dash(e.PinnedTag), dash(e.Newest), state)
		if updater {
			line += "\t" + dash(e.UpdaterPick)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
