package build

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/tonistiigi/fsutil"
	"github.com/tonistiigi/fsutil/types"

	"github.com/shipit-dev/shipit/internal/confine"
)

// An image's inputs are everything its solve reads: the solve request
// (frontend options, build arguments, labels, platforms, exporter, the
// daemon), the Dockerfile and its ignore file, every file of the context
// the daemon would be sent (path, mode, owner, size, modification and
// change times, inode, link target), and the digest each base image's tag
// points at now. Builds are reproducible (DESIGN decision 2): when all of
// that is what the last build of the image read, and its image is still
// where that build put it, a solve would give that image again, and the
// build keeps it instead of asking BuildKit.
//
// Files are compared by their metadata, as BuildKit's own context sync
// does, and more strictly: the change time moves on every write, chmod,
// chown and rename, and cannot be set back. A file changed within a tick
// of the file system's timestamps before the walk may change again in the
// same tick without its times showing it (git calls such an index entry
// racily clean), so a build that sees one records no key, and the next
// build solves (racyWindow).

// inputsVersion names these rules: a shipit that changes them changes it,
// so no earlier record's key matches.
const inputsVersion = "shipit-inputs/2"

// racyWindow is how recent a file's times must be for it to be told from
// one that changes again in the same timestamp tick: Linux stamps files
// from a clock that ticks every 1-10 ms, and 100 ms is ten ticks. A time of
// whole seconds is a file system that keeps no more (HFS+, FAT's two
// seconds, some network file systems), and whole hundredths one that
// keeps 10 ms: those get coarseRacyWindow.
const racyWindow = 100 * time.Millisecond

// coarseRacyWindow is racyWindow for timestamps of a coarse file system.
const coarseRacyWindow = 3 * time.Second

// racyAfter reports whether a file time t (ns) is within its racy window
// of now (ns), or after it.
func racyAfter(t, now int64) bool {
	w := racyWindow
	if t%int64(10*time.Millisecond) == 0 {
		w = coarseRacyWindow
	}
	return t >= now-int64(w)
}

// errTooManyEntries is a context larger than maxContextEntries.
var errTooManyEntries = errors.New("too many to key")

// syncRacy reports whether a file's time t is racy (racyAfter) for the
// daemon's copy of it (syncKeys): the daemon reads the file tens of ms
// after shipit's walk, later than a fine clock's tick (1-10 ms), so only
// a coarse time can be the same for a write after the daemon's read.
func syncRacy(t, now int64) bool {
	return t%int64(10*time.Millisecond) == 0 && racyAfter(t, now)
}

// lookupTimeout bounds the base images' lookups: an image whose base
// cannot be looked up in time is solved.
const lookupTimeout = 5 * time.Second

// maxContextEntries bounds the context walk: a larger context is solved
// every time, as before.
const maxContextEntries = 200000

// inputs is the key of an image's inputs, or why there is none.
type inputs struct {
	key string
	// racy: a context file changed too recently for the key to be kept
	// for the next build; it can still be compared with the last one.
	racy bool
	why  string
}

// resolver looks up the digest an image reference's tag points at.
type resolver func(ctx context.Context, ref string) (string, error)

// registryResolver looks references up in reg, a HEAD each, once per
// reference however many images read it; a reference by digest needs none.
func registryResolver(reg Registry) resolver {
	type answer struct {
		digest string
		err    error
	}
	var once onceEach[answer]
	lookup := func(ctx context.Context, ref string) (string, error) {
		r, err := name.ParseReference(ref, name.WeakValidation)
		if err != nil {
			return "", err
		}
		if d, ok := r.(name.Digest); ok {
			return d.DigestStr(), nil
		}
		if reg == nil {
			return "", errors.New("no registry client")
		}
		t := r.(name.Tag)
		dgst, err := reg.Lookup(ctx, t.Context().Name(), t.TagStr())
		if err != nil {
			return "", err
		}
		if dgst == "" {
			return "", fmt.Errorf("%s: no such tag", ref)
		}
		return dgst, nil
	}
	return func(ctx context.Context, ref string) (string, error) {
		a, err := once.do(ctx, ref, func() answer {
			d, err := lookup(ctx, ref)
			return answer{d, err}
		})
		if err != nil {
			return "", err
		}
		return a.digest, a.err
	}
}

