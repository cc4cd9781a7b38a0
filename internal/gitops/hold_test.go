package gitops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipit-dev/shipit/internal/gitops/gitopstest"
)

const (
	tA = "20260101-000000-aaaaaaa"
	tC = "20260103-000000-ccccccc"
)

// workspace opens a workspace on a new remote (gitopstest.Files).
func workspace(t *testing.T) *Workspace {
	t.Helper()
	bare := gitopstest.Remote(t, nil)
	w, err := Open(context.Background(), Target{Branch: Branch{URL: bare, Name: "main"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func TestHoldFile(t *testing.T) {
	t.Parallel()
	w := workspace(t)
	ov := "k8s/overlays/production"
	if h, err := w.Holds(ov); err != nil || len(h) != 0 {
		t.Fatalf("no file: %v %v", h, err)
	}
	changed, err := w.WriteHolds(ov, Holds{"web": {Pinned: tA, Until: tC}})
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if changed, _ := w.WriteHolds(ov, Holds{"web": {Pinned: tA, Until: tC}}); changed {
		t.Error("writing the same holds again reported a change")
	}
	h, err := w.Holds(ov)
	if err != nil || h["web"].Until != tC {
		t.Fatalf("read back %+v %v", h, err)
	}
	if changed, _ := w.WriteHolds(ov, Holds{}); !changed {
		t.Error("removing the last hold reported no change")
	}
	if _, err := os.Stat(w.Abs(filepath.Join(ov, HoldFile))); !os.IsNotExist(err) {
		t.Error("no holds, but the file stays")
	}
	if err := w.WriteFile(filepath.Join(ov, HoldFile), []byte("holds: [\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Holds(ov); err == nil || !strings.Contains(err.Error(), HoldFile) {
		t.Errorf("a broken hold file: %v", err)
	}
}

// TestHoldImageNames: every image name shipit.yaml accepts can be held
// (web__api and web--api broke every later release once: the hold file
// had a narrower rule of its own), and a forged one is refused.
func TestHoldImageNames(t *testing.T) {
	t.Parallel()
	w := workspace(t)
	ov := "k8s/overlays/production"
	for _, n := range []string{"web", "web__api", "web--api", "web.api", "web_api", "a-b--c"} {
		if _, err := w.WriteHolds(ov, Holds{n: {Pinned: tA, Until: tC}}); err != nil {
			t.Fatal(err)
		}
		if h, err := w.Holds(ov); err != nil || h[n].Pinned != tA {
			t.Errorf("image %s: a hold written by shipit is read back as %+v, %v", n, h, err)
		}
	}
}

// TestHoldFileGarbage: a hold file whose content is not holds is refused
// without quoting it.
func TestHoldFileGarbage(t *testing.T) {
	t.Parallel()
	w := workspace(t)
	p := filepath.Join("k8s/overlays/production", HoldFile)
	if err := w.WriteFile(p, []byte("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\n")); err != nil {
		t.Fatal(err)
	}
	_, err := w.Holds("k8s/overlays/production")
	if err == nil || strings.Contains(err.Error(), "wJalrXUtnFEMI") {
		t.Errorf("err = %v", err)
	}
	if err := w.WriteFile(p, []byte("holds:\n  \"web\\nSigned-off-by: x\": {pinned: a, until: b}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Holds("k8s/overlays/production"); err == nil {
		t.Error("a hold with a forged image name and no tags was accepted")
	}
}

// TestOpenFailureLeavesNothing: a clone that fails removes its temporary
// directory.
func TestOpenFailureLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := Open(context.Background(), Target{Branch: Branch{URL: filepath.Join(tmp, "missing.git"), Name: "main"}}, 1)
	if err == nil {
		t.Fatal("a clone of a missing repository succeeded")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the temporary clone was left behind: %v", left)
	}
}
