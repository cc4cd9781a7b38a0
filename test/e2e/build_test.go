package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// app is a two-image application in a git repository of its own.
type app struct {
	dir        string
	repo       string // registry prefix
	fileSecret string
	envSecret  string
	sha        string
	commitTime time.Time
}

const commitDate = "2026-05-06T07:08:09+02:00"

func randomSecret(t testing.TB, kind string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return kind + "-" + hex.EncodeToString(b)
}

// newApp writes the fixture: web is multi-stage with a target, a build
// argument, a file secret, an env secret and a cache mount; worker is plain.
func newApp(t testing.TB) *app {
	t.Helper()
	a := &app{dir: t.TempDir(), repo: uniqueRepo(t), fileSecret: randomSecret(t, "file"), envSecret: randomSecret(t, "env")}
	writeFiles(t, a.dir, map[string]string{
		"shipit.yaml": `registry: ` + a.repo + `
images:
  web:
    context: web
    target: runtime
    args: {BASE: "` + base + `", GREETING: hello-e2e}
    secrets:
      - {id: file_secret, src: secrets/file_secret.txt}
      - {id: env_secret, env: E2E_ENV_SECRET}
  worker:
    context: worker
    args: {BASE: "` + base + `"}
`,
		".gitignore":              "secrets/\n.shipit/\n",
		"secrets/file_secret.txt": a.fileSecret,
		"web/app.sh":              "#!/bin/sh\necho app\n",
		// BuildKit does not key its cache on secret values: a per-app file
		// keeps one test's RUN step from being a cache hit for another's.
		"web/fixture-id": randomSecret(t, "id"),
		"web/Dockerfile": `ARG BASE=busybox
FROM ${BASE} AS builder
WORKDIR /src
COPY app.sh fixture-id ./
RUN --mount=type=secret,id=file_secret,required=true \
    --mount=type=secret,id=env_secret,required=true \
    --mount=type=cache,target=/cache \
    mkdir -p /out && cp app.sh /out/app && \
    sha256sum /run/secrets/file_secret | cut -c1-64 > /out/file_secret.sha256 && \
    sha256sum /run/secrets/env_secret | cut -c1-64 > /out/env_secret.sha256 && \
    echo run >> /cache/runs

FROM ${BASE} AS runtime
ARG GREETING
COPY --from=builder /out /app
RUN echo "$GREETING" > /app/greeting
USER nobody
CMD ["/app/app"]

FROM runtime AS broken
RUN exit 3
`,
		"worker/Dockerfile": "ARG BASE=busybox\nFROM ${BASE}\nCOPY job.sh /job.sh\nCMD [\"/job.sh\"]\n",
		"worker/job.sh":     "#!/bin/sh\necho job\n",
	})
	git(t, a.dir, "", "init", "-q", "-b", "main")
	git(t, a.dir, "", "remote", "add", "origin", "https://ci-bot:"+a.envSecret+"@git.example.com/acme/app.git")
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, commitDate, "commit", "-qm", "app")
	a.sha = git(t, a.dir, "", "rev-parse", "HEAD")
	a.commitTime, _ = time.Parse(time.RFC3339, commitDate)
	return a
}

func (a *app) env() []string { return []string{"E2E_ENV_SECRET=" + a.envSecret} }

func (a *app) tag() string { return a.commitTime.UTC().Format("20060102-150405") + "-" + a.sha[:7] }

type record struct {
	Commit string `json:"commit"`
	Tag    string `json:"tag"`
	Images []struct {
		Name, Repository, Tag, Digest string
		Platforms                     []string
		Size                          int64
		Commit                        string
		CommitTime                    time.Time
		Pushed                        bool
		Layout                        string
	} `json:"images"`
}

func readRecord(t testing.TB, dir string) (record, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".shipit", "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r, data
}

var refLine = regexp.MustCompile(`^(\S+):(\S+)@(sha256:[0-9a-f]{64})$`)

