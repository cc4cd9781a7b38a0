// Package e2e drives the built shipit binary against the real BuildKit
// daemon, registries and git that ci/testenv.sh starts, as a user would.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	shipit   string // the built binary
	registry string // plain-HTTP registry on loopback
	base     string // busybox base image in it
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	registry, base = os.Getenv("SHIPIT_TEST_REGISTRY"), os.Getenv("SHIPIT_TEST_BASE")
	if os.Getenv("BUILDKIT_HOST") == "" || registry == "" || base == "" {
		msg := "e2e: no test environment (BUILDKIT_HOST, SHIPIT_TEST_REGISTRY, SHIPIT_TEST_BASE): run `ci/testenv.sh up && . .testenv/env`, or `make test`"
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, msg)
			return 1
		}
		// go test shows a passing package's output only with -v, but it
		// reads this line and prints "[no tests to run]" beside "ok".
		fmt.Fprintln(os.Stderr, msg+"; the end-to-end tests did NOT run")
		fmt.Println("testing: warning: no tests to run")
		return 0
	}
	dir, err := os.MkdirTemp("", "shipit-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	shipit = filepath.Join(dir, "shipit")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", shipit, "./cmd/shipit")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building shipit: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

var repoSeq atomic.Int64

// uniqueRepo is a registry path no other test uses.
func uniqueRepo(t testing.TB) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return fmt.Sprintf("%s/e2e/%s-%d-%d", registry, name, time.Now().UnixNano()%1e6, repoSeq.Add(1))
}

// result is one run of shipit.
type result struct {
	stdout, stderr string
	code           int
}

// shipitRun runs shipit in dir with extra environment variables.
func shipitRun(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shipit, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running shipit %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// mustShipit runs shipit and fails the test unless it exits 0.
func mustShipit(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	r := shipitRun(t, dir, env, args...)
	if r.code != 0 {
		t.Fatalf("shipit %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// git runs git in dir with a test identity; date, when set, is the
// committer and author date.
func git(t testing.TB, dir, date string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com")
	if date != "" {
		cmd.Env = append(cmd.Env, "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// writeFiles writes files under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// gitMaybe runs git and returns its error instead of failing the test.
func gitMaybe(dir string, args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	return string(out), err
}
