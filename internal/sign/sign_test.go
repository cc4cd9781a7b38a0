package sign

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/shipit-dev/shipit/internal/registry/registrytest"
)

const password = "correct horse battery staple 7"

// keyPair writes a cosign key pair (encrypted with password) into dir.
func keyPair(t testing.TB, dir, pass string) (priv, pub string) {
	t.Helper()
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(pass), nil })
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(priv, kb.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, kb.PublicBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// pushed pushes a random image to a fresh in-memory registry and returns
// its repository and digest, and a counter of the registry's requests
// (pings of /v2/ left out).
func pushed(t *testing.T) (string, string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	host := registrytest.Serve(t, registrytest.Count(&n, func(r *http.Request) bool { return r.URL.Path != "/v2/" }))
	repo := host + "/app/web"
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := registrytest.Client().Push(context.Background(), repo, "20260101-000000-abcdef1", img, nil, ""); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return repo, d.String(), &n
}

func TestSignThenVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	priv, pub := keyPair(t, dir, password)
	other := t.TempDir()
	_, otherPub := keyPair(t, other, "another")
	repo, digest, reqs := pushed(t)
	reg := registrytest.Client()
	s, err := LoadSigner(priv, env(map[string]string{PasswordEnv: password}), reg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Sign(ctx, repo, digest)
	if err != nil || got != Signed {
		t.Fatalf("Sign: %v %v, want signed", got, err)
	}
	sigDigest, err := reg.Lookup(ctx, repo, SignatureTag(digest))
	if err != nil || sigDigest == "" {
		t.Fatalf("no %s after signing (%v)", SignatureTag(digest), err)
	}
	// Signing again is a no-op: nothing is written, the .sig stays as it was.
	reqs.Store(0)
	if got, err = s.Sign(ctx, repo, digest); err != nil || got != AlreadySigned {
		t.Fatalf("second Sign: %v %v, want already signed", got, err)
	}
	if again, _ := reg.Lookup(ctx, repo, SignatureTag(digest)); again != sigDigest {
		t.Errorf("the second Sign rewrote the signature: %s, was %s", again, sigDigest)
	}

	keys, err := LoadPublicKeys([]string{otherPub, pub}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	reqs.Store(0)
	c := &Checker{Keys: keys, Registry: reg}
	rep, err := c.Check(ctx, Subject{Image: "web", Repository: repo, Digest: digest}, Require{Signature: true})
	if err != nil || !rep.OK() || rep.SignedBy != pub {
		t.Fatalf("Check = %+v, %v: want signed by %s", rep, err, pub)
	}
	if n := reqs.Load(); n != 1 {
		t.Errorf("checking a signature took %d registry requests, want 1 (the .sig manifest: the payload is known by its hash)", n)
	}

	// A key that did not sign it does not pass.
	foreign, err := LoadPublicKeys([]string{otherPub}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	rep, err = (&Checker{Keys: foreign, Registry: reg}).Check(ctx, Subject{Repository: repo, Digest: digest}, Require{Signature: true})
	if err != nil || rep.OK() || !strings.Contains(rep.Missing[0], "none verifies") {
		t.Fatalf("a foreign key: %+v, %v; want a missing signature", rep, err)
	}
}

func TestUnsignedDigestIsMissingASignature(t *testing.T) {
	t.Parallel()
	_, pub := keyPair(t, t.TempDir(), password)
	repo, digest, _ := pushed(t)
	keys, err := LoadPublicKeys([]string{pub}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := (&Checker{Keys: keys, Registry: registrytest.Client()}).Check(context.Background(), Subject{Repository: repo, Digest: digest}, Require{Signature: true, Provenance: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Missing) != 2 || !strings.HasPrefix(rep.Missing[0], "no signature") || !strings.Contains(rep.Missing[1], "no provenance") {
		t.Fatalf("Missing = %q; want no signature and no provenance", rep.Missing)
	}
}

func TestKeyErrorsNameTheKeyNeverItsSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	priv, _ := keyPair(t, dir, password)
	pem, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "wrong-" + password
	for _, tc := range []struct {
		name, ref string
		env       map[string]string
		want      string
	}{
		{"wrong password", priv, map[string]string{PasswordEnv: wrong}, "cannot be decrypted"},
		{"no password", priv, nil, "cannot be decrypted"},
		{"missing file", filepath.Join(dir, "nope.key"), nil, "cannot be read"},
		{"empty variable", "env:SIGNING_KEY", nil, "SIGNING_KEY is empty"},
		{"not a key", "env:SIGNING_KEY", map[string]string{"SIGNING_KEY": "hello " + password}, "not a cosign private key"},
		{"variable, wrong password", "env:SIGNING_KEY", map[string]string{"SIGNING_KEY": string(pem), PasswordEnv: wrong}, "cannot be decrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadSigner(tc.ref, env(tc.env), registrytest.Client())
			var ke *KeyError
			if !errors.As(err, &ke) || !ke.BadInput() {
				t.Fatalf("err = %v, want a KeyError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.ref) || !strings.Contains(msg, tc.want) {
				t.Errorf("%q: want it to name %s and say %q", msg, tc.ref, tc.want)
			}
			for _, secret := range []string{password, wrong, "PRIVATE KEY", string(pem[60:90])} {
				if strings.Contains(msg, secret) {
					t.Errorf("%q contains a secret (%q)", msg, secret)
				}
			}
		})
	}
	// The right password from a variable works.
	if _, err := LoadSigner("env:K", env(map[string]string{"K": string(pem), PasswordEnv: password}), registrytest.Client()); err != nil {
		t.Fatal(err)
	}
}

func TestCompanionOf(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		tag  string
		want string
	}{
		{"sha256-" + hex + ".sig", "sha256:" + hex},
		{"sha256-" + hex + ".att", "sha256:" + hex},
		{"sha256-" + hex, "sha256:" + hex},
		{"sha256-" + hex + ".sbom", ""},
		{"sha256-" + hex[:63] + ".sig", ""},
		{"20260101-000000-abcdef1", ""},
		{"pr-1-sha256-" + hex + ".sig", ""},
	} {
		got, ok := CompanionOf(tc.tag)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("CompanionOf(%q) = %q, %v; want %q", tc.tag, got, ok, tc.want)
		}
	}
}

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	want := "github.com/org/app"
	for _, u := range []string{
		"https://github.com/org/app", "https://github.com/org/app.git", "https://user:tok@GitHub.com/org/app.git/",
		"ssh://git@github.com/org/app.git", "ssh://git@github.com:22/org/app", "git@github.com:org/app.git", "http://github.com/org/app",
	} {
		if got := NormalizeURL(u); got != want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", u, got, want)
		}
	}
	for _, u := range []string{"https://github.com/org/app2", "https://gitlab.com/org/app", "git@github.com:other/app.git"} {
		if NormalizeURL(u) == want {
			t.Errorf("NormalizeURL(%q) matches %s", u, want)
		}
	}
}

