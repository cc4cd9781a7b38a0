package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/regauth"
	"github.com/shipit-dev/shipit/release"
)

// pinImages selects images by name (all when names is empty).
func pinImages(cfg *config.Config, names []string) ([]release.PinImage, error) {
	all := cfg.ImageNames()
	if len(names) == 0 {
		names = all
	}
	var out []release.PinImage
	for _, n := range dedupe(names) {
		if _, ok := cfg.Images[n]; !ok {
			return nil, usagef("no image %q in %s (images: %s)", n, cfg.File, strings.Join(all, ", "))
		}
		out = append(out, release.PinImage{Name: n, Repository: cfg.RepositoryFor(n), KustomizeName: cfg.Images[n].KustomizeName})
	}
	return out, nil
}

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
			cfg, err := loadConfig(cmd, g, nil)
			if err != nil {
				return err
			}
			imgs, err := pinImages(cfg, args)
			if err != nil {
				return err
			}
			reg := &release.Remote{Keychain: regauth.NewKeychain(cmd.ErrOrStderr())}
			var overlays []release.OverlayState
			if len(cfg.Deploy.Overlays) > 0 {
				d, err := deployTarget(ctx, cfg)
				if err != nil {
					return err
				}
				if overlays, err = release.ReadOverlays(ctx, d, imgs, ""); err != nil {
					return err
				}
			}
			hist, err := release.History(ctx, reg, imgs, overlays, limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				return writeJSON(out, hist)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tTAG\tCOMMIT\tTIME (UTC)\tDIGEST\tPINNED IN\tNOTE")
			for _, e := range hist {
				var notes []string
				if e.RollbackTo != "" {
					notes = append(notes, "rollback to "+e.RollbackTo)
				}
				if len(e.SameDigest) > 0 {
					notes = append(notes, "same digest as "+strings.Join(e.SameDigest, ", "))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Image, e.Tag, e.Commit, e.Time.Format("2006-01-02 15:04:05"),
					short(e.Digest), dash(strings.Join(e.PinnedIn, ",")), strings.Join(notes, "; "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many tags per image (0: all)")
	return cmd
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
			ctx := cmd.Context()
			cfg, err := loadConfig(cmd, g, nil)
			if err != nil {
				return err
			}
			if len(cfg.Deploy.Overlays) == 0 {
				return usagef("no deploy.overlays in %s: nothing pins the images", cfg.File)
			}
			imgs, err := pinImages(cfg, nil)
			if err != nil {
				return err
			}
			d, err := deployTarget(ctx, cfg)
			if err != nil {
				return err
			}
			overlays, err := release.ReadOverlays(ctx, d, imgs, "")
			if err != nil {
				return err
			}
			prefix, err := expandPrefix(cfg, os.Environ())
			if err != nil {
				return err
			}
			reg := &release.Remote{Keychain: regauth.NewKeychain(cmd.ErrOrStderr())}
			st, err := release.Status(ctx, reg, imgs, overlays, prefix, d.ImageUpdater)
			if err != nil {
				return err
			}
			// Report overlays by the paths the user configured.
			for i := range st {
				for j, ov := range d.Overlays {
					if st[i].Overlay == ov {
						st[i].Overlay = cfg.Deploy.Overlays[j]
					}
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				return writeJSON(out, st)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			head := "OVERLAY\tIMAGE\tPINNED\tNEWEST\tSTATE"
			if d.ImageUpdater {
				head += "\tUPDATER PICKS"
			}
			fmt.Fprintln(tw, head)
			for _, e := range st {
				state := e.State
				if e.Hold != nil {
					state += fmt.Sprintf(" (hold at %s until %s)", e.Hold.Pinned, e.Hold.Until)
				}
				line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", e.Overlay, e.Image, dash(e.PinnedTag), dash(e.Newest), state)
				if d.ImageUpdater {
					line += "\t" + dash(e.UpdaterPick)
				}
				fmt.Fprintln(tw, line)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

func newUpdaterConfigCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "updater-config",
		Short: "Print the Argo CD Image Updater configuration that matches shipit's tags",
		Long: `Print the Argo CD Image Updater configuration for deploy.mode: image-updater:
the v1 ImageUpdater resource and the v0.x Application annotations, with
strategy alphabetical, an anchored allow-tags regexp for shipit's release
tags (with tag.prefix), each image's kustomize name, and git write-back to
the first deploy overlay's kustomization.`,
		Example: `  shipit updater-config --app shop-production | kubectl apply -f -`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, g, nil)
			if err != nil {
				return err
			}
			if len(cfg.Deploy.Overlays) == 0 {
				return usagef("no deploy.overlays in %s: the updater needs a kustomization to write to", cfg.File)
			}
			prefix, err := expandPrefix(cfg, os.Environ())
			if err != nil {
				return err
			}
			if app == "" {
				app = strings.TrimSuffix(strings.ReplaceAll(strings.Trim(cfg.Deploy.Overlays[0], "/"), "/", "-"), "-")
			}
			var imgs []release.UpdaterImage
			for _, n := range cfg.ImageNames() {
				kn := cfg.Images[n].KustomizeName
				if kn == "" {
					kn = n
				}
				imgs = append(imgs, release.UpdaterImage{Alias: n, Repository: cfg.RepositoryFor(n), KustomizeName: kn})
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), release.UpdaterConfig(app, cfg.Deploy.Overlays[0], cfg.Deploy.Branch, prefix, imgs))
			return err
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the Argo CD Application's name (default: from the overlay's path)")
	return cmd
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
