// Package registry is how shipit reaches registries over the network: TLS
// unless a host is loopback or listed as insecure, and no wait without an
// end. go-containerregistry guesses that private addresses (10/8,
// 172.16/12, 192.168/16, *.local) speak plain HTTP, and sends credentials
// there in the clear; the client's transport upgrades every such request to
// HTTPS instead. A registry that sends nothing for the idle limit fails,
// naming the host and what was asked.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultIdle is how long a registry may send nothing (no response
// header, no body byte, no read of what shipit uploads) before shipit
// gives up on the request.
const DefaultIdle = 60 * time.Second

// Policy says which registries may be spoken to over plain HTTP.
type Policy struct {
	// Insecure lists registry hosts (host or host:port) that speak plain
	// HTTP: insecure-registries in shipit.yaml.
	Insecure []string
	// Idle bounds each wait for the registry; 0: DefaultIdle.
	Idle time.Duration
}

// PlainHTTP reports whether host may be reached over plain HTTP: a
// loopback host (localhost, 127.0.0.0/8, ::1) or a listed one.
func (p Policy) PlainHTTP(host string) bool {
	for _, h := range p.Insecure {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return IsLoopback(host)
}

// IsLoopback reports whether a host[:port] is this machine's loopback.
func IsLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Options are the name options for parsing a reference (host/path[:tag]
// or [@digest]): insecure (plain HTTP allowed) only where the policy
// allows it for the reference's host.
func (p Policy) Options(ref string) []name.Option {
	host, _, _ := strings.Cut(ref, "/")
	opts := []name.Option{name.WeakValidation}
	if p.PlainHTTP(host) {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// StallError is a registry that sent nothing for the idle limit.
type StallError struct {
	Method, Host, Path string
	Idle               time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s sent nothing for %s in answer to %s %s: giving up on it (is the registry up?)", e.Host, e.Idle, e.Method, e.Path)
}

// UpgradeError is a request that go-containerregistry meant to send in
// plain HTTP, that shipit sent over TLS instead, and that failed.
type UpgradeError struct {
	Host string
	Err  error
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("%v (shipit spoke TLS to %s: plain HTTP goes only to loopback and to the hosts under insecure-registries in shipit.yaml; list it there if this registry speaks nothing else on a network you trust)", e.Err, e.Host)
}

func (e *UpgradeError) Unwrap() error { return e.Err }

// Transport returns the round tripper for registry requests: go-containerregistry's
// default transport with bounded dial and handshake, the HTTPS upgrade for
// hosts the policy does not allow plain HTTP, and the idle watchdog.
func (p Policy) Transport() http.RoundTripper {
	base := remote.DefaultTransport.(*http.Transport).Clone()
	base.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	base.TLSHandshakeTimeout = 30 * time.Second
	idle := p.Idle
	if idle <= 0 {
		idle = DefaultIdle
	}
	base.ResponseHeaderTimeout = 2 * idle // a backstop: the watchdog names the stall first
	base.IdleConnTimeout = 90 * time.Second
	return &watchedTransport{base: base, policy: p, idle: idle}
}

type watchedTransport struct {
	base   http.RoundTripper
	policy Policy
	idle   time.Duration
}

func (t *watchedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	orig := req
	if req.URL.Scheme == "http" && !t.policy.PlainHTTP(req.URL.Host) {
		// Never plain HTTP to a host that is not allowed it, whatever
		// go-containerregistry guessed from the address.
		u := *req.URL
		u.Scheme = "https"
		req = req.Clone(req.Context())
		req.URL = &u
	}
	ctx, cancel := context.WithCancel(req.Context())
	w := &watchdog{idle: t.idle, cancel: cancel}
	w.arm()
	req = req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &watchedBody{ReadCloser: req.Body, w: w}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		w.stop()
		cancel()
		if w.fired.Load() {
			return nil, w.stallError(orig)
		}
		if req.URL.Scheme != orig.URL.Scheme {
			return nil, &UpgradeError{Host: orig.URL.Host, Err: err}
		}
		return nil, err
	}
	resp.Request = orig // pagination links resolve against what the caller asked
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, resp: true, onClose: cancel, orig: orig}
	w.kick()
	return resp, nil
}

// watchdog cancels a request when nothing moves for idle.
type watchdog struct {
	idle   time.Duration
	cancel context.CancelFunc
	mu     sync.Mutex
	timer  *time.Timer
	fired  atomic.Bool
}

func (w *watchdog) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(w.idle, func() {
		w.fired.Store(true)
		w.cancel()
	})
}

func (w *watchdog) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Reset(w.idle)
	}
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (w *watchdog) stallError(req *http.Request) error {
	return &StallError{Method: req.Method, Host: req.URL.Host, Path: req.URL.Path, Idle: w.idle}
}

// watchedBody kicks the watchdog on every read: of an upload (the
// registry is taking it) or of a response (it is sending).
type watchedBody struct {
	io.ReadCloser
	w       *watchdog
	resp    bool
	onClose context.CancelFunc
	orig    *http.Request
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.kick()
	}
	if err != nil && !errors.Is(err, io.EOF) && b.resp && b.w.fired.Load() {
		return n, b.w.stallError(b.orig)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.resp {
		b.w.stop()
		b.onClose()
	}
	return err
}
