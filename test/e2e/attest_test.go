package e2e

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	predicateSLSA1 = "https://slsa.dev/provenance/v1"
	predicateSPDX  = "https://spdx.dev/Document"
)

// fixturePackage is a package the SBOM must find in the image: a dpkg
// status entry, which syft's dpkg cataloger reads.
const (
	fixturePackage = "shipit-e2e-fixture"
	fixtureVersion = "1.2.3-4"
	dpkgStatus     = "Package: " + fixturePackage + "\nStatus: install ok installed\nPriority: optional\nSection: misc\n" +
		"Installed-Size: 1\nMaintainer: shipit <dev@shipit.invalid>\nArchitecture: amd64\nVersion: " + fixtureVersion + "\n" +
		"Description: a package the SBOM test looks for\n\n"
)

type attestRecord struct {
	Images []struct {
		Name, Digest string
		Platforms    []string
		Attestations []struct {
			Digest, Subject, Platform string
			PredicateTypes            []string
		}
	}
}

func readAttestRecord(t testing.TB, dir string) attestRecord {
	t.Helper()
	var r attestRecord
	if err := json.Unmarshal([]byte(mustRead(t, filepath.Join(dir, ".shipit", "build.json"))), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func sbomGenerator(t testing.TB) string {
	t.Helper()
	g := os.Getenv("SHIPIT_TEST_SBOM_GENERATOR")
	if g == "" {
		t.Fatal("no SBOM scanner image (SHIPIT_TEST_SBOM_GENERATOR): run the tests through `make test` (ci/testenv.sh up builds it)")
	}
	return g
}

// statements reads an attestation manifest's in-toto statements, by
// predicate type.
func statements(t testing.TB, img v1.Image) map[string]map[string]any {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatalf("attestation layer %d: %v", i, err)
		}
		pt, _ := st["predicateType"].(string)
		if ann := m.Layers[i].Annotations["in-toto.io/predicate-type"]; ann != pt {
			t.Errorf("layer %d: annotation %q, statement %q", i, ann, pt)
		}
		out[pt] = st
	}
	return out
}

