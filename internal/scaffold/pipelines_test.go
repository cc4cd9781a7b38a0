package scaffold

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetectCI(t *testing.T) {
	t.Parallel()
	for has, want := range map[string]string{"": CIGitHub, ".github/x": CIGitHub, ".circleci/config.yml": CICircleCI, ".gitlab-ci.yml": CIGitLab} {
		dir := t.TempDir()
		if has != "" {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, has)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, has), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := DetectCI(dir); got != want {
			t.Errorf("with %q: DetectCI = %s, want %s", has, got, want)
		}
	}
}

// read is one file init wrote in dir.
func read(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInitPipelines: each CI's pipeline carries the app's test command,
// its branch, the version and sha256 init was given, and no --wait with
// the Image Updater; a bad --ci is refused before anything is written.
func TestInitPipelines(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("ab", 32)
	for _, ci := range CIs {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n\ngo 1.22\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Init(Options{Dir: dir, Name: "svc", Branch: "trunk", CI: ci, Version: "v1.2.3", ShipitSHA256: sum, ImageUpdater: ci == CIGitLab})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range pipelineFiles[ci] {
			if f.template == "github-preview.yml" {
				continue
			}
			s := read(t, dir, f.path)
			for _, want := range []string{"go test ./...", "SHIPIT_VERSION: v1.2.3", `SHIPIT_SHA256: "` + sum + `"`} {
				if !strings.Contains(s, want) {
					t.Errorf("%s: %s lacks %q", ci, f.path, want)
				}
			}
			if strings.Contains(s, "fill-in-the-sha256") || strings.Contains(s, "only: main") {
				t.Errorf("%s: %s keeps the template's placeholder or branch", ci, f.path)
			}
			if ci == CIGitLab && !strings.Contains(s, `SHIPIT_WAIT: ""`) {
				t.Errorf("gitlab with the Image Updater still waits:\n%s", s)
			}
		}
		for _, f := range res.Findings {
			if strings.Contains(f.What, "placeholder") {
				t.Errorf("%s: init warns of a placeholder it filled: %s", ci, f)
			}
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(Options{Dir: dir, CI: "jenkins"}); err == nil || !strings.Contains(err.Error(), `--ci "jenkins"`) {
		t.Errorf("--ci jenkins: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a refused --ci wrote files: %v", entries)
	}
}

// TestTestCommandMake: a Makefile's test rule is the test command; a
// Makefile that is a link (to a device, say) is not read.
func TestTestCommandMake(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte("build:\n\tcc x.c\ntest: build\n\t./x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := testCommand(data{Options: Options{Dir: dir}, Kind: KindDockerfile}); got != "make test" {
		t.Errorf("testCommand = %q, want make test", got)
	}
	linked := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(linked, "Makefile")); err != nil {
		t.Fatal(err)
	}
	if got := testCommand(data{Options: Options{Dir: linked}, Kind: KindDockerfile}); got != "" {
		t.Errorf("a linked Makefile gives %q", got)
	}
}
