package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/config"
)

func newTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag",
		Short: "Print the release tag for HEAD",
		Long: `Print the release tag that shipit build gives HEAD's images:
[PREFIX]YYYYMMDD-HHMMSS-<sha7>, the time being HEAD's committer time in UTC.
Tags sort in commit order, so updaters that pick the alphabetically last tag
pick the newest release. A work tree with uncommitted changes gets -dirty,
and such a tag is never released. A commit made more than 10 minutes after
this machine's clock (a skewed clock) gets no tag: exit 2; the commits
after it are tagged by their own time. It works in any git repository,
with or without a shipit.yaml.`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := g.resolve(cmd, nil, nil)
			if errors.Is(err, config.ErrNotFound) && g.configFile == "" {
				// No shipit.yaml: the tag of the repository here, with
				// SHIPIT_TAG_PREFIX if set.
				wd, werr := os.Getwd()
				if werr != nil {
					return werr
				}
				d = &deps{cfg: &config.Config{File: filepath.Join(wd, config.FileName), Tag: config.Tag{Prefix: os.Getenv("SHIPIT_TAG_PREFIX")}}}
			} else if err != nil {
				return err
			}
			h, err := d.readHead(cmd.Context())
			if err != nil {
				return err
			}
			t, _, err := d.releaseTag(h, "")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t)
			return err
		},
	}
}
