package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// tlsFiles makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, and writes them as PEM files in dir.
func tlsFiles(t testing.TB, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shipit-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		return writePEM(name+".pem", "CERTIFICATE", der), writePEM(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	ca = writePEM("ca.pem", "CERTIFICATE", caDER)
	serverCert, serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDaemon starts a buildkitd of its own with an empty state directory:
// a cold daemon, as on a fresh CI runner.
func startDaemon(t testing.TB, extra ...string) *exec.Cmd {
	t.Helper()
	bin := os.Getenv("SHIPIT_TEST_BUILDKITD")
	if bin == "" {
		t.Fatal("SHIPIT_TEST_BUILDKITD is not set: run the tests through `make test`")
	}
	root, err := os.MkdirTemp("", "shipit-cold-buildkitd")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--root", root, "--oci-worker=true", "--containerd-worker=false"}, extra...)
	if c := os.Getenv("SHIPIT_TEST_BUILDKITD_CONFIG"); c != "" {
		args = append(args, "--config", c)
	}
	cmd := exec.Command(bin, args...)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "buildkitd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = exec.Command("sh", "-c", "grep -o ' "+root+"[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l").Run()
		_ = os.RemoveAll(root)
	})
	return cmd
}

// TestColdTLSDaemonSameDigest builds the same commit on the shared warm
// daemon and on a cold daemon reached over tcp:// with mutual TLS: the
// digests must be equal (DESIGN decision 2).
func TestColdTLSDaemonSameDigest(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	warm, _ := readRecord(t, a.dir)

	certs := t.TempDir()
	ca, sc, sk, cc, ck := tlsFiles(t, certs)
	port := freePort(t)
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	startDaemon(t, "--addr", addr, "--tlscacert", ca, "--tlscert", sc, "--tlskey", sk)

	// Without client certificates the daemon refuses shipit.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the cold daemon did not start listening")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := shipitRun(t, a.dir, append(a.env(), "BUILDKIT_HOST="+addr), "build", "--progress", "quiet")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach BuildKit at "+addr) {
		t.Errorf("a TLS daemon without certificates: exit %d: %s", r.code, r.stderr)
	}

	env := append(a.env(), "BUILDKIT_HOST="+addr,
		"SHIPIT_BUILDER_TLS_CA="+ca, "SHIPIT_BUILDER_TLS_CERT="+cc, "SHIPIT_BUILDER_TLS_KEY="+ck, "SHIPIT_BUILDER_TLS_SERVER_NAME=127.0.0.1")
	mustShipit(t, a.dir, env, "build", "--progress", "quiet")
	cold, _ := readRecord(t, a.dir)
	for i, im := range warm.Images {
		if cold.Images[i].Digest != im.Digest {
			t.Errorf("%s: cold daemon %s, warm daemon %s: the same commit must give the same digest", im.Name, cold.Images[i].Digest, im.Digest)
		}
	}
}

// TestPushWithCredentials pushes to a registry that answers 401 without
// credentials, as ECR does, with credentials from the Docker config.
func TestPushWithCredentials(t *testing.T) {
	t.Parallel()
	reg := os.Getenv("SHIPIT_TEST_AUTH_REGISTRY")
	pwFile := os.Getenv("SHIPIT_TEST_AUTH_PASSWORD_FILE")
	if reg == "" || pwFile == "" {
		t.Fatal("SHIPIT_TEST_AUTH_REGISTRY is not set: run the tests through `make test`")
	}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))
	a := newApp(t)
	repo := reg + "/e2e/" + strings.ToLower(t.Name())
	env := append(a.env(), "SHIPIT_REGISTRY="+repo, "DOCKER_CONFIG="+t.TempDir())

	r := shipitRun(t, a.dir, env, "build", "worker", "--push", "--progress", "plain")
	if r.code != 1 || !strings.Contains(r.stderr, "building worker") {
		t.Errorf("push without credentials: exit %d: %s", r.code, r.stderr)
	}

	dockerConfig := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(os.Getenv("SHIPIT_TEST_AUTH_USER") + ":" + password))
	writeFiles(t, dockerConfig, map[string]string{"config.json": `{"auths": {"` + reg + `": {"auth": "` + auth + `"}}}`})
	env = append(a.env(), "SHIPIT_REGISTRY="+repo, "DOCKER_CONFIG="+dockerConfig)
	r = mustShipit(t, a.dir, env, "build", "--push", "--progress", "plain")
	if !strings.Contains(r.stdout, repo+"/web:"+a.tag()+"@sha256:") {
		t.Errorf("stdout: %s", r.stdout)
	}
	rec, raw := readRecord(t, a.dir)
	if len(rec.Images) != 2 || !rec.Images[0].Pushed || rec.Images[0].Size == 0 {
		t.Errorf("record: %s", raw)
	}
	for _, out := range []string{r.stdout, r.stderr, string(raw)} {
		if strings.Contains(out, password) || strings.Contains(out, auth) {
			t.Error("the registry password reached shipit's output or record")
		}
	}
}

// TestSSHForwarding forwards a real ssh-agent into a RUN step.
func TestSSHForwarding(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ssh-agent"); err != nil {
		t.Fatal("ssh-agent is not installed (Debian package openssh-client)")
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := newApp(t)
	writeFiles(t, a.dir, map[string]string{
		"worker/Dockerfile": "ARG BASE=busybox\nFROM ${BASE}\nRUN --mount=type=ssh,required=true test -S \"$SSH_AUTH_SOCK\" && echo forwarded > /ssh-ok\n",
		"shipit.yaml":       strings.Replace(mustRead(t, filepath.Join(a.dir, "shipit.yaml")), "  worker:\n    context: worker\n", "  worker:\n    context: worker\n    ssh: [default]\n", 1),
	})
	git(t, a.dir, "", "commit", "-qam", "ssh")
	r := shipitRun(t, a.dir, append(a.env(), "SSH_AUTH_SOCK="), "build", "worker")
	if r.code != 2 || !strings.Contains(r.stderr, "images.worker.ssh[0]") || !strings.Contains(r.stderr, "SSH_AUTH_SOCK") {
		t.Errorf("ssh without an agent: exit %d: %s", r.code, r.stderr)
	}
	// A key in the agent: its private and public parts must appear in no
	// layer, config, record or output of a pushed build.
	keyDir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(keyDir, "id")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	add := exec.Command("ssh-add", filepath.Join(keyDir, "id"))
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	r = mustShipit(t, a.dir, append(a.env(), "SSH_AUTH_SOCK="+sock), "build", "--push", "--progress", "plain")
	priv := mustRead(t, filepath.Join(keyDir, "id"))
	pub := strings.Fields(mustRead(t, filepath.Join(keyDir, "id.pub")))[1]
	var body []string
	for _, l := range strings.Split(priv, "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") {
			body = append(body, l)
		}
	}
	parsed, rec := readRecord(t, a.dir)
	haystack := r.stdout + r.stderr + string(rec)
	for _, name := range []string{"web", "worker"} {
		img, err := remote.Image(mustRef(t, a.repo+"/"+name+":"+parsed.Tag))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := img.RawConfigFile()
		haystack += string(raw)
		for _, l := range layersOf(t, img) {
			haystack += string(l)
		}
	}
	for _, secret := range append(body, pub, a.fileSecret, a.envSecret) {
		if strings.Contains(haystack, secret) {
			t.Errorf("secret material %.12s… reached an image, the record or the output", secret)
		}
	}
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
