package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// app writes a committed app of config, with an origin holding
// credentials, and returns its directory.
func app(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{
		"shipit.yaml":              config,
		"web/Dockerfile":           "FROM scratch\n",
		"docker/worker.Dockerfile": "FROM scratch\n",
		"npmrc":                    "token\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"remote", "add", "origin", "https://ci:s3cret@git.example.com/team/app.git"},
		{"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "app"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=2026-11-30T10:00:00Z", "GIT_AUTHOR_DATE=2026-11-30T10:00:00Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func TestDescribeIsShipitsPlan(t *testing.T) {
	t.Setenv("NPM_TOKEN", "x")
	dir := app(t, `registry: 127.0.0.1:5000/team
platforms: [linux/amd64]
images:
  web:
    context: web
    args: {BASE: "busybox", GREETING: "hello world"}
    secrets: [{id: api, env: NPM_TOKEN}]
  worker:
    repository: 127.0.0.1:5000/other/worker
    context: .
    dockerfile: docker/worker.Dockerfile
    target: run
    platforms: [linux/arm64, linux/amd64]
    secrets: [{id: npmrc, src: npmrc}]
`)
	out, err := describe(dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{
		// 2026-11-30T10:00:00Z; the URL without its credentials.
		"stamp\t1796032800\t", // the SHA follows
		"web\t127.0.0.1:5000/team/web\t" + dir + "/web\t" + dir + "/web/Dockerfile\t-\tapi=env=NPM_TOKEN\tBASE=busybox|GREETING=hello world\tlinux/amd64",
		"worker\t127.0.0.1:5000/other/worker\t" + dir + "\t" + dir + "/docker/worker.Dockerfile\trun\tnpmrc=src=" + dir + "/npmrc\t-\tlinux/arm64,linux/amd64",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	if !strings.HasPrefix(lines[0], want[0]) || !strings.HasSuffix(lines[0], "\t2026-11-30T10:00:00Z\thttps://git.example.com/team/app.git") {
		t.Errorf("stamp line %q: want the commit's time and the origin without credentials", lines[0])
	}
	for i := 1; i < len(want); i++ {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Error("the origin's credentials are in the output")
	}
}

func TestDescribeRefusesWhatTheBenchCannotMirror(t *testing.T) {
	for name, tc := range map[string]struct{ config, want string }{
		"ssh":                 {"images:\n  web:\n    context: web\n    ssh: [default]\n", "images.web.ssh"},
		"cache":               {"cache: {export: local}\nimages:\n  web:\n    context: web\n", "cache.export"},
		"attest":              {"attest: {provenance: true}\nimages:\n  web:\n    context: web\n", "attestations"},
		"pipe in an argument": {"images:\n  web:\n    context: web\n    args: {A: \"x|y\"}\n", "images.web"},
		"quote in a target":   {"images:\n  web:\n    context: web\n    target: 'a\"b'\n", "images.web"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := describe(app(t, "registry: 127.0.0.1:5000/team\n"+tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "shipit.yaml") {
				t.Errorf("got %v, want an error naming shipit.yaml and %s", err, tc.want)
			}
		})
	}
}
