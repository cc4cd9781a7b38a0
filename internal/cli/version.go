package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, commit and date are set at release time with -ldflags "-X
// github.com/shipit-dev/shipit/internal/cli.version=v1.2.3 -X ….commit=… -X
// ….date=2026-11-26T00:00:00Z"; otherwise they come from the build's VCS
// stamp.
var version, commit, date = "", "", ""

// Version returns shipit's version: the release version, or the module
// version and VCS revision it was built from.
func Version() string {
	v, rev, dirty := version, commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev
		if dirty {
			v += "-dirty"
		}
		v += ")"
	}
	return v
}

// BuildDate is when shipit was built (release builds), or the time of the
// commit it was built from.
func BuildDate() string {
	if date != "" {
		return date
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print shipit's version",
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "shipit %s %s/%s %s, built %s\n", Version(), runtime.GOOS, runtime.GOARCH, runtime.Version(), BuildDate())
			return err
		},
	}
}
