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
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/redact"
	"github.com/shipit-dev/shipit/internal/retry"
)

// Manifest is a manifest (or index) as the registry holds it.
type Manifest struct {
	Digest    string
	MediaType types.MediaType
	Raw       []byte
}

// Tags lists a repository's tags (none for a repository that does not
// exist). It follows the registry's pages, and stops
// with an error at a page it has been sent to before (a Link header that
// loops).
func (r *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	rp, err := r.repository(repo)
	if err != nil {
		return nil, err
	}
	p, err := remote.NewPuller(r.options(ctx)...)
	if err != nil {
		return nil, err
	}
	l, err := p.Lister(ctx, rp)
	if NotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the tags of %s: %w", repo, err)
	}
	var tags []string
	seen := map[string]bool{}
	for l.HasNext() {
		page, err := l.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the tags of %s: %w", repo, err)
		}
		tags = append(tags, page.Tags...)
		if page.Next != "" {
			if seen[page.Next] {
				return nil, fmt.Errorf("listing the tags of %s: the registry sent the page %s twice (its Link header loops): stopped after %d pages", repo, redact.URL(page.Next), len(seen)+1)
			}
			seen[page.Next] = true
		}
	}
	return tags, nil
}

// Manifest reads the manifest repo:ref points at, ref being a tag or a
// digest, with one GET; nil when there is none.
func (r *Client) Manifest(ctx context.Context, repo, ref string) (*Manifest, error) {
	var nref name.Reference
	var err error
	if strings.HasPrefix(ref, "sha256:") {
		nref, err = r.digest(repo, ref)
	} else {
		nref, err = r.tag(repo, ref)
	}
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(nref, r.reads(ctx)...)
	if NotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", nref, err)
	}
	return &Manifest{Digest: desc.Digest.String(), MediaType: desc.MediaType, Raw: desc.Manifest}, nil
}

// PutManifest puts a manifest under a tag with one PUT: no blob moves.
func (r *Client) PutManifest(ctx context.Context, repo, tag string, m *Manifest) error {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return err
	}
	if err := remote.Put(ref, taggable{m}, r.options(ctx)...); err != nil {
		return fmt.Errorf("tagging %s: %w", ref, err)
	}
	return nil
}

// taggable gives remote.Put the manifest's bytes and media type.
type taggable struct{ m *Manifest }

func (t taggable) RawManifest() ([]byte, error)        { return t.m.Raw, nil }
func (t taggable) MediaType() (types.MediaType, error) { return t.m.MediaType, nil }

// Client is shipit's one registry client: every request shipit makes to a
// registry outside BuildKit goes through it. It talks to registries with
// go-containerregistry: credentials from a keychain, TLS but where the
// policy allows plain HTTP, no wait without an end (the policy's idle
// limit), transient failures (429, 5xx, dropped connections) retried with
// backoff, layers uploaded concurrently and only when missing.
type Client struct {
	Keychain authn.Keychain
	Policy   Policy
	Events   progress.Sink // bytes pushed; nil: none

	// One transport for every request, so that connections are kept
	// and reused between them, and one puller for every read, so that a
	// repository's ping and token are had once; made on first use.
	transportOnce sync.Once
	transport     http.RoundTripper
	pullerOnce    sync.Once
	puller        *remote.Puller
}

// reads are the options of a manifest read: the client's, and its one
// puller.
func (r *Client) reads(ctx context.Context) []remote.Option {
	r.pullerOnce.Do(func() {
		// The puller takes each call's context; it keeps none.
		r.puller, _ = remote.NewPuller(r.options(context.Background())...)
	})
	opts := r.options(ctx)
	if r.puller != nil {
		opts = append(opts, remote.Reuse(r.puller))
	}
	return opts
}

// roundTripper is the client's one transport.
func (r *Client) roundTripper() http.RoundTripper {
	r.transportOnce.Do(func() { r.transport = r.Policy.Transport() })
	return r.transport
}

// DefaultJobs is how many layers of one image are uploaded at once.
const DefaultJobs = 4

func (r *Client) options(ctx context.Context) []remote.Option {
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithRetryBackoff(remote.Backoff{Duration: 300 * time.Millisecond, Factor: 2.5, Jitter: 0.2, Steps: 5}),
		remote.WithRetryPredicate(retryRequest),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		remote.WithUserAgent("shipit"),
		remote.WithTransport(r.roundTripper()),
		remote.WithJobs(DefaultJobs),
	}
}

