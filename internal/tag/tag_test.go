package tag

import (
	"errors"
	"math/rand/v2"
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
		{"same second as parent: one second later", "", Commit{SHA: "0123456789", Time: at, Ancestors: []time.Time{at}}, "20260303-200608-0123456", ""},
		{"a minute behind its parent: one second after the parent's", "", Commit{SHA: "0123456789", Time: at, Ancestors: []time.Time{at.Add(time.Minute)}}, "20260303-200708-0123456", ""},
		{"an hour behind its parent", "", Commit{SHA: "0123456789", Time: at, Ancestors: []time.Time{at.Add(time.Hour)}}, "",
			"clock skew: commit 0123456 was made at 2026-03-03T20:06:07Z, more than 10m0s before its parent (2026-03-03T21:06:07Z)"},
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
	if _, err := New("", Commit{SHA: "0123456789", Time: at, Ancestors: []time.Time{at.Add(time.Hour)}}); !errors.Is(err, ErrClockSkew) {
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

// TestOrderIsCommitOrder is a property: along any first-parent history
// whose committer times never go backwards from parent to child (including
// runs of commits within one second, and reverts, which are just new
// commits), each commit's tag sorts after its parent's, and rebuilding a
// commit with the same history gives the same tag.
func TestOrderIsCommitOrder(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		at := time.Date(2020+r.IntN(10), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
		var history []time.Time // oldest first
		var tags []string
		for i := 0; i < 40; i++ {
			switch r.IntN(4) {
			case 0: // same second as the parent (a script, a fast merge queue)
			case 1:
				at = at.Add(time.Duration(1+r.IntN(3)) * time.Second)
			default:
				at = at.Add(time.Duration(r.IntN(100000)) * time.Second)
			}
			anc := make([]time.Time, 0, len(history))
			for j := len(history) - 1; j >= 0; j-- {
				anc = append(anc, history[j])
			}
			c := Commit{SHA: randomSHA(r), Time: at, Ancestors: anc, Now: at.Add(time.Duration(r.IntN(3600)) * time.Second)}
			tg, err := New("pr-7-", c)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := New("pr-7-", c)
			if again != tg {
				t.Fatalf("the same commit gave %s and %s", tg, again)
			}
			if n := len(tags); n > 0 && !Less(tags[n-1], tg.String()) {
				t.Fatalf("commit %d: %s does not sort after its parent's %s", i, tg, tags[n-1])
			}
			if tg.Time.Before(at.Truncate(time.Second)) {
				t.Fatalf("tag time %v is before the commit time %v", tg.Time, at)
			}
			tags = append(tags, tg.String())
			history = append(history, at)
		}
	}
}

func randomSHA(r *rand.Rand) string {
	b := make([]byte, 40)
	for j := range b {
		b[j] = "0123456789abcdef"[r.IntN(16)]
	}
	return string(b)
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
