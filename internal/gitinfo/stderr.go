package gitinfo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"

	"github.com/shipit-dev/shipit/internal/redact"
)

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