// repository parses a repository, insecure only where the policy allows.
func (r *Client) repository(repo string) (name.Repository, error) {
	return name.NewRepository(repo, r.Policy.Options(repo)...)
}

// tag parses repo:tag, insecure only where the policy allows.
func (r *Client) tag(repo, t string) (name.Tag, error) {
	return name.NewTag(repo+":"+t, r.Policy.Options(repo)...)
}

// digest parses repo@digest, insecure only where the policy allows.
func (r *Client) digest(repo, d string) (name.Digest, error) {
	return name.NewDigest(repo+"@"+d, r.Policy.Options(repo)...)
}

// NotFound reports whether the registry answered 404: no such tag,
// manifest or repository.
func NotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// Lookup returns the digest repo:tag points at, or "" when there is no
// such tag, with one HEAD request.
func (r *Client) Lookup(ctx context.Context, repo, tag string) (string, error) {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(ref, r.reads(ctx)...)
	if NotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up %s: %w", ref, err)
	}
	return desc.Digest.String(), nil
}

// Push writes an image or an index (exactly one of img and idx) to
// repo:tag. mountFrom, when set, is another repository:tag of the same
// registry whose layers may be mounted rather than uploaded.
func (r *Client) Push(ctx context.Context, repo, tag string, img Image, idx Index, mountFrom string) error {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return err
	}
	if mountFrom != "" && img != nil {
		src, err := name.NewTag(mountFrom, r.Policy.Options(mountFrom)...)
		if err != nil {
			return err
		}
		img = mountable{Image: img, from: src}
	}
	// go-containerregistry retries single requests, but not a blob upload
	// that fails between its requests (a 429 on a PATCH, a connection
	// dropped mid-stream). The whole write is safe to repeat: blobs that
	// made it are found by their HEAD and not uploaded again.
	err = retry.Do(ctx, pushPolicy, Transient, func(int) error {
		opts, wait := r.withProgress(ctx, ref.String())
		if idx != nil {
			err = remote.WriteIndex(ref, idx, opts...)
		} else {
			err = remote.Write(ref, img, opts...)
		}
		wait()
		return wrapPush(ref, err)
	})
	progress.Emit(r.Events, progress.Event{Kind: progress.PushDone, Ref: ref.String()})
	return err
}

// Write writes a small image to repo:tag, quietly (no progress events):
// a signature beside a digest, say. A write that fails between its
// requests is repeated, as Push does.
func (r *Client) Write(ctx context.Context, repo, tag string, img Image) error {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return err
	}
	return retry.Do(ctx, pushPolicy, Transient, func(int) error {
		return wrapPush(ref, remote.Write(ref, img, r.options(ctx)...))
	})
}

// withProgress adds go-containerregistry's byte progress to the options,
// as push-bytes events; wait returns once the last update is sent.
func (r *Client) withProgress(ctx context.Context, ref string) ([]remote.Option, func()) {
	opts := r.options(ctx)
	if r.Events == nil {
		return opts, func() {}
	}
	ch := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range ch {
			if u.Error == nil {
				progress.Emit(r.Events, progress.Event{Kind: progress.PushBytes, Ref: ref, Done: u.Complete, Total: u.Total})
			}
		}
	}()
	// go-containerregistry closes ch when the write ends; if it failed
	// before it began, nothing closes it, and a second is long enough.
	return append(opts, remote.WithProgress(ch)), func() {
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

// retryRequest is go-containerregistry's test for retrying one request
// (temporary errors, connections cut), except that a registry that went
// quiet for the idle limit is not asked again: the stall is the answer,
// and five more would multiply the wait.
func retryRequest(err error) bool {
	var stall *StallError
	if errors.As(err, &stall) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var tmp interface{ Temporary() bool }
	return (errors.As(err, &tmp) && tmp.Temporary()) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// pushPolicy bounds the retries of a whole image write.
var pushPolicy = retry.Policy{Attempts: 6, Delay: 200 * time.Millisecond}

// Transient reports whether an error is worth another attempt: rate
// limits, server errors, broken connections, and a manifest refused for a
// blob the registry does not have yet (concurrent pushes of one layer to
// one repository race in some registries; the next attempt finds the
// blob by its HEAD or uploads it again).
func Transient(err error) bool {
	var stall *StallError
	if errors.As(err, &stall) {
		return false // a registry that went quiet for a minute is not retried for six more
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestBlobUnknownErrorCode, transport.BlobUnknownErrorCode, transport.DigestInvalidErrorCode, transport.BlobUploadUnknownErrorCode:
				return true
			}
		}
		switch te.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return te.Temporary()
	}
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &ne)
}

