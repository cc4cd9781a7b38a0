package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestTransient(t *testing.T) {
	t.Parallel()
	if Transient(errors.New("manifest invalid")) {
		t.Error("a plain error is transient")
	}
	if !Transient(fmt.Errorf("pushing: %w", io.ErrUnexpectedEOF)) {
		t.Error("a connection cut mid-body is not transient")
	}
}

// TestTagsLinkLoop: a registry whose tag list links to itself is left
// after the page repeats, not followed forever.
func TestTagsLinkLoop(t *testing.T) {
	t.Parallel()
	var pages atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		pages.Add(1)
		w.Header().Set("Link", `</v2/team/web/tags/list?n=2&last=b>; rel="next"`)
		fmt.Fprint(w, `{"name":"team/web","tags":["a","b"]}`)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	_, err := (&Client{}).Tags(context.Background(), host+"/team/web")
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("err = %v, want the loop named", err)
	}
	if n := pages.Load(); n > 3 {
		t.Errorf("%d pages fetched", n)
	}
}
