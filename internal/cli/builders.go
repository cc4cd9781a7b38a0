package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// builderState is one node as `shipit builders` reports it.
type builderState struct {
	Name      string   `json:"name"`
	Addr      string   `json:"addr"`
	Reachable bool     `json:"reachable"`
	Error     string   `json:"error,omitempty"`
	Version   string   `json:"version,omitempty"` // BuildKit's
	Native    []string `json:"native"`            // declared in builder.nodes (the daemon's own for builder.addr)
	Emulated  []string `json:"emulated"`          // what its workers build beyond those (QEMU)
	CacheSize int64    `json:"cacheSize"`         // bytes in its build cache
}

func newBuildersCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "builders",
		Short: "List the BuildKit nodes: reachable or not, version, native and emulated platforms, cache size",
		Long: `List each BuildKit daemon shipit builds on (builder.nodes, or builder.addr
alone): whether it answers, its BuildKit version, the platforms it is
declared to build natively, those its workers can build beyond them under
emulation (QEMU), and the size of its build cache.

Images are routed to nodes by platform: each platform of an image is solved
on a node that declares it natively (else one that emulates it, with a
warning), and among several, on the one a stable hash of the image's name
ranks first, so that an image lands on the same node, and its cache, run
after run.`,
		Example: `  shipit builders
  shipit builders --output json`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBuilders(cmd, g, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

// runBuilders dials every node and reports each one's state; it fails
// when none answers.
func runBuilders(cmd *cobra.Command, g *globals, output string) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	d, err := g.resolve(cmd, nil, nil)
	if err != nil {
		return err
	}
	dial := d.dialBuilder(cmd.Context())
	defer dial.Close()
	<-dial.done
	var states []builderState
	unreachable := 0
	for _, n := range dial.nodes {
		s := nodeState(cmd.Context(), n)
		if !s.Reachable {
			unreachable++
		}
		states = append(states, s)
	}
	if output == "json" {
		if err := writeJSON(cmd.OutOrStdout(), states); err != nil {
			return err
		}
	} else if err := printBuilders(cmd.OutOrStdout(), states); err != nil {
		return err
	}
	if unreachable == len(states) {
		return fmt.Errorf("no builder node is reachable")
	}
	return nil
}

// nodeState is what a dialed node reports: its error, or its BuildKit
// version, platforms and cache size.
func nodeState(ctx context.Context, n *nodeConn) builderState {
	s := builderState{Name: n.cfg.NodeName(), Addr: n.cfg.Addr, Native: n.cfg.Platforms, Emulated: []string{}}
	if n.err != nil {
		s.Error = n.err.Error()
		return s
	}
	s.Reachable = true
	if n.info != nil {
		s.Version = n.info.BuildkitVersion.Version
	}
	plats := n.platforms
	if len(plats) == 0 {
		plats, _ = workerPlatforms(ctx, n.c)
	}
	if len(s.Native) == 0 && len(plats) > 0 {
		s.Native = plats[:1] // the daemon's own
	}
	s.Emulated = append(s.Emulated, beyond(s.Native, plats)...)
	if du, err := n.c.DiskUsage(ctx); err == nil {
		for _, r := range du {
			s.CacheSize += r.Size
		}
	}
	return s
}

// printBuilders writes the nodes' states as a table.
func printBuilders(out io.Writer, states []builderState) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tSTATE\tBUILDKIT\tNATIVE\tEMULATED\tCACHE")
	for _, s := range states {
		state, version, cache := "reachable", s.Version, size(s.CacheSize)
		if !s.Reachable {
			state, version, cache = "unreachable", "-", "-"
		}
		emulated := strings.Join(s.Emulated, ",")
		if emulated == "" {
			emulated = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Addr, state, version, strings.Join(s.Native, ","), emulated, cache)
	}
	return tw.Flush()
}
