package cli

import (
	"fmt"
	"io"

	"github.com/shipit-dev/shipit/internal/gitops"
)

// changeText is what a command says about its change in git, for the one
// printer of every command that writes the GitOps branch.
type changeText struct {
	would      string // dry run with a diff: what it would commit ("this change would be committed")
	nothingDry string // dry run without one ("no pin would change")
	nothing    string // nothing committed ("nothing to change"); "" says nothing
	done       string // said on stderr before the commit id; "" says nothing
}

// printChange prints what a command did in git: the diff of a dry run,
// or the commit's id, on stdout; what it means on stderr.
func printChange(out, stderr io.Writer, c gitops.Change, t changeText) {
	switch {
	case c.DryRun && c.Diff != "":
		fmt.Fprintf(stderr, "shipit: dry run: %s:\n", t.would)
		fmt.Fprint(out, c.Diff)
	case c.DryRun:
		fmt.Fprintf(stderr, "shipit: dry run: %s\n", t.nothingDry)
	case c.Commit != "":
		if t.done != "" {
			fmt.Fprintf(stderr, "shipit: %s\n", t.done)
		}
		fmt.Fprintln(out, c.Commit)
	case t.nothing != "":
		fmt.Fprintf(stderr, "shipit: %s: no commit\n", t.nothing)
	}
}