func TestBuildPush(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	r := mustShipit(t, a.dir, a.env(), "build", "--push", "--progress", "plain")

	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout has %d lines, want one per image:\n%s", len(lines), r.stdout)
	}
	digests := map[string]string{}
	for i, want := range []string{"web", "worker"} {
		m := refLine.FindStringSubmatch(lines[i])
		if m == nil || m[1] != a.repo+"/"+want || m[2] != a.tag() {
			t.Fatalf("line %q, want %s/%s:%s@sha256:…", lines[i], a.repo, want, a.tag())
		}
		digests[want] = m[3]
	}
	if a.tag() != "20260506-050809-"+a.sha[:7] {
		t.Fatalf("fixture tag %s: the commit time in UTC is 05:08:09", a.tag())
	}

	rec, recRaw := readRecord(t, a.dir)
	if rec.Commit != a.sha || rec.Tag != a.tag() || len(rec.Images) != 2 {
		t.Fatalf("record: %s", recRaw)
	}
	for _, im := range rec.Images {
		if !im.Pushed || im.Digest != digests[im.Name] || im.Size <= 0 || len(im.Platforms) != 1 || im.Platforms[0] != "linux/amd64" || !im.CommitTime.Equal(a.commitTime) {
			t.Errorf("record image %+v", im)
		}
	}

	ref, err := name.ParseReference(a.repo + "/web:" + a.tag())
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("the pushed image is not in the registry under its tag: %v", err)
	}
	if d, _ := img.Digest(); d.String() != digests["web"] {
		t.Errorf("registry digest %s, stdout said %s", d, digests["web"])
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	labels := cf.Config.Labels
	if labels["org.opencontainers.image.revision"] != a.sha || labels["org.opencontainers.image.created"] != "2026-05-06T05:08:09Z" || labels["org.opencontainers.image.source"] != "https://git.example.com/acme/app.git" {
		t.Errorf("labels = %v", labels)
	}
	if !cf.Created.Equal(a.commitTime) {
		t.Errorf("config created = %v, want the commit time %v", cf.Created.Time, a.commitTime)
	}
	if cf.Config.User != "nobody" {
		t.Errorf("user = %q: the runtime target was not built", cf.Config.User)
	}

	files := imageFiles(t, img)
	if got := strings.TrimSpace(files["app/greeting"]); got != "hello-e2e" {
		t.Errorf("greeting = %q: the build argument did not reach the build", got)
	}
	for _, s := range []struct{ file, value string }{{"app/file_secret.sha256", a.fileSecret}, {"app/env_secret.sha256", a.envSecret}} {
		sum := sha256.Sum256([]byte(s.value))
		if got := strings.TrimSpace(files[s.file]); got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s = %q: the secret was not readable in its RUN step", s.file, got)
		}
	}

	// The secrets' values appear nowhere: layers, config (with history),
	// manifest, record, output.
	raw, _ := img.RawConfigFile()
	man, _ := img.RawManifest()
	places := map[string][]byte{"config and history": raw, "manifest": man, "build record": recRaw, "stdout": []byte(r.stdout), "stderr": []byte(r.stderr)}
	for _, l := range layersOf(t, img) {
		places["a layer"] = append(places["a layer"], l...)
	}
	for where, data := range places {
		for _, s := range []string{a.fileSecret, a.envSecret} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("a secret's value is in the %s", where)
			}
		}
	}
}

// imageFiles maps each regular file's path to its content.
func imageFiles(t testing.TB, img v1.Image) map[string]string {
	t.Helper()
	files := map[string]string{}
	eachEntry(t, img, func(h *tar.Header, r io.Reader) {
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(r)
			files[h.Name] = string(b)
		}
	})
	return files
}

// eachEntry calls f with every entry of every layer of img, in order, and
// a reader of its content.
func eachEntry(t testing.TB, img v1.Image, f func(h *tar.Header, r io.Reader)) {
	t.Helper()
	for _, l := range layersOf(t, img) {
		tr := tar.NewReader(bytes.NewReader(l))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			f(h, tr)
		}
	}
}

