package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/shipit-dev/shipit/internal/progress"
)

// reuse computes every request's inputs (inputs.go), and keeps from the
// last record each image whose inputs are the same and which is still
// where that build put it: in its repository under the tag, or in its
// layout. It returns the requests to solve, the images kept, and the key
// to record for each image (none where a file had just changed).
func reuse(ctx context.Context, opt Options, p Plan, reqs []Request, prev *Record) ([]Request, []Image, map[string]string) {
	keys := map[string]string{}
	ins := make([]inputs, len(reqs))
	kept := make([]*Image, len(reqs))
	resolve := registryResolver(opt.Registry)
	now := time.Now()
	if opt.now != nil {
		now = opt.now()
	}
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			last := lastImage(prev, r.Name)
			// Whether the last image is still there is asked beside
			// the inputs, and counts only when they match.
			there := make(chan string, 1)
			if last != nil && !p.Rebuild && !p.NoCache {
				go func() { there <- stillThere(ctx, opt, p, r, last) }()
			}
			src, ok := p.Sources.get(r.Name)
			if !ok || src.of != sourceSig(r) {
				src = sourceOf(ctx, r, specArgs(p, r.Name), resolve, now)
			}
			ins[i] = inputsOf(r, opt.Builder, src)
			if last == nil || p.Rebuild || p.NoCache || ins[i].key == "" || last.Inputs != ins[i].key {
				return
			}
			if why := <-there; why != "" {
				progress.Debugf(opt.Events, "image %s: inputs as in the last build, but %s: solving it", r.Name, why)
				return
			}
			kept[i] = last
		})
	}
	wg.Wait()
	var solve []Request
	var images []Image
	for i, r := range reqs {
		in := ins[i]
		if in.key != "" && !in.racy {
			keys[r.Name] = in.key
		}
		switch {
		case kept[i] != nil:
			im := *kept[i]
			im.Inputs = keys[r.Name]
			images = append(images, im)
			progress.Infof(opt.Events, "%s unchanged since the last build (the same Dockerfile, context files, build arguments and base images): %s kept, not built again (--rebuild builds it)", r.Name, im.Ref())
		case in.why != "":
			progress.Debugf(opt.Events, "image %s: solved: %s", r.Name, in.why)
			solve = append(solve, r)
		default:
			if in.racy {
				progress.Debugf(opt.Events, "image %s: a context file changed just now: no inputs key kept for the next build", r.Name)
			}
			solve = append(solve, r)
		}
	}
	return solve, images, keys
}

// lastImage is the last record's entry of an image, when it has a usable
// one.
func lastImage(prev *Record, name string) *Image {
	if prev == nil {
		return nil
	}
	for i := range prev.Images {
		im := &prev.Images[i]
		if im.Name != name || im.Inputs == "" {
			continue
		}
		if _, err := digest.Parse(im.Digest); err != nil {
			return nil
		}
		return im
	}
	return nil
}

// stillThere says why the last build's image of a request cannot be kept
// ("" when it can): it must be the same kind of output of the same
// repository and tag (the inputs say so too), and still be there.
func stillThere(ctx context.Context, opt Options, p Plan, r Request, last *Image) string {
	if last.Repository != r.Repository || last.Tag != r.Tag || last.Pushed != r.Push {
		return "the last build's image went elsewhere"
	}
	if r.Push {
		if opt.Registry == nil {
			return "no registry client"
		}
		got, err := opt.Registry.Lookup(ctx, r.Repository, r.Tag)
		if err != nil {
			return err.Error()
		}
		if got == last.Digest {
			return ""
		}
		return retag(ctx, opt, r, last, got)
	}
	rel, err := filepath.Rel(p.StateDir, r.LayoutDir)
	if err != nil || last.Layout != rel {
		return "the last build's layout is elsewhere"
	}
	if err := layoutHolds(r.LayoutDir, last.Digest); err != nil {
		var bad *corruptBlobError
		if errors.As(err, &bad) {
			// The daemon's export skips blobs the layout has, whatever
			// they hold: the solve must start from an empty layout.
			if rerr := os.RemoveAll(r.LayoutDir); rerr != nil {
				return err.Error() + "; removing the layout: " + rerr.Error()
			}
			return err.Error() + ": the layout is removed, for the solve to write it again"
		}
		return err.Error()
	}
	return ""
}

// corruptBlobError is a blob of a layout whose content is not its digest's.
type corruptBlobError struct{ dir, digest string }

func (e *corruptBlobError) Error() string {
	return fmt.Sprintf("the layout %s holds blob %s with other content", e.dir, e.digest)
}

// layoutHolds checks that an OCI layout's index names dgst and that the
// layout holds every blob of it: manifests read and checked against their
// digests, configs and layers present. It reads through an os.Root.
func layoutHolds(dir, dgst string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	data, err := root.ReadFile("index.json")
	if err != nil {
		return err
	}
	var idx struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("%s/index.json: %w", dir, err)
	}
	var top *ociDescriptor
	for i := range idx.Manifests {
		if idx.Manifests[i].Digest == dgst {
			top = &idx.Manifests[i]
		}
	}
	if top == nil {
		return fmt.Errorf("the layout %s no longer names %s", dir, dgst)
	}
	blobPath := func(d string) (string, error) {
		algo, hx, _ := strings.Cut(d, ":")
		if algo != "sha256" || len(hx) != 64 || strings.Trim(hx, "0123456789abcdef") != "" {
			return "", fmt.Errorf("blob %q: not a sha256 digest", d)
		}
		return filepath.Join("blobs", algo, hx), nil
	}
	fetch := func(d string) ([]byte, error) {
		p, err := blobPath(d)
		if err != nil {
			return nil, err
		}
		raw, err := root.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != d {
			return nil, &corruptBlobError{dir: dir, digest: d}
		}
		return raw, nil
	}
	raw, err := fetch(dgst)
	if err != nil {
		return err
	}
	st, err := sizeOf(raw, nil, fetch)
	if err != nil {
		return err
	}
	for _, b := range st.blobs {
		p, err := blobPath(b)
		if err != nil {
			return err
		}
		if fi, err := root.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("the layout %s lacks blob %s", dir, b)
		}
	}
	return nil
}

// retag puts the last build's image back under its tag, which another
// push moved (to other, "" for none): a solve would push that same image
// there. An attested image is left to the solve, which keeps an index of
// the same images that the tag may now hold (held.go). It says why not
// ("" when done).
func retag(ctx context.Context, opt Options, r Request, last *Image, other string) string {
	moved := fmt.Sprintf("%s holds %s, not %s", r.Ref(), other, last.Digest)
	if other == "" {
		moved = fmt.Sprintf("%s is not in the registry", r.Ref())
	}
	if len(last.Attestations) > 0 || r.Provenance != "" || r.SBOM || r.PushByDigest {
		return moved
	}
	m, err := opt.Registry.Manifest(ctx, r.Repository, last.Digest)
	if err != nil || m == nil || m.Digest != last.Digest {
		return moved + ", and " + last.Digest + " is gone"
	}
	if err := opt.Registry.PutManifest(ctx, r.Repository, r.Tag, m); err != nil {
		return moved + ", and tagging it again failed: " + err.Error()
	}
	progress.Infof(opt.Events, "%s held another image: tagged %s again", r.Ref(), last.Digest)
	return ""
}

// specArgs are an image's configured build arguments.
func specArgs(p Plan, name string) map[string]string {
	for _, sp := range p.Images {
		if sp.Name == name {
			return sp.Args
		}
	}
	return nil
}
