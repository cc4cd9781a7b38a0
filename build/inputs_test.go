package build

import (
	"context"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// fakeTags answers lookups from a map of reference to digest.
type fakeTags map[string]string

func (f fakeTags) resolve(_ context.Context, ref string) (string, error) {
	if d, ok := f[ref]; ok {
		return d, nil
	}
	return "", os.ErrNotExist
}

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// inputsApp is a context of the shapes apps have: a .dockerignore'd log
// directory, a nested source tree, a Dockerfile with a build stage.
func inputsApp(t *testing.T) Request {
	t.Helper()
	dir := t.TempDir()
	for p, c := range map[string]string{
		"Dockerfile":     "ARG BASE=registry.example/base:1\nFROM ${BASE} AS build\nCOPY . /src\nRUN make -C /src\nFROM scratch AS runtime\nCOPY --from=build /src/out /app\n",
		".dockerignore":  "log/\n*.tmp\n",
		"src/main.c":     "int main(){return 0;}\n",
		"src/lib/util.c": "void util(){}\n",
		"log/dev.log":    "started\n",
		"Makefile":       "all:\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Request{
		Name: "web", Repository: "registry.example/app/web", Tag: "20260101-000000-abcdef0",
		ContextDir: dir, ContextExclude: []string{"**/.shipit"}, DockerfileDir: dir, DockerfileName: "Dockerfile",
		Target: "runtime", Args: map[string]string{"SOURCE_DATE_EPOCH": "1"}, Labels: map[string]string{LabelRevision: "abc"},
		LayoutDir: filepath.Join(dir, ".shipit", "images", "web"),
		Secrets:   []Secret{{ID: "api_token", Env: "API_TOKEN"}},
	}
}

// keyOf is the request's key, with every file old enough not to be racy.
func keyOf(t *testing.T, r Request, tags fakeTags) inputs {
	t.Helper()
	return keyAt(r, "default=unix:///run/buildkit/buildkitd.sock@v0.33.1+x", tags, time.Now().Add(2*coarseRacyWindow))
}

// keyAt is the request's key on builder, at now.
func keyAt(r Request, builder string, tags fakeTags, now time.Time) inputs {
	return inputsOf(r, builder, newSourceReader(tags.resolve, now).sourceOf(context.Background(), r, r.Args))
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInputsKeyFollowsWhatTheSolveReads: the key stays the same for what a
// solve is not sent (an ignored file, shipit's state), and changes with
// everything it does: a file's content even at the same size and time, a
// new file, a mode, a build argument, the Dockerfile, the ignore file, and
// the digest the base image's tag points at.
func TestInputsKeyFollowsWhatTheSolveReads(t *testing.T) {
	t.Parallel()
	tags := fakeTags{"registry.example/base:1": digestA}
	r := inputsApp(t)
	base := keyOf(t, r, tags)
	if base.key == "" {
		t.Fatalf("no key: %s", base.why)
	}
	if again := keyOf(t, r, tags); again.key != base.key {
		t.Fatal("the same inputs gave another key")
	}
	same := func(what string, change func()) {
		t.Helper()
		change()
		if got := keyOf(t, r, tags); got.key != base.key {
			t.Errorf("%s changed the key; the solve does not read it", what)
		}
	}
	changed := func(what string, change func()) {
		t.Helper()
		change()
		got := keyOf(t, r, tags)
		if got.key == "" {
			t.Fatalf("%s: no key: %s", what, got.why)
		}
		if got.key == base.key {
			t.Errorf("%s left the key as it was: the next build would keep a stale image", what)
		}
		base = got
	}
	same("a file under an ignored directory", func() { write(t, filepath.Join(r.ContextDir, "log", "dev.log"), "more\n") })
	same("a new ignored file", func() { write(t, filepath.Join(r.ContextDir, "x.tmp"), "x") })
	same("a file in .shipit", func() {
		_ = os.MkdirAll(filepath.Join(r.ContextDir, ".shipit"), 0o755)
		write(t, filepath.Join(r.ContextDir, ".shipit", "build.json"), "{}")
	})

	main := filepath.Join(r.ContextDir, "src", "main.c")
	st, _ := os.Stat(main)
	changed("the same size, the same modification time, other content", func() {
		write(t, main, "int main(){return 1;}\n")
		if err := os.Chtimes(main, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
	})
	changed("a new file", func() { write(t, filepath.Join(r.ContextDir, "src", "new.c"), "") })
	changed("a file removed", func() { _ = os.Remove(filepath.Join(r.ContextDir, "src", "new.c")) })
	changed("a mode", func() { _ = os.Chmod(main, 0o755) })
	changed("a symbolic link", func() {
		if err := os.Symlink("main.c", filepath.Join(r.ContextDir, "src", "entry.c")); err != nil {
			t.Fatal(err)
		}
	})
	changed("a symbolic link pointed elsewhere", func() {
		_ = os.Remove(filepath.Join(r.ContextDir, "src", "entry.c"))
		if err := os.Symlink("lib/util.c", filepath.Join(r.ContextDir, "src", "entry.c")); err != nil {
			t.Fatal(err)
		}
	})
	changed("another name for a file (a hard link)", func() {
		if err := os.Link(main, filepath.Join(r.ContextDir, "src", "main2.c")); err != nil {
			t.Fatal(err)
		}
	})
	changed("an extended attribute, nothing else", func() {
		// The daemon is sent a file's extended attributes; setting one
		// changes neither its size nor its modification time.
		if err := unix.Lsetxattr(main, "user.shipit.test", []byte("1"), 0); err != nil {
			t.Fatalf("setting an extended attribute on %s: %v", main, err)
		}
	})
	changed("an extended attribute of a directory", func() {
		// A directory's change time is not in the key (it moves with
		// entries the daemon is never sent); the daemon is sent its
		// extended attributes, and BuildKit's cache key has them.
		if err := unix.Lsetxattr(filepath.Join(r.ContextDir, "src", "lib"), "user.shipit.test", []byte("1"), 0); err != nil {
			t.Fatalf("setting an extended attribute on a directory: %v", err)
		}
	})
	same("an extended attribute of an ignored directory", func() {
		if err := unix.Lsetxattr(filepath.Join(r.ContextDir, "log"), "user.shipit.test", []byte("1"), 0); err != nil {
			t.Fatalf("setting an extended attribute on a directory: %v", err)
		}
	})
	changed("a build argument", func() { r.Args = map[string]string{"SOURCE_DATE_EPOCH": "1", "BASE": "registry.example/base:1"} })
	changed("the Dockerfile", func() {
		write(t, filepath.Join(r.ContextDir, "Dockerfile"), "ARG BASE=registry.example/base:1\nFROM ${BASE} AS build\nCOPY . /src\nRUN make -C /src all\nFROM scratch AS runtime\nCOPY --from=build /src/out /app\n")
	})
	changed("the .dockerignore", func() { write(t, filepath.Join(r.ContextDir, ".dockerignore"), "log/\n") })
	changed("the base image's tag moved", func() { tags["registry.example/base:1"] = digestB })
	changed("the tag", func() { r.Tag = "20260101-000001-abcdef1" })
	changed("a label (the commit)", func() { r.Labels = map[string]string{LabelRevision: "def"} })
	changed("the platforms", func() { r.Platforms = []string{"linux/arm64"} })
	changed("push instead of a layout", func() { r.Push = true })

	if got := keyAt(r, "default=tcp://other:1234@v0.33.1+x", tags, time.Now().Add(2*coarseRacyWindow)); got.key == base.key {
		t.Error("another daemon gave the same key")
	}
}

// TestSharedContextWalkedOnce: images built from one directory (a web app
// and its worker) walk it once between them, and each gets the key its
// own target gives.
func TestSharedContextWalkedOnce(t *testing.T) {
	t.Parallel()
	tags := fakeTags{"registry.example/base:1": digestA}
	web := inputsApp(t)
	worker := web
	worker.Name, worker.Target = "worker", "build"
	other := inputsApp(t)
	sr := newSourceReader(tags.resolve, time.Now().Add(2*coarseRacyWindow))
	var walks atomic.Int32
	walk := sr.walkContext
	sr.walkContext = func(ctx context.Context, r Request, excludes []string, now time.Time, h hash.Hash, files *syncFiles) (bool, error) {
		walks.Add(1)
		return walk(ctx, r, excludes, now, h, files)
	}
	srcs := make([]sources, 3)
	var wg sync.WaitGroup
	for i, r := range []Request{web, worker, other} {
		wg.Go(func() { srcs[i] = sr.sourceOf(context.Background(), r, r.Args) })
	}
	wg.Wait()
	if n := walks.Load(); n != 2 {
		t.Fatalf("three images of two contexts walked them %d times, want 2", n)
	}
	for i, r := range []Request{web, worker, other} {
		if srcs[i].why != "" {
			t.Fatalf("%s: no sources: %s", r.Name, srcs[i].why)
		}
		alone := newSourceReader(tags.resolve, sr.now).sourceOf(context.Background(), r, r.Args)
		if srcs[i].digest != alone.digest {
			t.Errorf("%s: a shared walk gave other sources than its own walk", r.Name)
		}
	}
	if a, b := inputsOf(web, "d", srcs[0]), inputsOf(worker, "d", srcs[1]); a.key == b.key {
		t.Error("web and worker, two targets of one context, got one key")
	}
}

// TestInputsRacy: a file written just now makes the key racy (it is not
// kept for the next build), and an old one does not.
func TestInputsRacy(t *testing.T) {
	t.Parallel()
	tags := fakeTags{"registry.example/base:1": digestA}
	r := inputsApp(t)
	got := keyAt(r, "d", tags, time.Now())
	if got.key == "" || !got.racy {
		t.Fatalf("files written just now: key %q racy %v (%s), want a racy key", got.key, got.racy, got.why)
	}
	if got := keyOf(t, r, tags); got.racy {
		t.Fatal("files older than the window: racy")
	}
}

// TestInputsNoKey: what shipit cannot follow to the answer BuildKit would
// give is always solved, and says why.
func TestInputsNoKey(t *testing.T) {
	t.Parallel()
	tags := fakeTags{"registry.example/base:1": digestA, "docker/dockerfile:1": digestB}
	for _, tc := range []struct {
		name, dockerfile, why string
	}{
		{"ADD of a URL", "FROM registry.example/base:1\nADD https://example.com/x.tgz /x\n", "ADD https://example.com/x.tgz"},
		{"ADD of a git repository", "FROM registry.example/base:1\nADD git@github.com:o/r.git /r\n", "git repository"},
		{"a FROM set per platform", "FROM registry.example/base-${TARGETARCH}:1\n", "per platform"},
		{"another frontend", "# syntax=example.com/frontend:1\nFROM registry.example/base:1\n", "not docker/dockerfile"},
		{"a base that cannot be looked up", "FROM registry.example/missing:1\n", "looking up its base images"},
		{"a --from set by an argument", "ARG IMG\nFROM registry.example/base:1\nCOPY --from=$IMG /a /a\n", "depends on an argument"},
		{"ADD of a source in a variable", "FROM registry.example/base:1\nARG URL=http://example.com/x\nADD ${URL} /x\n", "may read a URL"},
		{"ADD of a user@host: git repository", "FROM registry.example/base:1\nADD deploy@git.example.com:o/r /r\n", "may read a URL"},
		{"an ONBUILD instruction", "FROM registry.example/base:1 AS a\nONBUILD COPY --from=registry.example/other:1 /x /x\nFROM a\n", "ONBUILD"},
		{"FROM the commit's time", "ARG SOURCE_DATE_EPOCH=0\nFROM registry.example/base:${SOURCE_DATE_EPOCH}\n", "SOURCE_DATE_EPOCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := inputsApp(t)
			r.Target = ""
			write(t, filepath.Join(r.ContextDir, "Dockerfile"), tc.dockerfile)
			got := keyOf(t, r, tags)
			if got.key != "" || !strings.Contains(got.why, tc.why) {
				t.Fatalf("key %q, why %q; want no key because %q", got.key, got.why, tc.why)
			}
		})
	}
}

// TestExternalImages: the images BuildKit would look up, and only those:
// the target's chain, COPY --from and RUN --mount from= images, and the
// Dockerfile frontend of a # syntax= line; not a stage, scratch, or a
// stage the target does not reach.
func TestExternalImages(t *testing.T) {
	t.Parallel()
	df := `# syntax=docker/dockerfile:1
ARG RUBY=3.3
FROM ruby:${RUBY}-slim AS base
FROM base AS build
RUN --mount=type=cache,target=/root/.cache --mount=type=bind,from=registry.example/tools:2,target=/t true
COPY --from=registry.example/assets@sha256:` + strings.Repeat("c", 64) + ` /a /a
FROM node:22 AS dev
FROM base AS runtime
COPY --from=build /usr/local/bundle /usr/local/bundle
COPY --from=0 /etc/os-release /x
`
	refs, bases, why := externalImages([]byte(df), "runtime", map[string]string{"RUBY": "3.4"})
	if why != "" {
		t.Fatal(why)
	}
	want := "docker/dockerfile:1 ruby:3.4-slim registry.example/tools:2 registry.example/assets@sha256:" + strings.Repeat("c", 64)
	if got := strings.Join(refs, " "); got != want {
		t.Fatalf("images %q, want %q", got, want)
	}
	if got := strings.Join(bases, " "); got != "ruby:3.4-slim" {
		t.Fatalf("bases %q, want the one FROM image", got)
	}
}

// TestRacyAfter: a time within 100 ms of now is racy; on a file system
// that keeps whole seconds (or hundredths), within 3 s.
func TestRacyAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 10, 500_000_000, time.UTC).UnixNano()
	for _, tc := range []struct {
		at   time.Time
		racy bool
	}{
		{time.Date(2026, 12, 1, 12, 0, 10, 450_123_456, time.UTC), true},
		{time.Date(2026, 12, 1, 12, 0, 10, 300_123_456, time.UTC), false},
		{time.Date(2026, 12, 1, 12, 0, 9, 0, time.UTC), true},  // whole seconds: 1.5 s ago is within a tick of 1 s
		{time.Date(2026, 12, 1, 12, 0, 5, 0, time.UTC), false}, // 5.5 s ago
		{time.Date(2026, 12, 1, 12, 0, 11, 0, time.UTC), true}, // after now (a clock ahead)
	} {
		if got := racyAfter(tc.at.UnixNano(), now); got != tc.racy {
			t.Errorf("%s at %s: racy %v, want %v", tc.at.Format(time.RFC3339Nano), time.Unix(0, now).UTC().Format(time.RFC3339Nano), got, tc.racy)
		}
	}
}

