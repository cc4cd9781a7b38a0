package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shipit-dev/shipit/internal/progress"
)

// Run builds a plan and writes the build record. A record is written only
// when every image built: no record ever claims a failed image.
func Run(ctx context.Context, opt Options, p Plan) (*Record, error) {
	reqs, err := planRequests(opt, p)
	if err != nil {
		return nil, err
	}
	// The last record, read once: its images are kept where their inputs
	// are the same (reuse), a partial build merges it, and a push takes
	// from it what it already knows of an image (known). A full build's
	// record replaces it whatever it held; an unreadable one is replaced
	// too.
	path := filepath.Join(p.StateDir, RecordFile)
	prev, _ := ReadRecord(path)
	knownPushed := known(prev)
	ru := reuse(ctx, opt, p, reqs, prev)
	if p.StateDir != "" {
		opt.sync = newSyncKeys(p.StateDir, opt.Events, reqs, ru.srcs)
		defer opt.sync.save(ctx)
	}
	progress.Debugf(opt.Events, "inputs compared with the last build: %d to solve now, %d to look for", len(ru.solve), ru.waiting)
	// Each image is read as soon as its solve is done, beside the others'.
	var mu sync.Mutex
	read := map[string]imageRead{}
	opt.solved = func(ctx context.Context, res Result) {
		st, err := readImageKnown(ctx, opt.Registry, res, knownPushed)
		progress.Debugf(opt.Events, "image %s read", res.Request.Name)
		mu.Lock()
		read[res.Request.Name] = imageRead{st, err}
		mu.Unlock()
	}
	// The images whose inputs changed are solved while the others are
	// looked for; one that is gone is solved after all, beside them.
	var kept []Image
	var notices []string
	rest := func() []Request {
		var solve []Request
		kept, solve, notices = ru.rest()
		progress.Debugf(opt.Events, "last images looked for: %d kept, %d to solve", len(kept), len(solve))
		return solve
	}
	results, err := solveHeld(ctx, opt, ru.solve, ru.waiting, rest, func(name string) {
		mu.Lock()
		delete(read, name) // read again, as tagged
		mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	for _, n := range notices {
		progress.Infof(opt.Events, "%s", n)
	}
	for _, im := range kept {
		progress.Infof(opt.Events, "%s unchanged since the last build (the same Dockerfile, context files, build arguments and base images): %s kept, not built again (--rebuild builds it)", im.Name, im.Ref())
	}
	progress.Debugf(opt.Events, "solves done")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, err := newRecord(ctx, opt, p, results, read, ru.recordable())
	if err != nil {
		return nil, err
	}
	rec.Images = append(rec.Images, kept...)
	sort.Slice(rec.Images, func(i, j int) bool { return rec.Images[i].Name < rec.Images[j].Name })
	progress.Debugf(opt.Events, "images read")

	if p.Partial && prev != nil {
		rec.Merge(prev)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := WriteRecord(path, rec); err != nil {
		return nil, fmt.Errorf("writing the build record: %w", err)
	}
	progress.Debugf(opt.Events, "build record written")
	return rec, nil
}

// planRequests are the requests of a plan (Requests), its warnings shown.
// With several nodes every image must have nodes to build on before any
// is built: some are solved only once the others' last images are
// looked for.
func planRequests(opt Options, p Plan) ([]Request, error) {
	reqs, warnings, err := Requests(p)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		progress.Warnf(opt.Events, "%s", w)
	}
	if len(opt.Nodes) > 1 {
		if _, _, err := Route(reqs, opt.Nodes); err != nil {
			return nil, err
		}
	}
	return reqs, nil
}

// newRecord is the record of the images solved: each one's result, what
// was read of it (read; an index assembled from parts is read now), and
// its inputs key.
func newRecord(ctx context.Context, opt Options, p Plan, results []Result, read map[string]imageRead, keys map[string]string) (*Record, error) {
	rec := &Record{Version: RecordVersion, Commit: p.Head.SHA, CommitTime: p.Head.Time.UTC(), Tag: p.Tag}
	for _, res := range results {
		r := res.Request
		im := Image{
			Name: r.Name, Repository: r.Repository, Tag: r.Tag, Digest: res.Digest,
			Commit: p.Head.SHA, CommitTime: p.Head.Time.UTC(), Pushed: r.Push, Nodes: res.Nodes,
			Inputs: keys[r.Name],
		}
		if !r.Push {
			im.Layout, _ = filepath.Rel(p.StateDir, r.LayoutDir)
		}
		ir, ok := read[r.Name]
		if !ok { // an index assembled from parts
			ir.st, ir.err = readImage(ctx, opt.Registry, res)
		}
		if ir.err != nil {
			return nil, fmt.Errorf("reading image %s: %w", r.Name, ir.err)
		}
		im.Size, im.Platforms, im.Attestations = ir.st.size, ir.st.platforms, ir.st.attestations
		rec.Images = append(rec.Images, im)
	}
	return rec, nil
}

// readImage reads what a built image takes in the registry, or in its
// layout (which it keeps to that image).
func readImage(ctx context.Context, reg Registry, res Result) (stats, error) {
	r := res.Request
	if r.Push {
		return remoteStats(ctx, reg, r.Repository, res.Descriptor)
	}
	return keepLayout(r.LayoutDir, res.Descriptor)
}

// readImageKnown is readImage, but for an image pushed to a repository
// that the last record holds, pushed, with the same digest: the digest
// names the content, so its size and platforms are the record's, and the
// registry is not asked again (a no-op build --push reads nothing back).
func readImageKnown(ctx context.Context, reg Registry, res Result, known map[string]Image) (stats, error) {
	if im, ok := known[res.Request.Repository+"@"+res.Digest]; ok && res.Request.Push {
		return stats{size: im.Size, platforms: im.Platforms, attestations: im.Attestations}, nil
	}
	return readImage(ctx, reg, res)
}

// known indexes a record's pushed images by repository@digest.
func known(rec *Record) map[string]Image {
	m := map[string]Image{}
	if rec == nil {
		return m
	}
	for _, im := range rec.Images {
		if im.Pushed && im.Digest != "" && im.Size > 0 {
			m[im.Repository+"@"+im.Digest] = im
		}
	}
	return m
}

type imageRead struct {
	st  stats
	err error
}

type stats struct {
	size         int64
	platforms    []string
	blobs        []string // digests of the configs, layers and child manifests
	attestations []Attestation
}

// Annotations BuildKit writes on an attestation manifest and its layers.
const (
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	AnnotationPredicateType   = "in-toto.io/predicate-type"
	// ReferenceTypeAttestation is the reference type of an attestation manifest.
	ReferenceTypeAttestation = "attestation-manifest"
)

// sizeOf sums what an image takes in a registry: its manifest, config and
// layers (compressed), and for an index each child's. Platforms come from
// the index's entries, or top for a single manifest. Only manifests are
// read (fetch), never configs or layers.
func sizeOf(raw []byte, top *ocispecs.Platform, fetch func(dgst string) ([]byte, error)) (stats, error) {
	var m struct {
		Config    *ocispecs.Descriptor  `json:"config"`
		Layers    []ocispecs.Descriptor `json:"layers"`
		Manifests []ocispecs.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return stats{}, err
	}
	s := stats{size: int64(len(raw))}
	if m.Config != nil {
		s.size += m.Config.Size
		s.blobs = append(s.blobs, m.Config.Digest.String())
	}
	for _, l := range m.Layers {
		s.size += l.Size
		s.blobs = append(s.blobs, l.Digest.String())
	}
	if m.Manifests == nil {
		if top != nil {
			s.platforms = []string{platforms.Format(*top)}
		}
		return s, nil
	}
	for _, d := range m.Manifests {
		child, err := fetch(d.Digest.String())
		if err != nil {
			return stats{}, err
		}
		cs, err := sizeOf(child, d.Platform, fetch)
		if err != nil {
			return stats{}, err
		}
		s.size += cs.size
		s.blobs = append(append(s.blobs, d.Digest.String()), cs.blobs...)
		if d.Annotations[AnnotationReferenceType] == ReferenceTypeAttestation {
			a, err := attestationOf(d, child, m.Manifests)
			if err != nil {
				return stats{}, err
			}
			s.attestations = append(s.attestations, a)
			continue
		}
		// Attestation manifests carry the platform unknown/unknown.
		if d.Platform != nil && d.Platform.OS != "unknown" {
			s.platforms = append(s.platforms, cs.platforms...)
		}
	}
	return s, nil
}

// attestationOf describes the attestation manifest d of an index (raw is
// its content, siblings the index's manifests): which platform manifest
// of the same index it refers to, and its statements' predicate types.
func attestationOf(d ocispecs.Descriptor, raw []byte, siblings []ocispecs.Descriptor) (Attestation, error) {
	a := Attestation{Digest: d.Digest.String(), Subject: d.Annotations[AnnotationReferenceDigest], PredicateTypes: []string{}}
	for _, sib := range siblings {
		if sib.Digest.String() == a.Subject && sib.Annotations[AnnotationReferenceType] == "" && sib.Platform != nil {
			a.Platform = platforms.Format(*sib.Platform)
		}
	}
	if a.Platform == "" {
		return a, fmt.Errorf("attestation manifest %s refers to %q, which is no platform manifest of the index", a.Digest, a.Subject)
	}
	var m struct {
		Layers []ocispecs.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return a, fmt.Errorf("attestation manifest %s: %w", a.Digest, err)
	}
	for _, l := range m.Layers {
		if pt := l.Annotations[AnnotationPredicateType]; pt != "" {
			a.PredicateTypes = append(a.PredicateTypes, pt)
		}
	}
	return a, nil
}

func remoteStats(ctx context.Context, reg Registry, repo string, desc ocispecs.Descriptor) (stats, error) {
	if reg == nil {
		return stats{}, errors.New("no registry client to read the pushed image back")
	}
	fetch := func(dgst string) ([]byte, error) {
		m, err := reg.Manifest(ctx, repo, dgst)
		if err != nil {
			return nil, err
		}
		if m == nil {
			return nil, fmt.Errorf("%s@%s is not in the registry after the push", repo, dgst)
		}
		return m.Raw, nil
	}
	raw, err := fetch(desc.Digest.String())
	if err != nil {
		return stats{}, err
	}
	return sizeOf(raw, desc.Platform, fetch)
}

// FromLayout opens the image or index with the given digest in an OCI
// image layout: exactly one of the two results is set.
func FromLayout(dir, dgst string) (v1.Image, v1.ImageIndex, error) {
	// Checked first, bounded (layoutHolds): the layout library reads the
	// index and every manifest and configuration whole.
	if err := layoutHolds(dir, dgst); err != nil {
		return nil, nil, fmt.Errorf("reading the image layout %s: %w (run `shipit build` again)", dir, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the image layout %s: %w (run `shipit build` again)", dir, err)
	}
	h, err := v1.NewHash(dgst)
	if err != nil {
		return nil, nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	for _, d := range im.Manifests {
		switch {
		case d.Digest != h:
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(h)
			return nil, child, err
		default:
			img, err := idx.Image(h)
			return img, nil, err
		}
	}
	return nil, nil, fmt.Errorf("the image layout %s does not hold %s (run `shipit build` again)", dir, dgst)
}
