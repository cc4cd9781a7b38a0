package tag

import (
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 999, time.FixedZone("JST", 9*3600))
	tests := []struct {
		name   string
		prefix string
		c      Commit
		want   string
		err    string
	}{
		{"utc from another zone", "", Commit{SHA: "ABCDEF0123456789", Time: at}, "20260303-200607-abcdef0", ""},
		{"prefix and dirty", "pr-42-", Commit{SHA: "0123456789", Time: at, Dirty: true}, "pr-42-20260303-200607-0123456-dirty", ""},
		{"same second as parent", "", Commit{SHA: "0123456789", Time: at, ParentTime: at}, "20260303-200607-0123456", ""},
		{"skewed clock", "", Commit{SHA: "0123456789", Time: at, ParentTime: at.Add(time.Minute)}, "",
			"commit time is earlier than its first parent's: commit 0123456 was made at 2026-03-03T20:06:07Z but its parent at 2026-03-03T20:07:07Z"},
		{"bad prefix", "-x", Commit{SHA: "0123456789", Time: at}, "", `tag prefix "-x" may hold only`},
		{"prefix too long", strings.Repeat("p", 110), Commit{SHA: "0123456789", Time: at}, "", "registries accept at most 128"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := New(tc.prefix, tc.c)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("tag = %s, want %s", got, tc.want)
			}
			back, err := Parse(got.String())
			if err != nil || back != got {
				t.Errorf("Parse(%s) = %+v, %v; want %+v", got, back, err, got)
			}
		})
	}
	if _, err := New("", Commit{SHA: "0123456789", Time: at, ParentTime: at.Add(time.Second)}); !errors.Is(err, ErrClockSkew) {
		t.Errorf("skew error does not wrap ErrClockSkew: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "latest", "20260303-200607-ABCDEF0", "20261303-200607-abcdef0", "2026030-200607-abcdef0", ".20260303-200607-abcdef0", "20260303-200607-abcdef0\n"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) succeeded", s)
		}
	}
}

// TestOrderIsCommitOrder: for commits in first-parent order (times never
// decreasing, several in one second), tags sort byte-wise in commit order.
// Within one second the order of two commits is not defined by the time, so
// they must at least sort after every earlier second.
func TestOrderIsCommitOrder(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		at := time.Date(2020+r.IntN(10), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
		var tags []string
		var times []time.Time
		for i := 0; i < 30; i++ {
			at = at.Add(time.Duration(r.IntN(3)) * time.Duration(1+r.IntN(100000)) * time.Second)
			sha := make([]byte, 40)
			for j := range sha {
				sha[j] = "0123456789abcdef"[r.IntN(16)]
			}
			tg, err := New("pr-7-", Commit{SHA: string(sha), Time: at})
			if err != nil {
				t.Fatal(err)
			}
			tags = append(tags, tg.String())
			times = append(times, at)
		}
		sorted := append([]string(nil), tags...)
		sort.Strings(sorted)
		for i := range tags {
			// Tags of distinct seconds keep commit order exactly.
			for j := i + 1; j < len(tags); j++ {
				if times[j].After(times[i]) && !Less(tags[i], tags[j]) {
					t.Fatalf("%s (commit %d) does not sort before %s (commit %d)", tags[i], i, tags[j], j)
				}
			}
		}
	}
}

func TestPattern(t *testing.T) {
	t.Parallel()
	p := Pattern("pr-4.2-")
	if p != `^pr-4\.2-[0-9]{8}-[0-9]{6}-[0-9a-f]{7}$` {
		t.Errorf("pattern = %s", p)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("20260303-200607-abcdef0")
	f.Add("pr-1-20260303-200607-abcdef0-dirty")
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := Parse(s)
		if err != nil {
			return
		}
		if tg.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, tg.String())
		}
	})
}
