package build

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/registry"
)

// tagRegistry holds manifests by digest and tags by repository:tag, as
// the solvers push them, and counts the PUTs. A Lookup of a repository in
// gate waits until its channel is closed.
type tagRegistry struct {
	mu        sync.Mutex
	manifests map[string][]byte
	configs   map[string][]byte
	tags      map[string]string
	gate      map[string]chan struct{}
	puts      int
}

func newTagRegistry() *tagRegistry {
	return &tagRegistry{manifests: map[string][]byte{}, configs: map[string][]byte{}, tags: map[string]string{}, gate: map[string]chan struct{}{}}
}

func (r *tagRegistry) Manifest(_ context.Context, repo, ref string) (*registry.Manifest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.tags[repo+":"+ref]; ok {
		ref = d
	}
	raw, ok := r.manifests[ref]
	if !ok {
		return nil, nil
	}
	return &registry.Manifest{Digest: ref, MediaType: ocispecs.MediaTypeImageManifest, Raw: raw}, nil
}

func (r *tagRegistry) PutManifest(_ context.Context, repo, tag string, m *registry.Manifest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.puts++
	r.tags[repo+":"+tag] = m.Digest
	return nil
}

func (r *tagRegistry) Blob(_ context.Context, _, dgst string, _ int64) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.configs[dgst]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("no blob %s here", dgst)
}

// labelled is manifest raw with a configuration of its own, holding
// labels as a daemon writes them, put in the registry.
func (r *tagRegistry) labelled(raw []byte, labels map[string]string) []byte {
	cfg, _ := json.Marshal(map[string]any{"config": map[string]any{"Labels": labels}})
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["config"] = map[string]any{"mediaType": ocispecs.MediaTypeImageConfig, "digest": digest.FromBytes(cfg).String(), "size": len(cfg)}
	out, _ := json.Marshal(m)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.configs[digest.FromBytes(cfg).String()] = cfg
	return out
}

func (r *tagRegistry) Lookup(ctx context.Context, repo, tag string) (string, error) {
	r.mu.Lock()
	gate := r.gate[repo]
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tags[repo+":"+tag], nil
}

// push puts raw under ref (repository:tag), as BuildKit's image exporter
// does, and returns its digest.
func (r *tagRegistry) push(ref string, raw []byte) digest.Digest {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := digest.FromBytes(raw)
	r.manifests[d.String()] = raw
	r.tags[ref] = d.String()
	return d
}

// pushingSolver "pushes" its manifest under the request's tag, and counts
// its solves.
type pushingSolver struct {
	digestSolver
	reg    *tagRegistry
	solves int
}

func (s *pushingSolver) solve(ref string) {
	s.mu.Lock()
	raw := s.raw
	s.solves++
	s.mu.Unlock()
	s.reg.push(ref, raw)
}

