// Package gitinfo reads what shipit needs to know about the commit it builds,
// with the git command line.
package gitinfo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shipit-dev/shipit/internal/redact"
)

// Head describes the checked-out commit of a repository.
type Head struct {
	SHA  string    // full commit id
	Time time.Time // committer time, UTC
	// Ancestors are the committer times of up to MaxAncestors first
	// parents, nearest first; none for a root commit or a depth-1 clone.
	Ancestors []time.Time
	Dirty     bool   // tracked or untracked changes outside ignored paths
	Source    string // the origin remote's URL without credentials; empty when there is none
}

// MaxAncestors is how far back Read looks along first parents: far enough
// for a run of commits made within the same second.
const MaxAncestors = 32

// ErrNotRepository is returned when dir is not inside a git work tree.
var ErrNotRepository = errors.New("not a git repository")

// Read reads HEAD of the repository that holds dir. Changes under the
// paths in ignore (relative to dir: shipit's own .shipit directory) do not
// make the tree dirty: they are shipit's output, not its input.
//
// Two git commands run concurrently, and the origin URL is read from the
// repository's config file: each process start costs milliseconds, and
// this is on the way to every build's first solve.
func Read(ctx context.Context, dir string, ignore ...string) (Head, error) {
	var (
		h                   Head
		log, status, origin string
		logErr, statusErr   error
		wg                  sync.WaitGroup
	)
	statusArgs := []string{"status", "--porcelain=v1", "-z", "--untracked-files=normal", "--", ":/"}
	for _, p := range ignore {
		statusArgs = append(statusArgs, ":(exclude)"+filepath.ToSlash(p))
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		// HEAD and its first parents: "<sha> <committer time>" lines.
		log, logErr = git(ctx, dir, "log", "--first-parent", "-n", strconv.Itoa(MaxAncestors+1), "--format=%H %ct")
	}()
	go func() {
		defer wg.Done()
		status, statusErr = git(ctx, dir, statusArgs...)
	}()
	origin = originURL(dir)
	wg.Wait()

	if logErr != nil {
		if strings.Contains(logErr.Error(), "not a git repository") {
			return Head{}, fmt.Errorf("%s: %w (shipit tags images by commit: run it inside a git repository with at least one commit)", dir, ErrNotRepository)
		}
		return Head{}, fmt.Errorf("reading HEAD in %s: %w (does the repository have a commit yet?)", dir, logErr)
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i, l := range lines {
		sha, ct, ok := strings.Cut(l, " ")
		sec, perr := strconv.ParseInt(ct, 10, 64)
		if !ok || perr != nil {
			return Head{}, fmt.Errorf("reading HEAD in %s: unexpected git log line %q", dir, l)
		}
		t := time.Unix(sec, 0).UTC()
		if i == 0 {
			h.SHA, h.Time = sha, t
		} else {
			h.Ancestors = append(h.Ancestors, t)
		}
	}
	if statusErr != nil {
		return Head{}, fmt.Errorf("reading the work tree state in %s: %w", dir, statusErr)
	}
	h.Dirty = strings.TrimSpace(status) != ""
	h.Source = SanitizeURL(strings.TrimSpace(origin))
	return h, nil
}

// SanitizeURL removes credentials from a remote URL, so that a token in
// "https://x-access-token:TOKEN@host/repo" never reaches an image label.
// It fails closed (see redact.URL).
func SanitizeURL(raw string) string { return redact.URL(raw) }

func git(ctx context.Context, dir string, args ...string) (string, error) {
	return Run(ctx, dir, args...)
}

// Origin is the origin remote's URL of the repository that holds dir, as
// configured (credentials included: sanitize before showing it), or ""
// when there is none.
func Origin(dir string) string { return originURL(dir) }

// TopLevel is the root of the work tree that holds dir.
func TopLevel(ctx context.Context, dir string) (string, error) {
	out, err := Run(ctx, dir, "rev-parse", "--show-toplevel")
	return strings.TrimSpace(out), err
}

// Identity is the user.name and user.email git would commit with in dir;
// ok is false when either is unset.
func Identity(ctx context.Context, dir string) (name, email string, ok bool) {
	n, err1 := Run(ctx, dir, "config", "user.name")
	e, err2 := Run(ctx, dir, "config", "user.email")
	name, email = strings.TrimSpace(n), strings.TrimSpace(e)
	return name, email, err1 == nil && err2 == nil && name != "" && email != ""
}

// originURL reads remote.origin.url from the repository's config file
// (following a worktree's .git file to the common directory). It is only
// the source label of an image, so anything unusual (an include, no
// origin) gives "" rather than an error.
func originURL(dir string) string {
	gitDir := ""
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, ".git")
		if st, err := os.Stat(p); err == nil {
			if st.IsDir() {
				gitDir = p
			} else if data, err := os.ReadFile(p); err == nil {
				// A worktree or submodule: "gitdir: <path>".
				gd := strings.TrimSpace(strings.TrimPrefix(string(data), "gitdir:"))
				if !filepath.IsAbs(gd) {
					gd = filepath.Join(d, gd)
				}
				gitDir = gd
				if common, err := os.ReadFile(filepath.Join(gd, "commondir")); err == nil {
					c := strings.TrimSpace(string(common))
					if !filepath.IsAbs(c) {
						c = filepath.Join(gd, c)
					}
					gitDir = c
				}
			}
			break
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
	data, err := os.ReadFile(filepath.Join(gitDir, "config"))
	if err != nil {
		return ""
	}
	inOrigin := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inOrigin = line == `[remote "origin"]`
			continue
		}
		if k, v, ok := strings.Cut(line, "="); inOrigin && ok && strings.EqualFold(strings.TrimSpace(k), "url") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// Tracked lists the files under path (relative to dir) that git tracks in
// the repository holding dir; none outside a repository.
func Tracked(ctx context.Context, dir, path string) ([]string, error) {
	out, err := Run(ctx, dir, "ls-files", "-z", "--", path)
	if err != nil {
		if strings.Contains(err.Error(), "not a git repository") {
			return nil, nil
		}
		return nil, err
	}
	var files []string
	for _, f := range strings.Split(out, "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}