// onceEach computes a value once per key, however many goroutines ask for
// it at once: the first computes it, the others wait for its answer (or
// for their context to end). The zero value is ready to use.
type onceEach[V any] struct {
	mu   sync.Mutex
	seen map[string]*onceAnswer[V]
}

type onceAnswer[V any] struct {
	done chan struct{}
	v    V
}

// do is key's value, computed by f if no one has.
func (o *onceEach[V]) do(ctx context.Context, key string, f func() V) (V, error) {
	o.mu.Lock()
	if o.seen == nil {
		o.seen = map[string]*onceAnswer[V]{}
	}
	a, ok := o.seen[key]
	if !ok {
		a = &onceAnswer[V]{done: make(chan struct{})}
		o.seen[key] = a
	}
	o.mu.Unlock()
	if !ok {
		a.v = f()
		close(a.done)
	}
	select {
	case <-a.done:
		return a.v, nil
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// hashField writes k and v into h, each prefixed by its length, so that no
// two different fields write the same bytes.
func hashField(h hash.Hash) func(k, v string) {
	return func(k, v string) { fmt.Fprintf(h, "%d:%s=%d:%s\n", len(k), k, len(v), v) }
}

// sources is the part of an image's inputs that does not depend on the
// commit (its Dockerfile, ignore file, context and base images), so that
// it can be read beside git.
type sources struct {
	of     string // sourceSig of the request read
	digest string
	racy   bool
	why    string
	// files are the regular files of the context the daemon is sent, for
	// syncKeys; nil when not read.
	files *syncFiles
	// bases are the stages' base images: whether their ONBUILD triggers
	// read more is asked beside the solve, before the key is recorded
	// (checkBases).
	bases []pinnedImage
}

// sourceSig names what of a request its sources depend on.
func sourceSig(r Request) string {
	return strings.Join([]string{r.ContextDir, r.DockerfileDir, r.DockerfileName, r.Target, strings.Join(r.ContextExclude, "\x01"),
		strconv.FormatBool(r.SBOM), r.SBOMGenerator}, "\x00")
}

// sourceReader reads what images' solves read besides their requests.
// However many images name them, each base image tag is looked up once
// and each context walked once: images built from one directory (a web
// app and its worker) share one walk.
type sourceReader struct {
	resolve     resolver
	now         time.Time // racy is decided against it
	walks       onceEach[walked]
	walkContext func(ctx context.Context, r Request, excludes []string, now time.Time, h hash.Hash, files *syncFiles) (bool, error)
}

// fileTimes is what of a file's metadata fsutil's has no room for: its
// change time (ns, 0 when not read) and inode.
type fileTimes struct {
	ctime int64
	ino   uint64
}

// keyRead is what the key's walk keeps beside the entries it gives: their
// times by path (read once each), and whether an entry changed while the
// walk read it (errChanged, else nil).
type keyRead interface {
	timesOf(p string) fileTimes
	changed() error
}

// walked is one walk of a context: the digest of its entries, and whether
// any is racy.
type walked struct {
	digest string
	racy   bool
	err    error
	files  *syncFiles // its regular files, for syncKeys
}

func newSourceReader(resolve resolver, now time.Time) *sourceReader {
	return &sourceReader{resolve: resolve, now: now, walkContext: walkContext}
}

// walk walks r's context, with excludes (the ignore file's) on top of
// r's own, or waits for the walk another image asked for first.
func (sr *sourceReader) walk(ctx context.Context, r Request, excludes []string) (walked, error) {
	key := strings.Join([]string{r.ContextDir, strings.Join(r.ContextExclude, "\x01"), strings.Join(excludes, "\x01")}, "\x00")
	return sr.walks.do(ctx, key, func() walked {
		h := sha256.New()
		files, racy, err := sr.syncWalk(ctx, r, excludes, h)
		return walked{digest: hex.EncodeToString(h.Sum(nil)), racy: racy, err: err, files: files}
	})
}

// syncWalk walks r's context into h (walkContext), and gives its files a
// way to walk it again, as this walk did, for syncKeys to see that nothing
// changed while the daemon read it.
func (sr *sourceReader) syncWalk(ctx context.Context, r Request, excludes []string, h hash.Hash) (*syncFiles, bool, error) {
	files := newSyncFiles()
	files.root = r.ContextDir
	racy, err := sr.walkContext(ctx, r, excludes, sr.now, h, files)
	switch {
	case errors.Is(err, errTooManyEntries):
		files.skip = err.Error()
	case err != nil:
		files.unknown = true // not every file was seen
	}
	if err == nil {
		files.again = func(ctx context.Context) *syncFiles {
			f, _, _ := sr.syncWalk(ctx, r, excludes, discardHash{})
			return f
		}
	}
	return files, racy, err
}

// discardHash is a hash.Hash of nothing, for a walk whose key is not used.
type discardHash struct{}

func (discardHash) Write(p []byte) (int, error) { return len(p), nil }
func (discardHash) Sum(b []byte) []byte         { return b }
func (discardHash) Reset()                      {}
func (discardHash) Size() int                   { return 0 }
func (discardHash) BlockSize() int              { return 1 }

// sourceOf is what a request's solve reads besides the request: r's
// context and Dockerfile directories, excludes and target, and args (the
// configured build arguments).
func (sr *sourceReader) sourceOf(ctx context.Context, r Request, args map[string]string) sources {
	src := sr.read(ctx, r, args)
	src.of = sourceSig(r)
	return src
}

func (sr *sourceReader) read(ctx context.Context, r Request, args map[string]string) sources {
	h := sha256.New()
	field := hashField(h)
	df, err := confine.ReadFile(filepath.Join(r.DockerfileDir, r.DockerfileName))
	if err != nil {
		return sources{why: "its Dockerfile cannot be read: " + err.Error()}
	}
	field("dockerfile", string(df))
	refs, bases, why := externalImages(df, r.Target, args)
	if r.SBOM {
		// The scanner is an image the daemon pulls and runs.
		gen := r.SBOMGenerator
		if gen == "" {
			gen = defaultSBOMGenerator
		}
		refs = append(refs, gen)
	}
	sort.Strings(refs)
	refs = slices.Compact(refs)
	// The base images are looked up while the context is walked; the
	// context is walked for the daemon's copy of it (syncKeys) even when
	// no key can be made.
	var digests []string
	var lookupErr error
	var wg sync.WaitGroup
	if why == "" {
		wg.Go(func() { digests, lookupErr = resolveAll(ctx, refs, sr.resolve) })
	}
	excludes, ignore, err := ignorePatterns(r)
	if err != nil {
		wg.Wait()
		return sources{why: cmp.Or(why, err.Error())}
	}
	field("dockerignore", ignore)
	w, err := sr.walk(ctx, r, excludes)
	if err == nil {
		err = w.err
	}
	wg.Wait()
	switch {
	case why != "":
		return sources{why: why, files: w.files}
	case err != nil:
		return sources{why: "its context: " + err.Error(), files: w.files}
	case lookupErr != nil:
		return sources{why: "looking up its base images: " + lookupErr.Error(), files: w.files}
	}
	field("context", w.digest)
	var pinned []pinnedImage
	for i, ref := range refs {
		field("image", ref+"@"+digests[i])
		if slices.Contains(bases, ref) {
			pinned = append(pinned, pinnedImage{ref: ref, digest: digests[i]})
		}
	}
	return sources{digest: hex.EncodeToString(h.Sum(nil)), racy: w.racy, bases: pinned, files: w.files}
}

// defaultSBOMGenerator is the scanner BuildKit runs when none is named.
const defaultSBOMGenerator = "docker/buildkit-syft-scanner:stable-1"

// pinnedImage is an image reference and the digest it was looked up at.
type pinnedImage struct{ ref, digest string }

// inputsOf is the key of a request's inputs on the daemon named by
// builder, its sources read (sourceOf).
func inputsOf(r Request, builder string, src sources) inputs {
	if builder == "" {
		return inputs{why: "the daemon is not known"}
	}
	if src.why != "" {
		return inputs{why: src.why}
	}
	h := sha256.New()
	field := hashField(h)
	field("version", inputsVersion)
	field("builder", builder)
	requestFields(r, field)
	field("sources", src.digest)
	return inputs{key: "sha256:" + hex.EncodeToString(h.Sum(nil)), racy: src.racy}
}

// Sources are the sources of a plan's images (sourceOf), read from when
// ReadSources is called: beside git, before the plan is known.
type Sources struct {
	done chan struct{}
	m    map[string]sources
}

// ReadSources starts reading the sources of the images: specs as
// configured (a plan's Images), shipit's state in stateDir, base images
// looked up in reg.
func ReadSources(ctx context.Context, reg Registry, specs []Spec, stateDir string) *Sources {
	s := &Sources{done: make(chan struct{}), m: map[string]sources{}}
	sr := newSourceReader(registryResolver(reg), time.Now())
	go func() {
		defer close(s.done)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, sp := range specs {
			wg.Go(func() {
				src := sr.sourceOf(ctx, sourceRequest(sp, stateDir), sp.Args)
				mu.Lock()
				s.m[sp.Name] = src
				mu.Unlock()
			})
		}
		wg.Wait()
	}()
	return s
}

// get waits for the sources of an image; ok false when they were not read.
func (s *Sources) get(name string) (sources, bool) {
	if s == nil {
		return sources{}, false
	}
	<-s.done
	src, ok := s.m[name]
	return src, ok
}

// sourceRequest is the part of a spec's request its sources depend on.
func sourceRequest(sp Spec, stateDir string) Request {
	return Request{
		Name: sp.Name, ContextDir: sp.Context, ContextExclude: stateExcludes(stateDir),
		DockerfileDir: filepath.Dir(sp.Dockerfile), DockerfileName: filepath.Base(sp.Dockerfile), Target: sp.Target,
		SBOM: sp.Attest.SBOM, SBOMGenerator: sp.Attest.SBOMGenerator,
	}
}

// requestFields writes what of a request reaches the daemon: the frontend's
// attributes, the exporter's, and the names (never the values) of secrets
// and SSH agents. Cache imports and exports are left out: they change
// where a result may come from, not what it is.
func requestFields(r Request, field func(k, v string)) {
	field("context", r.ContextDir)
	field("exclude", strings.Join(r.ContextExclude, "\x00"))
	field("dockerfile-dir", r.DockerfileDir)
	field("dockerfile-name", r.DockerfileName)
	sorted := func(prefix string, m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			field(prefix+k, m[k])
		}
	}
	// --no-cache changes how the image is made, not which inputs it is
	// made of: its key is a cached build's.
	attrs := frontendAttrs(r)
	delete(attrs, "no-cache")
	sorted("frontend:", attrs)
	exp := exportEntry(r)
	field("exporter", exp.Type)
	field("output-dir", exp.OutputDir)
	sorted("export:", exp.Attrs)
	for _, s := range r.Secrets {
		field("secret", s.ID+"\x00"+s.Env+"\x00"+s.File)
	}
	for _, s := range r.SSH {
		field("ssh", s.ID+"\x00"+strings.Join(s.Paths, "\x00"))
	}
}

// resolveAll looks every reference up at once, within lookupTimeout.
func resolveAll(ctx context.Context, refs []string, resolve resolver) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	out := make([]string, len(refs))
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() { out[i], errs[i] = resolve(ctx, ref) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// ignorePatterns reads the ignore file BuildKit's Dockerfile frontend
// applies to the context: <Dockerfile>.dockerignore beside the Dockerfile,
// else the context's .dockerignore. It returns its patterns and content.
func ignorePatterns(r Request) ([]string, string, error) {
	for _, p := range []string{
		filepath.Join(r.DockerfileDir, r.DockerfileName+".dockerignore"),
		filepath.Join(r.ContextDir, ".dockerignore"),
	} {
		data, err := confine.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		pats, err := ignorefile.ReadAll(strings.NewReader(string(data)))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		return pats, p + "\x00" + string(data), nil
	}
	return nil, "", nil
}

// xattrField is extended attributes as one field of a key's line, in
// name order: names quoted and values in hex, so that neither can hold
// the line's separators.
func xattrField(xa map[string][]byte) string {
	names := make([]string, 0, len(xa))
	for k := range xa {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(k))
		b.WriteByte('=')
		b.WriteString(hex.EncodeToString(xa[k]))
	}
	return b.String()
}

// walkContext writes every entry of the context the daemon would be sent
// (shipit's own excludes, then the ignore file's) into h, in the walk's
// order, and reports whether any file's times are racy at now (racyAfter).
func walkContext(ctx context.Context, r Request, excludes []string, now time.Time, h hash.Hash, files *syncFiles) (bool, error) {
	cfs, kr, err := keyFS(r.ContextDir)
	if err != nil {
		return false, err
	}
	if len(r.ContextExclude) > 0 {
		if cfs, err = fsutil.NewFilterFS(cfs, &fsutil.FilterOpt{ExcludePatterns: r.ContextExclude}); err != nil {
			return false, err
		}
	}
	if len(excludes) > 0 {
		if cfs, err = fsutil.NewFilterFS(cfs, &fsutil.FilterOpt{ExcludePatterns: excludes}); err != nil {
			return false, err
		}
	}
	racy := false
	n := 0
	limit := now.UnixNano()
	err = cfs.Walk(ctx, "/", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n > maxContextEntries {
			return fmt.Errorf("more than %d files: %w", maxContextEntries, errTooManyEntries)
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*types.Stat)
		if !ok {
			return fmt.Errorf("%s: no file metadata", p)
		}
		line := p + "\x00" + strconv.FormatUint(uint64(st.Mode), 8) + "\x00" + strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid)) +
			"\x00" + st.Linkname + "\x00" + strconv.FormatInt(st.Devmajor, 10) + "," + strconv.FormatInt(st.Devminor, 10)
		if !e.IsDir() {
			// A directory's own times change with entries the daemon is
			// never sent; its entries say what changed.
			t := kr.timesOf(p)
			ct, ino := t.ctime, t.ino
			line += "\x00" + strconv.FormatInt(st.Size, 10) + "\x00" + strconv.FormatInt(st.ModTime, 10) +
				"\x00" + strconv.FormatInt(ct, 10) + "\x00" + strconv.FormatUint(ino, 10)
			if racyAfter(st.ModTime, limit) || racyAfter(ct, limit) || ct == 0 {
				racy = true
			}
			if e.Type().IsRegular() {
				files.add(p, st.Mode, st.Size, st.ModTime, ct, ino, syncRacy(st.ModTime, limit) || syncRacy(ct, limit))
			}
		}
		if len(st.Xattrs) > 0 { // a directory's
			line += "\x00" + xattrField(st.Xattrs)
		}
		_, err = io.WriteString(h, line+"\n")
		return err
	})
	if err == nil {
		err = kr.changed() // an entry the filters skipped for it
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("%s: %w", r.ContextDir, err)
	}
	return racy, err
}
