package release

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/shipit-dev/shipit/internal/registry/registrytest"
	"github.com/shipit-dev/shipit/internal/sign"
)

// recordingSigner records what it is asked to sign.
type recordingSigner struct {
	mu     sync.Mutex
	signed []string
	fail   error
}

func (s *recordingSigner) Sign(_ context.Context, repo, digest string) (sign.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signed = append(s.signed, repo+"@"+digest)
	return sign.Signed, s.fail
}

// TestReleaseSignsAndGates: every pushed digest is signed after its push,
// what was there already is signed too; a failed signature or a gate
// that refuses stops the release before anything is pinned.
func TestReleaseSignsAndGates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host := registrytest.Serve(t)
	bare := gitOpsRemote(t)
	rec, dir := recordFor(t, host, tA)
	s := &recordingSigner{}
	var gated []sign.Subject
	refuse := errors.New("refused: no signature")
	o := Options{Record: rec, RecordDir: dir, Registry: registrytest.Client(), Deploy: testDeploy(bare, "k8s/overlays/production"), Signer: s,
		Gate: func(_ context.Context, imgs []sign.Subject) error { gated = imgs; return refuse }}
	before := show(t, bare, "k8s/overlays/production/kustomization.yaml")
	res, err := Run(ctx, o)
	if !errors.Is(err, refuse) {
		t.Fatalf("a refusing gate: %v", err)
	}
	if got := show(t, bare, "k8s/overlays/production/kustomization.yaml"); got != before {
		t.Error("a refused release pinned")
	}
	if len(s.signed) != 2 || len(gated) != 2 || gated[0].Tag != tA || gated[0].Digest != rec.Images[0].Digest {
		t.Errorf("signed %v, gated %+v", s.signed, gated)
	}
	for _, im := range res.Images {
		if im.Action != ActionPushed || im.Signature != sign.Signed {
			t.Errorf("%s: %s, %q", im.Name, im.Action, im.Signature)
		}
	}
	// A re-run: the images are there; they are signed again (a no-op for
	// the real signer) and, the gate passing, pinned.
	o.Gate = func(context.Context, []sign.Subject) error { return nil }
	if _, err := Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	if len(s.signed) != 4 || !strings.Contains(show(t, bare, "k8s/overlays/production/kustomization.yaml"), tA) {
		t.Errorf("re-run: signed %v, or not pinned", s.signed)
	}
	// A signature that fails stops the release, naming the image.
	s.fail = errors.New("registry said no")
	rec2, dir2 := recordFor(t, host, tB)
	o.Record, o.RecordDir = rec2, dir2
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "registry said no") || !strings.Contains(err.Error(), "nothing is pinned") {
		t.Errorf("a failed signature: %v", err)
	}
	if strings.Contains(show(t, bare, "k8s/overlays/production/kustomization.yaml"), tB) {
		t.Error("pinned after a failed signature")
	}
}
