package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// cosignCLI is cosign v2.6.5's CLI (ci/testenv.sh builds it from
// tools/cosign), the oracle for shipit's signatures.
func cosignCLI(t testing.TB) string {
	t.Helper()
	c := os.Getenv("SHIPIT_TEST_COSIGN")
	if c == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SHIPIT_TEST_COSIGN is not set: ci/testenv.sh up builds cosign (tools/cosign) and exports it in .testenv/env")
		}
		t.Skip("SHIPIT_TEST_COSIGN is not set (ci/testenv.sh up builds cosign)")
	}
	return c
}

// emptyTrustedRoot is a Sigstore trusted root with no log, authority or
// timestamp service: given to cosign verify, it keeps cosign from fetching
// the public one from its TUF CDN (a DNS lookup off this machine); a key
// and --insecure-ignore-tlog need nothing more.
const emptyTrustedRoot = `{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`

// cosign runs the cosign CLI offline: its TUF cache is an empty directory
// of the test's, verify gets the empty trusted root, and the transparency
// log is never asked. Output that says cosign tried its TUF CDN fails the
// test: traffic leaves loopback.
func cosign(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if args[0] == "verify" {
		root := filepath.Join(t.TempDir(), "trusted_root.json")
		writeFiles(t, filepath.Dir(root), map[string]string{"trusted_root.json": emptyTrustedRoot})
		args = append([]string{"verify", "--trusted-root", root}, args[1:]...)
	}
	cmd := exec.CommandContext(ctx, cosignCLI(t), args...)
	cmd.Env = append(os.Environ(), append([]string{"TUF_ROOT=" + t.TempDir(), "SIGSTORE_NO_CACHE=true", "HOME=" + t.TempDir()}, env...)...)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "TUF") {
		t.Errorf("cosign %s tried the network (TUF):\n%s", args[0], out)
	}
	return string(out), err
}

// keyPair makes a cosign key pair with the CLI, encrypted with pass.
func keyPair(t testing.TB, pass string) (priv, pub string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(cosignCLI(t), "generate-key-pair")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+pass)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	return filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
}

// cosignVerify checks ref with the cosign CLI and the public key pub.
func cosignVerify(t testing.TB, pub, ref string) error {
	t.Helper()
	start := time.Now()
	out, err := cosign(t, nil, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-insecure-registry", ref)
	if err != nil {
		t.Logf("cosign verify %s (%s): %v\n%s", ref, time.Since(start).Round(time.Millisecond), err, out)
	}
	return err
}

// withSigning makes an app sign with key, verify with pub, build with
// provenance, and its production environment require signatures and
// provenance.
func withSigning(t testing.TB, a *app, key, pub string) {
	t.Helper()
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	cfg = strings.Replace(cfg, "    - name: production\n      overlays: [overlays/prod]\n",
		"    - name: production\n      overlays: [overlays/prod]\n      require: {signature: true, provenance: true}\n", 1)
	cfg = "provenance: max\nsign: {key: " + key + "}\nverify: {keys: [" + pub + "]}\n" + cfg
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "2026-05-06T07:10:00+02:00", "commit", "-qam", "sign")
	a.sha = git(t, a.dir, "", "rev-parse", "HEAD")
}

type releaseJSON struct {
	Tag    string
	Images []struct {
		Name, Repository, Digest, Action, Signature string
	}
}

type verifyJSON struct {
	OK     bool
	Images []struct {
		Image, Repository, Tag, Digest, SignedBy string
		Provenance                               *struct{ Source, Revision string }
		Missing                                  []string
	}
}

