package registry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPlainHTTP(t *testing.T) {
	t.Parallel()
	p := Policy{Insecure: []string{"registry.internal:5000"}}
	for host, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:5000": true, "127.8.9.10": true, "[::1]:5000": true,
		"registry.internal:5000": true, "registry.internal:5001": false,
		"10.255.0.1:5000": false, "192.168.1.2": false, "172.16.0.1:443": false, "registry.local": false,
		"123456789012.dkr.ecr.us-east-1.amazonaws.com": false,
	} {
		if got := p.PlainHTTP(host); got != want {
			t.Errorf("PlainHTTP(%s) = %v, want %v", host, got, want)
		}
	}
}

// dialTo makes every connection of tr go to addr, whatever the URL says:
// a private address in a URL is served from loopback, and nothing leaves
// the machine.
func dialTo(tr http.RoundTripper, addr string) {
	base := tr.(*watchedTransport).base.(*http.Transport)
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	base.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // the test server's own certificate
}

// TestNoPlainHTTPToPrivateAddresses: go-containerregistry would speak plain
// HTTP to 10.255.0.1; the transport speaks TLS.
func TestNoPlainHTTPToPrivateAddresses(t *testing.T) {
	t.Parallel()
	var plain, tls int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			tls++
		} else {
			plain++
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.StartTLS()
	defer srv.Close()
	tr := Policy{Idle: 5 * time.Second}.Transport()
	dialTo(tr, srv.Listener.Addr().String())
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://10.255.0.1:5000/v2/team/web/tags/list", nil)
	req.Header.Set("Authorization", "Basic c2VjcmV0")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if tls != 1 || plain != 0 {
		t.Errorf("%d TLS and %d plain requests: a private address got plain HTTP", tls, plain)
	}
	if resp.Request.URL.Scheme != "http" {
		t.Error("the response's request is not the one the caller made (pagination would break)")
	}
}

func TestStall(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, read, answer nothing
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	tr := Policy{Idle: 300 * time.Millisecond}.Transport()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+ln.Addr().String()+"/v2/", nil)
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	var se *StallError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "GET /v2/") {
		t.Fatalf("err = %v, want a StallError naming the host and the request", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestStallInBody(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	tr := Policy{Idle: 300 * time.Millisecond}.Transport()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/v2/team/web/manifests/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	var se *StallError
	if !errors.As(err, &se) {
		t.Errorf("err = %v, want a StallError", err)
	}
}
