// Package retry runs an operation again after transient failures, waiting
// a jittered, growing delay in between: the one retry loop of shipit, for
// registry writes and git pushes alike.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy says how often and how patiently to retry.
type Policy struct {
	Attempts int           // at most this many calls of fn; < 1 means 1
	Delay    time.Duration // the first wait, before jitter
	Max      time.Duration // the longest wait, before jitter; 0: no cap
}

// Do calls fn until it succeeds, returns an error retryable does not
// accept, the attempts run out, or ctx is done. The wait before attempt
// n+1 is a random duration in [d/2, 3d/2) with d = Delay·2^(n-1), capped
// at Max: jitter spreads out clients that failed together. It returns
// fn's last error (or ctx's, when ctx ended a wait).
func Do(ctx context.Context, p Policy, retryable func(error) bool, fn func(attempt int) error) error {
	delay := p.Delay
	for i := 1; ; i++ {
		err := fn(i)
		if err == nil || i >= p.Attempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		wait := delay / 2
		if delay > 0 {
			wait += time.Duration(rand.Int64N(int64(delay))) //nolint:gosec // jitter, not a secret
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay *= 2
		if p.Max > 0 && delay > p.Max {
			delay = p.Max
		}
	}
}
