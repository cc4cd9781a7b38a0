package e2e

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestImagesOfOneContextShareItsUpload: a web app and its worker, two
// targets of one Dockerfile in one context (the Rails shape), built
// together, pushed or into OCI layouts: the context is loaded once for
// both, every file the images get from it belongs to root whoever owns it
// on disk, a build secret reaches both, each image is the one it is when
// built alone, and each layout holds its own image and nothing else.
func TestImagesOfOneContextShareItsUpload(t *testing.T) {
	t.Parallel()
	for _, push := range []bool{true, false} {
		t.Run(map[bool]string{true: "push", false: "layouts"}[push], func(t *testing.T) {
			t.Parallel()
			testOneContext(t, push)
		})
	}
}

func testOneContext(t *testing.T, push bool) {
	dir, repo := t.TempDir(), uniqueRepo(t)
	secret := randomSecret(t, "file")
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": `registry: ` + repo + `
images:
  web:
    context: .
    target: web
    args: {BASE: "` + base + `"}
    secrets: [{id: key, src: secrets/key}]
  worker:
    context: .
    target: worker
    args: {BASE: "` + base + `"}
    secrets: [{id: key, src: secrets/key}]
`,
		".gitignore":      "secrets/\n.shipit/\n",
		".dockerignore":   "secrets/\nlog/\n",
		"secrets/key":     secret,
		"log/dev.log":     "x\n",
		"Gemfile":         "source \"https://rubygems.org\"\n",
		"app/models/a.rb": "class A; end\n",
		"fixture-id":      randomSecret(t, "id"),
		"Dockerfile": `ARG BASE=busybox
FROM ${BASE} AS build
WORKDIR /rails
COPY . .
RUN --mount=type=secret,id=key,required=true sha256sum /run/secrets/key | cut -c1-64 > /rails/key.sha256
FROM build AS web
CMD ["echo", "web"]
FROM build AS worker
CMD ["echo", "worker"]
`,
	})
	// Files of a developer's own user: the images must not carry it.
	for _, p := range []string{"Gemfile", "app", "app/models", "app/models/a.rb"} {
		if err := os.Lchown(filepath.Join(dir, p), 4321, 4321); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "add", "-A")
	git(t, dir, commitDate, "commit", "-qm", "app")

	mode := []string{}
	if push {
		mode = []string{"--push"}
	}
	r := mustShipit(t, dir, nil, append([]string{"build", "--progress", "rawjson"}, mode...)...)
	together := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		m := refLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("stdout line %q", l)
		}
		together[strings.TrimPrefix(m[1], repo+"/")] = m[3]
	}
	loads := contextLoads(t, r.stderr)
	if len(loads) == 0 {
		t.Fatalf("no load of the build context in the progress stream:\n%s", r.stderr)
	}
	for when, names := range loads {
		if len(names) < 2 || !slices.Contains(names, "[web] [internal] load build context") || !slices.Contains(names, "[worker] [internal] load build context") {
			t.Errorf("a load of the context (%s) for %v only: two images of one context each loaded it", when, names)
		}
	}

	for _, im := range []string{"web", "worker"} {
		img := builtImage(t, dir, repo, im, together[im], push)
		if got, want := strings.TrimSpace(imageFiles(t, img)["rails/key.sha256"]), sha256Hex(secret); got != want {
			t.Errorf("%s: the secret's digest in the image is %q, want %q: the secret did not reach its build", im, got, want)
		}
		eachEntry(t, img, func(h *tar.Header, _ io.Reader) {
			if strings.HasPrefix(h.Name, "rails/") && (h.Uid != 0 || h.Gid != 0) {
				t.Errorf("%s: %s belongs to %d:%d in the image, want 0:0 (the context is sent owned by root)", im, h.Name, h.Uid, h.Gid)
			}
		})
	}

	// Each alone, in a session of its own: the same images.
	for _, im := range []string{"web", "worker"} {
		r := mustShipit(t, dir, nil, append([]string{"build", "--rebuild", im}, mode...)...)
		m := refLine.FindStringSubmatch(strings.TrimSpace(r.stdout))
		if m == nil || m[3] != together[im] {
			t.Errorf("%s built alone: %q, built with the other: %s", im, strings.TrimSpace(r.stdout), together[im])
		}
	}
}

// builtImage is image im's dgst: in the registry when pushed, else in its
// layout, which must hold that image's blobs and no others.
func builtImage(t *testing.T, dir, repo, im, dgst string, push bool) v1.Image {
	t.Helper()
	if push {
		ref, err := name.ParseReference(repo + "/" + im + "@" + dgst)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	lp := filepath.Join(dir, ".shipit", "images", im)
	if left, _ := filepath.Glob(filepath.Join(dir, ".shipit", "images", ".export-*")); len(left) > 0 {
		t.Errorf("the shared session's staging directories are left: %v", left)
	}
	p, err := layout.FromPath(lp)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im2, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im2.Manifests) != 1 || im2.Manifests[0].Digest.String() != dgst {
		t.Fatalf("%s's index.json names %v, want only %s", lp, im2.Manifests, dgst)
	}
	h, _ := v1.NewHash(dgst)
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateLayers(img); err != nil {
		t.Fatalf("%s: %v", lp, err)
	}
	want := map[string]bool{dgst: true}
	cfg, _ := img.ConfigName()
	want[cfg.String()] = true
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		want[d.String()] = true
	}
	entries, err := os.ReadDir(filepath.Join(lp, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !want["sha256:"+e.Name()] {
			t.Errorf("%s holds blob %s, which its image does not use", lp, e.Name())
		}
	}
	if len(entries) != len(want) {
		t.Errorf("%s holds %d blobs, its image uses %d", lp, len(entries), len(want))
	}
	return img
}

// contextLoads are the distinct loads of the build context in a rawjson
// progress stream, by start and end: a step two images share is reported
// to each with the same times.
func contextLoads(t *testing.T, stream string) map[string][]string {
	t.Helper()
	loads := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(stream))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var st struct {
			Vertexes []struct {
				Name      string
				Started   *string
				Completed *string
			}
		}
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			if strings.HasSuffix(v.Name, "[internal] load build context") && v.Started != nil && v.Completed != nil {
				k := *v.Started + " " + *v.Completed
				if !slices.Contains(loads[k], v.Name) {
					loads[k] = append(loads[k], v.Name)
				}
			}
		}
	}
	return loads
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
