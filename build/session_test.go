package build

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
)

// TestSessionKey: only images alike in all a session serves share one:
// pushed ones apart from those that go to layouts, and none with a local
// cache.
func TestSessionKey(t *testing.T) {
	t.Parallel()
	web := Request{Name: "web", ContextDir: "/app", DockerfileDir: "/app", DockerfileName: "Dockerfile", Target: "web", Push: true,
		Secrets: []Secret{{ID: "key", File: "/app/secrets/key"}}}
	worker := web
	worker.Name, worker.Target, worker.DockerfileName = "worker", "worker", "Dockerfile.worker"
	if sessionKey(web) == "" || sessionKey(web) != sessionKey(worker) {
		t.Fatal("two targets of one context and Dockerfile directory, with the same secret, do not share a session")
	}
	for _, tc := range []struct {
		what   string
		change func(r *Request)
	}{
		{"another context", func(r *Request) { r.ContextDir = "/other" }},
		{"another Dockerfile directory", func(r *Request) { r.DockerfileDir = "/app/docker" }},
		{"the secret from another file", func(r *Request) { r.Secrets = []Secret{{ID: "key", File: "/app/secrets/other"}} }},
		{"no secret", func(r *Request) { r.Secrets = nil }},
		{"an SSH agent", func(r *Request) { r.SSH = []SSH{{ID: "default"}} }},
		{"excludes of its own", func(r *Request) { r.ContextExclude = []string{"tmp"} }},
		{"an OCI layout out", func(r *Request) { r.Push = false }},
	} {
		r := worker
		tc.change(&r)
		if sessionKey(r) == sessionKey(web) {
			t.Errorf("%s: shares web's session", tc.what)
		}
	}
	layouts, wlayouts := web, worker
	layouts.Push, wlayouts.Push = false, false
	if sessionKey(layouts) == "" || sessionKey(layouts) != sessionKey(wlayouts) {
		t.Error("two images of one context into layouts do not share a session")
	}
	for _, tc := range []struct {
		what   string
		change func(r *Request)
	}{
		{"a local cache", func(r *Request) {
			r.CacheExports = []client.CacheOptionsEntry{{Type: "local", Attrs: map[string]string{"dest": "/cache"}}}
		}},
	} {
		r := web
		tc.change(&r)
		if k := sessionKey(r); k != "" {
			t.Errorf("%s: session key %q, want none (the session's one store of its kind)", tc.what, k)
		}
	}
}

// deadDaemon is a Solver whose session cannot be served.
type deadDaemon struct{ Solver }

func (deadDaemon) Dialer() session.Dialer {
	return func(context.Context, string, map[string][]string) (net.Conn, error) {
		return nil, errors.New("connection refused")
	}
}

// TestSharedSessionThatEnded: an image that asks for a session that has
// ended is told why, and so is one whose solve failed on it.
func TestSharedSessionThatEnded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := Request{Name: "web", ContextDir: dir, DockerfileDir: dir, DockerfileName: "Dockerfile", Push: true}
	key := sessionKey(r)
	sess := sessionOf(context.Background(), Options{}, map[string][]string{key: nil})
	first, err := sess(r, deadDaemon{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.done()
	<-first.sh.done
	if err := first.explain(errors.New("no active session")); !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("a solve that failed on an ended session: %v, want why it ended", err)
	}
	if _, err := sess(r, deadDaemon{}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("asking for an ended session: %v, want why it ended", err)
	}
	if own, err := sess(Request{Name: "other", Push: false, ContextDir: "/elsewhere"}, deadDaemon{}); err != nil || own.session() != nil {
		t.Errorf("an image of no shared session: %v, %v", own.session(), err)
	}
}
