package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag",
		Short: "Print the release tag for HEAD",
		Long: `Print the release tag that shipit build gives HEAD's images:
[PREFIX]YYYYMMDD-HHMMSS-<sha7>, the time being HEAD's committer time in UTC.
Tags sort in commit order, so updaters that pick the alphabetically last tag
pick the newest release. A work tree with uncommitted changes gets -dirty,
and such a tag is never released.`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := g.resolve(cmd, nil, nil)
			if err != nil {
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
