package gitinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/shipit-dev/shipit/internal/redact"
)

// Cmd is how shipit runs git: the one runner, for reading the app
// repository and for cloning, committing and pushing the GitOps one.
//
// git never prompts (a missing credential is an error, not a hung
// pipeline), a remote that stops sending fails instead of hanging
// (http.lowSpeedLimit/Time; ssh ConnectTimeout and ServerAliveInterval),
// and every message git prints is redacted before it reaches an error.
type Cmd struct {
	Dir   string    // the working directory; "" for the current one
	Stdin io.Reader // nil: none
	// Env is added to the environment: credentials reach git here (see
	// Credentials), never through its arguments, which every local user
	// can read in ps.
	Env []string
	// Config is git configuration (key, value), passed in the environment
	// (GIT_CONFIG_KEY_n/VALUE_n) after shipit's own.
	Config [][2]string
	// Secrets are redacted from git's messages, whatever their shape.
	Secrets []string
	// Stall is how long a remote may send nothing before git gives up on
	// it; 0: DefaultStall.
	Stall time.Duration
}

// DefaultStall is how long a git remote may send nothing, unless a
// command says otherwise.
const DefaultStall = 60 * time.Second

// Error is a failed git command: git's own message (redacted), and the
// process's exit status underneath.
type Error struct {
	Args []string // the subcommand and its arguments
	Msg  string   // what git printed, redacted
	Err  error    // *exec.ExitError, or why git did not run
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("git %s: %v", e.Args[0], e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs git with args and returns its standard output.
func (c Cmd) Run(ctx context.Context, args ...string) (string, error) {
	out, _, err := c.RunWarn(ctx, args...)
	return out, err
}

// RunWarn is Run that also returns what git printed on its standard error
// when it succeeded (its warnings), redacted.
func (c Cmd) RunWarn(ctx context.Context, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	cmd.Env = append(os.Environ(), c.env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		return "", "", &Error{Args: args, Msg: redact.Text(msg, c.Secrets...), Err: err}
	}
	return stdout.String(), redact.Text(strings.TrimSpace(stderr.String()), c.Secrets...), nil
}

// env is what every git shipit runs gets on top of the caller's
// environment, then the command's own (credentials).
func (c Cmd) env() []string {
	env := []string{"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=", "GCM_INTERACTIVE=never"}
	stall := c.Stall
	if stall <= 0 {
		stall = DefaultStall
	}
	secs := max(int(stall/time.Second), 1)
	if os.Getenv("GIT_SSH_COMMAND") == "" && os.Getenv("GIT_SSH") == "" {
		alive := max(secs/4, 1)
		env = append(env, fmt.Sprintf("GIT_SSH_COMMAND=ssh -o BatchMode=yes -o ConnectTimeout=%d -o ServerAliveInterval=%d -o ServerAliveCountMax=4", secs, alive))
	}
	cfg := [][2]string{
		{"http.lowSpeedLimit", "1"},
		{"http.lowSpeedTime", fmt.Sprint(secs)},
	}
	env = append(env, configEnv(append(cfg, c.Config...))...)
	return append(env, c.Env...)
}

// configEnv passes git configuration through GIT_CONFIG_COUNT/KEY/VALUE:
// the environment, not argv.
func configEnv(kv [][2]string) []string {
	env := []string{fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(kv))}
	for i, p := range kv {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, p[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, p[1]))
	}
	return env
}

// Credentials splits the user information off a remote URL. It returns
// the URL without it, and the command that hands it to git through a
// credential helper reading environment variables, so that the password
// is never in git's argv (ps) nor in anything git prints. A URL without a
// password comes back unchanged with a plain command.
func Credentials(raw string) (string, Cmd) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "https" && scheme != "http") {
		return raw, Cmd{}
	}
	at := strings.LastIndex(rest, "@")
	if slash := strings.Index(rest, "/"); at < 0 || (slash >= 0 && slash < at && !strings.Contains(rest[:at], ":")) {
		return raw, Cmd{}
	}
	user, pass, _ := strings.Cut(rest[:at], ":")
	clean := scheme + "://" + rest[at+1:]
	helper := `!f() { test "$1" = get && printf 'username=%s\npassword=%s\n' "$SHIPIT_GIT_USERNAME" "$SHIPIT_GIT_PASSWORD"; }; f`
	return clean, Cmd{
		Env: []string{"SHIPIT_GIT_USERNAME=" + unescape(user), "SHIPIT_GIT_PASSWORD=" + unescape(pass)},
		// An empty helper first clears any the user configured.
		Config:  [][2]string{{"credential.helper", ""}, {"credential.helper", helper}},
		Secrets: []string{user, pass, unescape(user), unescape(pass)},
	}
}

// unescape undoes percent-encoding, leaving a malformed escape as it is.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// Run runs git in dir: the short form of Cmd{Dir: dir}.Run.
func Run(ctx context.Context, dir string, args ...string) (string, error) {
	return Cmd{Dir: dir}.Run(ctx, args...)
}

// IsExit reports whether err is git having run and exited non-zero.
func IsExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
