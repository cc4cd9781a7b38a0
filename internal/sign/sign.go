// Package sign is shipit's supply chain: it signs the digests shipit
// pushes with a cosign key, in-process, and checks digests before they
// reach an environment that requires it (a signature by a configured
// public key, BuildKit's SLSA provenance naming the repository and the
// commit). Signatures are cosign's: the simple-signing payload, stored as
// an image at the tag sha256-<digest>.sig beside the digest, so that
// `cosign verify --key` accepts them and they travel with the digest
// through a retag or a promotion.
//
// The format is cosign's, made here with go-containerregistry and
// sigstore's signature package (not cosign's own packages, which link a
// transparency-log client and a Kubernetes client into every command's
// start-up): an ECDSA P-256 signature of the payload, base64 in the
// layer annotation dev.cosignproject.cosign/signature, one layer per
// signature of media type application/vnd.dev.cosign.simplesigning.v1+json.
// The private key is cosign's encrypted PEM (scrypt and secretbox, as
// go-securesystemslib's encrypted package writes it). Every request goes
// through shipit's one registry client (internal/registry: its keychain,
// its network policy's transport, retries, and the command's context).
package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
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
	sv, err := loadPrivateKey(data, []byte(getenv(PasswordEnv)))
	if err != nil {
		return nil, &KeyError{Key: ref, Why: fmt.Sprintf("cannot be decrypted with the password in %s: check the password (and that the key is cosign's)", PasswordEnv)}
	}
	return &Signer{key: ref, sv: sv, reg: reg}, nil
}

// Key names the signer's key: its file or env:NAME.
func (s *Signer) Key() string { return s.key }

// loadPrivateKey decrypts cosign's encrypted PEM private key (an ECDSA,
// RSA or Ed25519 key in PKCS #8, as cosign generate-key-pair writes it)
// and makes a signer of SHA-256 signatures of it.
func loadPrivateKey(data, password []byte) (signature.SignerVerifier, error) {
	block, _ := pem.Decode(data)
	if block == nil || (block.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" && block.Type != "ENCRYPTED COSIGN PRIVATE KEY") {
		return nil, errors.New("not an encrypted cosign private key")
	}
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		return nil, err
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	return signature.LoadSignerVerifier(pk, crypto.SHA256)
}

// PublicKey is the signer's public key, PEM-encoded.
func (s *Signer) PublicKey() ([]byte, error) {
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

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
	sigs, err := fetchSignatures(ctx, s.reg, repo, digest)
	if err != nil {
		return "", fmt.Errorf("reading the signatures of %s: %w", ref, err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", err
	}
	if _, ok := verifiedBy(sigs, h, []PublicKey{{v: s.sv}}); ok {
		return AlreadySigned, nil
	}
	payload, _ := expectedPayload(s.reg, repo, digest) // what verification rebuilds
	if payload == nil {
		return "", fmt.Errorf("making the signature payload of %s", ref)
	}
	return Signed, s.add(ctx, repo, ref, sigs, payload)
}

// add signs payload and writes it beside ref, after the signatures
// already there.
func (s *Signer) add(ctx context.Context, repo string, ref name.Digest, sigs []storedSig, payload []byte) error {
	raw, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("signing %s: %w", ref, err)
	}
	sigs = append(sigs, storedSig{Payload: payload, B64: base64.StdEncoding.EncodeToString(raw), MediaType: simpleSigningType})
	img, err := signatureImage(sigs)
	if err != nil {
		return err
	}
	if err := s.reg.Write(ctx, repo, SignatureTag(ref.DigestStr()), img); err != nil {
		return fmt.Errorf("writing the signature of %s: %w", ref, err)
	}
	return nil
}

// simpleSigningType is the media type of a signature layer.
const simpleSigningType = "application/vnd.dev.cosign.simplesigning.v1+json"

// signatureImage is the .sig image of these signatures, as cosign writes
// it: an OCI manifest with an empty config, one layer per signature.
func signatureImage(sigs []storedSig) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	adds := make([]mutate.Addendum, 0, len(sigs))
	for _, sg := range sigs {
		ann := maps.Clone(sg.Annotations)
		if ann == nil {
			ann = map[string]string{}
		}
		ann[sigAnnotation] = sg.B64
		mt := types.MediaType(sg.MediaType)
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(sg.Payload, mt), Annotations: ann, MediaType: mt})
	}
	return mutate.Append(img, adds...)
}

// verifiedBy returns the first key that verifies one of the signatures
// of the digest h: the signature is the key's over the payload, and the
// payload is cosign's simple signing of h (what cosign verify checks with
// --key and no transparency log).
func verifiedBy(sigs []storedSig, h v1.Hash, keys []PublicKey) (PublicKey, bool) {
	for _, k := range keys {
		for _, sg := range sigs {
			raw, err := base64.StdEncoding.DecodeString(sg.B64)
			if err != nil || k.v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(sg.Payload)) != nil {
				continue
			}
			var p sigpayload.SimpleContainerImage
			if json.Unmarshal(sg.Payload, &p) == nil && p.Critical.Type == sigpayload.CosignSignatureType && p.Critical.Image.DockerManifestDigest == h.String() {
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
		v, err := loadPublicKey(data)
		if err != nil {
			return nil, &KeyError{Key: f, Why: "is not a PEM public key (cosign.pub, as cosign generate-key-pair writes)"}
		}
		out = append(out, PublicKey{File: f, v: v})
	}
	return out, nil
}

// loadPublicKey reads a PEM public key as a verifier of SHA-256
// signatures. (Not through cosign's pkg/signature, which links a whole
// Kubernetes client, its API scheme registered when shipit starts, for
// keys kept in Kubernetes secrets.)
func loadPublicKey(data []byte) (signature.Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, err
	}
	return signature.LoadVerifier(pub, crypto.SHA256)
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
