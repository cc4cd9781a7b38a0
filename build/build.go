// Package build builds a team's images on one BuildKit daemon: it turns the
// configuration into solve requests, runs them concurrently with one
// progress display, and produces the build record.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/ociindex"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/registry"
)

// Solver runs one solve on a BuildKit daemon; *client.Client is one.
type Solver interface {
	Solve(ctx context.Context, def *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error)
}

// Secret is a secret mount source. Only its id ever appears in output.
type Secret struct {
	ID   string
	File string
	Env  string
}

// SSH is an SSH agent to forward: an id and, optionally, sockets or keys.
type SSH struct {
	ID    string
	Paths []string
}

// Request is one image to build.
type Request struct {
	Name       string
	Repository string
	Tag        string
	ContextDir string
	// ContextExclude are patterns (.dockerignore syntax) of what never
	// leaves the context for the daemon, whatever the app's .dockerignore
	// says: shipit's own state directories.
	ContextExclude []string
	DockerfileDir  string
	DockerfileName string
	Target         string
	Args           map[string]string
	Labels         map[string]string
	Annotations    map[string]string
	Secrets        []Secret
	SSH            []SSH
	Platforms      []string
	Provenance     string // "", "min" or "max"
	// VCSSource and VCSRevision are the repository URL (no credentials)
	// and the commit the provenance names.
	VCSSource, VCSRevision string
	SBOM                   bool
	SBOMGenerator          string // "": BuildKit's default scanner
	NoCache                bool

	// Push sends the image to Repository:Tag; otherwise it goes to LayoutDir.
	Push bool
	// PushByDigest pushes without the tag: one node's part of an image,
	// whose index gets the tag.
	PushByDigest bool
	Insecure     bool // the registry speaks plain HTTP (localhost)
	LayoutDir    string

	CacheImports []client.CacheOptionsEntry
	CacheExports []client.CacheOptionsEntry

	// syncGen is the generation of the shared key it is solved under
	// (syncKeys); "" for none.
	syncGen string
}

// Ref is the image's repository:tag.
func (r Request) Ref() string { return r.Repository + ":" + r.Tag }

// Result is what a solve produced for one image.
type Result struct {
	Request    Request
	Digest     string
	Descriptor ocispecs.Descriptor // of the manifest or index, with its platform
	Node       string              // the node that built it (of a part, or of the whole image)
	// Nodes names the node that built each platform, with several nodes.
	Nodes map[string]string
}

// Options configure a build.
type Options struct {
	Solver Solver // one daemon; or Nodes
	// Nodes are the daemons of a builder of several: each image's
	// platforms are routed to them (Route).
	Nodes []*Node
	// RetryOtherNode builds a failed part again on the next node that can.
	RetryOtherNode bool
	// Builder names the daemon (or nodes), their BuildKit versions and
	// platforms: an image is kept from the last build only when built by
	// the same (Inputs); "" never keeps one.
	Builder  string
	Auth     session.Attachable // registry credentials for the daemon; may be nil
	Registry Registry           // reads back pushed manifests, puts multi-node indexes; required with --push
	Progress io.Writer          // BuildKit's display goes here
	Mode     progressui.DisplayMode
	Events   progress.Sink // warnings and notices beside the display; nil: none

	// solved, when set, is called with each image's result as soon as its
	// solve is done (not for the parts of an image built on several nodes).
	solved func(ctx context.Context, res Result)
	// now is the clock that tells a file just changed (inputs); nil: time.Now.
	now func() time.Time
	// sync moves an image's shared key when the daemon's copy of its
	// directories cannot be trusted (syncKeys); nil: the directories' key.
	sync *syncKeys
}

