package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// solvedLines are the lines of BuildKit's plain progress display: what a
// build that asked the daemon for nothing never prints.
func solvedLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[web] #") || strings.HasPrefix(l, "[worker] #") {
			out = append(out, l)
		}
	}
	return out
}

// settle waits until the files just written are older than a timestamp
// tick could hide (build/inputs.go): before that, a build keeps no key.
func settle() { time.Sleep(3200 * time.Millisecond) }

// buildKept runs a plain build and checks which images it kept and which
// it solved, by what a user sees: a notice per kept image, and BuildKit's
// display only for the solved ones.
func buildKept(t *testing.T, a *app, args []string, kept, solved []string) result {
	t.Helper()
	r := mustShipit(t, a.dir, a.env(), append([]string{"build", "--progress", "plain"}, args...)...)
	for _, n := range kept {
		if !strings.Contains(r.stderr, "shipit: "+n+" unchanged since the last build") {
			t.Errorf("%s was not kept:\n%s", n, r.stderr)
		}
	}
	for _, n := range solved {
		if strings.Contains(r.stderr, "shipit: "+n+" unchanged") {
			t.Errorf("%s was kept, want it solved:\n%s", n, r.stderr)
		}
	}
	if len(solved) == 0 && len(solvedLines(r.stderr)) > 0 {
		t.Errorf("a build of nothing changed asked BuildKit for work:\n%s", r.stderr)
	}
	if len(solved) > 0 && len(solvedLines(r.stderr)) == 0 {
		t.Errorf("no BuildKit progress for %v:\n%s", solved, r.stderr)
	}
	return r
}

