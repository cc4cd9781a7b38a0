package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFutureCommitDoesNotStopThePipeline: a commit made on a laptop whose
// clock is a day ahead gets no release tag (exit 2, saying how to fix it),
// and the commit after it, a revert made with a right clock, gets a tag of
// its own time and builds.
func TestFutureCommitDoesNotStopThePipeline(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	now := time.Now().UTC().Truncate(time.Second)

	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho from the future\n"})
	git(t, a.dir, "", "add", "-A")
	future := now.Add(24 * time.Hour)
	git(t, a.dir, future.Format(time.RFC3339), "commit", "-qm", "a laptop a day ahead")
	for _, args := range [][]string{{"tag"}, {"build", "--progress", "quiet"}} {
		r := shipitRun(t, a.dir, a.env(), args...)
		if r.code != 2 || !strings.Contains(r.stderr, "after this machine's clock") || !strings.Contains(r.stderr, "git commit --amend --no-edit --date=now") || r.stdout != "" {
			t.Errorf("shipit %v of a commit a day ahead: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(a.dir, ".shipit", "build.json")); err == nil {
		t.Error("a build of a commit from the future wrote a build record")
	}

	// The revert, made now: ordered against the clock, not its parent.
	git(t, a.dir, now.Format(time.RFC3339), "revert", "--no-edit", "HEAD")
	sha := git(t, a.dir, "", "rev-parse", "HEAD")
	want := now.Format("20060102-150405") + "-" + sha[:7]
	if r := mustShipit(t, a.dir, nil, "tag"); strings.TrimSpace(r.stdout) != want {
		t.Errorf("shipit tag after the commit from the future = %q, want %s", r.stdout, want)
	}
	r := mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	rec, raw := readRecord(t, a.dir)
	if rec.Tag != want || rec.Commit != sha || len(rec.Images) != 2 || !strings.Contains(r.stdout, "/web:"+want+"@sha256:") {
		t.Fatalf("build after the commit from the future: stdout %s\nrecord %s", r.stdout, raw)
	}
	if want <= a.tag() {
		t.Errorf("tag %s does not sort after the first commit's %s", want, a.tag())
	}

	// A laptop minutes behind its parent does not stop it either: its tag
	// is one second after the parent's.
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho behind\n"})
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, now.Add(-8*time.Minute).Format(time.RFC3339), "commit", "-qm", "a laptop 8 minutes behind")
	sha = git(t, a.dir, "", "rev-parse", "HEAD")
	if r := mustShipit(t, a.dir, nil, "tag"); strings.TrimSpace(r.stdout) != now.Add(time.Second).Format("20060102-150405")+"-"+sha[:7] {
		t.Errorf("shipit tag of a commit 8 minutes behind its parent (%s) = %q", want, r.stdout)
	}
}
