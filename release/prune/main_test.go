package prune

import (
	"testing"

	"github.com/shipit-dev/shipit/internal/gitops"
	"github.com/shipit-dev/shipit/internal/gitops/gitopstest"
	"github.com/shipit-dev/shipit/internal/kustomize"
	"github.com/shipit-dev/shipit/release"
)

const HoldFile = gitops.HoldFile

func gitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gitopstest.Git(t, dir, args...)
}

func gitOpsRemote(t testing.TB) string { t.Helper(); return gitopstest.Remote(t, nil) }

func testDeploy(bare string, overlays ...string) release.Deploy {
	return release.Deploy{
		Target:   gitops.Target{Branch: gitops.Branch{URL: bare, Name: "main"}, Author: release.DefaultAuthor, Attempts: 3},
		Overlays: overlays, Mode: kustomize.ModeTagAndDigest,
	}
}
