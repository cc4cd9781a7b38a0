package updater

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shipit-dev/shipit/internal/tag"
)

// TestUpdaterPicksNewestRelease is a property: among any mix of release
// tags, dirty tags, other prefixes and other tags, Argo CD Image Updater's
// alphabetical strategy with shipit's allow-tags picks the newest release
// of the prefix (and a rollback tag, being newest, wins).
func TestUpdaterPicksNewestRelease(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		prefix := []string{"", "pr-12-"}[r.IntN(2)]
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		var tags []string
		newest := ""
		for i := 0; i < 1+r.IntN(30); i++ {
			at = at.Add(time.Duration(r.IntN(3)) * time.Duration(1+r.IntN(90000)) * time.Second)
			sha := ""
			for j := 0; j < 7; j++ {
				sha += string("0123456789abcdef"[r.IntN(16)])
			}
			tg := tag.Tag{Prefix: prefix, Time: at, SHA7: sha}
			switch r.IntN(6) {
			case 0:
				tg.Dirty = true
			case 1:
				tg.Prefix = "other-"
			case 2:
				tags = append(tags, "latest", "buildcache", "v1.2.3")
			}
			s := tg.String()
			tags = append(tags, s)
			if !tg.Dirty && tg.Prefix == prefix && s > newest {
				newest = s
			}
		}
		r.Shuffle(len(tags), func(i, j int) { tags[i], tags[j] = tags[j], tags[i] })
		got, err := Pick(tags, tag.Pattern(prefix))
		if err != nil {
			t.Fatal(err)
		}
		if got != newest {
			sort.Strings(tags)
			t.Fatalf("prefix %q: the updater picks %q, want %q among\n%s", prefix, got, newest, strings.Join(tags, "\n"))
		}
	}
}
