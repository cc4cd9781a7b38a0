// Command shipit builds a team's container images with BuildKit, tags them
// so that the newest release always sorts last, pushes them, and bumps the
// kustomize pins that Argo CD syncs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shipit-dev/shipit/internal/cli"
	"github.com/shipit-dev/shipit/internal/initgc"
)

// grace is how long shipit may take to wind down after SIGINT or SIGTERM
// (every call takes the context, so it is normally at once); past it, or
// at a second signal, it exits regardless.
const grace = 2 * time.Second

func main() {
	initgc.Restore()
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		select {
		case <-sigs:
		case <-time.After(grace):
		}
		os.Exit(cli.ExitCode(context.Canceled, true, os.Stderr))
	}()
	err := cli.Execute(ctx, nil)
	os.Exit(cli.ExitCode(err, ctx.Err() != nil, os.Stderr))
}
