package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/config"
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
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what each overlay pins, and whether it is current, behind or held",
		Long: `For each overlay and image: the pinned tag and reference, the newest release
tag in the registry, and the state: current, behind (a newer release
exists), held (rolled back by shipit pin; see .shipit-hold.yaml), unpinned,
or unknown (the pin is not a release tag). With deploy.mode: image-updater
it also shows the tag Argo CD Image Updater's alphabetical strategy will
pick, computed with the updater's own tag sort.`,
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
			return printStatus(cmd.OutOrStdout(), output, st, updater)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

func printStatus(out io.Writer, format string, st []release.StatusEntry, updater bool) error {
	if format == "json" {
		return writeJSON(out, st)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	head := "OVERLAY\tIMAGE\tPINNED\tNEWEST\tSTATE"
	if updater {
		head += "\tUPDATER PICKS"
	}
	fmt.Fprintln(tw, head)
	for _, e := range st {
		state := e.State
		if e.Hold != nil {
			state += fmt.Sprintf(" (hold at %s until %s)", e.Hold.Pinned, e.Hold.Until)
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", e.Overlay, e.Image, dash(e.PinnedTag), dash(e.Newest), state)
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
