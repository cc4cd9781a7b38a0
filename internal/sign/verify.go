package sign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/internal/tag"
)

// Subject is a digest to check: an image's repository and digest, and
// the release tag it was pinned by (the commit the provenance must name).
type Subject struct {
	Image      string `json:"image"`
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest"`
}

// Ref is repository[:tag]@digest.
func (s Subject) Ref() string {
	r := s.Repository
	if s.Tag != "" {
		r += ":" + s.Tag
	}
	return r + "@" + s.Digest
}

// Require is what a check asks of a digest.
type Require struct {
	Signature  bool // signed by one of the checker's keys
	Provenance bool // BuildKit's SLSA v1 provenance names Source and the tag's commit
	Source     string
}

// Report is what a check found. Missing lists what fails, each a
// sentence; empty: the digest passes.
type Report struct {
	Subject
	SignedBy   string      `json:"signedBy,omitempty"` // the public key that verified
	Provenance *Provenance `json:"provenance,omitempty"`
	Missing    []string    `json:"missing,omitempty"`
}

// OK reports whether nothing is missing.
func (r Report) OK() bool { return len(r.Missing) == 0 }

// Provenance is what a provenance attestation says of the build's source.
type Provenance struct {
	Source   string `json:"source"`
	Revision string `json:"revision"`
}

// Checker checks digests against public keys and the provenance rules.
type Checker struct {
	Keys     []PublicKey
	Registry *registry.Client
}