// TestNoOpBuildSolvesNothing: a build of what the last build built asks
// BuildKit for nothing and names the same images; each change a solve
// would see is solved again, and only for the image it concerns: a file
// of the same size, a build argument, the layout removed or tampered with;
// an ignored file is not; --rebuild and --no-cache solve everything.
func TestNoOpBuildSolvesNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	writeFiles(t, a.dir, map[string]string{"worker/.dockerignore": "notes/\n", "worker/notes/todo": "one\n"})
	settle()
	first := buildKept(t, a, nil, nil, []string{"web", "worker"})
	rec, _ := readRecord(t, a.dir)
	again := buildKept(t, a, nil, []string{"web", "worker"}, nil)
	if again.stdout != first.stdout {
		t.Fatalf("a no-op build names other images:\n%s\nwant:\n%s", again.stdout, first.stdout)
	}
	if rec2, _ := readRecord(t, a.dir); rec2.Images[0].Digest != rec.Images[0].Digest || rec2.Images[1].Digest != rec.Images[1].Digest {
		t.Fatal("the record changed")
	}

	writeFiles(t, a.dir, map[string]string{"worker/notes/todo": "two\n"})
	buildKept(t, a, nil, []string{"web", "worker"}, nil)

	// The same size, another content: worker only.
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho JOB\n"})
	settle()
	buildKept(t, a, nil, []string{"web"}, []string{"worker"})
	rec3, _ := readRecord(t, a.dir)
	if rec3.Images[1].Name != "worker" || rec3.Images[1].Digest == rec.Images[1].Digest {
		t.Fatal("worker's job.sh changed, and its digest did not")
	}
	if got := imageFiles(t, layoutImage(t, a, "worker", rec3.Images[1].Digest))["job.sh"]; got != "#!/bin/sh\necho JOB\n" {
		t.Fatalf("worker's image holds job.sh %q, not the changed file", got)
	}
	buildKept(t, a, nil, []string{"web", "worker"}, nil)

	// A build argument: web only.
	cfg, _ := os.ReadFile(filepath.Join(a.dir, "shipit.yaml"))
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": strings.Replace(string(cfg), "GREETING: hello-e2e", "GREETING: hello-again", 1)})
	buildKept(t, a, nil, []string{"worker"}, []string{"web"})

	// The layout gone, or a blob of it changed: solved into it again.
	if err := os.RemoveAll(filepath.Join(a.dir, ".shipit", "images", "web")); err != nil {
		t.Fatal(err)
	}
	buildKept(t, a, nil, []string{"worker"}, []string{"web"})
	rec4, _ := readRecord(t, a.dir)
	hex := strings.TrimPrefix(rec4.Images[1].Digest, "sha256:")
	if err := os.WriteFile(filepath.Join(a.dir, ".shipit", "images", "worker", "blobs", "sha256", hex), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	buildKept(t, a, nil, []string{"web"}, []string{"worker"})

	// A blob the next image shares (the base's layer) changed, and a file
	// too: the layout is removed before the solve writes the new image
	// into it (the export skips a blob the layout has, whatever it
	// holds), and holds that image whole.
	rec5, _ := readRecord(t, a.dir)
	layers, err := layoutImage(t, a, "worker", rec5.Images[1].Digest).Layers()
	if err != nil || len(layers) < 2 {
		t.Fatalf("worker's image has layers %v (%v), want the base's and its own", layers, err)
	}
	baseLayer, _ := layers[0].Digest()
	if err := os.WriteFile(filepath.Join(a.dir, ".shipit", "images", "worker", "blobs", "sha256", baseLayer.Hex), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho J2B\n"})
	buildKept(t, a, nil, []string{"web"}, []string{"worker"})
	rec6, _ := readRecord(t, a.dir)
	if got := imageFiles(t, layoutImage(t, a, "worker", rec6.Images[1].Digest))["job.sh"]; got != "#!/bin/sh\necho J2B\n" {
		t.Fatalf("worker's layout holds job.sh %q after a corrupt blob and a change", got)
	}

	buildKept(t, a, []string{"--rebuild"}, nil, []string{"web", "worker"})
	buildKept(t, a, []string{"--no-cache"}, nil, []string{"web", "worker"})
	buildKept(t, a, nil, []string{"web", "worker"}, nil)
}

// TestNoOpBuildFollowsTheBaseImage: the base image's tag moved in the
// registry, so the next build is solved on the new base, though nothing of
// the app changed; a pushed image whose tag another push moved is tagged
// again, with no solve.
func TestNoOpBuildFollowsTheBaseImage(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	baseRef, err := name.ParseReference(base)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := remote.Image(baseRef)
	if err != nil {
		t.Fatal(err)
	}
	own, _ := name.NewTag(a.repo + "/base:1")
	if err := remote.Write(own, orig); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(a.dir, "shipit.yaml"))
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": strings.ReplaceAll(string(cfg), base, own.String())})
	git(t, a.dir, commitDate, "commit", "-qam", "own base")
	settle()
	buildKept(t, a, []string{"--push"}, nil, []string{"web", "worker"})
	before, _ := readRecord(t, a.dir)
	buildKept(t, a, []string{"--push"}, []string{"web", "worker"}, nil)

	// The base moves: a layer more, /etc/base-moved.
	tb := tarOf(t, map[string]string{"etc/base-moved": "yes\n"})
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tb)), nil })
	if err != nil {
		t.Fatal(err)
	}
	moved, err := mutate.AppendLayers(orig, layer)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(own, moved); err != nil {
		t.Fatal(err)
	}
	buildKept(t, a, []string{"--push"}, nil, []string{"web", "worker"})
	after, _ := readRecord(t, a.dir)
	for i, im := range after.Images {
		if im.Digest == before.Images[i].Digest {
			t.Errorf("%s: the base moved, and the image is the one built on the old base", im.Name)
		}
	}
	ref, _ := name.ParseReference(after.Images[1].Repository + "@" + after.Images[1].Digest)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if imageFiles(t, img)["etc/base-moved"] != "yes\n" {
		t.Fatal("worker was not built on the moved base")
	}

	// Another push takes worker's tag: put back, not solved.
	other, _ := random.Image(64, 1)
	wtag, _ := name.NewTag(after.Images[1].Repository + ":" + after.Images[1].Tag)
	if err := remote.Write(wtag, other); err != nil {
		t.Fatal(err)
	}
	r := buildKept(t, a, []string{"--push"}, []string{"web", "worker"}, nil)
	if !strings.Contains(r.stderr, "held another image: tagged "+after.Images[1].Digest+" again") {
		t.Errorf("no notice of the tag put back:\n%s", r.stderr)
	}
	got, err := remote.Head(wtag)
	if err != nil || got.Digest.String() != after.Images[1].Digest {
		t.Fatalf("%s points at %v (%v), want %s", wtag, got, err, after.Images[1].Digest)
	}
}

