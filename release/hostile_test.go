package release

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/kustomize"
)

// Hostile files in the GitOps repository: each is pushed to the remote as
// a commit, and a pin or release over it must refuse, naming it, leave the
// file outside the clone byte-identical, and leave the remote as it was.
func TestHostileGitOpsFiles(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	victim := filepath.Join(outside, "config.json")
	secret := `{"auths":{"r.example.com":{"auth":"c2VjcmV0LXRva2Vu"}}}`
	if err := os.WriteFile(victim, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, work string)
		want  string
	}{
		{"hold file linked outside", func(t *testing.T, work string) {
			link(t, victim, filepath.Join(work, "k8s/overlays/production", HoldFile))
		}, "k8s/overlays/production/" + HoldFile + " in "},
		{"overlay directory linked", func(t *testing.T, work string) {
			real := filepath.Join(work, "k8s/overlays/real")
			if err := os.Rename(filepath.Join(work, "k8s/overlays/production"), real); err != nil {
				t.Fatal(err)
			}
			link(t, "real", filepath.Join(work, "k8s/overlays/production"))
		}, "k8s/overlays/production in "},
		{"kustomization linked", func(t *testing.T, work string) {
			p := filepath.Join(work, "k8s/overlays/production/kustomization.yaml")
			if err := os.Rename(p, filepath.Join(work, "k8s/overlays/k.yaml")); err != nil {
				t.Fatal(err)
			}
			link(t, "../k.yaml", p)
		}, "k8s/overlays/production/kustomization.yaml in "},
		{"argo source linked to /dev/zero", func(t *testing.T, work string) {
			link(t, "/dev/zero", filepath.Join(work, "k8s/overlays/production/.argocd-source-shop.yaml"))
		}, ".argocd-source-shop.yaml in "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bare := gitOpsRemote(t)
			work := filepath.Join(t.TempDir(), "w")
			gitT(t, filepath.Dir(work), "clone", "-q", bare, work)
			tc.plant(t, work)
			gitT(t, work, "add", "-A")
			gitT(t, work, "commit", "-qm", "plant")
			gitT(t, work, "push", "-q", "origin", "HEAD:main")
			head := gitT(t, bare, "rev-parse", "main")

			imgs := []kustomize.Image{{Name: "web", Repository: "registry.example.com/team/web", Tag: tB, Digest: "sha256:" + strings.Repeat("b", 64)}}
			err := writePins(context.Background(), Options{Deploy: testDeploy(bare, "k8s/overlays/production")}, &Result{}, imgs, pinHooks{
				keep: func(Holds) kustomize.Keep { return nil }, holds: pinHolds, message: func(*Result) string { return "pin" },
			})
			var ue *gitops.UnsafePathError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an UnsafePathError naming %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("the error shows the linked file's content: %v", err)
			}
			if got, _ := os.ReadFile(victim); string(got) != secret {
				t.Errorf("the file outside the clone changed: %s", got)
			}
			if got := gitT(t, bare, "rev-parse", "main"); got != head {
				t.Error("the remote moved")
			}
		})
	}
}

func link(t *testing.T, target, at string) {
	t.Helper()
	if err := os.Symlink(target, at); err != nil {
		t.Fatal(err)
	}
}