// Check checks one digest. A registry that cannot be asked is an error;
// what the digest lacks is in the report's Missing.
func (c *Checker) Check(ctx context.Context, s Subject, r Require) (Report, error) {
	rep := Report{Subject: s}
	if r.Signature {
		if err := c.signature(ctx, &rep); err != nil {
			return rep, err
		}
	}
	if r.Provenance {
		if err := c.provenance(ctx, &rep, r.Source); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// signature looks for a signature by one of the keys: one GET of the
// .sig manifest, one of its payload.
func (c *Checker) signature(ctx context.Context, rep *Report) error {
	ref, err := name.NewDigest(rep.Repository+"@"+rep.Digest, c.Registry.NameOptions(rep.Repository)...)
	if err != nil {
		return err
	}
	h, err := v1.NewHash(rep.Digest)
	if err != nil {
		return err
	}
	sigs, err := fetchSignatures(ctx, c.Registry, rep.Repository, rep.Digest)
	if err != nil {
		return fmt.Errorf("reading the signatures of %s: %w", ref, err)
	}
	if len(sigs) == 0 {
		rep.Missing = append(rep.Missing, fmt.Sprintf("no signature: %s has no %s", rep.Repository, SignatureTag(rep.Digest)))
		return nil
	}
	k, ok := verifiedBy(sigs, h, c.Keys)
	if !ok {
		var files []string
		for _, k := range c.Keys {
			files = append(files, k.File)
		}
		rep.Missing = append(rep.Missing, fmt.Sprintf("no signature by a key of verify.keys (%s): %d signature(s) in %s, none verifies", strings.Join(files, ", "), len(sigs), SignatureTag(rep.Digest)))
		return nil
	}
	rep.SignedBy = k.File
	return nil
}

// cosign's annotation of a signature layer: the base64 signature of the
// layer's bytes (the payload).
const sigAnnotation = "dev.cosignproject.cosign/signature"

// maxSignatures bounds the signatures read beside one digest, and
// maxPayload each payload.
const (
	maxSignatures = 32
	maxPayload    = 1 << 20
)

// storedSig is one layer of a .sig image: a signed payload, its
// base64 signature, and the layer's media type and annotations as stored
// (kept as they are when another signature is added).
type storedSig struct {
	Payload     []byte
	B64         string
	MediaType   string
	Annotations map[string]string
}

// fetchSignatures reads the signatures stored beside a digest with one
// GET of the .sig manifest and, for each payload that is not the one
// cosign and shipit write for this repository and digest, one GET of the
// payload (none: no .sig). A payload whose bytes are known is not
// fetched: the manifest names it by its hash, which must match.
func fetchSignatures(ctx context.Context, reg *registry.Client, repo, digest string) ([]storedSig, error) {
	m, err := reg.Manifest(ctx, repo, SignatureTag(digest))
	if err != nil || m == nil {
		return nil, err
	}
	known, knownDigest := expectedPayload(reg, repo, digest)
	var man v1.Manifest
	if err := json.Unmarshal(m.Raw, &man); err != nil {
		return nil, fmt.Errorf("%s is not a manifest: %w", SignatureTag(digest), err)
	}
	if len(man.Layers) > maxSignatures {
		return nil, fmt.Errorf("%s holds %d signatures, more than %d: refused", SignatureTag(digest), len(man.Layers), maxSignatures)
	}
	var out []storedSig
	for _, l := range man.Layers {
		b64, ok := l.Annotations[sigAnnotation]
		if !ok {
			continue
		}
		payload := known
		if l.Digest.String() != knownDigest {
			if payload, err = reg.Blob(ctx, repo, l.Digest.String(), maxPayload); err != nil {
				return nil, err
			}
		}
		out = append(out, storedSig{Payload: payload, B64: b64, MediaType: string(l.MediaType), Annotations: l.Annotations})
	}
	return out, nil
}

// expectedPayload is the simple-signing payload cosign (and shipit) sign
// for repo@digest, and its digest; none when it cannot be made.
func expectedPayload(reg *registry.Client, repo, digest string) ([]byte, string) {
	ref, err := name.NewDigest(repo+"@"+digest, reg.NameOptions(repo)...)
	if err != nil {
		return nil, ""
	}
	p, err := (&sigpayload.Cosign{Image: ref}).MarshalJSON()
	if err != nil {
		return nil, ""
	}
	sum := sha256.Sum256(p)
	return p, "sha256:" + hex.EncodeToString(sum[:])
}

// Tag suffixes of what cosign stores beside a digest.
const (
	SigSuffix = ".sig"
	AttSuffix = ".att"
)

// SignatureTag is the tag cosign stores a digest's signatures at:
// sha256-<hex>.sig.
func SignatureTag(digest string) string { return strings.Replace(digest, ":", "-", 1) + SigSuffix }

// CompanionOf reports which digest a tag belongs to when it is one of
// the tags stored beside a digest: its signatures (sha256-<hex>.sig), its
// attestations (.att) or the referrers API's fallback index
// (sha256-<hex>). They are not release tags: they go with their digest.
func CompanionOf(t string) (string, bool) {
	rest, ok := strings.CutPrefix(t, "sha256-")
	if !ok {
		return "", false
	}
	for _, suf := range []string{SigSuffix, AttSuffix} {
		rest = strings.TrimSuffix(rest, suf)
	}
	if len(rest) != 64 || strings.Trim(rest, "0123456789abcdef") != "" {
		return "", false
	}
	return "sha256:" + rest, true
}

// BuildKit's names in an image index for its attestations.
const (
	refType         = "vnd.docker.reference.type"
	refDigest       = "vnd.docker.reference.digest"
	attManifest     = "attestation-manifest"
	predicateType   = "in-toto.io/predicate-type"
	slsaProvenance1 = "https://slsa.dev/provenance/v1"
	maxStatement    = 8 << 20
	maxAttestations = 16
)

// provenance reads the provenance BuildKit put into the index: for each
// platform's attestation manifest, its SLSA v1 statement must be about
// that platform's manifest and name source and the tag's commit.
func (c *Checker) provenance(ctx context.Context, rep *Report, source string) error {
	m, err := c.Registry.Manifest(ctx, rep.Repository, rep.Digest)
	if err != nil {
		return err
	}
	if m == nil {
		rep.Missing = append(rep.Missing, fmt.Sprintf("%s is not in the registry", rep.Ref()))
		return nil
	}
	if !m.MediaType.IsIndex() {
		rep.Missing = append(rep.Missing, "no provenance: the digest is a single image manifest, with no attestations (build with provenance: an image index carries them)")
		return nil
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(m.Raw, &idx); err != nil {
		return fmt.Errorf("reading the index %s: %w", rep.Ref(), err)
	}
	var atts []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations[refType] == attManifest {
			atts = append(atts, d)
		}
	}
	if len(atts) == 0 {
		rep.Missing = append(rep.Missing, "no provenance: the index has no attestation manifest (build with provenance)")
		return nil
	}
	if len(atts) > maxAttestations {
		rep.Missing = append(rep.Missing, fmt.Sprintf("the index has %d attestation manifests, more than %d: refused", len(atts), maxAttestations))
		return nil
	}
	for _, a := range atts {
		p, why, err := c.statement(ctx, rep.Repository, a)
		if err != nil {
			return err
		}
		if why == "" {
			why = checkSource(p, source, rep.Tag)
		}
		if why != "" {
			rep.Missing = append(rep.Missing, why)
			return nil
		}
		rep.Provenance = &p
	}
	return nil
}

// statement reads one attestation manifest's SLSA v1 provenance.
func (c *Checker) statement(ctx context.Context, repo string, att v1.Descriptor) (Provenance, string, error) {
	am, err := c.Registry.Manifest(ctx, repo, att.Digest.String())
	if err != nil || am == nil {
		return Provenance{}, fmt.Sprintf("the attestation manifest %s is not in the registry", att.Digest), err
	}
	var man v1.Manifest
	if err := json.Unmarshal(am.Raw, &man); err != nil {
		return Provenance{}, fmt.Sprintf("the attestation manifest %s cannot be read: %v", att.Digest, err), nil
	}
	for _, l := range man.Layers {
		if l.Annotations[predicateType] != slsaProvenance1 {
			continue
		}
		data, err := c.Registry.Blob(ctx, repo, l.Digest.String(), maxStatement)
		if err != nil {
			return Provenance{}, "", err
		}
		p, why := parseStatement(data, att.Annotations[refDigest])
		return p, why, nil
	}
	return Provenance{}, fmt.Sprintf("no provenance: the attestation manifest %s has no %s statement", att.Digest, slsaProvenance1), nil
}

// statementJSON is what shipit reads of an in-toto statement of BuildKit's
// SLSA v1 provenance. BuildKit (v0.33) moves the vcs:* frontend
// attributes out of the request's args into runDetails.metadata.
// buildkit_metadata.vcs; older ones left them in the args.
type statementJSON struct {
	Subject []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate struct {
		BuildDefinition struct {
			ExternalParameters struct {
				Request struct {
					Args map[string]string `json:"args"`
				} `json:"request"`
			} `json:"externalParameters"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Metadata struct {
				BuildKit struct {
					VCS map[string]string `json:"vcs"`
				} `json:"buildkit_metadata"`
			} `json:"metadata"`
		} `json:"runDetails"`
	} `json:"predicate"`
}

// parseStatement reads source and revision from a statement about the
// manifest subject (sha256:...; empty: not checked).
func parseStatement(data []byte, subject string) (Provenance, string) {
	var st statementJSON
	if err := json.Unmarshal(data, &st); err != nil {
		return Provenance{}, fmt.Sprintf("the provenance statement is not JSON: %v", err)
	}
	if subject != "" {
		about := false
		for _, s := range st.Subject {
			if "sha256:"+s.Digest["sha256"] == subject {
				about = true
			}
		}
		if !about {
			return Provenance{}, fmt.Sprintf("the provenance statement is not about %s, the manifest it is attached to", subject)
		}
	}
	vcs := st.Predicate.RunDetails.Metadata.BuildKit.VCS
	p := Provenance{Source: vcs["source"], Revision: vcs["revision"]}
	args := st.Predicate.BuildDefinition.ExternalParameters.Request.Args
	if p.Source == "" {
		p.Source = args["vcs:source"]
	}
	if p.Revision == "" {
		p.Revision = args["vcs:revision"]
	}
	return p, ""
}

// checkSource says what is wrong with a provenance's source and
// revision: it must name this repository and the commit of the release
// tag.
func checkSource(p Provenance, source, releaseTag string) string {
	switch {
	case p.Source == "":
		return "the provenance names no source repository (vcs:source)"
	case source == "":
		return fmt.Sprintf("the provenance names %s, and this repository has no origin remote to compare it with", p.Source)
	case NormalizeURL(p.Source) != NormalizeURL(source):
		return fmt.Sprintf("the provenance names the source %s, not this repository (%s)", p.Source, source)
	case p.Revision == "":
		return "the provenance names no commit (vcs:revision)"
	}
	t, err := tag.Parse(releaseTag)
	if err != nil {
		return fmt.Sprintf("the pin has no release tag (%q) to say which commit the provenance must name (it names %s)", releaseTag, p.Revision)
	}
	if !strings.HasPrefix(p.Revision, t.SHA7) {
		return fmt.Sprintf("the provenance names the commit %s, not %s's (%s)", p.Revision, releaseTag, t.SHA7)
	}
	return ""
}

// NormalizeURL reduces a git remote URL to host/path, lower-case host, so
// that https://user:token@Host/org/app.git, ssh://git@host/org/app and
// git@host:org/app compare equal.
func NormalizeURL(u string) string {
	s := strings.TrimSpace(u)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	} else if at := strings.Index(s, "@"); at >= 0 && strings.Contains(s[at:], ":") && !strings.Contains(s[:at], "/") {
		// scp-like: user@host:path
		s = strings.Replace(s[at+1:], ":", "/", 1)
	}
	host, path, _ := strings.Cut(s, "/")
	if at := strings.LastIndex(host, "@"); at >= 0 {
		host = host[at+1:]
	}
	if h, port, ok := strings.Cut(host, ":"); ok && (port == "22" || port == "443" || port == "80") {
		host = h
	}
	path = strings.TrimSuffix(strings.TrimSuffix(path, "/"), ".git")
	return strings.ToLower(host) + "/" + path
}

// CheckAll checks several digests at once, the reports in their order.
func (c *Checker) CheckAll(ctx context.Context, subjects []Subject, r Require) ([]Report, error) {
	out := make([]Report, len(subjects))
	errs := make([]error, len(subjects))
	var wg sync.WaitGroup
	for i, s := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = c.Check(ctx, s, r)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// RefusedError is digests that fail verification: each named with what
// it lacks. Not bad input: exit code 1.
type RefusedError struct {
	Where   string // what refuses: "environment production requires ...", "verify"
	Reports []Report
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	b.WriteString(e.Where)
	for _, r := range e.Reports {
		if r.OK() {
			continue
		}
		name := r.Image
		if name == "" {
			name = r.Repository
		}
		fmt.Fprintf(&b, "\n  %s %s: %s", name, r.Ref(), strings.Join(r.Missing, "; "))
	}
	return b.String()
}

// Gate checks subjects and refuses (a RefusedError naming each failing
// image, digest and what is missing) when one fails.
func (c *Checker) Gate(ctx context.Context, where string, subjects []Subject, r Require) error {
	reps, err := c.CheckAll(ctx, subjects, r)
	if err != nil {
		return err
	}
	for _, rep := range reps {
		if !rep.OK() {
			return &RefusedError{Where: where, Reports: reps}
		}
	}
	return nil
}

// What names what a requirement asks, for messages: "signatures and
// provenance".
func (r Require) What() string {
	switch {
	case r.Signature && r.Provenance:
		return "signatures and provenance"
	case r.Signature:
		return "signatures"
	case r.Provenance:
		return "provenance"
	}
	return "nothing"
}