// TestSupplyChain: a signed release with provenance passes the cosign CLI
// and shipit verify; a promotion into production (which requires both)
// refuses an unsigned digest and a digest signed by another key, with
// nothing committed, and accepts the signed one; nothing secret anywhere.
func TestSupplyChain(t *testing.T) {
	t.Parallel()
	const pass = "e2e-signing-password-3f9a"
	key, pub := keyPair(t, pass)
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	a := newApp(t)
	withEnvironments(t, a, registry, bare, false)
	withSigning(t, a, key, pub)
	signEnv := []string{"COSIGN_PASSWORD=" + pass}
	var outputs []string

	b := mustShipit(t, a.dir, a.env(), "build", "--progress", "plain")
	r := mustShipit(t, a.dir, signEnv, "release", "-v", "--output", "json", "--progress", "plain")
	outputs = append(outputs, b.stdout, b.stderr, r.stdout, r.stderr)
	var rel releaseJSON
	if err := json.Unmarshal([]byte(r.stdout), &rel); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	for _, im := range rel.Images {
		if im.Signature != "signed" {
			t.Errorf("%s: signature %q, want signed", im.Name, im.Signature)
		}
		if err := cosignVerify(t, pub, im.Repository+"@"+im.Digest); err != nil {
			t.Errorf("cosign verify %s@%s: %v", im.Repository, im.Digest, err)
		}
	}
	// A re-run signs nothing again: the .sig stays as it was.
	sigBefore := headDigest(t, rel.Images[0].Repository+":"+strings.Replace(rel.Images[0].Digest, ":", "-", 1)+".sig")
	r = mustShipit(t, a.dir, signEnv, "release", "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &rel); err != nil || rel.Images[0].Signature != "already signed" {
		t.Errorf("re-run: %v %s", err, r.stdout)
	}
	if after := headDigest(t, rel.Images[0].Repository+":"+strings.Replace(rel.Images[0].Digest, ":", "-", 1)+".sig"); after != sigBefore {
		t.Errorf("a re-run rewrote the signature: %s, was %s", after, sigBefore)
	}

	// The signed release with provenance goes to production; verify says
	// why it passes: the key, the repository and the commit.
	p := mustShipit(t, a.dir, nil, "promote", "production")
	outputs = append(outputs, p.stdout, p.stderr)
	if !strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), rel.Tag) {
		t.Fatalf("production does not pin %s after the promotion:\n%s", rel.Tag, p.stderr)
	}
	v := mustShipit(t, a.dir, nil, "verify", "--env", "production", "--output", "json")
	var vj verifyJSON
	if err := json.Unmarshal([]byte(v.stdout), &vj); err != nil {
		t.Fatalf("%v: %s", err, v.stdout)
	}
	if !vj.OK || len(vj.Images) != 2 {
		t.Fatalf("verify: %s", v.stdout)
	}
	for _, im := range vj.Images {
		if im.SignedBy != pub || im.Provenance == nil || im.Provenance.Revision != a.sha || im.Provenance.Source != "https://git.example.com/acme/app.git" {
			t.Errorf("verify %s: %+v, provenance %+v (want signed by %s, provenance of %s at %s)", im.Image, im, im.Provenance, pub, "https://git.example.com/acme/app.git", a.sha)
		}
	}

	// A new commit released without a signature (another configuration,
	// as a hand-push would be): production refuses it, nothing committed.
	writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho unsigned\n"})
	git(t, a.dir, "2026-05-06T08:00:00Z", "commit", "-qam", "unsigned")
	unsigned := strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "sign: {key: "+key+"}\n", "", 1)
	writeFiles(t, a.dir, map[string]string{"unsigned.yaml": unsigned, ".git/info/exclude": "unsigned.yaml\n"})
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	r = mustShipit(t, a.dir, nil, "release", "--config", filepath.Join(a.dir, "unsigned.yaml"), "--output", "json")
	var rel2 releaseJSON
	if err := json.Unmarshal([]byte(r.stdout), &rel2); err != nil {
		t.Fatal(err)
	}
	web := rel2.Images[0]
	head := commits(t, bare)[0]
	refused := func(what string) {
		t.Helper()
		p := shipitRun(t, a.dir, nil, "promote", "production")
		outputs = append(outputs, p.stdout, p.stderr)
		if p.code != 1 || !strings.Contains(p.stderr, "web") || !strings.Contains(p.stderr, web.Digest) || !strings.Contains(p.stderr, what) {
			t.Errorf("promote of a digest with %s: exit %d, want 1 naming web, %s and %q:\n%s", what, p.code, web.Digest, what, p.stderr)
		}
		if commits(t, bare)[0] != head {
			t.Errorf("a refused promotion committed")
		}
	}
	refused("no signature")
	// release --env production checks the same before it pins.
	prodBefore := showFile(t, bare, "overlays/prod/kustomization.yaml")
	if r := shipitRun(t, a.dir, nil, "release", "--config", filepath.Join(a.dir, "unsigned.yaml"), "--env", "production"); r.code != 1 || !strings.Contains(r.stderr, web.Digest) || !strings.Contains(r.stderr, "no signature") {
		t.Errorf("release --env production of an unsigned build: exit %d, want 1 naming %s:\n%s", r.code, web.Digest, r.stderr)
	}
	if showFile(t, bare, "overlays/prod/kustomization.yaml") != prodBefore || commits(t, bare)[0] != head {
		t.Error("a refused release pinned production")
	}
	if err := cosignVerify(t, pub, web.Repository+"@"+web.Digest); err == nil {
		t.Error("cosign verify passes an unsigned digest: the oracle checks nothing")
	}

	// Signed by another key: still refused.
	otherKey, _ := keyPair(t, "other-pass")
	if out, err := cosign(t, []string{"COSIGN_PASSWORD=other-pass"}, "sign", "--key", otherKey, "--tlog-upload=false", "--allow-insecure-registry", "--yes", web.Repository+"@"+web.Digest); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	refused("none verifies")
	// verify says the same of what staging pins: exit 1, each digest named.
	v = shipitRun(t, a.dir, nil, "verify", "--env", "staging")
	if v.code != 1 || !strings.Contains(v.stdout, "FAILED web "+web.Repository) || !strings.Contains(v.stdout, "none verifies") || !strings.Contains(v.stdout, "FAILED worker") || !strings.Contains(v.stdout, "no signature") {
		t.Errorf("verify --env staging: exit %d, want 1 and both images FAILED:\n%s%s", v.code, v.stdout, v.stderr)
	}

	// Released again with the key: signed, and production takes it.
	r = mustShipit(t, a.dir, signEnv, "release", "--output", "json")
	outputs = append(outputs, r.stdout, r.stderr)
	mustShipit(t, a.dir, nil, "promote", "production")
	if !strings.Contains(showFile(t, bare, "overlays/prod/kustomization.yaml"), web.Digest) {
		t.Error("production does not pin the signed digest")
	}
	if err := cosignVerify(t, pub, web.Repository+"@"+web.Digest); err != nil {
		t.Errorf("cosign verify after signing: %v", err)
	}

	// Nothing secret anywhere: outputs, record, registry.
	keyPEM := mustRead(t, key)
	body := strings.Split(keyPEM, "\n")[2]
	_, rec := readRecord(t, a.dir)
	outputs = append(outputs, string(rec))
	for _, o := range outputs {
		if strings.Contains(o, pass) || strings.Contains(o, body) {
			t.Errorf("the key's password or its content is in an output:\n%s", o)
		}
	}
	for _, im := range rel.Images {
		if where := registryHolds(t, im.Repository, pass, body); where != "" {
			t.Errorf("the key's password or content is in the registry: %s", where)
		}
	}
}

