package cli

import (
	"testing"

	"github.com/shipit-dev/shipit/build"
)

// TestPartialBuildSignsWhatItBuilt: build web --push signs web, not the
// worker its record carries from the last one (a digest this build did
// not see pushed, from a file anyone may edit), nor an image kept in a
// layout.
func TestPartialBuildSignsWhatItBuilt(t *testing.T) {
	rec := &build.Record{Images: []build.Image{
		{Name: "web", Repository: "r.example/web", Tag: "t2", Digest: "sha256:aa", Pushed: true},
		{Name: "worker", Repository: "r.example/worker", Tag: "t1", Digest: "sha256:bb", Pushed: true},
		{Name: "nginx", Repository: "r.example/nginx", Tag: "t2", Digest: "sha256:cc"},
	}}
	got := pushedSubjects(rec, []string{"web", "nginx"})
	if len(got) != 1 || got[0].Image != "web" || got[0].Digest != "sha256:aa" {
		t.Errorf("a partial build of web and nginx signs %+v, want web alone", got)
	}
	if all := pushedSubjects(rec, []string{"nginx", "web", "worker"}); len(all) != 2 {
		t.Errorf("a full build signs %+v, want both pushed images", all)
	}
}