// TestInputsFrontendAndScanner: the BUILDKIT_SYNTAX build argument picks
// the frontend over # syntax=, and must be docker/dockerfile; an SBOM
// scanner is an image the key follows.
func TestInputsFrontendAndScanner(t *testing.T) {
	t.Parallel()
	tags := fakeTags{"registry.example/base:1": digestA, "docker/dockerfile:1": digestA, "registry.example/scanner:1": digestA}
	r := inputsApp(t)
	r.Args = map[string]string{"SOURCE_DATE_EPOCH": "1", "BUILDKIT_SYNTAX": "registry.example/frontend:1"}
	if got := keyOf(t, r, tags); got.key != "" || !strings.Contains(got.why, "BUILDKIT_SYNTAX") {
		t.Fatalf("BUILDKIT_SYNTAX of another frontend: key %q, why %q", got.key, got.why)
	}
	r.Args["BUILDKIT_SYNTAX"] = "docker/dockerfile:1"
	before := keyOf(t, r, tags)
	tags["docker/dockerfile:1"] = digestB
	if after := keyOf(t, r, tags); after.key == "" || after.key == before.key {
		t.Fatalf("the frontend's tag moved: key %q then %q (%s)", before.key, after.key, after.why)
	}
	r.SBOM, r.SBOMGenerator = true, "registry.example/scanner:1"
	before = keyOf(t, r, tags)
	tags["registry.example/scanner:1"] = digestB
	if after := keyOf(t, r, tags); after.key == "" || after.key == before.key {
		t.Fatalf("the scanner's tag moved: key %q then %q (%s)", before.key, after.key, after.why)
	}
}

