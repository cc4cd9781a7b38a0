package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestBuildBadInput(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	file := filepath.Join(a.dir, "shipit.yaml")

	// A missing secret file: exit 2 before anything is built, naming the
	// file, the key and what to do.
	if err := os.Rename(filepath.Join(a.dir, "secrets/file_secret.txt"), filepath.Join(a.dir, "secrets/moved")); err != nil {
		t.Fatal(err)
	}
	r := shipitRun(t, a.dir, a.env(), "build")
	want := file + ":8: images.web.secrets[0].src: secret \"file_secret\": file " + filepath.Join(a.dir, "secrets/file_secret.txt") + " does not exist"
	if r.code != 2 || !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Errorf("missing secret file: exit %d\nstderr: %s\nwant it to contain: %s", r.code, r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(a.dir, ".shipit")); !os.IsNotExist(err) {
		t.Error("a build that failed validation wrote .shipit/")
	}
	if err := os.Rename(filepath.Join(a.dir, "secrets/moved"), filepath.Join(a.dir, "secrets/file_secret.txt")); err != nil {
		t.Fatal(err)
	}

	// A missing secret variable.
	r = shipitRun(t, a.dir, nil, "build")
	if r.code != 2 || !strings.Contains(r.stderr, "images.web.secrets[1].env: secret \"env_secret\": environment variable E2E_ENV_SECRET is not set") {
		t.Errorf("missing secret variable: exit %d: %s", r.code, r.stderr)
	}

	// An unknown key.
	data, _ := os.ReadFile(file)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": strings.Replace(string(data), "    target: runtime", "    targt: runtime", 1)})
	r = shipitRun(t, a.dir, a.env(), "build")
	if r.code != 2 || !strings.Contains(r.stderr, file+":5: images.web.targt: unknown key, did you mean \"target\"?") {
		t.Errorf("unknown key: exit %d: %s", r.code, r.stderr)
	}
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": string(data)})

	// Bad usage.
	for _, args := range [][]string{{"build", "nosuchimage"}, {"build", "--output", "yaml"}, {"build", "--bogus"}, {"build", "--tag", "-bad"}, {"build", "--progress", "tty"}, {"build", "--progress", "fancy"}} {
		if r := shipitRun(t, a.dir, a.env(), args...); r.code != 2 || r.stderr == "" {
			t.Errorf("shipit %v: exit %d, stderr %q; want 2 and a message", args, r.code, r.stderr)
		}
	}
}

func TestBuildUnreachableBuilder(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	for _, addr := range []string{"unix:///nonexistent/buildkitd.sock", "tcp://127.0.0.1:1"} {
		start := time.Now()
		r := shipitRun(t, a.dir, append(a.env(), "BUILDKIT_HOST="+addr), "build")
		took := time.Since(start)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach BuildKit at "+addr) || !strings.Contains(r.stderr, "buildkitd") {
			t.Errorf("%s: exit %d: %s", addr, r.code, r.stderr)
		}
		if took > 10*time.Second {
			t.Errorf("%s: took %v to give up, want under 10s", addr, took)
		}
	}
	// --builder wins over the environment.
	r := shipitRun(t, a.dir, append(a.env(), "BUILDKIT_HOST=unix:///nonexistent/a.sock"), "build", "--builder", "unix:///nonexistent/b.sock")
	if !strings.Contains(r.stderr, "/nonexistent/b.sock") {
		t.Errorf("--builder did not win: %s", r.stderr)
	}
}

func TestBuildFailureShowsDockerfile(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	r := mustShipit(t, a.dir, a.env(), "build", "--progress", "quiet")
	before, _ := os.ReadFile(filepath.Join(a.dir, ".shipit", "build.json"))
	if !strings.Contains(r.stdout, "/web:") {
		t.Fatal(r.stdout)
	}
	writeFiles(t, a.dir, map[string]string{"worker/Dockerfile": "ARG BASE=busybox\nFROM ${BASE}\nCOPY job.sh /job.sh\nRUN echo about to fail && false\nCMD [\"/job.sh\"]\n"})
	git(t, a.dir, "", "commit", "-qam", "break the worker")
	r = shipitRun(t, a.dir, a.env(), "build", "--progress", "plain")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"building worker:", "did not complete successfully", ">>> RUN echo about to fail && false", "Dockerfile:4"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stdout, "/worker:") {
		t.Errorf("stdout claims the failed image: %s", r.stdout)
	}
	after, _ := os.ReadFile(filepath.Join(a.dir, ".shipit", "build.json"))
	if !bytes.Equal(before, after) {
		t.Error("a failed build changed the build record")
	}
}

func TestBuildInterrupt(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	writeFiles(t, a.dir, map[string]string{"worker/Dockerfile": "ARG BASE=busybox\nFROM ${BASE}\nRUN echo sleeping-now && sleep 60\n"})
	git(t, a.dir, "", "commit", "-qam", "slow worker")
	cmd := exec.Command(shipit, "build", "--progress", "plain")
	cmd.Dir = a.dir
	cmd.Env = append(os.Environ(), a.env()...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "sleeping-now") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the build never reached the slow step:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d (%v), want 130\n%s", code, err, stderr.String())
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v to stop after Ctrl-C", took)
	}
	if _, err := os.Stat(filepath.Join(a.dir, ".shipit", "build.json")); !os.IsNotExist(err) {
		t.Error("an interrupted build wrote a record")
	}
}

func TestHelpAndTag(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	r := mustShipit(t, a.dir, nil, "--help")
	for _, c := range []string{"build", "release", "pin", "tag", "version"} {
		if !strings.Contains(r.stdout, "\n  "+c+" ") {
			t.Errorf("--help does not list %s:\n%s", c, r.stdout)
		}
	}
	if r := mustShipit(t, a.dir, nil, "tag"); strings.TrimSpace(r.stdout) != a.tag() {
		t.Errorf("shipit tag = %q, want %s", r.stdout, a.tag())
	}
	r = mustShipit(t, a.dir, []string{"SHIPIT_TAG_PREFIX=pr-{{.PR_NUMBER}}-", "PR_NUMBER=42"}, "tag")
	if strings.TrimSpace(r.stdout) != "pr-42-"+a.tag() {
		t.Errorf("prefixed tag = %q", r.stdout)
	}
	if r := shipitRun(t, a.dir, []string{"SHIPIT_TAG_PREFIX=pr-{{.PR_NUMBER}}-"}, "tag"); r.code != 2 || !strings.Contains(r.stderr, "tag.prefix") {
		t.Errorf("prefix with an unset variable: exit %d: %s", r.code, r.stderr)
	}
	// A commit whose clock is an hour behind its parent's gets no release
	// tag (minutes behind are clock_test.go's).
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho later\n"})
	git(t, a.dir, "", "add", "-A")
	git(t, a.dir, "2026-05-06T06:00:00+02:00", "commit", "-qm", "clock behind")
	r = shipitRun(t, a.dir, nil, "tag")
	if r.code != 2 || !strings.Contains(r.stderr, "before its parent") {
		t.Errorf("skewed clock: exit %d: %s", r.code, r.stderr)
	}
	if r := mustShipit(t, a.dir, nil, "version"); !strings.HasPrefix(r.stdout, "shipit ") {
		t.Errorf("version = %q", r.stdout)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
