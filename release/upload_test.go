package release

import (
	"net/http"
	"strings"
	"sync/atomic"
)

// countUploads counts blob upload requests.
func countUploads(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/uploads") {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}
