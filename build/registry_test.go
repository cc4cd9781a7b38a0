package build

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shipit-dev/shipit/internal/registry"
)

// TestIndexUploadStalls: a registry that accepts the multi-node index
// upload and then sends nothing fails it within the idle limit, naming
// the host (it once had no deadline at all).
func TestIndexUploadStalls(t *testing.T) {
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
			go func() { defer c.Close(); _, _ = io.Copy(io.Discard, c) }() // read, answer nothing
		}
	}()
	host := ln.Addr().String()
	reg := &registry.Client{Policy: registry.Policy{Idle: 300 * time.Millisecond}}
	r := Request{Name: "web", Repository: host + "/team/web", Tag: "t1", Platforms: []string{"linux/amd64"}, Push: true}
	part := Result{Node: "n1", Descriptor: ocispecs.Descriptor{
		MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromString("part"), Size: 4,
		Platform: &ocispecs.Platform{OS: "linux", Architecture: "amd64"},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = assemble(ctx, r, []Result{part}, reg)
	var stall *registry.StallError
	if !errors.As(err, &stall) || !strings.Contains(err.Error(), host) {
		t.Fatalf("err = %v, want a stall naming %s", err, host)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the stalled upload took %v to fail", d)
	}
}

// TestPushReadBackNoPlainHTTPToPrivateAddress: after `build --push` to a
// registry at a private address, reading the pushed image back speaks TLS
// only, even when TLS fails there: go-containerregistry alone guesses
// plain HTTP for 10/8 and would send the credentials in the clear. The
// address lives in a network namespace of the test's own (unshare -n):
// nothing leaves the machine.
func TestPushReadBackNoPlainHTTPToPrivateAddress(t *testing.T) {
	if os.Getenv("SHIPIT_TEST_IN_NETNS") == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a network namespace of its own")
		}
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("needs unshare (util-linux)")
		}
		cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run=^TestPushReadBackNoPlainHTTPToPrivateAddress$", "-test.v")
		cmd.Env = append(os.Environ(), "SHIPIT_TEST_IN_NETNS=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("in a network namespace: %v\n%s", err, out)
		}
		return
	}
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", "10.255.0.1/32", "dev", "lo"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ln, err := net.Listen("tcp", "10.255.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var plain atomic.Int64 // requests that arrived as plain HTTP
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plain.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	reg := &registry.Client{Keychain: staticKeychain{}, Policy: registry.Policy{Idle: 5 * time.Second}}
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromString("image")}
	_, err = remoteStats(context.Background(), reg, "10.255.0.1:5000/team/web", desc)
	if err == nil {
		t.Fatal("reading back from a registry whose TLS fails succeeded")
	}
	if n := plain.Load(); n != 0 {
		t.Errorf("%d plain HTTP requests reached the private address (err: %v)", n, err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the credentials: %v", err)
	}
}

// staticKeychain hands out a password for every registry.
type staticKeychain struct{}

func (staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: "shipit", Password: "s3cret"}, nil
}