func wrapPush(ref name.Tag, err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			if d.Code == transport.NameUnknownErrorCode {
				return fmt.Errorf("pushing %s: repository %s does not exist (create it, or for ECR set registry.create_repositories: true): %w", ref, ref.Context(), err)
			}
		}
	}
	return fmt.Errorf("pushing %s: %w", ref, err)
}

// mountable offers an image's layers for a cross-repository mount from
// another repository of the same registry: go-containerregistry asks the
// registry to mount a layer the target repository lacks, and uploads it
// only when the registry declines.
type mountable struct {
	v1.Image
	from name.Reference
}

func (m mountable) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &remote.MountableLayer{Layer: l, Reference: m.from}
	}
	return out, nil
}

func (m mountable) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &remote.MountableLayer{Layer: l, Reference: m.from}, nil
}

// DeleteManifest deletes a manifest with one DELETE by digest; one that
// is gone already is success.
func (r *Client) DeleteManifest(ctx context.Context, repo, digest string) error {
	ref, err := r.digest(repo, digest)
	if err != nil {
		return err
	}
	if err := remote.Delete(ref, r.options(ctx)...); err != nil {
		if NotFound(err) {
			return nil // gone already: what prune wanted
		}
		return fmt.Errorf("deleting %s: %w", ref, err)
	}
	return nil
}

// Has reports whether repo holds a manifest with this digest, with one
// HEAD request.
func (r *Client) Has(ctx context.Context, repo, digest string) (bool, error) {
	ref, err := r.digest(repo, digest)
	if err != nil {
		return false, err
	}
	if _, err := remote.Head(ref, r.options(ctx)...); err != nil {
		if NotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("looking up %s: %w", ref, err)
	}
	return true, nil
}

// Platforms lists the platforms of an image (one, from its config) or an
// index (each manifest's, attestations left out), by tag.
func (r *Client) Platforms(ctx context.Context, repo, tag string) ([]string, error) {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref, r.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	var out []string
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, d := range m.Manifests {
			if p := d.Platform; p != nil && p.OS != "unknown" {
				out = append(out, p.String())
			}
		}
		return out, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	return []string{cf.Platform().String()}, nil
}

// DeleteUnsupported reports whether a registry refused a delete as
// unsupported (405, or the UNSUPPORTED error code): a registry that keeps
// every manifest, not a failure of one request.
func DeleteUnsupported(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusMethodNotAllowed {
			return true
		}
		for _, d := range te.Errors {
			if d.Code == transport.UnsupportedErrorCode {
				return true
			}
		}
	}
	return false
}

// Image is an image Push writes.
type Image = v1.Image

// Index is an image index Push writes.
type Index = v1.ImageIndex

// RemoteOptions are the options every request of this client carries
// (keychain, the policy's transport, retries, the context), for a library
// that speaks to registries through go-containerregistry itself (cosign's,
// internal/sign's tests' oracle): its requests keep shipit's network
// policy.
func (r *Client) RemoteOptions(ctx context.Context) []remote.Option { return r.options(ctx) }

// NameOptions are the options for parsing a reference to repo: insecure
// only where the policy allows.
func (r *Client) NameOptions(repo string) []name.Option { return r.Policy.Options(repo) }

// ErrTooLarge is a blob larger than the caller's limit.
var ErrTooLarge = errors.New("larger than allowed")

// Blob reads a blob of repo by digest, at most limit bytes, checking that
// its bytes hash to the digest.
func (r *Client) Blob(ctx context.Context, repo, digest string, limit int64) ([]byte, error) {
	ref, err := r.digest(repo, digest)
	if err != nil {
		return nil, err
	}
	l, err := remote.Layer(ref, r.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("reading %s: %w (%d bytes)", ref, ErrTooLarge, limit)
	}
	return data, nil
}
