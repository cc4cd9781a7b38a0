package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shipit-dev/shipit/internal/progress"
)

// reuse computes every request's inputs (inputs.go), and keeps from the
// last record each image whose inputs are the same and which is still
// where that build put it: in its repository under the tag, or in its
// layout. Whether it is still there is a registry or file read, so the
// decision comes in two steps: the requests whose inputs differ are
// solved at once (reused.solve), and reused.rest waits for the others.
type reused struct {
	solve []Request // to solve now
	// waiting counts the requests whose inputs are the last build's, which
	// rest decides on.
	waiting int
	// rest waits for the images whose inputs are the last build's, and
	// returns those kept and those to solve after all (their image is
	// gone), and notices of what it did. The caller tells of the kept
	// images and the notices after the display of the solves. It may be
	// called once.
	rest func() ([]Image, []Request, []string)
	// recordable waits for what decides which images' keys may be
	// recorded (none where a file had just changed, or a base image has
	// ONBUILD triggers, which is read beside the solves) and returns
	// them. Call it after rest.
	recordable func() map[string]string
	// srcs are each request's sources, in order.
	srcs []sources
}

// reuse compares the requests' inputs with the last record's (prev), and
// starts, beside, the reads of whether the last images are still there.
func reuse(ctx context.Context, opt Options, p Plan, reqs []Request, prev *Record) reused {
	c := compareInputs(ctx, opt, p, reqs, prev)
	bc := &baseChecks{opt: opt, memo: onbuildMemo(opt.Registry), keys: map[string]string{}}
	out := reused{srcs: c.srcs}
	for i, r := range reqs {
		if in := c.ins[i]; in.key != "" && !in.racy {
			bc.keys[r.Name] = in.key
		}
		if c.matching[i] {
			out.waiting++
			continue
		}
		// A corrupt layout is removed before the solve writes into it.
		if c.still[i] != nil && !r.Push {
			if l := <-c.still[i]; l.fix != nil {
				_, _ = l.fix()
			}
		}
		clearBeforeSolve(opt, r)
		out.solve = append(out.solve, r)
		logSolved(opt, r, c.ins[i])
	}
	// The base images are checked beside the solves: of the images solved
	// now, and then of those rest adds.
	for i := range reqs {
		if !c.matching[i] {
			bc.check(ctx, reqs[i], c.srcs[i])
		}
	}
	out.rest = func() ([]Image, []Request, []string) {
		var images []Image
		var solve []Request
		var notices []string
		for i, r := range reqs {
			if !c.matching[i] {
				continue
			}
			// A recorded key's base images had no ONBUILD triggers (their
			// digests are in it, and name what was checked). Nothing is
			// queued once the build is cancelled.
			why, notice := (<-c.still[i]).settle()
			if notice != "" {
				notices = append(notices, notice)
			}
			if why != "" {
				if ctx.Err() != nil {
					continue
				}
				progress.Debugf(opt.Events, "image %s: inputs as in the last build, but %s: solving it", r.Name, why)
				clearBeforeSolve(opt, r)
				solve = append(solve, r)
				bc.check(ctx, r, c.srcs[i])
				continue
			}
			im := *c.last[i]
			im.Inputs = bc.key(r.Name)
			images = append(images, im)
		}
		return images, solve, notices
	}
	out.recordable = bc.recordable
	return out
}

// compared is each request's inputs (compareInputs), its sources, its
// last build's image (last) and whether their inputs are the same
// (matching); still[i] is the look at that image (lookLast), for any
// request with one.
type compared struct {
	ins      []inputs
	srcs     []sources
	last     []*Image
	still    []chan lastLook
	matching []bool
}

// compareInputs computes each request's inputs and compares them with the
// last build's; the last image is looked at beside, reading only.
func compareInputs(ctx context.Context, opt Options, p Plan, reqs []Request, prev *Record) compared {
	c := compared{
		ins: make([]inputs, len(reqs)), srcs: make([]sources, len(reqs)), last: make([]*Image, len(reqs)),
		still: make([]chan lastLook, len(reqs)), matching: make([]bool, len(reqs)),
	}
	now := time.Now()
	if opt.now != nil {
		now = opt.now()
	}
	sr := newSourceReader(registryResolver(opt.Registry), now)
	var wg sync.WaitGroup
	for i, r := range reqs {
		last := lastImage(prev, r.Name)
		c.last[i] = last
		if last != nil && !p.Rebuild && !p.NoCache {
			c.still[i] = make(chan lastLook, 1)
			go func() { c.still[i] <- lookLast(ctx, opt, p, r, last) }()
		}
		wg.Go(func() {
			src, ok := p.Sources.get(r.Name)
			if !ok || src.of != sourceSig(r) {
				src = sr.sourceOf(ctx, r, specArgs(p, r.Name))
			}
			c.srcs[i] = src
			c.ins[i] = inputsOf(r, opt.Builder, src)
			c.matching[i] = c.still[i] != nil && c.ins[i].key != "" && last.Inputs == c.ins[i].key
		})
	}
	wg.Wait()
	return c
}

