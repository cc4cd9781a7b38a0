package build

import (
	"testing"

	"github.com/moby/buildkit/client"
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
