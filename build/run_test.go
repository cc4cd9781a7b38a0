package build

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// digestSolver answers every solve with the image digest it is set to, as
// BuildKit's image exporter reports it.
type digestSolver struct {
	mu  sync.Mutex
	raw []byte // the manifest "pushed"
}

func (s *digestSolver) Solve(_ context.Context, _ *llb.Definition, _ client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
	close(ch)
	s.mu.Lock()
	defer s.mu.Unlock()
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromBytes(s.raw), Size: int64(len(s.raw)),
		Platform: &ocispecs.Platform{OS: "linux", Architecture: "amd64"}}
	b, _ := json.Marshal(desc)
	return &client.SolveResponse{ExporterResponse: map[string]string{
		exptypes.ExporterImageDigestKey:     desc.Digest.String(),
		exptypes.ExporterImageDescriptorKey: base64.StdEncoding.EncodeToString(b),
	}}, nil
}

// countingRegistry holds the solver's manifests and counts the reads.
type countingRegistry struct {
	s     *digestSolver
	mu    sync.Mutex
	reads int
}

func (r *countingRegistry) Manifest(_ context.Context, _, ref string) (*registry.Manifest, error) {
	r.mu.Lock()
	r.reads++
	r.mu.Unlock()
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if ref != digest.FromBytes(r.s.raw).String() {
		return nil, nil
	}
	return &registry.Manifest{Digest: ref, MediaType: ocispecs.MediaTypeImageManifest, Raw: r.s.raw}, nil
}

func (r *countingRegistry) Blob(context.Context, string, string, int64) ([]byte, error) {
	return nil, fmt.Errorf("no blobs here")
}

func (r *countingRegistry) Lookup(context.Context, string, string) (string, error) {
	return "", fmt.Errorf("no lookups here")
}

func (r *countingRegistry) PutManifest(context.Context, string, string, *registry.Manifest) error {
	return fmt.Errorf("no index to put here")
}

func manifestOf(layer int64) []byte {
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%064d","size":100},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064d","size":%d}]}`,
		ocispecs.MediaTypeImageManifest, 1, layer, layer))
}

// TestPushKnownDigestNotReadBack: a build --push whose image has the digest
// the last record holds for it, pushed, takes its size and platforms from
// that record and reads nothing back; a new digest is read back.
func TestPushKnownDigestNotReadBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, ".shipit")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &digestSolver{raw: manifestOf(1000)}
	reg := &countingRegistry{s: s}
	opt := Options{Solver: s, Registry: reg, Progress: io.Discard, Mode: "quiet"}
	plan := Plan{
		Images:   []Spec{{Name: "web", Repository: "127.0.0.1:5055/team/web", Context: filepath.Join(dir, "web"), Dockerfile: filepath.Join(dir, "web", "Dockerfile")}},
		StateDir: state, Head: gitinfo.Head{SHA: "0123456789abcdef0123456789abcdef01234567", Time: time.Unix(1_700_000_000, 0)}, Tag: "t1", Push: true,
	}
	build := func(wantReads int) Image {
		t.Helper()
		reg.mu.Lock()
		reg.reads = 0
		reg.mu.Unlock()
		rec, err := Run(context.Background(), opt, plan)
		if err != nil {
			t.Fatal(err)
		}
		if reg.reads != wantReads {
			t.Errorf("%d manifest reads, want %d", reg.reads, wantReads)
		}
		return rec.Images[0]
	}
	first := build(1)
	want := int64(len(manifestOf(1000))) + 100 + 1000
	if first.Size != want || len(first.Platforms) != 1 || first.Platforms[0] != "linux/amd64" {
		t.Fatalf("first build: size %d platforms %v, want %d [linux/amd64]", first.Size, first.Platforms, want)
	}
	if again := build(0); again.Size != first.Size || again.Digest != first.Digest || len(again.Platforms) != 1 {
		t.Errorf("no-op build: %+v, want the first's size and platforms", again)
	}
	s.mu.Lock()
	s.raw = manifestOf(2000)
	s.mu.Unlock()
	if changed := build(1); changed.Size != int64(len(manifestOf(2000)))+100+2000 {
		t.Errorf("changed build: size %d", changed.Size)
	}
	// A record that says the image was not pushed there knows nothing of
	// the registry: read back.
	rec, err := ReadRecord(filepath.Join(state, RecordFile))
	if err != nil {
		t.Fatal(err)
	}
	rec.Images[0].Pushed = false
	if err := WriteRecord(filepath.Join(state, RecordFile), rec); err != nil {
		t.Fatal(err)
	}
	build(1)
}

// flakySolver fails its first solves with err, then answers as s does.
type flakySolver struct {
	s     *digestSolver
	err   error
	fails int
	calls int
}

func (f *flakySolver) Solve(ctx context.Context, def *llb.Definition, opt client.SolveOpt, ch chan *client.SolveStatus) (*client.SolveResponse, error) {
	f.calls++
	if f.calls <= f.fails {
		close(ch)
		return nil, f.err
	}
	return f.s.Solve(ctx, def, opt, ch)
}

// TestRegistryRaceSolvedAgain: a push the registry refused because two
// uploads of one blob raced (the image's and the cache's) is solved once
// more, with a warning; another error is not, and a second race fails.
func TestRegistryRaceSolvedAgain(t *testing.T) {
	t.Parallel()
	race := fmt.Errorf("failed to push: errors:\nunknown: provided digest did not match uploaded content\nunknown: blob unknown to registry - sha256:8736")
	for _, tc := range []struct {
		err       error
		fails     int
		wantCalls int
		wantErr   bool
	}{
		{race, 1, 2, false},
		{race, 2, 2, true},
		{fmt.Errorf("failed to solve: process did not complete successfully: exit code: 3"), 1, 1, true},
	} {
		f := &flakySolver{s: &digestSolver{raw: manifestOf(1000)}, err: tc.err, fails: tc.fails}
		var warned []string
		opt := Options{Solver: f, Progress: io.Discard, Mode: "quiet", Events: progress.Func(func(e progress.Event) {
			if e.Kind == progress.Warning {
				warned = append(warned, e.Msg)
			}
		})}
		reqs := []Request{{Name: "web", Repository: "127.0.0.1:5055/team/web", Tag: "t1", ContextDir: t.TempDir(), DockerfileDir: t.TempDir(), DockerfileName: "Dockerfile", LayoutDir: t.TempDir()}}
		_, err := Solve(context.Background(), opt, reqs)
		if (err != nil) != tc.wantErr || f.calls != tc.wantCalls {
			t.Errorf("%v failing %d times: %d solves, error %v; want %d solves, an error %v", tc.err, tc.fails, f.calls, err, tc.wantCalls, tc.wantErr)
		}
		if errors.Is(tc.err, race) && len(warned) != 1 {
			t.Errorf("warnings %q, want one saying the image is solved again", warned)
		}
	}
}