// logSolved says, under -v, why a request is solved rather than kept.
func logSolved(opt Options, r Request, in inputs) {
	switch {
	case in.why != "":
		progress.Debugf(opt.Events, "image %s: solved: %s", r.Name, in.why)
	case in.racy:
		progress.Debugf(opt.Events, "image %s: a context file changed just now: no inputs key kept for the next build", r.Name)
	}
}

// baseChecks reads, beside the solves, whether the base images of each
// image solved have ONBUILD triggers, which run in the build and may read
// anything: such an image's key is not recorded, so it is never kept.
// keys are the keys to record, by image.
type baseChecks struct {
	opt  Options
	memo func(context.Context, []pinnedImage) string
	wg   sync.WaitGroup
	mu   sync.Mutex
	keys map[string]string
}

// check starts the read for r, whose sources are src.
func (bc *baseChecks) check(ctx context.Context, r Request, src sources) {
	if bc.key(r.Name) == "" || len(src.bases) == 0 {
		return
	}
	bc.wg.Go(func() {
		if why := bc.memo(ctx, src.bases); why != "" {
			progress.Debugf(bc.opt.Events, "image %s: %s: no inputs key kept", r.Name, why)
			bc.mu.Lock()
			delete(bc.keys, r.Name)
			bc.mu.Unlock()
		}
	})
}

// key is an image's key to record, as far as the reads have said.
func (bc *baseChecks) key(name string) string {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return bc.keys[name]
}

// recordable waits for the reads, and returns the keys to record.
func (bc *baseChecks) recordable() map[string]string {
	bc.wg.Wait()
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return maps.Clone(bc.keys)
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

// lastLook is what lookLast found of a last image: why it cannot be kept
// ("" when it can), or fix, when set, what would settle it, returning the
// why that then holds and what to tell the user: a tag
// that another push moved is tagged again (kept), a layout with a corrupt
// blob is removed (solved afresh). A fix writes, so it runs only once the
// image's fate is known: never beside the image's own solve.
type lastLook struct {
	why string
	fix func() (why, notice string)
}

// lookLast reads whether the last build's image of a request is still
// there, writing nothing: it must be the same kind of output of the same
// repository and tag (the inputs say so too), and still be there.
func lookLast(ctx context.Context, opt Options, p Plan, r Request, last *Image) lastLook {
	if last.Repository != r.Repository || last.Tag != r.Tag || last.Pushed != r.Push {
		return lastLook{why: "the last build's image went elsewhere"}
	}
	if r.Push {
		if opt.Registry == nil {
			return lastLook{why: "no registry client"}
		}
		got, err := opt.Registry.Lookup(ctx, r.Repository, r.Tag)
		if err != nil {
			return lastLook{why: err.Error()}
		}
		if got == last.Digest {
			return lastLook{}
		}
		return lastLook{fix: func() (string, string) { return retag(ctx, opt, r, last, got) }}
	}
	rel, err := filepath.Rel(p.StateDir, r.LayoutDir)
	if err != nil || last.Layout != rel {
		return lastLook{why: "the last build's layout is elsewhere"}
	}
	err = layoutHolds(r.LayoutDir, last.Digest)
	var bad *corruptBlobError
	switch {
	case err == nil:
		return lastLook{}
	case errors.As(err, &bad) || errors.Is(err, errIndexTooLarge):
		// The daemon's export skips blobs the layout has, whatever they
		// hold: the solve must start from an empty layout.
		return lastLook{fix: func() (string, string) { return removeLayout(r.LayoutDir, err), "" }}
	}
	return lastLook{why: err.Error()}
}

// clearCorruptLayout removes the layout dir, about to be exported into,
// when a blob of what its index names is not what its digest says
// (checkBlobs: a manifest or configuration that does not hash to it, a
// layer of another size), or its index is too large to read, and says so
// ("" when it stays). The export skips a blob the layout has, whatever it
// holds, so the solve's image would name it: a layer cut short in one
// build would stay in every later one. A layout or index not there yet,
// or one that cannot be read, is left to the export and keepLayout.
func clearCorruptLayout(dir string) string {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return ""
	}
	bad := func() error {
		defer root.Close()
		data, err := readIndex(root, dir)
		if errors.Is(err, errIndexTooLarge) {
			return err
		}
		var idx struct {
			Manifests []ociDescriptor `json:"manifests"`
		}
		if err != nil || json.Unmarshal(data, &idx) != nil {
			return nil
		}
		for _, m := range idx.Manifests {
			var c *corruptBlobError
			if err := checkBlobs(root, dir, m.Digest, false, 0); errors.As(err, &c) {
				return err
			}
		}
		return nil
	}()
	if bad == nil {
		return ""
	}
	return removeLayout(dir, bad)
}

