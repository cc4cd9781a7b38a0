package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/release"
)

func newHistoryCmd(g *globals) *cobra.Command {
	var output string
	var limit int
	cmd := &cobra.Command{
		Use:   "history [IMAGE...]",
		Short: "List the release tags in the registry, newest first, and where each is pinned",
		Long: `List each image's release tags in the registry, newest first: tag, commit,
commit time, digest, the overlays that pin it. A tag that shipit pin made in
Image Updater mode (a newer tag on an older release's digest) is marked as a
rollback to that release; several tags on one digest are shown as such.`,
		GroupID: "main",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			d, imgs, overlays, err := g.pinState(cmd, args, false)
			if err != nil {
				return err
			}
			hist, err := release.History(ctx, d.registry, imgs, overlays, limit)
			if err != nil {
				return err
			}
			return printHistory(cmd.OutOrStdout(), output, hist)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many tags per image (0: all)")
	return cmd
}

func printHistory(out io.Writer, format string, hist []release.HistoryEntry) error {
	if format == "json" {
		return writeJSON(out, hist)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTAG\tCOMMIT\tTIME (UTC)\tDIGEST\tPINNED IN\tNOTE")
	for _, e := range hist {
		var notes []string
		if e.RollbackTo != "" {
			notes = append(notes, "rollback to "+e.RollbackTo)
		}
		if n := len(e.SameDigest); n > 0 {
			same := e.SameDigest[:min(n, 3)]
			note := "same digest as " + strings.Join(same, ", ")
			if n > 3 {
				note += fmt.Sprintf(" +%d more", n-3)
			}
			notes = append(notes, note)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Image, e.Tag, e.Commit, e.Time.Format("2006-01-02 15:04:05"),
			short(e.Digest), dash(strings.Join(e.PinnedIn, ",")), strings.Join(notes, "; "))
	}
	return tw.Flush()
}

// pinState is the preamble of history and status: the configuration, the
// selected images, and what the deploy overlays pin (none when there are
// no overlays, unless required).
func (g *globals) pinState(cmd *cobra.Command, names []string, required bool) (*deps, []release.PinImage, []release.OverlayState, error) {
	d, err := g.resolve(cmd, nil, newRenderer(cmd.ErrOrStderr(), progressPlain, g.verbose, g.start))
	if err != nil {
		return nil, nil, nil, err
	}
	all := d.cfg.AllOverlays()
	if len(all) == 0 && required {
		return nil, nil, nil, usagef("no deploy.environments (or deploy.overlays) in %s: nothing pins the images", d.cfg.File)
	}
	imgs, err := d.pinImages(names)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(all) == 0 {
		return d, imgs, nil, nil
	}
	dep, err := d.deploy(cmd.Context(), all)
	if err != nil {
		return nil, nil, nil, err
	}
	overlays, err := release.ReadOverlays(cmd.Context(), dep, imgs)
	// Each overlay belongs to an environment: status groups by it.
	for i := range overlays {
		for _, e := range d.cfg.Envs() {
			if slices.Contains(e.Overlays, overlays[i].Path) && overlays[i].Env == "" {
				overlays[i].Env = e.Name
			}
		}
	}
	return d, imgs, overlays, err
}
