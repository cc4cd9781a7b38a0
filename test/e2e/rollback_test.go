package e2e

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// commitAt commits all changes with a committer date and returns the tag.
func commitAt(t testing.TB, a *app, date, msg string) string {
	t.Helper()
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, date, "commit", "-qm", msg)
	return strings.TrimSpace(mustShipit(t, a.dir, nil, "tag").stdout)
}

func buildAndRelease(t testing.TB, a *app) {
	t.Helper()
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	mustShipit(t, a.dir, nil, "release")
}

type statusRow struct {
	Overlay, Image, PinnedTag, Newest, State, UpdaterPick string
}

func status(t testing.TB, a *app) map[string]statusRow {
	t.Helper()
	var rows []statusRow
	if err := json.Unmarshal([]byte(mustShipit(t, a.dir, nil, "status", "-o", "json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	out := map[string]statusRow{}
	for _, r := range rows {
		out[r.Image] = r
	}
	return out
}

type historyRow struct {
	Image, Tag, Digest, RollbackTo string
	PinnedIn                       []string
}

func history(t testing.TB, a *app, args ...string) []historyRow {
	t.Helper()
	var rows []historyRow
	if err := json.Unmarshal([]byte(mustShipit(t, a.dir, nil, append([]string{"history", "-o", "json"}, args...)...).stdout), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestRevertAndRollback: commits A, B and a git revert of B each get an
// image of their own, the revert's tag and created newest, its release
// pinned; then shipit pin rolls back to A and the rollback sticks.
func TestRevertAndRollback(t *testing.T) {
	t.Parallel()
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, registry, bare)

	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho A\n"})
	tagA := commitAt(t, a, "2026-05-06T06:00:00Z", "A")
	buildAndRelease(t, a)
	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho B\n", "worker/job.sh": "#!/bin/sh\necho B\n"})
	tagB := commitAt(t, a, "2026-05-06T06:01:00Z", "B")
	buildAndRelease(t, a)
	git(t, a.dir, "2026-05-06T06:02:00Z", "revert", "--no-edit", "HEAD")
	tagR := strings.TrimSpace(mustShipit(t, a.dir, nil, "tag").stdout)
	buildAndRelease(t, a)

	if tagA >= tagB || tagB >= tagR {
		t.Fatalf("tags do not sort in commit order: %s %s %s", tagA, tagB, tagR)
	}
	digests := map[string]string{}
	for _, tg := range []string{tagA, tagB, tagR} {
		img, err := remote.Image(mustRef(t, a.repo+"/web:"+tg))
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests[tg] = d.String()
		cf, _ := img.ConfigFile()
		digests[tg+"/created"] = cf.Created.UTC().Format("20060102-150405")
	}
	if digests[tagR] == digests[tagA] || digests[tagR] == digests[tagB] || digests[tagA] == digests[tagB] {
		t.Errorf("the revert's image is not an image of its own: %v", digests)
	}
	if digests[tagA+"/created"] >= digests[tagB+"/created"] || digests[tagB+"/created"] >= digests[tagR+"/created"] {
		t.Errorf("created does not sort newest for the revert: %v", digests)
	}
	if st := status(t, a); st["web"].PinnedTag != tagR || st["web"].State != "current" || st["worker"].PinnedTag != tagR {
		t.Errorf("after the revert's release: %+v", st)
	}

	// Roll back to A: both images, one commit that says so.
	before := commits(t, bare)
	r := mustShipit(t, a.dir, nil, "pin", tagA)
	after := commits(t, bare)
	if len(after) != len(before)+1 {
		t.Fatalf("pin made %d commits", len(after)-len(before))
	}
	msg := git(t, bare, "", "log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "roll back from "+tagR+" to "+tagA) {
		t.Errorf("commit message: %s", msg)
	}
	k := showFile(t, bare, "overlays/prod/kustomization.yaml")
	if strings.Count(k, tagA) != 2 || strings.Contains(k, tagR) || !strings.Contains(k, "# the web app") {
		t.Errorf("pins after rollback:\n%s", k)
	}
	if !strings.Contains(r.stdout, strings.Fields(after[0])[0]) {
		t.Errorf("pin stdout lacks the commit: %s", r.stdout)
	}
	if st := status(t, a); st["web"].State != "held" || st["web"].Newest != tagR {
		t.Errorf("status after rollback: %+v", st)
	}

	// Bad pins change nothing.
	if r := shipitRun(t, a.dir, nil, "pin", "20260101-000000-abcdef0"); r.code != 1 || !strings.Contains(r.stderr, "image web") || !strings.Contains(r.stderr, "no such tag") {
		t.Errorf("missing tag: exit %d: %s", r.code, r.stderr)
	}
	if r := shipitRun(t, a.dir, nil, "pin", "v1.2.3"); r.code != 2 {
		t.Errorf("malformed tag: exit %d: %s", r.code, r.stderr)
	}
	if r := mustShipit(t, a.dir, nil, "pin", tagA); !strings.Contains(r.stderr, "already pinned") {
		t.Errorf("pin again: %s", r.stderr)
	}
	if got := commits(t, bare); len(got) != len(after) {
		t.Errorf("bad or repeated pins committed: %v", got)
	}

	// Re-running the rolled-back release, from a fresh checkout, keeps the pin.
	r = mustShipit(t, a.dir, nil, "release")
	if got := commits(t, bare); len(got) != len(after) {
		t.Errorf("re-running the rolled-back release committed")
	}
	if !strings.Contains(r.stderr, "held at "+tagA+" by a rollback") {
		t.Errorf("release does not say the pin is held: %s", r.stderr)
	}

	// history names A's tag as pinned.
	for _, h := range history(t, a, "web") {
		pinned := len(h.PinnedIn) == 1 && h.PinnedIn[0] == "overlays/prod"
		if pinned != (h.Tag == tagA) {
			t.Errorf("history: %+v", h)
		}
	}

	// A newer commit moves forward and lifts the hold.
	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho C\n"})
	tagC := commitAt(t, a, "2026-05-06T06:03:00Z", "C")
	buildAndRelease(t, a)
	if k := showFile(t, bare, "overlays/prod/kustomization.yaml"); strings.Count(k, tagC) != 2 {
		t.Errorf("a newer release did not move forward:\n%s", k)
	}
	if _, err := gitMaybe(bare, "show", "main:overlays/prod/.shipit-hold.yaml"); err == nil {
		t.Error("the hold is still there after a newer release")
	}
}

// TestImageUpdaterMode: releases write no git; pin gives the old digest a
// new newest-sorting tag with a manifest copy.
func TestImageUpdaterMode(t *testing.T) {
	t.Parallel()
	proxy := newCountingProxy(t)
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, proxy.host, bare)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": mustRead(t, filepath.Join(a.dir, "shipit.yaml")) + "  mode: image-updater\n"})
	tagA := commitAt(t, a, "2026-05-06T06:00:00Z", "A")
	buildAndRelease(t, a)
	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho B\n"})
	tagB := commitAt(t, a, "2026-05-06T06:01:00Z", "B")
	buildAndRelease(t, a)
	if n := len(commits(t, bare)); n != 1 {
		t.Fatalf("releases in image-updater mode committed: %d commits", n)
	}
	if st := status(t, a); st["web"].UpdaterPick != tagB {
		t.Errorf("the updater would pick %q, want %s", st["web"].UpdaterPick, tagB)
	}

	proxy.reset()
	r := mustShipit(t, a.dir, nil, "pin", tagA)
	if n := proxy.uploads.Load(); n != 0 {
		t.Errorf("pin uploaded %d blobs", n)
	}
	if n := len(commits(t, bare)); n != 1 {
		t.Error("pin committed in image-updater mode")
	}
	hist := history(t, a, "web", "--limit", "0")
	var tags []string
	var rollback historyRow
	for _, h := range hist {
		tags = append(tags, h.Tag)
		if h.RollbackTo != "" {
			rollback = h
		}
	}
	sort.Strings(tags)
	newest := tags[len(tags)-1]
	if rollback.Tag != newest || rollback.RollbackTo != tagA {
		t.Errorf("history does not mark the newest tag %s as a rollback to %s: %+v", newest, tagA, hist)
	}
	var digestA string
	for _, h := range hist {
		if h.Tag == tagA {
			digestA = h.Digest
		}
	}
	if rollback.Digest != digestA || !strings.Contains(r.stdout, newest) {
		t.Errorf("rollback tag %s on %s, want %s's digest %s; stdout %s", rollback.Tag, rollback.Digest, tagA, digestA, r.stdout)
	}
	if st := status(t, a); st["web"].UpdaterPick != newest {
		t.Errorf("after pin the updater would pick %q, want %s", st["web"].UpdaterPick, newest)
	}
	if r := mustShipit(t, a.dir, nil, "updater-config"); !strings.Contains(r.stdout, "updateStrategy: alphabetical") || !strings.Contains(r.stdout, `allow-tags: "regexp:^[0-9]{8}-[0-9]{6}-[0-9a-f]{7}$"`) {
		t.Errorf("updater-config:\n%s", r.stdout)
	}
}