// removeLayout removes a corrupt layout (why) for a solve to write it
// again, and says so.
func removeLayout(dir string, why error) string {
	if err := os.RemoveAll(dir); err != nil {
		return why.Error() + "; removing the layout: " + err.Error()
	}
	return why.Error() + ": the layout is removed, for the solve to write it again"
}

// clearBeforeSolve clears r's layout before r is solved into it, when it
// is corrupt (clearCorruptLayout), and says why under -v.
func clearBeforeSolve(opt Options, r Request) {
	if r.Push {
		return
	}
	if why := clearCorruptLayout(r.LayoutDir); why != "" {
		progress.Debugf(opt.Events, "image %s: %s", r.Name, why)
	}
}

// settle is why a last image cannot be kept once its look is fixed, and
// what the fix has to tell.
func (l lastLook) settle() (why, notice string) {
	if l.fix != nil {
		return l.fix()
	}
	return l.why, ""
}

// blobPath is where a layout keeps the blob of a sha256 digest.
func blobPath(d string) (string, error) {
	dg, err := digest.Parse(d)
	if err != nil || dg.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("blob %q: not a sha256 digest", d)
	}
	return filepath.Join("blobs", "sha256", dg.Encoded()), nil
}

// corruptBlobError is a blob of a layout that cannot be what its digest
// names: why says what is wrong ("" for other content).
type corruptBlobError struct{ dir, digest, why string }

func (e *corruptBlobError) Error() string {
	if e.why != "" {
		return fmt.Sprintf("the layout %s: blob %s %s", e.dir, e.digest, e.why)
	}
	return fmt.Sprintf("the layout %s holds blob %s with other content", e.dir, e.digest)
}

// maxLayoutDocument bounds a manifest or configuration read from a layout.
const maxLayoutDocument = 16 << 20

// layoutHolds checks that an OCI layout's index names dgst and that the
// layout holds every blob of it (checkBlobs). It reads through an os.Root.
func layoutHolds(dir, dgst string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	data, err := readIndex(root, dir)
	if err != nil {
		return err
	}
	var idx struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if !slices.ContainsFunc(idx.Manifests, func(d ociDescriptor) bool { return d.Digest == dgst }) {
		return fmt.Errorf("the layout %s no longer names %s", dir, dgst)
	}
	return checkBlobs(root, dir, dgst, true, 0)
}

// errIndexTooLarge is a layout's index.json larger than any shipit writes
// (it names one image) could be: the layout is rewritten, never read.
var errIndexTooLarge = fmt.Errorf("index.json is larger than %d bytes, more than an index of one image takes", maxLayoutDocument)

// readIndex reads a layout's index.json, bounded: a file that grew past
// maxLayoutDocument (a sparse file of gigabytes reads as zeros) is
// errIndexTooLarge, not read.
func readIndex(root *os.Root, dir string) ([]byte, error) {
	data, err := readBounded(root, "index.json", maxLayoutDocument)
	switch {
	case errors.Is(err, errTooLarge):
		return nil, fmt.Errorf("%s/%w", dir, errIndexTooLarge)
	case errors.Is(err, errNotRegular):
		return nil, fmt.Errorf("%s/index.json %w", dir, errNotRegular)
	}
	return data, err
}

// errTooLarge and errNotRegular are why readBounded reads nothing.
var (
	errTooLarge   = errors.New("is larger than shipit reads")
	errNotRegular = errors.New("is not a regular file")
)

// readBounded reads the regular file name of root, of at most max bytes:
// a larger one is errTooLarge, read no further (a sparse file of
// gigabytes reads as zeros), and anything else errNotRegular.
func readBounded(root *os.Root, name string, max int) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, errTooLarge
	}
	return data, nil
}