// layoutImage is image name's dgst in its layout under the app's .shipit.
func layoutImage(t *testing.T, a *app, name, dgst string) v1.Image {
	t.Helper()
	lp, err := layout.FromPath(filepath.Join(a.dir, ".shipit", "images", name))
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(dgst)
	if err != nil {
		t.Fatal(err)
	}
	img, err := lp.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// tarOf is an uncompressed tar of files.
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for p, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFileRewrittenWithItsTimesKept: a file rewritten with its size and
// modification time kept (mtimes set to one time for a reproducible
// build, cp -p, rsync -t) reaches the image. BuildKit syncs a context into
// its copy of the last one by size and mtime alone, so without shipit
// moving the copy's key the image held the file as it was before, even
// with --rebuild --no-cache. (The frontend sends the Dockerfile whole on
// every build; the test checks a Dockerfile so rewritten too.)
func TestFileRewrittenWithItsTimesKept(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	fixed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rewrite := func(files map[string]string) {
		t.Helper()
		writeFiles(t, a.dir, files)
		for p := range files {
			if err := os.Chtimes(filepath.Join(a.dir, p), fixed, fixed); err != nil {
				t.Fatal(err)
			}
		}
	}
	const dockerfile = "ARG BASE=busybox\nFROM ${BASE}\nCOPY job.sh /job.sh\nENV STAGE=one\nCMD [\"/job.sh\"]\n"
	rewrite(map[string]string{"worker/job.sh": "#!/bin/sh\necho one\n", "worker/Dockerfile": dockerfile})
	settle()
	check := func(job, stage string) {
		t.Helper()
		rec, _ := readRecord(t, a.dir)
		img := layoutImage(t, a, "worker", rec.Images[1].Digest)
		if got := imageFiles(t, img)["job.sh"]; got != job {
			t.Errorf("worker's image holds job.sh %q, want %q: the daemon was not sent the file as it is", got, job)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(cf.Config.Env, "STAGE="+stage) {
			t.Errorf("worker's image has env %v, want STAGE=%s: the daemon was not sent the Dockerfile as it is", cf.Config.Env, stage)
		}
	}
	workerHas := func(job, stage string) {
		t.Helper()
		buildKept(t, a, nil, []string{"web"}, []string{"worker"})
		check(job, stage)
	}
	buildKept(t, a, nil, nil, []string{"web", "worker"})
	check("#!/bin/sh\necho one\n", "one")

	// The same size and mtime, another content; then the Dockerfile too.
	rewrite(map[string]string{"worker/job.sh": "#!/bin/sh\necho two\n"})
	settle()
	workerHas("#!/bin/sh\necho two\n", "one")
	rewrite(map[string]string{"worker/Dockerfile": strings.Replace(dockerfile, "one", "two", 1)})
	settle()
	workerHas("#!/bin/sh\necho two\n", "two")

	// Built at once after the write (the file's times are racy), and then
	// rewritten again: each build has the file as it is.
	rewrite(map[string]string{"worker/job.sh": "#!/bin/sh\necho six\n"})
	workerHas("#!/bin/sh\necho six\n", "two")
	rewrite(map[string]string{"worker/job.sh": "#!/bin/sh\necho ten\n"})
	settle()
	workerHas("#!/bin/sh\necho ten\n", "two")
	buildKept(t, a, nil, []string{"web", "worker"}, nil)

	// Touched to the same time again, the content as it was (a
	// normalizing step before every build): the daemon's copy is still
	// good, and the context is not sent whole.
	rewrite(map[string]string{"worker/job.sh": "#!/bin/sh\necho ten\n"})
	settle()
	r := mustShipit(t, a.dir, a.env(), "-v", "build", "--progress", "plain", "worker")
	if strings.Contains(r.stderr, "the daemon is sent its whole context") {
		t.Errorf("a file touched with its content unchanged: the context was sent whole:\n%s", r.stderr)
	}
	check("#!/bin/sh\necho ten\n", "two")
}

// TestFileRewrittenAfterAPartialBuild: a build of an image whose target
// reads nothing of its context (tool) leaves the daemon's copy of that
// context as it was. The file then rewritten back to the copy's size and
// mtime still reaches the next image that reads it (found by a review:
// the record of the send had followed the walk, not the copy).
func TestFileRewrittenAfterAPartialBuild(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	fixed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := func(content string) {
		t.Helper()
		p := filepath.Join(a.dir, "worker", "job.sh")
		writeFiles(t, a.dir, map[string]string{"worker/job.sh": content})
		if err := os.Chtimes(p, fixed, fixed); err != nil {
			t.Fatal(err)
		}
		settle()
	}
	writeFiles(t, a.dir, map[string]string{
		"shipit.yaml": "registry: " + a.repo + "\nimages:\n  worker:\n    context: worker\n    target: run\n    args: {BASE: \"" + base + "\"}\n" +
			"  tool:\n    context: worker\n    target: tool\n    args: {BASE: \"" + base + "\"}\n",
		"worker/Dockerfile": "ARG BASE=busybox\nFROM ${BASE} AS run\nCOPY job.sh /job.sh\n\nFROM ${BASE} AS tool\nRUN echo tool > /tool\n",
	})
	job("echo 1.2.3\n")
	mustShipit(t, a.dir, a.env(), "build", "--progress", "plain")
	job("echo 1.2.10\n") // another size
	mustShipit(t, a.dir, a.env(), "build", "--progress", "plain", "tool")
	job("echo 1.2.4\n") // the first size and mtime again
	mustShipit(t, a.dir, a.env(), "build", "--progress", "plain", "worker")
	rec, _ := readRecord(t, a.dir)
	found := false
	for _, im := range rec.Images {
		if im.Name != "worker" {
			continue
		}
		found = true
		if got := imageFiles(t, layoutImage(t, a, "worker", im.Digest))["job.sh"]; got != "echo 1.2.4\n" {
			t.Errorf("worker's image holds job.sh %q, want %q", got, "echo 1.2.4\n")
		}
	}
	if !found {
		t.Fatalf("no worker in the record: %+v", rec.Images)
	}
}

// TestNoKeyStillSyncsTheCopy: an image shipit cannot key (a base with
// ONBUILD: always solved) still has its context sent as a change, not
// whole on every build.
func TestNoKeyStillSyncsTheCopy(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	writeFiles(t, a.dir, map[string]string{
		"worker/Dockerfile": "ARG BASE=busybox\nFROM ${BASE}\nONBUILD RUN true\nCOPY job.sh /job.sh\n",
	})
	settle()
	mustShipit(t, a.dir, a.env(), "build", "--progress", "plain", "worker")
	for range 2 {
		r := mustShipit(t, a.dir, a.env(), "-v", "build", "--progress", "plain", "worker")
		if strings.Contains(r.stderr, "the daemon is sent its whole context") {
			t.Fatalf("an unchanged context sent whole again:\n%s", r.stderr)
		}
	}
}