// TestNoOpBuildKeepsThePushedImage: a second build --push of the same
// inputs solves nothing and names the same image; a tag that another push
// moved is put back with one PUT, no solve; a changed file, --rebuild and
// a daemon of another version solve again; the record keeps the key only
// for files that did not just change.
func TestNoOpBuildKeepsThePushedImage(t *testing.T) {
	t.Parallel()
	web, plan := pushPlan(t, "FROM scratch\nCOPY app /app\n")
	reg := newTagRegistry()
	s := &pushingSolver{digestSolver: digestSolver{raw: manifestOf(1000)}, reg: reg}
	var mu sync.Mutex
	var infos []string
	clock := time.Now().Add(time.Minute) // every file is old
	opt := Options{
		Solver: s, Registry: reg, Progress: io.Discard, Mode: "quiet",
		Builder: "default=unix:///run/buildkit/buildkitd.sock@v0.33.1+x",
		Events: progress.Func(func(e progress.Event) {
			if e.Kind == progress.Info {
				mu.Lock()
				infos = append(infos, e.Msg)
				mu.Unlock()
			}
		}),
		now: func() time.Time { return clock },
	}
	build := func(what string, wantSolves int) Image {
		t.Helper()
		before := s.solves
		rec, err := Run(context.Background(), opt, plan)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := s.solves - before; got != wantSolves {
			t.Errorf("%s: %d solves, want %d", what, got, wantSolves)
		}
		return rec.Images[0]
	}
	first := build("first build", 1)
	if first.Inputs == "" {
		t.Fatal("the record holds no inputs key")
	}
	if again := build("no-op build", 0); again.Digest != first.Digest || again.Size != first.Size || again.Inputs != first.Inputs {
		t.Errorf("no-op build: %+v, want the first's image", again)
	}
	if len(infos) == 0 || !strings.Contains(infos[len(infos)-1], "web unchanged since the last build") {
		t.Errorf("no notice of the kept image: %q", infos)
	}

	reg.mu.Lock()
	reg.tags[webRef] = "sha256:" + strings.Repeat("d", 64) // another tool pushed there
	reg.mu.Unlock()
	if got := build("tag moved", 0); got.Digest != first.Digest || reg.tags[webRef] != first.Digest || reg.puts != 1 {
		t.Errorf("tag moved: image %s, tag at %s after %d puts; want %s put back once", got.Digest, reg.tags[webRef], reg.puts, first.Digest)
	}

	s.mu.Lock()
	s.raw = manifestOf(2000)
	s.mu.Unlock()
	write(t, filepath.Join(web, "app"), "v2")
	if got := build("changed file", 1); got.Digest == first.Digest {
		t.Error("changed file: kept the old image")
	}
	plan.Rebuild = true
	build("--rebuild", 1)
	plan.Rebuild = false
	plan.NoCache = true
	build("--no-cache", 1)
	plan.NoCache = false
	build("after --no-cache", 0)
	opt.Builder = "default=unix:///run/buildkit/buildkitd.sock@v0.34.0+y"
	build("another daemon version", 1)
	build("no-op on that daemon", 0)

	clock = time.Now() // the file was just written: no key for the next build
	write(t, filepath.Join(web, "app"), "v3")
	if got := build("a file changed just now", 1); got.Inputs != "" {
		t.Errorf("a file changed just now: the record keeps key %s", got.Inputs)
	}
	clock = time.Now().Add(time.Minute)
	build("the build after", 1)
	build("and the next", 0)
}

// Solve pushes the manifest under the export's tag, as BuildKit's image
// exporter does.
func (s *pushingSolver) Solve(ctx context.Context, def *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
	ref := opt.Exports[0].Attrs["name"]
	if !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
		return nil, fmt.Errorf("export name %q has no tag", ref)
	}
	// The image's configuration has the request's labels, as BuildKit's.
	labels := map[string]string{}
	for k, v := range opt.FrontendAttrs {
		if l, ok := strings.CutPrefix(k, "label:"); ok {
			labels[l] = v
		}
	}
	s.mu.Lock()
	s.raw = s.reg.labelled(s.raw, labels)
	s.mu.Unlock()
	s.solve(ref)
	return s.digestSolver.Solve(ctx, def, opt, ch)
}

// TestOnbuildBaseNeverKept: an image built on a base with ONBUILD
// triggers records no key, so a second build solves it again; on a base
// without, the second build keeps it.
func TestOnbuildBaseNeverKept(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		config string
		solves int
	}{
		{`{"config":{"OnBuild":["COPY --from=registry.example/x:1 /x /x"]}}`, 1},
		{`{"config":{"Cmd":["sh"]}}`, 0},
	} {
		_, plan := pushPlan(t, "FROM registry.example/base:1\nCOPY app /app\n")
		reg := &blobRegistry{tagRegistry: newTagRegistry(), blobs: map[string][]byte{}}
		reg.tags["registry.example/base:1"] = reg.image(t, tc.config)
		s := &pushingSolver{digestSolver: digestSolver{raw: manifestOf(1000)}, reg: reg.tagRegistry}
		clock := time.Now().Add(time.Minute)
		opt := Options{Solver: s, Registry: reg, Progress: io.Discard, Mode: "quiet", Builder: "b", now: func() time.Time { return clock }}
		for round, want := range []int{1, tc.solves} {
			before := s.solves
			rec, err := Run(context.Background(), opt, plan)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.solves - before; got != want {
				t.Errorf("%s, build %d: %d solves, want %d (inputs %q)", tc.config, round+1, got, want, rec.Images[0].Inputs)
			}
		}
	}
}

// webRef is pushPlan's image's repository:tag.
const webRef = "127.0.0.1:5055/team/web:t1"