// TestSigningKeyRefused: a wrong password, a missing key: exit 2 naming
// the key before anything is pushed, the password nowhere.
func TestSigningKeyRefused(t *testing.T) {
	t.Parallel()
	key, pub := keyPair(t, "the-right-one")
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	a := newApp(t)
	withEnvironments(t, a, registry, bare, false)
	withSigning(t, a, key, pub)
	const wrong = "wrong-password-77c1"
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	for _, args := range [][]string{{"release", "-v"}, {"build", "--push", "-v"}} {
		r := shipitRun(t, a.dir, append(a.env(), "COSIGN_PASSWORD="+wrong), args...)
		if r.code != 2 || !strings.Contains(r.stderr, key) || !strings.Contains(r.stderr, "COSIGN_PASSWORD") {
			t.Errorf("%v with a wrong password: exit %d, want 2 naming %s:\n%s", args, r.code, key, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, wrong) || strings.Contains(r.stdout+r.stderr, "the-right-one") {
			t.Errorf("%v: the password is in the output", args)
		}
	}
	for _, img := range []string{"web", "worker"} {
		if got := headStatus(t, a.repo+"/"+img+":"+a.tagNow(t)); got != 404 {
			t.Errorf("%s was pushed (HEAD %d) though the key could not be used", img, got)
		}
	}
	// With the right password, build --push signs what BuildKit pushed.
	r := mustShipit(t, a.dir, append(a.env(), "COSIGN_PASSWORD=the-right-one"), "build", "--push", "--progress", "quiet")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		repoTag, digest, _ := strings.Cut(line, "@")
		repo := repoTag[:strings.LastIndex(repoTag, ":")]
		if err := cosignVerify(t, pub, repo+"@"+digest); err != nil {
			t.Errorf("build --push: cosign verify %s: %v", line, err)
		}
	}
	os.Remove(key)
	if r := shipitRun(t, a.dir, []string{"COSIGN_PASSWORD=the-right-one"}, "release"); r.code != 2 || !strings.Contains(r.stderr, key) {
		t.Errorf("release with a missing key: exit %d:\n%s", r.code, r.stderr)
	}
}

