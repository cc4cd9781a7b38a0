package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPlatformCheckKept: a check that found no mismatch is taken as true
// for its key and platformCheckKeep only, one that could not compare for
// platformCheckKeepUnread; a file that is not one shipit
// wrote, or one it cannot read inside the state directory, is no check.
func TestPlatformCheckKept(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	if _, _, ok := keptPlatformCheck(dir, "k1", now); ok {
		t.Fatal("a check kept with no file")
	}
	if err := savePlatformCheck(dir, "k1", true, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, age, ok := keptPlatformCheck(dir, "k1", now); !ok || age != time.Hour {
		t.Errorf("a check of an hour ago: kept %v, age %v; want kept, 1h", ok, age)
	}
	if _, _, ok := keptPlatformCheck(dir, "k2", now); ok {
		t.Error("a check kept for another key (daemon platform, configuration or cluster)")
	}
	if _, _, ok := keptPlatformCheck(dir, "k1", now.Add(platformCheckKeep)); ok {
		t.Error("a check kept past platformCheckKeep")
	}
	if _, _, ok := keptPlatformCheck(dir, "k1", now.Add(-2*time.Hour)); ok {
		t.Error("a check written in the future was kept")
	}
	// One that could not compare is kept minutes, not hours.
	if err := savePlatformCheck(dir, "k1", false, now.Add(-5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if k, _, ok := keptPlatformCheck(dir, "k1", now); !ok || k.Verified {
		t.Errorf("a check that could not compare, 5 minutes ago: kept %v, verified %v; want kept, not verified", ok, k.Verified)
	}
	if _, _, ok := keptPlatformCheck(dir, "k1", now.Add(platformCheckKeepUnread)); ok {
		t.Error("a check that could not compare kept past platformCheckKeepUnread")
	}
	p := filepath.Join(dir, platformCheckFile)
	for name, content := range map[string]string{
		"not JSON":  "key k1\n",
		"too large": `{"key":"k1","checked":"2026-12-02T07:00:00Z","pad":"` + strings.Repeat("x", 5000) + `"}`,
	} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := keptPlatformCheck(dir, "k1", now); ok {
			t.Errorf("%s: a check kept", name)
		}
	}
	// A link out of the state directory is not followed.
	outside := filepath.Join(t.TempDir(), "check.json")
	if err := os.WriteFile(outside, []byte(`{"key":"k1","checked":"2026-12-02T07:30:00Z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, p); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := keptPlatformCheck(dir, "k1", now); ok {
		t.Error("a check kept through a link out of the state directory")
	}
	// Saving replaces the link, not what it names.
	if err := savePlatformCheck(dir, "k3", true, now); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(outside); !strings.Contains(string(raw), `"k1"`) {
		t.Errorf("the file out of the state directory was written: %s", raw)
	}
	if _, _, ok := keptPlatformCheck(dir, "k3", now); !ok {
		t.Error("the check saved over a link is not kept")
	}
}