// pushPlan is an app of one image, web, with the Dockerfile given and a
// file app, and the plan of its build --push with tag t1 (webRef).
func pushPlan(t *testing.T, dockerfile string) (string, Plan) {
	t.Helper()
	dir := t.TempDir()
	web := filepath.Join(dir, "web")
	if err := os.MkdirAll(web, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(web, "Dockerfile"), dockerfile)
	write(t, filepath.Join(web, "app"), "v1")
	return web, Plan{
		Images:   []Spec{{Name: "web", Repository: "127.0.0.1:5055/team/web", Context: web, Dockerfile: filepath.Join(web, "Dockerfile")}},
		StateDir: filepath.Join(dir, ".shipit"), Head: gitinfo.Head{SHA: "0123456789abcdef0123456789abcdef01234567", Time: time.Unix(1_700_000_000, 0)},
		Tag: "t1", Push: true,
	}
}

// repoSolver pushes a manifest of its own per repository under the
// export's name, and tells started of each solve as it starts.
type repoSolver struct {
	reg     *tagRegistry
	mu      sync.Mutex
	layer   map[string]int64
	started chan string
}

func (s *repoSolver) Solve(_ context.Context, _ *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
	close(ch)
	ref := opt.Exports[0].Attrs["name"]
	repo := ref[:strings.LastIndex(ref, ":")]
	s.started <- repo
	s.mu.Lock()
	s.layer[repo]++
	raw := manifestOf(s.layer[repo])
	s.mu.Unlock()
	d := s.reg.push(ref, raw)
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: d, Size: int64(len(raw))}
	b, _ := json.Marshal(desc)
	return &client.SolveResponse{ExporterResponse: map[string]string{
		exptypes.ExporterImageDigestKey:     d.String(),
		exptypes.ExporterImageDescriptorKey: base64.StdEncoding.EncodeToString(b),
	}}, nil
}

// TestChangedImageSolvedWhileTheOthersAreLookedFor: when one image's
// inputs changed, its solve starts without waiting for the registry to
// say whether the others' last images are still there; an image found
// gone is then solved too, in the same build, and the record holds every
// image at what its registry tag holds.
func TestChangedImageSolvedWhileTheOthersAreLookedFor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var specs []Spec
	for _, n := range []string{"api", "proxy", "web"} {
		d := filepath.Join(dir, n)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "Dockerfile"), "FROM scratch\nCOPY app /app\n")
		write(t, filepath.Join(d, "app"), n+" v1")
		specs = append(specs, Spec{Name: n, Repository: "127.0.0.1:5055/team/" + n, Context: d, Dockerfile: filepath.Join(d, "Dockerfile")})
	}
	plan := Plan{
		Images: specs, StateDir: filepath.Join(dir, ".shipit"),
		Head: gitinfo.Head{SHA: "0123456789abcdef0123456789abcdef01234567", Time: time.Unix(1_700_000_000, 0)},
		Tag:  "t1", Push: true,
	}
	reg := newTagRegistry()
	s := &repoSolver{reg: reg, layer: map[string]int64{}, started: make(chan string, 10)}
	clock := time.Now().Add(time.Minute) // every file is old
	opt := Options{Solver: s, Registry: reg, Progress: io.Discard, Mode: "quiet", Builder: "b", now: func() time.Time { return clock }}
	if _, err := Run(context.Background(), opt, plan); err != nil {
		t.Fatal(err)
	}
	for range specs {
		<-s.started
	}

	// proxy changed; api and web are looked for, and the lookups wait
	// until proxy's solve has started. web's image is gone meanwhile (a
	// lifecycle rule deleted it, tag and manifest).
	write(t, filepath.Join(dir, "proxy", "app"), "proxy v2")
	reg.mu.Lock()
	delete(reg.manifests, reg.tags["127.0.0.1:5055/team/web:t1"])
	delete(reg.tags, "127.0.0.1:5055/team/web:t1")
	gate := make(chan struct{})
	reg.gate["127.0.0.1:5055/team/api"], reg.gate["127.0.0.1:5055/team/web"] = gate, gate
	reg.mu.Unlock()
	done := make(chan error, 1)
	var rec *Record
	go func() {
		var err error
		rec, err = Run(context.Background(), opt, plan)
		done <- err
	}()
	select {
	case repo := <-s.started:
		if repo != "127.0.0.1:5055/team/proxy" {
			t.Fatalf("the first solve was of %s, want proxy's", repo)
		}
	case err := <-done:
		t.Fatalf("the build ended (%v) without solving proxy", err)
	case <-time.After(10 * time.Second):
		t.Fatal("proxy's solve waited for the lookups of the other images")
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(s.started)
	var solved []string
	for repo := range s.started {
		solved = append(solved, repo)
	}
	if len(solved) != 1 || solved[0] != "127.0.0.1:5055/team/web" {
		t.Errorf("after proxy, solved %q; want web's only (its tag was gone)", solved)
	}
	if len(rec.Images) != 3 {
		t.Fatalf("the record holds %d images, want 3", len(rec.Images))
	}
	for _, im := range rec.Images {
		if want := reg.tags[im.Repository+":t1"]; im.Digest != want || im.Inputs == "" {
			t.Errorf("record: %s at %s (inputs %q); its tag holds %s", im.Name, im.Digest, im.Inputs, want)
		}
	}
}

