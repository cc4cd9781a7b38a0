// Package registrytest is the tests' registry: go-containerregistry's
// in-memory registry on a loopback port, and shipit's client for it.
package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcr "github.com/google/go-containerregistry/pkg/registry"

	"github.com/shipit-dev/shipit/internal/registry"
)

// Serve starts an in-memory registry (with the referrers API), wrapped by
// each of wrap in turn (to count, refuse or slow requests), for the test's
// life, and returns its host:port.
func Serve(t testing.TB, wrap ...func(http.Handler) http.Handler) string {
	t.Helper()
	h := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)), ggcr.WithReferrersSupport(true))
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Client is shipit's registry client with the default keychain and
// policy: plain HTTP to loopback only.
func Client() *registry.Client {
	return &registry.Client{Keychain: authn.DefaultKeychain}
}

// Count is a wrapper for Serve that counts the requests that match.
func Count(n *atomic.Int64, match func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) {
				n.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
}
