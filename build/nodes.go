package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shipit-dev/shipit/internal/registry"
)

// Node is one BuildKit daemon of a builder.
type Node struct {
	Name   string
	Addr   string // for messages
	Solver Solver
	// Native are the platforms the node is declared to build natively.
	Native []string
	// Emulated are the platforms its workers report beyond those (QEMU).
	Emulated []string
}

// RouteError is a build no node can take: the configuration's to fix.
type RouteError struct{ msg string }

func (e *RouteError) Error() string { return e.msg }

// BadInput marks the error as the user's to fix (exit code 2).
func (e *RouteError) BadInput() bool { return true }

// job is one solve: an image's platforms (all, or the part one node builds).
type job struct {
	req  Request // Platforms: what this job builds
	node *Node
	part bool // one of several parts of the image, assembled into an index
	// alternates are the other nodes for the same platforms, in hash order
	// (for --retry-other-node).
	alternates []*Node
}

// score is the rendezvous (highest random weight) hash of an image on a
// node: the image goes to the node with the highest score among those that
// can build it, so that it lands on the same node run after run, and
// removing a node moves only the images that were on it.
func score(image, node string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, image)
	_, _ = h.Write([]byte{0})
	_, _ = io.WriteString(h, node)
	// fnv's low bits mix poorly for short, similar keys: finish with a
	// 64-bit mixer (splitmix64's).
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rank orders nodes for an image, best first.
func rank(image string, nodes []*Node) []*Node {
	out := slices.Clone(nodes)
	sort.SliceStable(out, func(i, j int) bool { return score(image, out[i].Name) > score(image, out[j].Name) })
	return out
}

// normalize turns a platform string into BuildKit's canonical form.
func normalize(p string) string {
	pl, err := platforms.Parse(p)
	if err != nil {
		return p
	}
	return platforms.Format(platforms.Normalize(pl))
}

func hasPlatform(list []string, p string) bool {
	for _, q := range list {
		if normalize(q) == normalize(p) {
			return true
		}
	}
	return false
}

// Route assigns each platform of each request to a node: among the nodes
// that declare it native, the one the image's rendezvous hash ranks first;
// when none does, the first that emulates it (with a warning). An image
// whose platforms all land on one node is one solve, as on a single daemon;
// otherwise each node builds its part and the parts become one index.
func Route(reqs []Request, nodes []*Node) ([]job, []string, error) {
	var jobs []job
	var warnings []string
	for _, r := range reqs {
		if len(r.Platforms) == 0 {
			return nil, nil, &RouteError{fmt.Sprintf("image %s has no platforms: with several builder nodes, each image needs them (set platforms at the top of shipit.yaml, or images.%s.platforms)", r.Name, r.Name)}
		}
		ranked := rank(r.Name, nodes)
		byNode := map[*Node][]string{}
		alts := map[*Node][]*Node{}
		var order []*Node
		for _, p := range r.Platforms {
			var cands []*Node
			for _, n := range ranked {
				if hasPlatform(n.Native, p) {
					cands = append(cands, n)
				}
			}
			if len(cands) == 0 {
				for _, n := range ranked {
					if hasPlatform(n.Emulated, p) {
						cands = append(cands, n)
					}
				}
				if len(cands) == 0 {
					return nil, nil, &RouteError{fmt.Sprintf("image %s: no reachable builder node builds %s, natively or under emulation: declare it in a node's platforms, or set up QEMU (binfmt_misc) on one", r.Name, p)}
				}
				warnings = append(warnings, fmt.Sprintf("image %s: no builder node declares %s natively: building it under emulation on %s (slower)", r.Name, p, cands[0].Name))
			}
			n := cands[0]
			if _, ok := byNode[n]; !ok {
				order = append(order, n)
				alts[n] = cands[1:]
			}
			byNode[n] = append(byNode[n], p)
		}
		for _, n := range order {
			part := r
			part.Platforms = byNode[n]
			jobs = append(jobs, job{req: part, node: n, part: len(order) > 1, alternates: alts[n]})
		}
	}
	return jobs, warnings, nil
}