func TestCheckSource(t *testing.T) {
	t.Parallel()
	p := Provenance{Source: "https://github.com/org/app.git", Revision: "abcdef1234567890abcdef1234567890abcdef12"}
	if why := checkSource(p, "git@github.com:org/app.git", "20260101-000000-abcdef1"); why != "" {
		t.Errorf("a matching provenance: %s", why)
	}
	for _, tc := range []struct{ source, tag, want string }{
		{"git@github.com:org/other.git", "20260101-000000-abcdef1", "not this repository"},
		{"git@github.com:org/app.git", "20260101-000000-1234567", "not 20260101-000000-1234567's"},
		{"git@github.com:org/app.git", "latest", "no release tag"},
	} {
		if why := checkSource(p, tc.source, tc.tag); !strings.Contains(why, tc.want) {
			t.Errorf("checkSource(%s, %s) = %q, want %q", tc.source, tc.tag, why, tc.want)
		}
	}
}

func TestParseStatement(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("cd", 32)
	// The shape BuildKit v0.33 writes (attest:provenance=mode=max,
	// vcs:source and vcs:revision given): the vcs attributes moved out of
	// the request's args into runDetails.metadata.buildkit_metadata.vcs.
	st := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v1",
	"subject":[{"name":"pkg:docker/x","digest":{"sha256":"` + hex + `"}}],
	"predicate":{"buildDefinition":{"buildType":"https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md",
	"externalParameters":{"request":{"frontend":"dockerfile.v0","args":{"target":"runtime"}}}},
	"runDetails":{"metadata":{"buildkit_metadata":{"vcs":{"source":"https://git.example.com/acme/app.git","revision":"1bbb10a3de7fa0f35309d9878537cfa7d3441eab"}}}}}}`
	p, why := parseStatement([]byte(st), "sha256:"+hex)
	if why != "" || p.Source != "https://git.example.com/acme/app.git" || p.Revision != "1bbb10a3de7fa0f35309d9878537cfa7d3441eab" {
		t.Errorf("parseStatement = %+v, %q", p, why)
	}
	if _, why := parseStatement([]byte(st), "sha256:"+strings.Repeat("00", 32)); !strings.Contains(why, "not about") {
		t.Errorf("a statement about another manifest: %q", why)
	}
	if _, why := parseStatement([]byte("{"), ""); !strings.Contains(why, "not JSON") {
		t.Errorf("not JSON: %q", why)
	}
}

// TestVerifyReadsAPayloadItCannotKnow: a signature whose payload carries
// annotations (cosign sign -a) is read from the registry and checked.
func TestVerifyReadsAPayloadItCannotKnow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	priv, pub := keyPair(t, t.TempDir(), password)
	repo, digest, reqs := pushed(t)
	reg := registrytest.Client()
	s, err := LoadSigner(priv, env(map[string]string{PasswordEnv: password}), reg)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(repo+"@"+digest, reg.NameOptions(repo)...)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := (&sigpayload.Cosign{Image: ref, Annotations: map[string]any{"team": "shop"}}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.add(ctx, repo, ref, nil, payload); err != nil {
		t.Fatal(err)
	}
	keys, _ := LoadPublicKeys([]string{pub}, env(nil))
	reqs.Store(0)
	rep, err := (&Checker{Keys: keys, Registry: reg}).Check(ctx, Subject{Repository: repo, Digest: digest}, Require{Signature: true})
	if err != nil || !rep.OK() {
		t.Fatalf("%+v %v", rep, err)
	}
	if n := reqs.Load(); n != 2 {
		t.Errorf("%d requests, want 2: the manifest and the payload", n)
	}
}

// TestCosignLibraryAgrees: cosign's own verification (its library, as
// `cosign verify --key --insecure-ignore-tlog` runs it) accepts what Sign
// writes, for each of two keys whose signatures share one .sig; and a
// signature cosign's library wrote is one Sign recognises as its own.
func TestCosignLibraryAgrees(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	privA, pubA := keyPair(t, t.TempDir(), password)
	privB, pubB := keyPair(t, t.TempDir(), "second key")
	repo, digest, _ := pushed(t)
	reg := registrytest.Client()
	a, err := LoadSigner(privA, env(map[string]string{PasswordEnv: password}), reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadSigner(privB, env(map[string]string{PasswordEnv: "second key"}), reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Signer{a, b} {
		if _, err := s.Sign(ctx, repo, digest); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := name.NewDigest(repo+"@"+digest, reg.NameOptions(repo)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []string{pubA, pubB} {
		data, err := os.ReadFile(pub)
		if err != nil {
			t.Fatal(err)
		}
		v, err := loadPublicKey(data)
		if err != nil {
			t.Fatal(err)
		}
		co := &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier,
			RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(reg.RemoteOptions(ctx)...)}}
		sigs, _, err := cosign.VerifyImageSignatures(ctx, ref, co)
		if err != nil || len(sigs) != 1 {
			t.Errorf("cosign's library, key %s: %d signatures verified, %v", pub, len(sigs), err)
		}
	}
	// The .sig holds both signatures, as cosign's own append would.
	m, err := reg.Manifest(ctx, repo, SignatureTag(digest))
	if err != nil || m == nil {
		t.Fatal(m, err)
	}
	var man v1.Manifest
	if err := json.Unmarshal(m.Raw, &man); err != nil || len(man.Layers) != 2 || man.MediaType != types.OCIManifestSchema1 || man.Layers[0].MediaType != simpleSigningType {
		t.Fatalf("the .sig manifest: %s (%v)", m.Raw, err)
	}
}
