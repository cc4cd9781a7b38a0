// Package sign is shipit's supply chain: it signs the digests shipit
// pushes with a cosign key, in-process, and checks digests before they
// reach an environment that requires it (a signature by a configured
// public key, BuildKit's SLSA provenance naming the repository and the
// commit). Signatures are cosign's: the simple-signing payload, stored as
// an image at the tag sha256-<digest>.sig beside the digest, so that
// `cosign verify --key` accepts them and they travel with the digest
// through a retag or a promotion.
//
// It reaches registries through cosign's pkg/oci/remote, which speaks
// go-containerregistry underneath, with the options of shipit's one
// registry client (internal/registry: its keychain, its network policy's
// transport, retries, and the command's context), never its own.
package sign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	sigsig "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/shipit-dev/shipit/internal/registry"
)

// PasswordEnv is the environment variable that holds the private key's
// password, as for cosign itself.
const PasswordEnv = "COSIGN_PASSWORD"

// EnvPrefix marks a key given in an environment variable: env:NAME.
const EnvPrefix = "env:"

// maxKey bounds what is read of a key file or variable.
const maxKey = 64 << 10

// KeyError is a key that cannot be used: it names the key (the file or
// the env:NAME it came from), never its content or its password. Bad
// input (exit code 2).
type KeyError struct {
	Key string // the file or env:NAME
	Why string
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %s: %s", e.Key, e.Why) }

// BadInput marks the error as the user's to fix.
func (e *KeyError) BadInput() bool { return true }

// readKey reads the key that ref names: env:NAME, or a file (an absolute
// path: the caller resolves it against shipit.yaml's directory).
func readKey(ref string, getenv func(string) string) ([]byte, error) {
	if v, ok := strings.CutPrefix(ref, EnvPrefix); ok {
		data := getenv(v)
		if data == "" {
			return nil, &KeyError{Key: ref, Why: fmt.Sprintf("the environment variable %s is empty or unset: export the key's PEM text in it", v)}
		}
		if len(data) > maxKey {
			return nil, &KeyError{Key: ref, Why: fmt.Sprintf("is larger than %d bytes: not a key", maxKey)}
		}
		return []byte(data), nil
	}
	f, err := os.Open(ref)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &KeyError{Key: ref, Why: fmt.Sprintf("cannot be read (%v)", err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKey+1))
	if err != nil {
		return nil, &KeyError{Key: ref, Why: "cannot be read"}
	}
	if len(data) > maxKey {
		return nil, &KeyError{Key: ref, Why: fmt.Sprintf("is larger than %d bytes: not a key", maxKey)}
	}
	return data, nil
}

// Signer signs digests with one private key.
type Signer struct {
	key string // what names the key, for messages
	sv  signature.SignerVerifier
	reg *registry.Client
}

// LoadSigner reads and decrypts the cosign private key ref names (env:NAME
// or a file) with the password getenv(PasswordEnv) gives. A key that
// cannot be read or decrypted is a KeyError naming ref.
func LoadSigner(ref string, getenv func(string) string, reg *registry.Client) (*Signer, error) {
	data, err := readKey(ref, getenv)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(data, []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")) && !bytes.Contains(data, []byte("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")) {
		return nil, &KeyError{Key: ref, Why: "is not a cosign private key (the encrypted PEM file cosign generate-key-pair writes)"}
	}
	// cosign's errors are kept out of the message: they say nothing of
	// the password, but nothing of the key's bytes should be risked.
	sv, err := cosign.LoadPrivateKey(data, []byte(getenv(PasswordEnv)), nil)
	if err != nil {
		return nil, &KeyError{Key: ref, Why: fmt.Sprintf("cannot be decrypted with the password in %s: check the password (and that the key is cosign's)", PasswordEnv)}
	}
	return &Signer{key: ref, sv: sv, reg: reg}, nil
}

// Key names the signer's key: its file or env:NAME.
func (s *Signer) Key() string { return s.key }

// PublicKey is the signer's public key, PEM-encoded.
func (s *Signer) PublicKey() ([]byte, error) { return sigsig.PublicKeyPem(s.sv) }

// Outcome is what Sign did.
type Outcome string

// Outcomes.
const (
	Signed        Outcome = "signed"
	AlreadySigned Outcome = "already signed" // a valid signature by this key was there: nothing written
)

// Sign signs repo@digest (an image manifest or an index) and writes the
// signature beside it at sha256-<digest>.sig, kept with the signatures
// already there. A digest that already has a valid signature by this key
// is left as it is (nothing is written): re-runs and registries with
// immutable tags work.
func (s *Signer) Sign(ctx context.Context, repo, digest string) (Outcome, error) {
	ref, err := name.NewDigest(repo+"@"+digest, s.reg.NameOptions(repo)...)
	if err != nil {
		return "", err
	}
	opts := []ociremote.Option{ociremote.WithRemoteOptions(s.reg.RemoteOptions(ctx)...)}
	se := ociremote.SignedUnknown(ref, opts...)
	sigs, err := fetchSignatures(ctx, s.reg, repo, digest)
	if err != nil {
		return "", fmt.Errorf("reading the signatures of %s: %w", ref, err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", err
	}
	if _, ok := verifiedBy(ctx, sigs, h, []PublicKey{{v: s.sv}}); ok {
		return AlreadySigned, nil
	}
	payload, err := (&sigpayload.Cosign{Image: ref}).MarshalJSON()
	if err != nil {
		return "", err
	}
	return Signed, s.write(se, ref, payload, opts)
}

// write signs payload and stores the signature beside ref, after those
// already there.
func (s *Signer) write(se oci.SignedEntity, ref name.Digest, payload []byte, opts []ociremote.Option) error {
	raw, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		return err
	}
	signed, err := mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		return err
	}
	if err := ociremote.WriteSignatures(ref.Repository, signed, opts...); err != nil {
		return fmt.Errorf("writing the signature of %s: %w", ref, err)
	}
	return nil
}