// layersOf returns each layer's uncompressed tar.
func layersOf(t testing.TB, img v1.Image) [][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestBuildKeepsLayoutsForRelease(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	r := mustShipit(t, a.dir, a.env(), "build", "--output", "json", "--progress", "quiet")
	var fromStdout record
	if err := json.Unmarshal([]byte(r.stdout), &fromStdout); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, r.stdout)
	}
	rec, _ := readRecord(t, a.dir)
	if len(rec.Images) != 2 || fromStdout.Tag != rec.Tag {
		t.Fatalf("record %+v, stdout %+v", rec, fromStdout)
	}
	for _, im := range rec.Images {
		if im.Pushed || im.Layout == "" {
			t.Errorf("%s: pushed=%v layout=%q: without --push the image is kept for release", im.Name, im.Pushed, im.Layout)
			continue
		}
		idx, err := layout.ImageIndexFromPath(filepath.Join(a.dir, ".shipit", im.Layout))
		if err != nil {
			t.Fatalf("%s: not an OCI layout: %v", im.Name, err)
		}
		h, _ := v1.NewHash(im.Digest)
		img, err := idx.Image(h)
		if err != nil {
			t.Fatalf("%s: the layout does not hold %s: %v", im.Name, im.Digest, err)
		}
		if _, err := img.Layers(); err != nil {
			t.Fatal(err)
		}
		if err := validateLayers(img); err != nil {
			t.Errorf("%s: %v", im.Name, err)
		}
	}
	// Nothing was pushed.
	if _, err := remote.Head(mustRef(t, rec.Images[0].Repository+":"+rec.Tag)); err == nil {
		t.Error("a build without --push pushed the image")
	}

	// A warm rebuild of the same commit gives the same digests (solved:
	// --rebuild, or the images would be kept), and a tree with changes
	// gets a -dirty tag.
	mustShipit(t, a.dir, a.env(), "build", "--rebuild", "--progress", "quiet")
	again, _ := readRecord(t, a.dir)
	for i := range rec.Images {
		if again.Images[i].Digest != rec.Images[i].Digest {
			t.Errorf("%s: rebuild gave %s, first build %s", rec.Images[i].Name, again.Images[i].Digest, rec.Images[i].Digest)
		}
	}
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho changed\n"})
	r = mustShipit(t, a.dir, a.env(), "build", "worker", "--progress", "quiet")
	if !strings.Contains(r.stdout, "/worker:"+a.tag()+"-dirty@") || strings.Contains(r.stdout, "/web:") {
		t.Errorf("a build of worker in a changed tree printed:\n%s", r.stdout)
	}
}

func validateLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBuildSameDigestWhateverTheDockerignore: an app shaped like a Rails
// app, whose own .dockerignore (and .gitignore) do not list .shipit/, built
// with COPY . . three times in a row: one digest, no -dirty tag, and no
// image holding shipit's state (the previous build's OCI layouts).
func TestBuildSameDigestWhateverTheDockerignore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + uniqueRepo(t) + "\nimages:\n  app:\n    context: .\n    args: {BASE: \"" + base + "\"}\n",
		// Rails 7.1's generated files, which know nothing of shipit.
		".dockerignore":      "/.git/\n/.gitignore\n/log/*\n/tmp/*\n!/log/.keep\n!/tmp/.keep\n/.bundle\n/vendor/bundle\n/node_modules/\n/.env*\n!/.env.example\n/storage/*\n/public/assets\n/config/master.key\n",
		".gitignore":         "/.bundle\n/log/*\n/tmp/*\n!/log/.keep\n!/tmp/.keep\n/storage/*\n/public/assets\n/config/master.key\n",
		"Dockerfile":         "ARG BASE=busybox\nFROM ${BASE}\nWORKDIR /rails\nCOPY . .\nCMD [\"/bin/sh\", \"-c\", \"ls /rails\"]\n",
		"Gemfile":            "source \"https://rubygems.org\"\ngem \"rails\", \"~> 7.1\"\n",
		"app/models/user.rb": "class User < ApplicationRecord\nend\n",
		"config/routes.rb":   "Rails.application.routes.draw do\n  get \"up\" => \"rails/health#show\"\nend\n",
		"log/.keep":          "",
		"tmp/.keep":          "",
		"bin/rails":          "#!/usr/bin/env ruby\n",
		"fixture-id":         randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, commitDate, "commit", "-qm", "rails app")

	var digests []string
	for i := 0; i < 3; i++ {
		r := mustShipit(t, dir, nil, "build", "--progress", "quiet")
		m := refLine.FindStringSubmatch(strings.TrimSpace(r.stdout))
		if m == nil || strings.HasSuffix(m[2], "-dirty") {
			t.Fatalf("build %d printed %q: want one repository:tag@digest, not dirty (.shipit/ is shipit's output)", i+1, r.stdout)
		}
		digests = append(digests, m[3])
		rec, _ := readRecord(t, dir)
		idx, err := layout.ImageIndexFromPath(filepath.Join(dir, ".shipit", rec.Images[0].Layout))
		if err != nil {
			t.Fatal(err)
		}
		h, _ := v1.NewHash(m[3])
		img, err := idx.Image(h)
		if err != nil {
			t.Fatal(err)
		}
		files := imageFiles(t, img)
		if _, ok := files["rails/app/models/user.rb"]; !ok {
			t.Fatalf("build %d: COPY . . did not copy the app: %d files", i+1, len(files))
		}
		for f := range files {
			if strings.Contains(f, ".shipit") {
				t.Errorf("build %d: the image holds %s", i+1, f)
			}
		}
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Errorf("three builds of one commit gave %v: want one digest", digests)
	}
}