// TestSignaturesThroughPinAndPrune: in Image Updater mode, the rollback
// tag pin makes is on the signed digest, so cosign and shipit verify pass
// on it; prune deletes the .sig of what it deletes and keeps the others'.
func TestSignaturesThroughPinAndPrune(t *testing.T) {
	t.Parallel()
	const pass = "pin-and-prune"
	key, pub := keyPair(t, pass)
	bare := newGitOps(t, overlayYAML)
	a := newApp(t)
	withDeploy(t, a, registry, bare)
	cfg := "sign: {key: " + key + "}\nverify: {keys: [" + pub + "]}\n" + mustRead(t, filepath.Join(a.dir, "shipit.yaml")) + "  mode: image-updater\n"
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	env := []string{"COSIGN_PASSWORD=" + pass}
	var tags []string
	for i, msg := range []string{"A", "B", "C"} {
		writeFiles(t, a.dir, map[string]string{"web/app.sh": "#!/bin/sh\necho " + msg + "\n"})
		tags = append(tags, commitAt(t, a, "2026-05-06T06:0"+string(rune('0'+i))+":00Z", msg))
		mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
		mustShipit(t, a.dir, env, "release")
	}
	r := mustShipit(t, a.dir, nil, "pin", tags[0], "--output", "json")
	var pin struct{ RollbackTag string }
	if err := json.Unmarshal([]byte(r.stdout), &pin); err != nil || pin.RollbackTag == "" {
		t.Fatalf("pin: %v %s", err, r.stdout)
	}
	for _, img := range []string{"web", "worker"} {
		ref := a.repo + "/" + img + ":" + pin.RollbackTag
		if err := cosignVerify(t, pub, ref); err != nil {
			t.Errorf("cosign verify on the rollback tag %s: %v", ref, err)
		}
		if v := shipitRun(t, a.dir, nil, "verify", img+":"+pin.RollbackTag); v.code != 0 || !strings.Contains(v.stdout, "ok "+img) {
			t.Errorf("shipit verify %s:%s: exit %d\n%s%s", img, pin.RollbackTag, v.code, v.stdout, v.stderr)
		}
	}
	// history and status list release tags only, never a .sig.
	for _, args := range [][]string{{"history", "--limit", "0"}, {"status", "--cluster=false"}} {
		if out := mustShipit(t, a.dir, nil, args...).stdout; strings.Contains(out, ".sig") || strings.Contains(out, "sha256-") {
			t.Errorf("%v lists a signature tag:\n%s", args, out)
		}
	}

	// Prune keeps the newest tag (the rollback, on A's digest, with A's
	// tag sharing it) and deletes B and C, with their signatures.
	r = mustShipit(t, a.dir, nil, "prune", "--keep", "1", "--min-age", "0s", "--keep-history", "1", "--output", "json")
	var res struct {
		Images []struct {
			Image   string
			Deleted []struct{ Tag, Digest, Of string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	for _, im := range res.Images {
		deleted := map[string]string{}
		for _, d := range im.Deleted {
			deleted[d.Tag] = d.Digest
		}
		repo := a.repo + "/" + im.Image
		for _, tg := range tags[1:] {
			d, ok := deleted[tg]
			if !ok {
				t.Errorf("%s: prune did not delete %s: %s", im.Image, tg, r.stdout)
				continue
			}
			if got := headStatus(t, repo+":"+strings.Replace(d, ":", "-", 1)+".sig"); got != 404 {
				t.Errorf("%s: the signature of the deleted %s answers %d", im.Image, tg, got)
			}
		}
		if err := cosignVerify(t, pub, repo+":"+pin.RollbackTag); err != nil {
			t.Errorf("%s: the kept rollback tag no longer verifies after prune: %v", im.Image, err)
		}
	}
}

// headDigest is the digest ref points at.
func headDigest(t testing.TB, ref string) string {
	t.Helper()
	desc, err := remote.Head(mustRef(t, ref))
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

// registryHolds searches every manifest and blob under every tag of repo
// (index children included) for the strings; it returns where one is.
func registryHolds(t testing.TB, repo string, secrets ...string) string {
	t.Helper()
	rp, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(rp)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var search func(ref name.Reference) string
	search = func(ref name.Reference) string {
		desc, err := remote.Get(ref)
		if err != nil {
			t.Fatalf("GET %s: %v", ref, err)
		}
		if seen[desc.Digest.String()] {
			return ""
		}
		seen[desc.Digest.String()] = true
		if w := holds(desc.Manifest, secrets); w != "" {
			return ref.String() + " (manifest)"
		}
		if desc.MediaType.IsIndex() {
			var idx v1.IndexManifest
			_ = json.Unmarshal(desc.Manifest, &idx)
			for _, m := range idx.Manifests {
				if w := search(rp.Digest(m.Digest.String())); w != "" {
					return w
				}
			}
			return ""
		}
		var m v1.Manifest
		_ = json.Unmarshal(desc.Manifest, &m)
		for _, l := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			layer, err := remote.Layer(rp.Digest(l.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			rc, err := layer.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
				if plain, err := io.ReadAll(zr); err == nil {
					data = plain
				}
			}
			if holds(data, secrets) != "" {
				return ref.String() + " blob " + l.Digest.String()
			}
		}
		return ""
	}
	for _, tg := range tags {
		if w := search(rp.Tag(tg)); w != "" {
			return w
		}
	}
	return ""
}

func holds(data []byte, secrets []string) string {
	for _, s := range secrets {
		if bytes.Contains(data, []byte(s)) {
			return s
		}
	}
	return ""
}

// TestPreviewSigned: preview up signs what it pushes. A pull request's
// build (tag prefix pr-8-), pushed by preview up, passes cosign verify,
// digest by digest.
func TestPreviewSigned(t *testing.T) {
	t.Parallel()
	priv, pub := keyPair(t, "preview pass")
	bare := newGitOpsOverlays(t, map[string]string{"prod": overlayYAML, "staging": overlayYAML})
	a := newApp(t)
	withEnvironments(t, a, registry, bare, false)
	withPreviews(t, a, bare, "")
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": "sign: {key: " + priv + "}\n" + cfg})
	git(t, a.dir, "2026-05-06T07:09:50+02:00", "commit", "-qam", "sign")
	env := []string{"SHIPIT_TAG_PREFIX=pr-8-", a.env()[0], "COSIGN_PASSWORD=preview pass"}
	mustShipit(t, a.dir, env, "build", "--progress", "quiet")
	rec, _ := readRecord(t, a.dir)
	for _, im := range rec.Images {
		if err := cosignVerify(t, pub, im.Repository+"@"+im.Digest); err == nil {
			t.Fatalf("%s@%s verifies before preview up pushed it", im.Repository, im.Digest)
		}
	}
	mustShipit(t, a.dir, env, "preview", "up", "pr-8")
	for _, im := range rec.Images {
		if err := cosignVerify(t, pub, im.Repository+"@"+im.Digest); err != nil {
			t.Errorf("cosign verify of %s@%s, pushed by preview up: %v", im.Repository, im.Digest, err)
		}
	}
}