// verifiedBy returns the first key that verifies one of the signatures
// of the digest h (payload naming h, signature by the key).
func verifiedBy(ctx context.Context, sigs []oci.Signature, h v1.Hash, keys []PublicKey) (PublicKey, bool) {
	for _, k := range keys {
		co := &cosign.CheckOpts{SigVerifier: k.v, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier}
		for _, sig := range sigs {
			if _, err := cosign.VerifyImageSignature(ctx, sig, h, co); err == nil {
				return k, true
			}
		}
	}
	return PublicKey{}, false
}

// PublicKey is a cosign public key a signature may be made by.
type PublicKey struct {
	File string
	v    signature.Verifier
}

// LoadPublicKeys reads cosign public keys (PEM files, as cosign
// generate-key-pair writes cosign.pub), or env:NAME variables holding
// one. One that is not is a KeyError naming it.
func LoadPublicKeys(files []string, getenv func(string) string) ([]PublicKey, error) {
	var out []PublicKey
	for _, f := range files {
		data, err := readKey(f, getenv)
		if err != nil {
			return nil, err
		}
		v, err := sigsig.LoadPublicKeyRaw(data, crypto.SHA256)
		if err != nil {
			return nil, &KeyError{Key: f, Why: "is not a PEM public key (cosign.pub, as cosign generate-key-pair writes)"}
		}
		out = append(out, PublicKey{File: f, v: v})
	}
	return out, nil
}

// SignAll signs several digests at once; the outcomes are in their order.
func (s *Signer) SignAll(ctx context.Context, subjects []Subject) ([]Outcome, error) {
	out := make([]Outcome, len(subjects))
	errs := make([]error, len(subjects))
	var wg sync.WaitGroup
	for i, sub := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = s.Sign(ctx, sub.Repository, sub.Digest)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