// pushSetup is a one-image app built with --push by a solver that
// pushes to reg, every file old enough not to be racy.
func pushSetup(t *testing.T) (string, Plan, *tagRegistry, *pushingSolver, Options) {
	t.Helper()
	web, plan := pushPlan(t, "FROM scratch\nCOPY app /app\n")
	reg := newTagRegistry()
	s := &pushingSolver{digestSolver: digestSolver{raw: manifestOf(1000)}, reg: reg}
	clock := time.Now().Add(time.Minute)
	opt := Options{Solver: s, Registry: reg, Progress: io.Discard, Mode: "quiet", Builder: "b", now: func() time.Time { return clock }}
	return web, plan, reg, s, opt
}

// TestEditedRecordIsNotTagged: a record edited to name another image of
// the repository (an older release's, under the same inputs key) is not
// put under the tag when the tag holds something else: that image does
// not carry this commit's labels, so the image is solved and pushed.
func TestEditedRecordIsNotTagged(t *testing.T) {
	t.Parallel()
	_, plan, reg, s, opt := pushSetup(t)
	first, err := Run(context.Background(), opt, plan)
	if err != nil {
		t.Fatal(err)
	}
	old := reg.push("127.0.0.1:5055/team/web:20250101-000000-0ld0000",
		reg.labelled(manifestOf(7), map[string]string{LabelRevision: strings.Repeat("0", 40), LabelCreated: "2025-01-01T00:00:00Z"}))
	path := filepath.Join(plan.StateDir, RecordFile)
	rec, err := ReadRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	rec.Images[0].Digest = old.String()
	if err := WriteRecord(path, rec); err != nil {
		t.Fatal(err)
	}
	before := s.solves
	got, err := Run(context.Background(), opt, plan)
	if err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if s.solves-before != 1 || reg.puts != 0 || reg.tags[webRef] != first.Images[0].Digest || got.Images[0].Digest != first.Images[0].Digest {
		t.Errorf("after the edit: %d solves, %d PUTs, tag at %s, record %s; want the image solved again (%s), the old release (%s) not tagged",
			s.solves-before, reg.puts, reg.tags[webRef], got.Images[0].Digest, first.Images[0].Digest, old)
	}
}

// TestChangedImageIsNotTaggedBack: an image whose inputs changed is
// solved and pushed; its tag, which another push had moved, is not put
// back to the last build's image beside that push.
func TestChangedImageIsNotTaggedBack(t *testing.T) {
	t.Parallel()
	web, plan, reg, s, opt := pushSetup(t)
	if _, err := Run(context.Background(), opt, plan); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(web, "app"), "v2")
	s.mu.Lock()
	s.raw = manifestOf(2000)
	s.mu.Unlock()
	reg.mu.Lock()
	reg.tags[webRef] = "sha256:" + strings.Repeat("d", 64) // another tool pushed there
	reg.mu.Unlock()
	rec, err := Run(context.Background(), opt, plan)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a retag beside the build would land by now
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.puts != 0 || reg.tags[webRef] != rec.Images[0].Digest {
		t.Errorf("after %d PUTs the tag holds %s; want no PUT, and the new image %s", reg.puts, reg.tags[webRef], rec.Images[0].Digest)
	}
}
