package tag

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestClock is the rule for commits whose time is not the build machine's:
// a commit more than FutureAllowance ahead of the clock gets no tag, and
// the commits after it are ordered against the clock, not against it.
func TestClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name      string
		c         Commit
		want      time.Time // the tag's time
		err       error
		errSubstr string
	}{
		{name: "made now", c: Commit{Time: now, Ancestors: []time.Time{now.Add(-time.Hour)}}, want: now},
		{name: "nine minutes ahead of the clock", c: Commit{Time: now.Add(9 * time.Minute)}, want: now.Add(9 * time.Minute)},
		{name: "exactly the allowance ahead", c: Commit{Time: now.Add(FutureAllowance)}, want: now.Add(FutureAllowance)},
		{name: "eleven minutes ahead: no tag", c: Commit{Time: now.Add(11 * time.Minute)}, err: ErrFutureCommit,
			errSubstr: "commit 0123456 was made at 2026-12-01T12:11:00Z, 11m0s after this machine's clock (2026-12-01T12:00:00Z)"},
		{name: "a year ahead: no tag, and how to fix it", c: Commit{Time: now.Add(365 * day), Ancestors: []time.Time{now.Add(-time.Hour)}}, err: ErrFutureCommit,
			errSubstr: "git commit --amend --no-edit --date=now"},
		{name: "after a commit from the future: its own time", c: Commit{Time: now.Add(-time.Minute), Ancestors: []time.Time{now.Add(day), now.Add(-time.Hour)}},
			want: now.Add(-time.Minute)},
		{name: "after two commits from the future", c: Commit{Time: now, Ancestors: []time.Time{now.Add(day + time.Minute), now.Add(day), now.Add(-time.Hour)}},
			want: now},
		{name: "two commits after one from the future", c: Commit{Time: now, Ancestors: []time.Time{now.Add(-time.Minute), now.Add(30 * day), now.Add(-time.Hour)}},
			want: now},
		{name: "after a commit from the future, the same second as the one before it", c: Commit{Time: now.Add(-time.Hour), Ancestors: []time.Time{now.Add(day), now.Add(-time.Hour)}},
			want: now.Add(-time.Hour + time.Second)},
		{name: "parent five minutes ahead: one second after it", c: Commit{Time: now, Ancestors: []time.Time{now.Add(5 * time.Minute)}},
			want: now.Add(5*time.Minute + time.Second)},
		{name: "an hour behind a parent of the past: no tag", c: Commit{Time: now.Add(-2 * time.Hour), Ancestors: []time.Time{now.Add(-time.Hour)}}, err: ErrClockSkew,
			errSubstr: "more than 10m0s before its parent (2026-12-01T11:00:00Z), which is not in the future of this machine's clock"},
		{name: "its tag would be from the future", c: Commit{Time: now.Add(8 * time.Minute), Ancestors: []time.Time{now.Add(12 * time.Minute)}}, err: ErrFutureCommit,
			errSubstr: "would get the release time 2026-12-01T12:12:01Z"},
		{name: "rebuilt after the future commit's date", c: Commit{Time: now.Add(-5 * day), Ancestors: []time.Time{now.Add(-5*day - time.Minute), now.Add(-day), now.Add(-6 * day)}}, err: ErrClockSkew,
			errSubstr: "follows, 2 first parents back, a commit made at 2026-11-30T12:00:00Z"},
		{name: "made after the future commit's date", c: Commit{Time: now, Ancestors: []time.Time{now.Add(-5*day - time.Minute), now.Add(-day), now.Add(-6 * day)}},
			want: now},
		{name: "no ancestors read, made now", c: Commit{Time: now.Add(-time.Second)}, want: now.Add(-time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.c.SHA, tc.c.Now = "0123456789abcdef", now
			got, err := New("", tc.c)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, ErrClockSkew) || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.err, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(tc.want) {
				t.Errorf("tag time %s, want %s", got.Time, tc.want)
			}
			if got.IsFuture(now) {
				t.Errorf("New gave %s, a tag from the future", got)
			}
		})
	}
}

func TestIsFuture(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.FixedZone("JST", 9*3600))
	tests := []struct {
		tag  string
		want bool
	}{
		{"20261201-030000-abcdef0", false},        // now, in UTC
		{"20261201-031000-abcdef0", false},        // the allowance
		{"20261201-031001-abcdef0", true},         // a second past it
		{"pr-42-20271201-030000-abcdef0", true},   // a prefix
		{"20990101-000000-abcdef0-dirty", true},   // dirty
		{"20250101-000000-abcdef0", false},        // the past
		{"latest", false},                         // not a release tag
		{"99999999-999999-abcdef0", false},        // not a time
		{"v20991231-000000-abcdef0-rc1", false},   // not a release tag
		{"staging-20990101-000000-abcdef0", true}, // any prefix
	}
	for _, tc := range tests {
		if got := IsFuture(tc.tag, now); got != tc.want {
			t.Errorf("IsFuture(%q) = %v, want %v", tc.tag, got, tc.want)
		}
	}
}

// TestSkewedClocksDoNotStopThePipeline is a property: along a history where
// each commit is built when it is made, some by laptops whose clocks are off
// by a few minutes either way and some days to years ahead, every commit
// but those from the future gets a tag, the tags sort in commit order, and
// rebuilding any commit later gives the tag it had or none, never another.
func TestSkewedClocksDoNotStopThePipeline(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 300; trial++ {
		real := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(1e6)) * time.Second)
		var history []time.Time // committer times, oldest first
		var built []Commit
		var tags []Tag
		prev := ""
		for i := 0; i < 40; i++ {
			real = real.Add(time.Duration(r.IntN(180)) * time.Second)
			at := real.Add(time.Duration(r.IntN(8*60)-4*60) * time.Second) // ±4 minutes
			future := r.IntN(8) == 0
			if future {
				at = real.Add(time.Duration(1+r.IntN(3000)) * 24 * time.Hour)
			}
			c := Commit{SHA: randomSHA(r), Time: at, Now: real.Add(time.Duration(r.IntN(60)) * time.Second)}
			for j := len(history) - 1; j >= 0; j-- {
				c.Ancestors = append(c.Ancestors, history[j])
			}
			history = append(history, at)
			tg, err := New("", c)
			if future {
				if !errors.Is(err, ErrFutureCommit) {
					t.Fatalf("trial %d commit %d, %s ahead of the clock: tag %s, err %v", trial, i, at.Sub(c.Now), tg, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("trial %d commit %d: %v", trial, i, err)
			}
			if prev != "" && !Less(prev, tg.String()) {
				t.Fatalf("trial %d commit %d: %s does not sort after the last tag %s", trial, i, tg, prev)
			}
			prev = tg.String()
			built, tags = append(built, c), append(tags, tg)
		}
		for k, c := range built {
			c.Now = real.Add(time.Duration(r.IntN(4000)) * 24 * time.Hour)
			again, err := New("", c)
			if err == nil && again != tags[k] {
				t.Fatalf("trial %d: rebuilt at %s, a commit tagged %s got %s", trial, c.Now, tags[k], again)
			}
			if err != nil && !errors.Is(err, ErrClockSkew) {
				t.Fatal(err)
			}
		}
	}
}
