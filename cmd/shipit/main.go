// Command shipit builds a team's container images with BuildKit, tags them
// so that the newest release always sorts last, pushes them, and bumps the
// kustomize pins that Argo CD syncs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shipit-dev/shipit/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.New().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	os.Exit(cli.ExitCode(err, interrupted, os.Stderr))
}