// layoutDocument reads a manifest, index or configuration of a layout,
// bounded (maxLayoutDocument) and checked against its digest: a blob that
// is missing, not a regular file, too large or not its digest's content
// is a *corruptBlobError.
func layoutDocument(root *os.Root, dir, d string) ([]byte, error) {
	p, err := blobPath(d)
	if err != nil {
		return nil, err
	}
	fi, err := root.Stat(p)
	switch {
	case err != nil:
		return nil, &corruptBlobError{dir: dir, digest: d, why: "is missing"}
	case !fi.Mode().IsRegular():
		return nil, &corruptBlobError{dir: dir, digest: d, why: "is not a regular file"}
	case fi.Size() > maxLayoutDocument:
		return nil, &corruptBlobError{dir: dir, digest: d, why: fmt.Sprintf("is larger than a manifest or configuration may be (%d bytes)", maxLayoutDocument)}
	}
	raw, err := root.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(raw).String() != d {
		return nil, &corruptBlobError{dir: dir, digest: d}
	}
	return raw, nil
}

// checkBlobs checks a manifest or index of a layout, and what it names:
// manifests and configurations read and checked against their digests,
// layers present at their size (hashing them would cost a build's worth
// of reading). With whole, each must be there. Without, a missing blob is
// passed over (an export writes it) and only one that is there and wrong
// is an error (*corruptBlobError), so that a missing layer does not hide
// a cut one after it.
func checkBlobs(root *os.Root, dir, dgst string, whole bool, depth int) error {
	if depth > 2 {
		if !whole {
			return nil
		}
		return fmt.Errorf("the layout %s nests indexes deeper than shipit builds them", dir)
	}
	raw, err := layoutBlob(root, dir, dgst, whole)
	if raw == nil || err != nil {
		return err
	}
	var doc struct {
		Config    *ocispecs.Descriptor  `json:"config"`
		Layers    []ocispecs.Descriptor `json:"layers"`
		Manifests []ocispecs.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return &corruptBlobError{dir: dir, digest: dgst}
	}
	if doc.Config != nil {
		if _, err := layoutBlob(root, dir, doc.Config.Digest.String(), whole); err != nil {
			return err
		}
	}
	for _, l := range doc.Layers {
		if err := layerThere(root, dir, l, whole); err != nil {
			return err
		}
	}
	for _, m := range doc.Manifests {
		if err := checkBlobs(root, dir, m.Digest.String(), whole, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// layoutBlob is a manifest, index or configuration of a layout, read and
// checked (layoutDocument); without whole, nil for one that is not there.
func layoutBlob(root *os.Root, dir, d string, whole bool) ([]byte, error) {
	if !whole {
		p, err := blobPath(d)
		if err != nil {
			return nil, nil // not a blob shipit's export writes
		}
		if _, err := root.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	return layoutDocument(root, dir, d)
}

// layerThere checks that a layer is in a layout at its size; without
// whole, one that is not there passes.
func layerThere(root *os.Root, dir string, l ocispecs.Descriptor, whole bool) error {
	p, err := blobPath(l.Digest.String())
	if err != nil {
		if whole {
			return err
		}
		return nil
	}
	fi, err := root.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !whole:
		return nil
	case err != nil || (!fi.Mode().IsRegular() && whole):
		return fmt.Errorf("the layout %s lacks layer %s", dir, l.Digest)
	case !fi.Mode().IsRegular():
		return &corruptBlobError{dir: dir, digest: l.Digest.String(), why: "is not a regular file"}
	case fi.Size() != l.Size:
		return &corruptBlobError{dir: dir, digest: l.Digest.String()}
	}
	return nil
}

// retag puts the last build's image back under its tag, which another
// push moved (to other, "" for none): a solve would push that same image
// there. An attested image is left to the solve, which keeps an index of
// the same images that the tag may now hold (held.go). It says why not
// ("" when done).
func retag(ctx context.Context, opt Options, r Request, last *Image, other string) (why, notice string) {
	moved := fmt.Sprintf("%s holds %s, not %s", r.Ref(), other, last.Digest)
	if other == "" {
		moved = fmt.Sprintf("%s is not in the registry", r.Ref())
	}
	if len(last.Attestations) > 0 || r.Provenance != "" || r.SBOM || r.PushByDigest {
		return moved, ""
	}
	if why := madeFor(ctx, opt.Registry, r, last.Digest); why != "" {
		return moved + ", and " + last.Digest + " is not put back: " + why, ""
	}
	m, err := opt.Registry.Manifest(ctx, r.Repository, last.Digest)
	if err != nil {
		return moved + ", and reading " + last.Digest + " failed: " + err.Error(), ""
	}
	if m == nil || m.Digest != last.Digest {
		return moved + ", and " + last.Digest + " is gone", ""
	}
	if err := opt.Registry.PutManifest(ctx, r.Repository, r.Tag, m); err != nil {
		return moved + ", and tagging it again failed: " + err.Error(), ""
	}
	return "", fmt.Sprintf("%s held another image: tagged %s again", r.Ref(), last.Digest)
}

// madeFor says why an image in the registry is not one a build of r
// made ("" when it may be): each of its configurations must have the
// labels r sets (the commit, its time, the source). The record is the
// only word that the image is the last build's, and a record can be
// edited or copied: one that names another image of the repository, an
// older release's, gets the image solved, not that one put under the tag.
func madeFor(ctx context.Context, reg Registry, r Request, dgst string) string {
	cfgs, err := configsOf(ctx, reg, r.Repository, dgst)
	if err != nil {
		return "reading it: " + err.Error()
	}
	if len(cfgs) == 0 {
		return "it has no image configuration"
	}
	for _, c := range cfgs {
		raw, err := reg.Blob(ctx, r.Repository, c, maxLayoutDocument)
		if err != nil {
			return "reading its configuration: " + err.Error()
		}
		if digest.FromBytes(raw).String() != c {
			return "its configuration is not " + c
		}
		var cfg struct {
			Config struct {
				Labels map[string]string `json:"Labels"`
			} `json:"config"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return "its configuration " + c + ": " + err.Error()
		}
		for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
			if got, want := cfg.Config.Labels[k], r.Labels[k]; got != want {
				return fmt.Sprintf("it is not this build's image (its label %s is %q, not %q)", k, got, want)
			}
		}
	}
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

// maxBasePlatforms bounds the platform manifests of a base image whose
// configurations are read for ONBUILD triggers.
const maxBasePlatforms = 16

// onbuildTriggers says why a base image may make the build read more
// than the inputs name ("" when it cannot): an ONBUILD trigger in its
// configuration runs in the build, and may read any image or URL.
func onbuildTriggers(ctx context.Context, reg Registry, bases []pinnedImage) string {
	if len(bases) == 0 {
		return ""
	}
	if reg == nil {
		return "no registry client to read the base images' configurations"
	}
	for _, b := range bases {
		ref, err := name.ParseReference(b.ref, name.WeakValidation)
		if err != nil {
			return err.Error()
		}
		repo := ref.Context().Name()
		configs, err := configsOf(ctx, reg, repo, b.digest)
		if err != nil {
			return fmt.Sprintf("reading base image %s: %v", b.ref, err)
		}
		for _, c := range configs {
			raw, err := reg.Blob(ctx, repo, c, 4<<20)
			if err != nil {
				return fmt.Sprintf("reading base image %s's configuration: %v", b.ref, err)
			}
			var cfg struct {
				Config struct {
					OnBuild []string `json:"OnBuild"`
				} `json:"config"`
			}
			if err := json.Unmarshal(raw, &cfg); err != nil {
				return fmt.Sprintf("base image %s's configuration: %v", b.ref, err)
			}
			if len(cfg.Config.OnBuild) > 0 {
				return fmt.Sprintf("base image %s has ONBUILD triggers, which run in this build and may read anything", b.ref)
			}
		}
	}
	return ""
}

// configsOf lists the configuration digests of an image or index.
func configsOf(ctx context.Context, reg Registry, repo, dgst string) ([]string, error) {
	m, err := reg.Manifest(ctx, repo, dgst)
	if err != nil {
		return nil, err
	}
	if m == nil || m.Digest != dgst {
		return nil, fmt.Errorf("%s is not in the registry", dgst)
	}
	var doc struct {
		Config    *ocispecs.Descriptor  `json:"config"`
		Manifests []ocispecs.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(m.Raw, &doc); err != nil {
		return nil, err
	}
	if doc.Config != nil {
		return []string{doc.Config.Digest.String()}, nil
	}
	var out []string
	for i, d := range doc.Manifests {
		if i >= maxBasePlatforms {
			return nil, fmt.Errorf("more than %d manifests", maxBasePlatforms)
		}
		if d.Annotations[AnnotationReferenceType] == ReferenceTypeAttestation {
			continue
		}
		cs, err := configsOf(ctx, reg, repo, d.Digest.String())
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

// onbuildMemo is onbuildTriggers asked once per base image digest,
// however many images are built on it.
func onbuildMemo(reg Registry) func(ctx context.Context, bases []pinnedImage) string {
	var once onceEach[string]
	return func(ctx context.Context, bases []pinnedImage) string {
		for _, b := range bases {
			why, err := once.do(ctx, b.digest, func() string { return onbuildTriggers(ctx, reg, []pinnedImage{b}) })
			if err != nil {
				return err.Error()
			}
			if why != "" {
				return why
			}
		}
		return ""
	}
}