// jpath digs into decoded JSON: each key a map key.
func jpath(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestAttestations: attest: {provenance: true, sbom: true} with the test
// environment's scanner image gives web an index of its manifest and an
// attestation manifest (SLSA v1 provenance, mode max, naming the
// repository without credentials and the commit; an SPDX SBOM listing the
// image's package); the record lists it; release pushes it; worker, whose
// own attest turns both off, stays a single manifest (DESIGN decision 9);
// a record naming an attestation its layout does not hold is refused.
func TestAttestations(t *testing.T) {
	t.Parallel()
	gen := sbomGenerator(t)
	bare := newGitOps(t, overlayYAML)
	dir := t.TempDir()
	repo := uniqueRepo(t)
	cred := randomSecret(t, "token")
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + repo + "\nattest: {provenance: true, sbom: true, sbomGenerator: \"" + gen + "\"}\n" +
			"images:\n  web: {context: web, args: {BASE: \"" + base + "\"}, secrets: [{id: tok, env: E2E_ATTEST_SECRET}]}\n" +
			"  worker: {context: worker, args: {BASE: \"" + base + "\"}, attest: {provenance: false, sbom: false}}\n" +
			"deploy:\n  repo: " + bare + "\n  branch: main\n  overlays: [overlays/prod]\n",
		"web/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY status /var/lib/dpkg/status\nCOPY id /id\n" +
			"RUN --mount=type=secret,id=tok,env=TOK test -n \"$TOK\" && echo ok > /secret-seen\n",
		"web/status":        dpkgStatus,
		"web/id":            randomSecret(t, "id"),
		"worker/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY id /id\n",
		"worker/id":         randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "remote", "add", "origin", "https://ci-bot:"+cred+"@git.example.com/acme/app.git")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "attest")
	sha := git(t, dir, "", "rev-parse", "HEAD")

	secret := randomSecret(t, "secret")
	b := mustShipit(t, dir, []string{"E2E_ATTEST_SECRET=" + secret}, "build", "--progress", "plain")
	rec := readAttestRecord(t, dir)
	recData := mustRead(t, filepath.Join(dir, ".shipit", "build.json"))
	if strings.Contains(recData+b.stdout+b.stderr, cred) || strings.Contains(recData+b.stdout+b.stderr, secret) {
		t.Fatal("the origin remote's credentials or the build secret reached the record or the output")
	}
	var web, worker = rec.Images[0], rec.Images[1]
	if web.Name != "web" || worker.Name != "worker" {
		t.Fatalf("record: %+v", rec)
	}
	if len(worker.Attestations) != 0 {
		t.Errorf("worker turned attest off, and has attestations %+v", worker.Attestations)
	}
	if len(web.Attestations) != 1 || web.Attestations[0].Platform != "linux/amd64" ||
		!slices.Contains(web.Attestations[0].PredicateTypes, predicateSLSA1) || !slices.Contains(web.Attestations[0].PredicateTypes, predicateSPDX) {
		t.Fatalf("web's attestations in the record: %+v", web.Attestations)
	}
	if !slices.Equal(web.Platforms, []string{"linux/amd64"}) {
		t.Errorf("web's platforms %v: the attestation manifest is no platform", web.Platforms)
	}

	// A record naming an attestation manifest the layout does not hold
	// is refused, and nothing is pushed.
	good := recData
	hostile := strings.Replace(recData, web.Attestations[0].Digest, "sha256:"+strings.Repeat("ab", 32), 1)
	writeFiles(t, dir, map[string]string{".shipit/build.json": hostile})
	r := shipitRun(t, dir, nil, "release")
	if r.code != 2 || !strings.Contains(r.stderr, "attestation manifest") || !strings.Contains(r.stderr, "image web") {
		t.Errorf("release of a record with a foreign attestation: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := remote.Head(mustRef(t, repo+"/web:"+readRecord2Tag(t, good))); err == nil {
		t.Error("a refused release pushed web")
	}
	writeFiles(t, dir, map[string]string{".shipit/build.json": good})

	mustShipit(t, dir, nil, "release")
	tag := readRecord2Tag(t, good)

	// worker: one manifest, no index.
	desc, err := remote.Get(mustRef(t, repo+"/worker:"+tag))
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType.IsIndex() || desc.Digest.String() != worker.Digest {
		t.Errorf("worker without attestations is a %s %s, want the single manifest %s", desc.MediaType, desc.Digest, worker.Digest)
	}

	// web: the pushed index holds the platform manifest and its attestation.
	idx, err := remote.Index(mustRef(t, repo+"/web:"+tag))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d.String() != web.Digest {
		t.Fatalf("web:%s is %s, the record says %s", tag, d, web.Digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 || im.Manifests[1].Annotations["vnd.docker.reference.type"] != "attestation-manifest" ||
		im.Manifests[1].Annotations["vnd.docker.reference.digest"] != im.Manifests[0].Digest.String() ||
		im.Manifests[1].Digest.String() != web.Attestations[0].Digest || web.Attestations[0].Subject != im.Manifests[0].Digest.String() {
		t.Fatalf("web's pushed index: %+v\nrecord: %+v", im.Manifests, web.Attestations)
	}
	att, err := idx.Image(im.Manifests[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	sts := statements(t, att)
	checkProvenance(t, sts[predicateSLSA1], sha, base)
	checkSBOM(t, sts[predicateSPDX])
	for _, st := range sts {
		raw, _ := json.Marshal(st)
		if strings.Contains(string(raw), cred) || strings.Contains(string(raw), secret) {
			t.Error("an attestation holds the origin remote's credentials or the build secret")
		}
	}

	// history lists web's release once, by its index digest: attestation
	// manifests are not releases.
	var rows []historyRow
	if err := json.Unmarshal([]byte(mustShipit(t, dir, nil, "history", "-o", "json", "web").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Digest != web.Digest || rows[0].Tag != tag {
		t.Errorf("history of web: %+v", rows)
	}
	var st []statusRow
	if err := json.Unmarshal([]byte(mustShipit(t, dir, nil, "status", "-o", "json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	for _, row := range st {
		if row.PinnedTag != tag || row.Newest != tag {
			t.Errorf("status: %+v, want %s pinned and newest", row, tag)
		}
	}
	if len(st) != 2 {
		t.Errorf("status: %d rows, want web and worker: %+v", len(st), st)
	}

	// A rebuild of the same commit is the same image under new
	// attestations (provenance records when the build ran): release keeps
	// the registry's index and pins it, rather than refusing the tag.
	// --rebuild: the inputs are the same, so build would keep the image.
	mustShipit(t, dir, []string{"E2E_ATTEST_SECRET=" + secret}, "build", "--rebuild", "--progress", "plain")
	if again := readAttestRecord(t, dir); again.Images[0].Digest == web.Digest {
		t.Fatalf("the rebuild made the same index %s: its provenance no longer records when it ran, and this check has nothing to test", web.Digest)
	}
	r = mustShipit(t, dir, nil, "release", "-o", "json")
	if desc, err := remote.Head(mustRef(t, repo+"/web:"+tag)); err != nil || desc.Digest.String() != web.Digest {
		t.Errorf("after releasing a rebuild, web:%s is %v (%v), want the first release's %s", tag, desc, err, web.Digest)
	}
	if !strings.Contains(r.stdout, web.Digest) {
		t.Errorf("the rebuild's release does not pin the registry's %s:\n%s", web.Digest, r.stdout)
	}

	// build --push of the commit again: the new index goes by digest, and
	// the tag keeps the index it holds (moving it would leave the pinned
	// index untagged, for a lifecycle rule to delete); the record names
	// the kept index and its attestations, which release accepts.
	p := mustShipit(t, dir, []string{"E2E_ATTEST_SECRET=" + secret}, "build", "--push", "--rebuild", "--progress", "plain")
	if desc, err := remote.Head(mustRef(t, repo+"/web:"+tag)); err != nil || desc.Digest.String() != web.Digest {
		t.Errorf("after build --push of a rebuild, web:%s is %v (%v), want the first release's %s\n%s", tag, desc, err, web.Digest, p.stderr)
	}
	pushed := readAttestRecord(t, dir)
	if pushed.Images[0].Digest != web.Digest || len(pushed.Images[0].Attestations) != 1 || pushed.Images[0].Attestations[0].Digest != web.Attestations[0].Digest {
		t.Errorf("the record of build --push names %s %+v, want the kept %s %+v", pushed.Images[0].Digest, pushed.Images[0].Attestations, web.Digest, web.Attestations)
	}
	if !strings.Contains(p.stderr, "keeping it") {
		t.Errorf("build --push does not say it kept the tag's index:\n%s", p.stderr)
	}
	mustShipit(t, dir, nil, "release")
}

func readRecord2Tag(t testing.TB, data string) string {
	t.Helper()
	var r struct{ Tag string }
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		t.Fatal(err)
	}
	return r.Tag
}

// checkProvenance: SLSA v1, mode max (the Dockerfile's source and the
// base image as a resolved dependency), naming the repository (without
// credentials) and the commit.
func checkProvenance(t *testing.T, st map[string]any, sha, baseRef string) {
	t.Helper()
	if st == nil {
		t.Fatal("no SLSA v1 provenance statement")
	}
	pred := st["predicate"]
	vcs := jpath(pred, "runDetails", "metadata", "buildkit_metadata", "vcs")
	t.Logf("provenance: runDetails.metadata.buildkit_metadata.vcs = %v; buildDefinition.externalParameters.request.args = %v",
		vcs, jpath(pred, "buildDefinition", "externalParameters", "request", "args"))
	if jpath(vcs, "source") != "https://git.example.com/acme/app.git" || jpath(vcs, "revision") != sha {
		t.Errorf("provenance vcs: %v, want the origin without credentials and %s", vcs, sha)
	}
	deps, _ := jpath(pred, "buildDefinition", "resolvedDependencies").([]any)
	baseRepo := strings.SplitN(baseRef, ":", 3)
	found := false
	for _, d := range deps {
		if u, _ := jpath(d, "uri").(string); strings.Contains(u, "base/busybox") {
			found = true
		}
	}
	if !found {
		t.Errorf("provenance names no base image (%v) among its resolved dependencies: %v", baseRepo, deps)
	}
	// mode=max records the build's sources: the Dockerfile itself.
	infos, _ := jpath(pred, "runDetails", "metadata", "buildkit_metadata", "source", "infos").([]any)
	dockerfile := false
	for _, in := range infos {
		if f, _ := jpath(in, "filename").(string); f == "Dockerfile" {
			dockerfile = true
		}
	}
	if !dockerfile {
		t.Errorf("mode max provenance holds no Dockerfile source: %v", jpath(pred, "runDetails", "metadata", "buildkit_metadata"))
	}
	if jpath(pred, "buildDefinition", "externalParameters", "request", "frontend") != "dockerfile.v0" {
		t.Errorf("provenance request: %v", jpath(pred, "buildDefinition", "externalParameters", "request"))
	}
}

// checkSBOM: an SPDX document that lists the fixture's package.
func checkSBOM(t *testing.T, st map[string]any) {
	t.Helper()
	if st == nil {
		t.Fatal("no SPDX SBOM statement")
	}
	pkgs, _ := jpath(st["predicate"], "packages").([]any)
	for _, p := range pkgs {
		if jpath(p, "name") == fixturePackage && jpath(p, "versionInfo") == fixtureVersion {
			return
		}
	}
	t.Errorf("the SBOM does not list %s %s; its %d packages: %v", fixturePackage, fixtureVersion, len(pkgs), pkgs)
}

// TestMultiNodeAttestations: an image split over two nodes with
// provenance is one index of both platform manifests and both attestation
// manifests, each referring to its platform's manifest, pushed (--push)
// and in the layout (build, then release's checks) alike.
func TestMultiNodeAttestations(t *testing.T) {
	t.Parallel()
	amd, arm, multi := nodesEnv(t)
	dir := t.TempDir()
	repo := uniqueRepo(t)
	writeFiles(t, dir, map[string]string{
		"shipit.yaml": "registry: " + repo + "\nplatforms: [linux/amd64, linux/arm64]\nattest: {provenance: true}\nbuilder:\n  nodes:\n" +
			"    - {name: amd, addr: \"" + amd + "\", platforms: [linux/amd64]}\n" +
			"    - {name: arm, addr: \"" + arm + "\", platforms: [linux/arm64]}\n" +
			"images:\n  web: {context: web, args: {BASE: \"" + multi + "\"}}\n",
		"web/Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY id /id\n",
		"web/id":         randomSecret(t, "id"),
	})
	git(t, dir, "", "init", "-q", "-b", "main")
	git(t, dir, "", "remote", "add", "origin", "https://git.example.com/acme/multi.git")
	git(t, dir, "", "add", "-A")
	git(t, dir, "2026-05-06T08:00:00Z", "commit", "-qm", "multi")
	sha := git(t, dir, "", "rev-parse", "HEAD")

	check := func(mode string, im v1.IndexManifest, rec attestRecord) {
		t.Helper()
		web := rec.Images[0]
		if len(im.Manifests) != 4 {
			t.Fatalf("%s: index of %d manifests, want 2 platforms and 2 attestations: %+v", mode, len(im.Manifests), im.Manifests)
		}
		for i, want := range []string{"linux/amd64", "linux/arm64"} {
			m, a := im.Manifests[i], im.Manifests[i+2]
			if m.Platform == nil || m.Platform.String() != want {
				t.Errorf("%s: manifest %d is %v, want %s", mode, i, m.Platform, want)
			}
			if a.Annotations["vnd.docker.reference.type"] != "attestation-manifest" || a.Annotations["vnd.docker.reference.digest"] != m.Digest.String() {
				t.Errorf("%s: attestation %d %v does not refer to %s's manifest %s", mode, i, a.Annotations, want, m.Digest)
			}
			if len(web.Attestations) != 2 || web.Attestations[i].Subject != m.Digest.String() || web.Attestations[i].Platform != want ||
				web.Attestations[i].Digest != a.Digest.String() || !slices.Equal(web.Attestations[i].PredicateTypes, []string{predicateSLSA1}) {
				t.Errorf("%s: the record's attestations %+v", mode, web.Attestations)
			}
		}
		if !slices.Equal(web.Platforms, []string{"linux/amd64", "linux/arm64"}) {
			t.Errorf("%s: platforms %v", mode, web.Platforms)
		}
	}

	// --push: the parts go by digest, the index gets the tag.
	mustShipit(t, dir, nil, "build", "--push", "--progress", "plain")
	rec := readAttestRecord(t, dir)
	tag := readRecord2Tag(t, mustRead(t, filepath.Join(dir, ".shipit", "build.json")))
	idx, err := remote.Index(mustRef(t, repo+"/web:"+tag))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	check("--push", *im, rec)
	att, err := idx.Image(im.Manifests[3].Digest)
	if err != nil {
		t.Fatal(err)
	}
	prov := statements(t, att)[predicateSLSA1]
	if jpath(prov, "predicate", "runDetails", "metadata", "buildkit_metadata", "vcs", "revision") != sha {
		t.Errorf("the arm64 part's provenance does not name the commit: %v", jpath(prov, "predicate", "runDetails", "metadata"))
	}
	subj, _ := prov["subject"].([]any)
	if len(subj) == 0 || jpath(subj[0], "digest", "sha256") != strings.TrimPrefix(im.Manifests[1].Digest.String(), "sha256:") {
		t.Errorf("the arm64 provenance's subject %v is not the arm64 manifest %s", subj, im.Manifests[1].Digest)
	}

	// Into the layout: the same index, read back from it.
	mustShipit(t, dir, nil, "build", "--progress", "plain")
	rec = readAttestRecord(t, dir)
	lay, err := layoutIndex(filepath.Join(dir, ".shipit", "images", "web"), rec.Images[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	check("layout", lay, rec)
}

// layoutIndex reads the index with digest dgst from an OCI layout.
func layoutIndex(dir, dgst string) (v1.IndexManifest, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.IndexManifest{}, err
	}
	h, err := v1.NewHash(dgst)
	if err != nil {
		return v1.IndexManifest{}, err
	}
	idx, err := top.ImageIndex(h)
	if err != nil {
		return v1.IndexManifest{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.IndexManifest{}, err
	}
	return *im, nil
}