// platformSlug names a part's platforms in a path or a tag: linux-arm64.
func platformSlug(r Request) string {
	return strings.NewReplacer("/", "-", ",", "_").Replace(strings.Join(r.Platforms, ","))
}

// partDir is where a node's part of an image goes before assembly.
func partDir(r Request, node string) string {
	return r.LayoutDir + ".parts/" + node + "-" + platformSlug(r)
}

// assemble makes one OCI index of an image's parts, in the order of its
// platforms, written exactly as BuildKit writes the index of a
// multi-platform build (so that the digest does not depend on how many
// nodes built it): the platform manifests, then the attestation manifests
// in the same order. A part built with attestations is itself an index of
// its manifest and the attestation manifest that refers to it by digest,
// so taking both over unchanged keeps the reference valid. With push, the
// index goes to the registry under the tag (the parts were pushed by
// digest); otherwise into the image's layout.
func assemble(ctx context.Context, r Request, parts []Result, reg Registry) (ocispecs.Descriptor, error) {
	byPlatform := map[string]ocispecs.Descriptor{}
	attests := map[string]ocispecs.Descriptor{} // by the digest they refer to
	for _, p := range parts {
		ms, err := partManifests(ctx, r, p, reg)
		if err != nil {
			return ocispecs.Descriptor{}, err
		}
		for _, d := range ms {
			if d.Annotations[AnnotationReferenceType] == ReferenceTypeAttestation {
				attests[d.Annotations[AnnotationReferenceDigest]] = d
				continue
			}
			if d.Platform == nil {
				return ocispecs.Descriptor{}, fmt.Errorf("image %s: the part built on %s has no platform", r.Name, p.Node)
			}
			byPlatform[platforms.Format(*d.Platform)] = d
		}
	}
	idx := ocispecs.Index{MediaType: ocispecs.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	var attested []ocispecs.Descriptor
	for _, p := range r.Platforms {
		d, ok := byPlatform[normalize(p)]
		if !ok {
			return ocispecs.Descriptor{}, fmt.Errorf("image %s: no part was built for %s", r.Name, p)
		}
		idx.Manifests = append(idx.Manifests, d)
		if a, ok := attests[d.Digest.String()]; ok {
			attested = append(attested, a)
		}
	}
	idx.Manifests = append(idx.Manifests, attested...)
	raw, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return ocispecs.Descriptor{}, err
	}
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if r.Push {
		if reg == nil {
			return desc, errors.New("no registry client to put the index with")
		}
		m := &registry.Manifest{Digest: desc.Digest.String(), MediaType: types.OCIImageIndex, Raw: raw}
		return desc, reg.PutManifest(ctx, r.Repository, r.Tag, m)
	}
	return desc, writeIndexLayout(r, parts, raw, desc)
}

// maxPartIndex bounds the index of one node's part read back for assembly.
const maxPartIndex = 4 << 20

// partManifests are the manifests one node's part contributes: its image
// manifest, or, when it is an index (attestations), the index's entries:
// image manifests and the attestation manifests that refer to them.
func partManifests(ctx context.Context, r Request, p Result, reg Registry) ([]ocispecs.Descriptor, error) {
	d := p.Descriptor
	switch d.MediaType {
	case ocispecs.MediaTypeImageManifest:
		return []ocispecs.Descriptor{{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: d.Platform}}, nil
	case ocispecs.MediaTypeImageIndex:
	default:
		return nil, fmt.Errorf("image %s: the part built on %s is a %s, not an image manifest or index", r.Name, p.Node, d.MediaType)
	}
	raw, err := readPart(ctx, p, reg)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading the part built on %s: %w", r.Name, p.Node, err)
	}
	if len(raw) > maxPartIndex || digest.FromBytes(raw) != d.Digest {
		return nil, fmt.Errorf("image %s: the part built on %s does not read back as %s", r.Name, p.Node, d.Digest)
	}
	var idx ocispecs.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("image %s: the part built on %s: %w", r.Name, p.Node, err)
	}
	for _, m := range idx.Manifests {
		if m.MediaType != ocispecs.MediaTypeImageManifest {
			return nil, fmt.Errorf("image %s: the part built on %s holds a %s, not image and attestation manifests", r.Name, p.Node, m.MediaType)
		}
	}
	return idx.Manifests, nil
}

