package sign

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

// twoImages pushes two random images and signs them; it returns their
// subjects, the signer and the registry's request counter (no /v2/ pings).
func twoImages(b *testing.B) ([]Subject, *Signer, []PublicKey, *atomic.Int64) {
	b.Helper()
	ctx := context.Background()
	var n atomic.Int64
	host := registrytest.Serve(b, registrytest.Count(&n, func(r *http.Request) bool { return r.URL.Path != "/v2/" }))
	reg := registrytest.Client()
	dir := b.TempDir()
	priv, pub := keyPair(b, dir, password)
	s, err := LoadSigner(priv, env(map[string]string{PasswordEnv: password}), reg)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := LoadPublicKeys([]string{pub}, env(nil))
	if err != nil {
		b.Fatal(err)
	}
	var subj []Subject
	for _, im := range []string{"web", "proxy"} {
		img, _ := random.Image(1024, 2)
		repo := host + "/bench/" + im
		if err := reg.Push(ctx, repo, "20260101-000000-abcdef1", img, nil, ""); err != nil {
			b.Fatal(err)
		}
		d, _ := img.Digest()
		subj = append(subj, Subject{Image: im, Repository: repo, Tag: "20260101-000000-abcdef1", Digest: d.String()})
	}
	return subj, s, keys, &n
}

// BenchmarkSign: signing two digests at once (a release's), each a new
// signature.
func BenchmarkSign(b *testing.B) {
	subj, s, _, n := twoImages(b)
	ctx := context.Background()
	var reqs int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for i := range subj { // a digest of its own each time: a fresh signature
			img, _ := random.Image(256, 1)
			if err := s.reg.Push(ctx, subj[i].Repository, "t", img, nil, ""); err != nil {
				b.Fatal(err)
			}
			d, _ := img.Digest()
			subj[i].Digest = d.String()
		}
		before := n.Load()
		b.StartTimer()
		if _, err := s.SignAll(ctx, subj); err != nil {
			b.Fatal(err)
		}
		reqs += n.Load() - before
	}
	b.ReportMetric(float64(reqs)/float64(b.N)/2, "requests/image")
}

// BenchmarkVerify: verifying the signatures of two images (shipit verify,
// promote's gate), counting the registry requests per image.
func BenchmarkVerify(b *testing.B) {
	subj, s, keys, n := twoImages(b)
	ctx := context.Background()
	if _, err := s.SignAll(ctx, subj); err != nil {
		b.Fatal(err)
	}
	c := &Checker{Keys: keys, Registry: s.reg}
	n.Store(0)
	b.ResetTimer()
	for range b.N {
		reps, err := c.CheckAll(ctx, subj, Require{Signature: true})
		if err != nil || !reps[0].OK() || !reps[1].OK() {
			b.Fatalf("%v %+v", err, reps)
		}
	}
	b.ReportMetric(float64(n.Load())/float64(b.N)/2, "requests/image")
}

// BenchmarkLoadSigner: decrypting a cosign key (scrypt, as cosign's
// format requires), once per command.
func BenchmarkLoadSigner(b *testing.B) {
	priv, _ := keyPair(b, b.TempDir(), password)
	reg := registrytest.Client()
	b.ResetTimer()
	for range b.N {
		if _, err := LoadSigner(priv, env(map[string]string{PasswordEnv: password}), reg); err != nil {
			b.Fatal(err)
		}
	}
}
