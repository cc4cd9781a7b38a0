package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/progress"
)

// Progress display modes, as BuildKit's display names them.
const (
	progressAuto    = "auto"
	progressTTY     = "tty"
	progressPlain   = "plain"
	progressRawJSON = "rawjson"
	progressQuiet   = "quiet"
)

// resolveShown checks --output and --progress, then resolves the
// command's configuration (flagKeys as for resolve) with its progress
// shown on stderr in that mode.
func (g *globals) resolveShown(cmd *cobra.Command, flagKeys map[string]string, output, progressMode string) (*deps, error) {
	if err := checkOutput(output); err != nil {
		return nil, err
	}
	stderr := cmd.ErrOrStderr()
	mode, err := checkProgress(progressMode, stderr)
	if err != nil {
		return nil, err
	}
	return g.resolve(cmd, flagKeys, newRenderer(stderr, mode, g.verbose, g.start))
}

// checkProgress validates --progress: tty needs a terminal on stderr, and
// auto becomes tty or plain.
func checkProgress(mode string, stderr io.Writer) (string, error) {
	isTTY := false
	if f, ok := stderr.(*os.File); ok {
		isTTY = term.IsTerminal(int(f.Fd())) //nolint:gosec // a file descriptor fits an int
	}
	switch mode {
	case progressAuto:
		if isTTY {
			return progressTTY, nil
		}
		return progressPlain, nil
	case progressTTY:
		if !isTTY {
			return "", usagef("--progress tty needs a terminal on stderr: use auto (tty when there is one) or plain")
		}
		return mode, nil
	case progressPlain, progressRawJSON, progressQuiet:
		return mode, nil
	}
	return "", usagef("--progress %q: use auto, tty, plain, rawjson or quiet", mode)
}

// renderer shows the domain packages' events on stderr: plain lines, a
// terminal display whose push lines count bytes in place, or one JSON
// object per event (rawjson). Debug events show with -v only; quiet shows
// warnings alone.
type renderer struct {
	mu      sync.Mutex
	w       io.Writer
	mode    string
	verbose bool
	start   time.Time         // when main started, for -v timings
	open    bool              // a tty status line is on screen
	shown   map[string]string // plain: the last byte count shown per ref
}

func newRenderer(w io.Writer, mode string, verbose bool, start time.Time) *renderer {
	return &renderer{w: w, mode: mode, verbose: verbose, start: start, shown: map[string]string{}}
}

// Event implements progress.Sink.
func (r *renderer) Event(e progress.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mode == progressRawJSON {
		if e.Kind != progress.Debug || r.verbose {
			b, _ := json.Marshal(e)
			fmt.Fprintf(r.w, "%s\n", b)
		}
		return
	}
	switch e.Kind {
	case progress.Warning:
		r.line("warning: " + e.Msg)
	case progress.Debug:
		if r.verbose {
			r.line(fmt.Sprintf("shipit: %s %s after main started (unix time %d ns)", e.Msg, e.Time.Sub(r.start).Round(time.Microsecond), e.Time.UnixNano()))
		}
	case progress.Info:
		if r.mode != progressQuiet {
			r.line("shipit: " + e.Msg)
		}
	case progress.PushStart:
		if r.mode != progressQuiet {
			r.line("shipit: pushing " + e.Ref)
		}
	case progress.PushBytes:
		r.bytes(e)
	case progress.PushDone:
		if r.open {
			fmt.Fprint(r.w, "\r\x1b[K")
			r.open = false
		}
	}
}

// line writes a whole line, clearing a tty status line first.
func (r *renderer) line(s string) {
	if r.open {
		fmt.Fprint(r.w, "\r\x1b[K")
		r.open = false
	}
	fmt.Fprintln(r.w, s)
}

// bytes shows an upload's progress: in place on a terminal, and in plain
// mode as a line at each tenth of the way.
func (r *renderer) bytes(e progress.Event) {
	if e.Total <= 0 {
		return
	}
	msg := fmt.Sprintf("shipit: pushing %s: %s of %s", e.Ref, size(e.Done), size(e.Total))
	switch r.mode {
	case progressTTY:
		fmt.Fprint(r.w, "\r\x1b[K"+msg)
		r.open = true
	case progressPlain:
		step := fmt.Sprint(e.Done * 10 / e.Total)
		if r.shown[e.Ref] != step && e.Done > 0 {
			r.shown[e.Ref] = step
			if e.Total >= 10<<20 { // small images finish before anyone reads a count
				r.line(msg)
			}
		}
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
