package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/redact"
	"github.com/shipit-dev/shipit/internal/regnet"
	"github.com/shipit-dev/shipit/internal/retry"
)

// Registry is the registry I/O a release needs; *Remote is the real one.
type Registry interface {
	// Lookup returns the digest repo:tag points at, or "" when there is no such tag.
	Lookup(ctx context.Context, repo, tag string) (string, error)
	// Has reports whether repo holds a manifest with this digest.
	Has(ctx context.Context, repo, digest string) (bool, error)
	// Push writes an image (or index) from an OCI layout to repo:tag.
	// mountFrom, when set, is another repository:tag of the same registry
	// whose layers may be mounted rather than uploaded.
	Push(ctx context.Context, repo, tag, layoutDir, digest, mountFrom string) error
	// Tags lists a repository's tags.
	Tags(ctx context.Context, repo string) ([]string, error)
	// Manifest reads the manifest repo:tag points at; nil when there is no such tag.
	Manifest(ctx context.Context, repo, tag string) (*Manifest, error)
	// PutManifest puts a manifest under a tag: no blob moves.
	PutManifest(ctx context.Context, repo, tag string, m *Manifest) error
}

// Manifest is a manifest (or index) as the registry holds it.
type Manifest struct {
	Digest    string
	MediaType types.MediaType
	Raw       []byte
}

// Tags implements Registry. It follows the registry's pages, and stops
// with an error at a page it has been sent to before (a Link header that
// loops).
func (r *Remote) Tags(ctx context.Context, repo string) ([]string, error) {
	rp, err := r.repository(repo)
	if err != nil {
		return nil, err
	}
	p, err := remote.NewPuller(r.options(ctx)...)
	if err != nil {
		return nil, err
	}
	l, err := p.Lister(ctx, rp)
	if notFound(err) {
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

// Manifest implements Registry with one GET.
func (r *Remote) Manifest(ctx context.Context, repo, tag string) (*Manifest, error) {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref, r.options(ctx)...)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return &Manifest{Digest: desc.Digest.String(), MediaType: desc.MediaType, Raw: desc.Manifest}, nil
}

// PutManifest implements Registry with one PUT.
func (r *Remote) PutManifest(ctx context.Context, repo, tag string, m *Manifest) error {
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

// Remote talks to registries with go-containerregistry: credentials from a
// keychain, TLS but where the policy allows plain HTTP, no wait without an
// end, transient failures (429, 5xx, dropped connections) retried with
// backoff, layers uploaded concurrently and only when missing.
type Remote struct {
	Keychain authn.Keychain
	Policy   regnet.Policy
	// Transport is the round tripper; nil: Policy.Transport().
	Transport http.RoundTripper
	Jobs      int           // concurrent layer uploads per image; 0: DefaultJobs
	Events    progress.Sink // bytes pushed; nil: none
}

// DefaultJobs is how many layers of one image are uploaded at once.
const DefaultJobs = 4

func (r *Remote) options(ctx context.Context) []remote.Option {
	t := r.Transport
	if t == nil {
		t = r.Policy.Transport()
	}
	jobs := r.Jobs
	if jobs <= 0 {
		jobs = DefaultJobs
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.Keychain),
		remote.WithRetryBackoff(remote.Backoff{Duration: 300 * time.Millisecond, Factor: 2.5, Jitter: 0.2, Steps: 5}),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		remote.WithUserAgent("shipit"),
		remote.WithTransport(t),
		remote.WithJobs(jobs),
	}
}

// repository parses a repository, insecure only where the policy allows.
func (r *Remote) repository(repo string) (name.Repository, error) {
	return name.NewRepository(repo, r.Policy.Options(repo)...)
}

// tag parses repo:tag, insecure only where the policy allows.
func (r *Remote) tag(repo, t string) (name.Tag, error) {
	return name.NewTag(repo+":"+t, r.Policy.Options(repo)...)
}

// digest parses repo@digest, insecure only where the policy allows.
func (r *Remote) digest(repo, d string) (name.Digest, error) {
	return name.NewDigest(repo+"@"+d, r.Policy.Options(repo)...)
}

// notFound reports whether the registry answered 404: no such tag,
// manifest or repository.
func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// Lookup implements Registry with one HEAD request for the manifest.
func (r *Remote) Lookup(ctx context.Context, repo, tag string) (string, error) {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(ref, r.options(ctx)...)
	if notFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up %s: %w", ref, err)
	}
	return desc.Digest.String(), nil
}

// Push implements Registry.
func (r *Remote) Push(ctx context.Context, repo, tag, layoutDir, digest, mountFrom string) error {
	ref, err := r.tag(repo, tag)
	if err != nil {
		return err
	}
	img, idx, err := build.FromLayout(layoutDir, digest)
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
	err = retry.Do(ctx, pushPolicy, transient, func(int) error {
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

// withProgress adds go-containerregistry's byte progress to the options,
// as push-bytes events; wait returns once the last update is sent.
func (r *Remote) withProgress(ctx context.Context, ref string) ([]remote.Option, func()) {
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

// pushPolicy bounds the retries of a whole image write.
var pushPolicy = retry.Policy{Attempts: 6, Delay: 200 * time.Millisecond}

// transient reports whether an error is worth another attempt: rate
// limits, server errors, broken connections, and a manifest refused for a
// blob the registry does not have yet (concurrent pushes of one layer to
// one repository race in some registries; the next attempt finds the
// blob by its HEAD or uploads it again).
func transient(err error) bool {
	var stall *regnet.StallError
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

// LayoutDir is where a record's image layout is: under the record's
// directory (CheckRecord refuses any other).
func LayoutDir(recordDir string, im build.Image) string {
	return filepath.Join(recordDir, im.Layout)
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

// DeleteManifest implements Deleter with one DELETE by digest.
func (r *Remote) DeleteManifest(ctx context.Context, repo, digest string) error {
	ref, err := r.digest(repo, digest)
	if err != nil {
		return err
	}
	if err := remote.Delete(ref, r.options(ctx)...); err != nil {
		if notFound(err) {
			return nil // gone already: what prune wanted
		}
		return fmt.Errorf("deleting %s: %w", ref, err)
	}
	return nil
}

// Has implements Registry with one HEAD request by digest.
func (r *Remote) Has(ctx context.Context, repo, digest string) (bool, error) {
	ref, err := r.digest(repo, digest)
	if err != nil {
		return false, err
	}
	if _, err := remote.Head(ref, r.options(ctx)...); err != nil {
		if notFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("looking up %s: %w", ref, err)
	}
	return true, nil
}

// Platforms lists the platforms of an image (one, from its config) or an
// index (each manifest's, attestations left out), by tag.
func (r *Remote) Platforms(ctx context.Context, repo, tag string) ([]string, error) {
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
