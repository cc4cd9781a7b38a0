package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errTransient = errors.New("transient")

func TestDo(t *testing.T) {
	t.Parallel()
	transient := func(err error) bool { return errors.Is(err, errTransient) }
	for _, tc := range []struct {
		name      string
		attempts  int
		fails     int   // calls that fail before success
		failWith  error // what they fail with
		wantCalls int
		wantErr   error
	}{
		{"first try", 5, 0, nil, 1, nil},
		{"after two transient failures", 5, 2, errTransient, 3, nil},
		{"attempts run out", 3, 10, errTransient, 3, errTransient},
		{"a permanent error stops at once", 5, 10, errors.New("permanent"), 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := Do(context.Background(), Policy{Attempts: tc.attempts, Delay: time.Millisecond}, transient, func(int) error {
				calls++
				if calls <= tc.fails {
					return tc.failWith
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.fails == 0 && err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestDoStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	err := Do(ctx, Policy{Attempts: 100, Delay: time.Hour}, func(error) bool { return true }, func(int) error { return errTransient })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do waited %v after cancel", d)
	}
}
