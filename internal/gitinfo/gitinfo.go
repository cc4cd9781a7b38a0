// Package gitinfo reads what shipit needs to know about the commit it builds,
// with the git command line.
package gitinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Head describes the checked-out commit of a repository.
type Head struct {
	Root       string    // the work tree's top directory
	SHA        string    // full commit id
	Time       time.Time // committer time, UTC
	ParentTime time.Time // first parent's committer time; zero for a root commit
	Dirty      bool      // tracked or untracked changes outside ignored paths
	Source     string    // the origin remote's URL without credentials; empty when there is none
}

// ErrNotRepository is returned when dir is not inside a git work tree.
var ErrNotRepository = errors.New("not a git repository")

// Read reads HEAD of the repository that holds dir. Changes under the
// absolute paths in ignore (shipit's own .shipit directory) do not make the
// tree dirty: they are shipit's output, not its input.
func Read(ctx context.Context, dir string, ignore ...string) (Head, error) {
	out, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return Head{}, fmt.Errorf("%s: %w (shipit tags images by commit: run it inside a git repository with at least one commit)", dir, ErrNotRepository)
	}
	h := Head{Root: strings.TrimSpace(out)}

	// HEAD and its first parent in one call: "<sha> <committer time>" lines.
	out, err = git(ctx, dir, "log", "--first-parent", "-n", "2", "--format=%H %ct")
	if err != nil {
		return Head{}, fmt.Errorf("reading HEAD of %s: %w (does the repository have a commit yet?)", h.Root, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, l := range lines {
		sha, ct, ok := strings.Cut(l, " ")
		sec, perr := strconv.ParseInt(ct, 10, 64)
		if !ok || perr != nil {
			return Head{}, fmt.Errorf("reading HEAD of %s: unexpected git log line %q", h.Root, l)
		}
		t := time.Unix(sec, 0).UTC()
		if i == 0 {
			h.SHA, h.Time = sha, t
		} else {
			h.ParentTime = t
		}
	}

	out, err = git(ctx, dir, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
	if err != nil {
		return Head{}, fmt.Errorf("reading the work tree state of %s: %w", h.Root, err)
	}
	var rel []string
	for _, p := range ignore {
		if r, err := filepath.Rel(h.Root, p); err == nil && !strings.HasPrefix(r, "..") {
			rel = append(rel, r)
		}
	}
	h.Dirty = dirty(out, rel)

	if u, err := git(ctx, dir, "config", "--get", "remote.origin.url"); err == nil {
		h.Source = SanitizeURL(strings.TrimSpace(u))
	}
	return h, nil
}

// dirty reports whether porcelain -z output lists a path not under ignore.
func dirty(porcelain string, ignore []string) bool {
	entries := strings.Split(porcelain, "\x00")
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if len(e) < 4 {
			continue
		}
		status, path := e[:2], e[3:]
		if status[0] == 'R' || status[0] == 'C' {
			i++ // the next entry is the rename's source path
		}
		if !ignored(path, ignore) {
			return true
		}
	}
	return false
}

func ignored(path string, ignore []string) bool {
	path = strings.TrimSuffix(filepath.ToSlash(path), "/")
	for _, ig := range ignore {
		ig = strings.TrimSuffix(filepath.ToSlash(ig), "/")
		if ig != "" && (path == ig || strings.HasPrefix(path, ig+"/")) {
			return true
		}
	}
	return false
}

// SanitizeURL removes credentials from a remote URL, so that a token in
// "https://x-access-token:TOKEN@host/repo" never reaches an image label.
// scp-like addresses (git@host:org/repo) are returned as they are.
func SanitizeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		if i := strings.Index(raw, "@"); i >= 0 && strings.Contains(raw[:i], ":") && !strings.Contains(raw, "://") {
			return raw[i+1:] // user:password@host:path without a scheme
		}
		return raw
	}
	u.User = nil
	return u.String()
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return "", err
		}
		return "", errors.New(msg)
	}
	return stdout.String(), nil
}