// Error is a failed image build. Sources holds the Dockerfile excerpts at
// fault, as BuildKit reported them.
type Error struct {
	Image string
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("building %s: %v", e.Image, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Solve builds every request concurrently, on one daemon or routed over
// several nodes, with one progress display. Every image is built even when
// another fails; the error joins one *Error per failed image, and no result
// is returned for those.
func Solve(ctx context.Context, opt Options, reqs []Request) ([]Result, error) {
	return solve(ctx, opt, reqs, 0, nil)
}

// solve is Solve, and when more is set, the requests it returns too: they
// are solved as soon as it does, under the same display. waiting is how
// many more may return.
func solve(ctx context.Context, opt Options, reqs []Request, waiting int, more func() ([]Request, error)) ([]Result, error) {
	nodes := opt.Nodes
	if len(nodes) == 0 {
		nodes = []*Node{{Name: "default", Solver: opt.Solver}}
	}
	multi := len(nodes) > 1
	route := func(reqs []Request) ([]job, error) {
		if !multi {
			jobs := make([]job, 0, len(reqs))
			for _, r := range reqs {
				jobs = append(jobs, job{req: r, node: nodes[0]})
			}
			return jobs, nil
		}
		jobs, warnings, err := Route(reqs, nodes)
		for _, w := range warnings {
			progress.Warnf(opt.Events, "%s", w)
		}
		return jobs, err
	}
	jobs, err := route(reqs)
	if err != nil {
		return nil, err
	}
	var late chan []job
	var lateErr error
	all := slices.Clone(reqs)
	if more != nil {
		late = make(chan []job, 1)
		go func() {
			defer close(late)
			rs, err := more()
			if err == nil && len(rs) > 0 {
				var js []job
				if js, err = route(rs); err == nil {
					all = append(all, rs...)
					late <- js
				}
			}
			lateErr = err
		}()
	}
	jobs, results, errs, err := runJobs(ctx, opt, jobs, late, len(reqs)+waiting > 1 || multi, multi)
	if err != nil {
		return nil, err
	}
	res, err := collect(ctx, opt, all, jobs, results, errs, multi)
	return res, errors.Join(err, lateErr)
}

// runJobs runs every job's solve concurrently under one progress display,
// each on its node or, with RetryOtherNode, the next ones that can, and
// the jobs late sends as they come, until it is closed (nil: none). It
// returns every job, and each one's result or error.
func runJobs(ctx context.Context, opt Options, jobs []job, late <-chan []job, prefixed, multi bool) ([]job, []Result, []error, error) {
	disp, err := progressui.NewDisplay(opt.Progress, opt.Mode)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("progress display %q: %w", opt.Mode, err)
	}
	merged := make(chan *client.SolveStatus)
	var fwd sync.WaitGroup
	displayDone := make(chan struct{})
	go func() {
		defer close(displayDone)
		// The display must drain every status even after ctx is done, or the
		// solves block; it stops when merged is closed.
		_, _ = disp.UpdateFrom(context.WithoutCancel(ctx), merged)
	}()
	var mu sync.Mutex
	var warnings []string
	// status forwards one solve's status to the display under its label.
	status := func(label string) chan *client.SolveStatus {
		ch := make(chan *client.SolveStatus)
		fwd.Add(1)
		go func() {
			defer fwd.Done()
			ws := forward(merged, ch, label, prefixed)
			mu.Lock()
			warnings = append(warnings, ws...)
			mu.Unlock()
		}()
		return ch
	}
	progress.Debugf(opt.Events, "first solve request")

	type outcome struct {
		res Result
		err error
	}
	var outcomes []*outcome
	var wg sync.WaitGroup
	start := func(js []job) {
		var share map[string][]string
		if !multi && len(js) > 0 {
			share = shareable(js, js[0].node.Solver)
		}
		sess := sessionOf(ctx, opt, share)
		for _, j := range js {
			o := &outcome{}
			outcomes = append(outcomes, o)
			wg.Go(func() { o.res, o.err = runJob(ctx, opt, j, multi, status, sess) })
		}
	}
	start(jobs)
	if late != nil {
		for js := range late {
			start(js)
			jobs = append(jobs, js...)
		}
	}
	wg.Wait()
	fwd.Wait()
	close(merged)
	<-displayDone
	for _, w := range warnings {
		progress.Warnf(opt.Events, "%s", strings.TrimPrefix(w, "warning: "))
	}
	results := make([]Result, len(outcomes))
	errs := make([]error, len(outcomes))
	for i, o := range outcomes {
		results[i], errs[i] = o.res, o.err
	}
	return jobs, results, errs, nil
}

// runJob solves one job on its node, and with RetryOtherNode on the next
// nodes that can, until one succeeds.
func runJob(ctx context.Context, opt Options, j job, multi bool, status func(label string) chan *client.SolveStatus, sess sessionFunc) (Result, error) {
	var err error
	for attempt, node := range append([]*Node{j.node}, j.alternates...) {
		if attempt > 0 {
			if !opt.RetryOtherNode {
				break
			}
			progress.Warnf(opt.Events, "image %s: building %s again on %s (--retry-other-node)", j.req.Name, strings.Join(j.req.Platforms, ","), node.Name)
		}
		r := j.req
		if j.part {
			r = partRequest(r, node.Name)
			// A part's layout is made afresh: one a build stopped before
			// assembly left may hold a blob cut short, which the export
			// would skip and the assembly take into the image's layout.
			if !r.Push {
				if err := os.RemoveAll(r.LayoutDir); err != nil {
					return Result{}, fmt.Errorf("image %s: clearing the layout of its part on %s: %w", r.Name, node.Name, err)
				}
			}
		}
		label := r.Name
		if multi {
			label += "@" + node.Name
		}
		var desc ocispecs.Descriptor
		var use sessionUse
		r = opt.sync.keyed(r, node.Name)
		if use, err = sess(r, node.Solver); err != nil {
			opt.sync.done(r, node.Name, err)
			return Result{}, fmt.Errorf("opening a session on %s: %w", node.Name, err)
		}
		desc, err = solveOne(ctx, opt, node.Solver, r, use.session(), status(label))
		if err != nil && registryRace(err) && ctx.Err() == nil {
			progress.Warnf(opt.Events, "image %s: the registry refused one of two uploads of the same blob at once (the image's and the cache's); solving it again", label)
			desc, err = solveOne(ctx, opt, node.Solver, r, use.session(), status(label))
		}
		err = use.explain(err)
		use.done()
		opt.sync.done(r, node.Name, err)
		if err == nil {
			progress.Debugf(opt.Events, "image %s solved", label)
			res := Result{Request: r, Digest: desc.Digest.String(), Descriptor: desc, Node: node.Name}
			if opt.solved != nil && !j.part {
				opt.solved(ctx, res)
			}
			return res, nil
		}
		if multi {
			err = fmt.Errorf("on builder node %s (%s): %w", node.Name, node.Addr, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return Result{}, err
}

// registryRace reports whether a solve failed because the registry lost a
// race between two uploads of one blob: BuildKit pushes the image and
// exports the registry cache at once, both upload new layers, and
// distribution's registry can answer the one that commits second with
// DIGEST_INVALID or BLOB_UNKNOWN. A second solve is a cache hit that
// pushes what the first left.
func registryRace(err error) bool {
	s := err.Error()
	return strings.Contains(s, "provided digest did not match uploaded content") || strings.Contains(s, "blob unknown to registry")
}

// collect makes one result per image: its one job's, or its parts
// assembled into an index.
func collect(ctx context.Context, opt Options, reqs []Request, jobs []job, results []Result, errs []error, multi bool) ([]Result, error) {
	var out []Result
	var imageErrs []error
	for _, r := range reqs {
		var parts []Result
		var failed []error
		for i, j := range jobs {
			if j.req.Name != r.Name {
				continue
			}
			if errs[i] != nil {
				failed = append(failed, errs[i])
				continue
			}
			parts = append(parts, results[i])
		}
		if len(failed) > 0 {
			imageErrs = append(imageErrs, &Error{Image: r.Name, Err: errors.Join(failed...)})
			continue
		}
		res := parts[0]
		res.Request = r
		if multi {
			res.Nodes = map[string]string{}
			for _, p := range parts {
				for _, pl := range p.Request.Platforms {
					res.Nodes[pl] = p.Node
				}
			}
		}
		if len(parts) > 1 {
			desc, err := assemble(ctx, r, parts, opt.Registry)
			if err != nil {
				imageErrs = append(imageErrs, &Error{Image: r.Name, Err: fmt.Errorf("assembling the index of its parts: %w", err)})
				continue
			}
			res.Descriptor, res.Digest, res.Node = desc, desc.Digest.String(), ""
		}
		out = append(out, res)
	}
	return out, errors.Join(imageErrs...)
}

// PrintSources writes the Dockerfile lines at fault in a build error, the
// way BuildKit's own tools show them.
func PrintSources(w io.Writer, err error) {
	for _, src := range errdefs.Sources(err) {
		_ = src.Print(w)
	}
}

// solveOne solves r with solver; in shared, a session other images use
// too, when not nil (sessions).
func solveOne(ctx context.Context, opt Options, solver Solver, r Request, shared *session.Session, ch chan *client.SolveStatus) (ocispecs.Descriptor, error) {
	var desc ocispecs.Descriptor
	so, err := solveOpt(r)
	if err == nil && shared == nil {
		so.Session, err = sessionAttachables(r)
		if opt.Auth != nil {
			so.Session = append(so.Session, opt.Auth)
		}
	}
	if err != nil {
		close(ch)
		return desc, err
	}
	if shared != nil {
		so.SharedSession, so.SessionPreInitialized = shared, true
	}
	res, err := solver.Solve(ctx, nil, so, ch)
	if err != nil {
		return desc, err
	}
	// The exporter's descriptor of the manifest (or index) carries its
	// size and, for a single image, its platform.
	if b64 := res.ExporterResponse[exptypes.ExporterImageDescriptorKey]; b64 != "" {
		if raw, err := base64.StdEncoding.DecodeString(b64); err == nil {
			_ = json.Unmarshal(raw, &desc)
		}
	}
	dgst := res.ExporterResponse[exptypes.ExporterImageDigestKey]
	if dgst == "" {
		return desc, errors.New("BuildKit returned no image digest")
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return desc, fmt.Errorf("BuildKit returned image digest %q: %w", dgst, err)
	}
	desc.Digest = d
	if shared != nil && !r.Push {
		if desc.MediaType == "" || desc.Size <= 0 {
			return desc, fmt.Errorf("BuildKit returned no descriptor of the image to name in %s", filepath.Join(r.LayoutDir, "index.json"))
		}
		if err := indexLayout(r.LayoutDir, desc, res.ExporterResponse[exptypes.ExporterImageNameKey]); err != nil {
			return desc, fmt.Errorf("naming the image in %s: %w", filepath.Join(r.LayoutDir, "index.json"), err)
		}
	}
	return desc, nil
}

// indexLayout names desc in the layout's index.json by the exporter's
// names, as BuildKit's client does after a solve into a layout of its own
// session's. An index.json too large to be one shipit wrote is removed
// first, for BuildKit's code reads it whole: the new one names the image.
func indexLayout(dir string, desc ocispecs.Descriptor, names string) error {
	p := filepath.Join(dir, "index.json")
	if fi, err := os.Lstat(p); err == nil && fi.Size() > maxLayoutDocument {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	tags := []ociindex.NameOrTag{ociindex.Tag("latest")}
	if names != "" {
		tags = nil
		for _, n := range strings.Split(names, ",") {
			tags = append(tags, ociindex.Name(n))
		}
	}
	return ociindex.NewStoreIndex(dir).Put(desc, tags...)
}

// solveOpt is what a solve of r asks of the daemon; what the session
// serves besides its directories is the caller's (sessionAttachables).
func solveOpt(r Request) (client.SolveOpt, error) {
	ctxFS, err := fsutil.NewFS(r.ContextDir)
	if err == nil && len(r.ContextExclude) > 0 {
		// Filtered here, before BuildKit sees the directory: the frontend
		// applies .dockerignore on top, and cannot bring these back.
		ctxFS, err = fsutil.NewFilterFS(ctxFS, &fsutil.FilterOpt{ExcludePatterns: r.ContextExclude})
	}
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("context %s: %w", r.ContextDir, err)
	}
	dfFS, err := fsutil.NewFS(r.DockerfileDir)
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("dockerfile directory %s: %w", r.DockerfileDir, err)
	}
	return client.SolveOpt{
		SharedKey:     sharedKey(r),
		Frontend:      "dockerfile.v0",
		FrontendAttrs: frontendAttrs(r),
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Exports:       []client.ExportEntry{exportEntry(r)},
		CacheImports:  r.CacheImports,
		CacheExports:  r.CacheExports,
	}, nil
}

// frontendAttrs are the Dockerfile frontend's options of a request.
func frontendAttrs(r Request) map[string]string {
	attrs := map[string]string{"filename": r.DockerfileName}
	if r.Target != "" {
		attrs["target"] = r.Target
	}
	if len(r.Platforms) > 0 {
		attrs["platform"] = strings.Join(r.Platforms, ",")
	}
	for k, v := range r.Args {
		attrs["build-arg:"+k] = v
	}
	for k, v := range r.Labels {
		attrs["label:"+k] = v
	}
	attestAttrs(attrs, r)
	if r.NoCache {
		attrs["no-cache"] = ""
	}
	return attrs
}

// attestAttrs sets the frontend attributes of a request's attestations.
func attestAttrs(attrs map[string]string, r Request) {
	if r.Provenance != "" {
		attrs["attest:provenance"] = "mode=" + r.Provenance
		if r.VCSSource != "" {
			attrs["vcs:source"] = r.VCSSource
		}
		if r.VCSRevision != "" {
			attrs["vcs:revision"] = r.VCSRevision
		}
	}
	if r.SBOM {
		attrs["attest:sbom"] = ""
		if r.SBOMGenerator != "" {
			// A CSV field: quoted, so that no character of the reference
			// can add another attribute.
			attrs["attest:sbom"] = `"generator=` + strings.ReplaceAll(r.SBOMGenerator, `"`, `""`) + `"`
		}
	}
}

// sharedKey names the daemon's kept copy of an image's context and
// Dockerfile directory between builds. BuildKit keys that copy on the
// local name ("context") and the session's shared key: with none, every
// image of a build shares one copy, so concurrent images take turns
// syncing their whole context into it and hashing it again. A key of the
// directories' own makes each no-op sync a comparison of file metadata.
// That comparison misses a file rewritten with its size and mtime kept,
// so the key also holds a generation, which moves when shipit sees such
// a file (syncKeys).
func sharedKey(r Request) string {
	if r.syncGen == "" {
		return baseSharedKey(r)
	}
	return baseSharedKey(r) + "-" + r.syncGen
}

// baseSharedKey is sharedKey of a generation's own: the directories'.
func baseSharedKey(r Request) string {
	sum := sha256.Sum256([]byte("shipit\x00" + r.ContextDir + "\x00" + r.DockerfileDir + "\x00" + strings.Join(r.ContextExclude, "\x00")))
	return "shipit-" + hex.EncodeToString(sum[:12])
}

// exportEntry is where a request's image goes: its repository, or its
// OCI layout directory.
func exportEntry(r Request) client.ExportEntry {
	exp := client.ExportEntry{Attrs: map[string]string{
		"name":              r.Ref(),
		"oci-mediatypes":    "true",
		"rewrite-timestamp": "true",
	}}
	for k, v := range r.Annotations {
		exp.Attrs["annotation."+k] = v
	}
	if r.Push {
		exp.Type = client.ExporterImage
		exp.Attrs["push"] = "true"
		if r.PushByDigest {
			exp.Attrs["name"] = r.Repository
			exp.Attrs["push-by-digest"] = "true"
		}
		if r.Insecure {
			exp.Attrs["registry.insecure"] = "true"
		}
	} else {
		exp.Type = client.ExporterOCI
		exp.Attrs["tar"] = "false"
		exp.OutputDir = r.LayoutDir
	}
	return exp
}

// sessionAttachables are a request's secrets and SSH agents, as the
// daemon's session reaches them.
func sessionAttachables(r Request) ([]session.Attachable, error) {
	var attachables []session.Attachable
	if len(r.Secrets) > 0 {
		var srcs []secretsprovider.Source
		for _, s := range r.Secrets {
			srcs = append(srcs, secretsprovider.Source{ID: s.ID, FilePath: s.File, Env: s.Env})
		}
		store, err := secretsprovider.NewStore(srcs)
		if err != nil {
			// The store's errors name paths and ids, never contents.
			return nil, fmt.Errorf("secrets: %w", err)
		}
		attachables = append(attachables, secretsprovider.NewSecretProvider(store))
	}
	if len(r.SSH) > 0 {
		var confs []sshprovider.AgentConfig
		for _, s := range r.SSH {
			confs = append(confs, sshprovider.AgentConfig{ID: s.ID, Paths: s.Paths})
		}
		sp, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return nil, fmt.Errorf("ssh forwarding: %w", err)
		}
		attachables = append(attachables, sp)
	}
	return attachables, nil
}

// LayoutPath is where an image's OCI layout lives in the state directory.
func LayoutPath(stateDir, name string) string {
	return filepath.Join(stateDir, "images", name)
}

// Registry is the registry I/O a build does beside BuildKit's own push:
// reading back what was pushed, and putting the index of an image built
// on several nodes. *registry.Client is the real one, with shipit's
// network policy.
type Registry interface {
	// Manifest reads the manifest repo:ref (a tag or a digest) points at; nil when there is none.
	Manifest(ctx context.Context, repo, ref string) (*registry.Manifest, error)
	// PutManifest puts a manifest under a tag.
	PutManifest(ctx context.Context, repo, tag string, m *registry.Manifest) error
	// Lookup returns the digest repo:tag points at ("" for none), with a HEAD.
	Lookup(ctx context.Context, repo, tag string) (string, error)
	// Blob reads a blob of at most limit bytes.
	Blob(ctx context.Context, repo, digest string, limit int64) ([]byte, error)
}