// TestOnbuildTriggersOfABase: a base image whose configuration has ONBUILD
// triggers (in any platform of its index) is never kept; one without is.
func TestOnbuildTriggersOfABase(t *testing.T) {
	t.Parallel()
	reg := &blobRegistry{tagRegistry: newTagRegistry(), blobs: map[string][]byte{}}
	plain := reg.image(t, `{"config":{"Cmd":["sh"]}}`)
	triggered := reg.image(t, `{"config":{"OnBuild":["COPY --from=registry.example/x:1 /x /x"]}}`)
	index := reg.index(t, plain, triggered)
	ctx := context.Background()
	if why := onbuildTriggers(ctx, reg, []pinnedImage{{ref: "registry.example/base:1", digest: plain}}); why != "" {
		t.Fatalf("a base without triggers: %s", why)
	}
	for _, d := range []string{triggered, index} {
		if why := onbuildTriggers(ctx, reg, []pinnedImage{{ref: "registry.example/base:1", digest: d}}); !strings.Contains(why, "ONBUILD") {
			t.Fatalf("a base with triggers (%s): %q", d, why)
		}
	}
}

// blobRegistry is a tagRegistry that holds blobs too.
type blobRegistry struct {
	*tagRegistry
	blobs map[string][]byte
}

func (r *blobRegistry) Blob(_ context.Context, _, dgst string, _ int64) ([]byte, error) {
	b, ok := r.blobs[dgst]
	if !ok {
		return nil, os.ErrNotExist
	}
	return b, nil
}

func (r *blobRegistry) image(t *testing.T, config string) string {
	t.Helper()
	cd := digest.FromString(config)
	r.blobs[cd.String()] = []byte(config)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, cd, len(config))
	d := digest.FromString(m).String()
	r.manifests[d] = []byte(m)
	return d
}

func (r *blobRegistry) index(t *testing.T, children ...string) string {
	t.Helper()
	var ms []string
	for _, c := range children {
		ms = append(ms, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1,"platform":{"os":"linux","architecture":"amd64"}}`, c))
	}
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + strings.Join(ms, ",") + `]}`
	d := digest.FromString(idx).String()
	r.manifests[d] = []byte(idx)
	return d
}
