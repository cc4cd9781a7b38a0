// Package cli holds shipit's cobra commands and its composition root: the
// one place that turns configuration into a BuildKit client, a registry
// keychain and the rest.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/tag"
	"github.com/shipit-dev/shipit/release"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// TimeoutError is the --timeout limit reached: the cause of the command's
// context when its deadline passes.
type TimeoutError struct{ Limit time.Duration }

func (e *TimeoutError) Error() string { return fmt.Sprintf("--timeout %s reached", e.Limit) }

// usageError marks bad usage: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string  { return e.err.Error() }
func (e *usageError) Unwrap() error  { return e.err }
func (e *usageError) BadInput() bool { return true }

// Execute runs the command line with args (os.Args[1:] when nil) and
// returns its error; a command that ran out of --timeout says so.
func Execute(ctx context.Context, args []string) error {
	root := New()
	if args != nil {
		root.SetArgs(args)
	}
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && cmd != nil && cmd.Context() != nil && errors.Is(err, context.DeadlineExceeded) {
		var te *TimeoutError
		if cause := context.Cause(cmd.Context()); errors.As(cause, &te) {
			return fmt.Errorf("%w: %w", te, err)
		}
	}
	return withFlagHint(err)
}

// withFlagHint adds to an error of a package the flag that answers it:
// packages below the command line do not know its flags.
func withFlagHint(err error) error {
	var taken *release.TagTakenError
	var notPinned *release.NotPinnedError
	var stall *registry.StallError
	switch {
	case errors.As(err, &taken):
		return fmt.Errorf("%w. If the rebuild was not reproducible and the registry's image is the one to release, run again with --keep-existing", err)
	case errors.As(err, &notPinned):
		return fmt.Errorf("%w, or promote only some images with --image", err)
	case errors.As(err, &stall):
		return fmt.Errorf("%w; --timeout bounds the whole command, SHIPIT_STALL_TIMEOUT this wait", err)
	}
	return err
}

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// ExitCode prints err to w and maps it to shipit's exit codes: 2 for bad
// usage or configuration, 130 when interrupted, 1 for any other failure.
func ExitCode(err error, interrupted bool, w io.Writer) int {
	if err == nil {
		return ExitOK
	}
	if interrupted {
		fmt.Fprintln(w, "shipit: interrupted")
		return ExitInterrupted
	}
	fmt.Fprintf(w, "shipit: %v\n", err)
	// The one mechanism: an error that is the user's to fix says so.
	var bad interface{ BadInput() bool }
	if errors.As(err, &bad) && bad.BadInput() || errors.Is(err, tag.ErrClockSkew) {
		return ExitUsage
	}
	return ExitFailure
}

type globals struct {
	start      time.Time // when main called New, for -v timings
	configFile string
	verbose    bool
	timeout    time.Duration
	cancel     context.CancelFunc // releases the --timeout context
}

// New returns the root command.
func New() *cobra.Command {
	g := &globals{start: time.Now()}
	root := &cobra.Command{
		Use:   "shipit",
		Short: "Build images with BuildKit, push them, and bump the kustomize pins Argo CD syncs",
		Long: `shipit takes an application from a git commit to a release on Kubernetes.

It builds every image in shipit.yaml concurrently with BuildKit (one daemon,
or several nodes routed by platform), tags them YYYYMMDD-HHMMSS-<sha7> from
the commit's time (so the newest release always sorts last, even after a
git revert), pushes them to Amazon ECR or any OCI registry, and bumps the
kustomize image pins that Argo CD syncs.

  shipit build && shipit release     # CI on every merge
  shipit build --push                # a developer, locally
  shipit pin <tag>                   # rollback

Exit codes: 0 success, 1 failure, 2 bad usage or configuration, 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version(),
		Args:          cobra.ArbitraryArgs,
		RunE:          runRoot,
	}
	root.SetVersionTemplate("shipit {{.Version}}\n")
	root.PersistentPreRunE = g.preRun
	root.PersistentPostRun = g.postRun
	g.flags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%w\nusage: %s", err, cmd.UseLine())}
	})
	root.AddGroup(&cobra.Group{ID: "main", Title: "Commands:"})
	root.AddCommand(
		newBuildCmd(g),
		newTagCmd(g),
		newVersionCmd(),
		newReleaseCmd(g),
		newPinCmd(g),
		newHistoryCmd(g),
		newStatusCmd(g),
		newUpdaterConfigCmd(g),
		newInitCmd(),
		newPromoteCmd(g),
		newVerifyCmd(g),
		newPruneCmd(g),
		newLifecyclePolicyCmd(),
		newPreviewCmd(g),
		newBuildersCmd(g),
	)
	return root
}

// runRoot is shipit without a command: alone, it shows the help; with an
// unknown command, it is bad usage (exit 2), with cobra's suggestions.
func runRoot(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for shipit", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usagef("%s\nusage: shipit <command> [flags]; shipit --help lists the commands", msg)
}

// flags defines the persistent flags every command has.
func (g *globals) flags(f *pflag.FlagSet) {
	f.StringVar(&g.configFile, "config", "", "path to shipit.yaml (default: searched from the working directory upward)")
	f.BoolVarP(&g.verbose, "verbose", "v", false, "log what shipit does on stderr")
	f.DurationVar(&g.timeout, "timeout", 0, "give up on the whole command after this long, e.g. 10m ($SHIPIT_TIMEOUT; default: none, but a remote that sends nothing for 60s fails)")
}

// preRun applies the global flags before any command runs: -v for the
// libraries' logs, and --timeout (or $SHIPIT_TIMEOUT) as the deadline of
// the command's context.
func (g *globals) preRun(cmd *cobra.Command, _ []string) error {
	// BuildKit's and containerd's libraries log through logrus; their
	// notices (fsverity support, retries) are for -v only.
	logrus.SetOutput(cmd.ErrOrStderr())
	if !g.verbose {
		logrus.SetOutput(io.Discard)
	}
	if !cmd.Flags().Changed("timeout") {
		if v := os.Getenv("SHIPIT_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return usagef("SHIPIT_TIMEOUT=%q: write a duration such as 10m or 90s", v)
			}
			g.timeout = d
		}
	}
	if g.timeout < 0 {
		return usagef("--timeout %s: write a positive duration such as 10m or 90s", g.timeout)
	}
	if g.timeout > 0 {
		// The whole command, every network wait included, ends by then.
		var ctx context.Context
		ctx, g.cancel = context.WithTimeoutCause(cmd.Context(), g.timeout, &TimeoutError{Limit: g.timeout})
		cmd.SetContext(ctx)
	}
	return nil
}

// postRun releases the --timeout context.
func (g *globals) postRun(*cobra.Command, []string) {
	if g.cancel != nil {
		g.cancel()
	}
}

// argsUsage wraps cobra's argument checks so that they exit 2.
func argsUsage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &usageError{fmt.Errorf("%s: %w\nusage: %s", cmd.CommandPath(), err, cmd.UseLine())}
		}
		return nil
	}
}