// readPart reads a part's index: from the registry it was pushed to by
// digest, or from its layout.
func readPart(ctx context.Context, p Result, reg Registry) ([]byte, error) {
	dgst := p.Descriptor.Digest
	if p.Request.Push {
		if reg == nil {
			return nil, errors.New("no registry client to read the part back")
		}
		m, err := reg.Manifest(ctx, p.Request.Repository, dgst.String())
		if err != nil {
			return nil, err
		}
		if m == nil {
			return nil, fmt.Errorf("%s@%s is not in the registry after the push", p.Request.Repository, dgst)
		}
		return m.Raw, nil
	}
	root, err := os.OpenRoot(p.Request.LayoutDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.ReadFile(filepath.Join("blobs", dgst.Algorithm().String(), dgst.Encoded()))
}

// writeIndexLayout makes the image's OCI layout from its parts' layouts
// and the index, and removes the parts.
func writeIndexLayout(r Request, parts []Result, raw []byte, desc ocispecs.Descriptor) error {
	if err := os.RemoveAll(r.LayoutDir); err != nil {
		return err
	}
	blobs := filepath.Join(r.LayoutDir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	for _, p := range parts {
		src := filepath.Join(p.Request.LayoutDir, "blobs", "sha256")
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			// A blob two parts share is there once.
			if err := linkBlob(filepath.Join(src, e.Name()), filepath.Join(blobs, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(blobs, desc.Digest.Encoded()), raw, 0o644); err != nil {
		return err
	}
	top := desc
	top.Annotations = map[string]string{ocispecs.AnnotationRefName: r.Tag, "io.containerd.image.name": r.Ref()}
	index, err := json.Marshal(ocispecs.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispecs.MediaTypeImageIndex, Manifests: []ocispecs.Descriptor{top}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.LayoutDir, "index.json"), index, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.LayoutDir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	var errs []error
	for _, p := range parts {
		errs = append(errs, os.RemoveAll(p.Request.LayoutDir))
	}
	_ = os.Remove(r.LayoutDir + ".parts")
	return errors.Join(errs...)
}

// partRequest is a request for one node's part of an image: pushed by
// digest (the index gets the tag), or into a layout of its own; its cache
// is the part's platforms' own (two nodes must not overwrite one cache).
func partRequest(r Request, node string) Request {
	slug := platformSlug(r)
	r.PushByDigest = r.Push
	r.LayoutDir = partDir(r, node)
	fix := func(entries []client.CacheOptionsEntry) []client.CacheOptionsEntry {
		var out []client.CacheOptionsEntry
		for _, e := range entries {
			attrs := map[string]string{}
			for k, v := range e.Attrs {
				switch {
				case k == "ref" && strings.Contains(v, ":"+CacheTag): // buildcache, buildcache-pr-9
					v += "-" + slug
				case k == "src" || k == "dest":
					v += "-" + slug
				}
				attrs[k] = v
			}
			out = append(out, client.CacheOptionsEntry{Type: e.Type, Attrs: attrs})
		}
		return out
	}
	r.CacheImports, r.CacheExports = fix(r.CacheImports), fix(r.CacheExports)
	return r
}

// JobNodes lists, for each job, the image and the node it is routed to.
func JobNodes(jobs []job) [][2]string {
	var out [][2]string
	for _, j := range jobs {
		out = append(out, [2]string{j.req.Name, j.node.Name})
	}
	return out
}
