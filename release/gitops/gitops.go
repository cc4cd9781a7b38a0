// Package gitops clones a GitOps repository, commits a change to it and
// pushes it, with the user's own git and credentials. A rejected push is
// retried on the new head; nothing is ever force-pushed.
package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/shipit-dev/shipit/internal/gitinfo"
)

// ErrRejected is a push the remote refused because the branch moved.
var ErrRejected = errors.New("the remote branch moved")

// Repo is a shallow clone of one branch.
type Repo struct {
	Dir    string
	URL    string // the remote, without credentials: for messages
	Branch string
}

// Clone clones branch of url into dir, shallow.
func Clone(ctx context.Context, url, branch, dir string) (*Repo, error) {
	src := url
	if strings.HasPrefix(url, "/") {
		src = "file://" + url // --depth is honoured only for file:// URLs
	}
	shown := gitinfo.SanitizeURL(url)
	_, err := run(ctx, "", "clone", "--quiet", "--depth", "1", "--single-branch", "--branch", branch, "--no-tags", src, dir)
	if err != nil {
		if strings.Contains(err.Error(), "Remote branch") && strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("cloning %s: branch %s does not exist there (check deploy.branch)", shown, branch)
		}
		return nil, fmt.Errorf("cloning %s (deploy.repo): %w", shown, err)
	}
	return &Repo{Dir: dir, URL: shown, Branch: branch}, nil
}

// Head returns the checked-out commit.
func (r *Repo) Head(ctx context.Context) (string, error) {
	out, err := run(ctx, r.Dir, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}

// Author is who a commit is by.
type Author struct{ Name, Email string }

// Commit commits the given paths (relative to Dir) with a message.
func (r *Repo) Commit(ctx context.Context, paths []string, msg string, a Author) (string, error) {
	if _, err := run(ctx, r.Dir, append([]string{"add", "--"}, paths...)...); err != nil {
		return "", err
	}
	args := []string{"-c", "user.name=" + a.Name, "-c", "user.email=" + a.Email, "commit", "--quiet", "--no-verify", "-F", "-"}
	if _, err := runIn(ctx, r.Dir, strings.NewReader(msg), args...); err != nil {
		return "", fmt.Errorf("committing in %s: %w", r.URL, err)
	}
	return r.Head(ctx)
}

// Push pushes HEAD to the branch, never forcing. A refusal because the
// branch moved is ErrRejected.
func (r *Repo) Push(ctx context.Context) error {
	_, err := run(ctx, r.Dir, "push", "--quiet", "--porcelain", "origin", "HEAD:refs/heads/"+r.Branch)
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range []string{"[rejected]", "non-fast-forward", "fetch first", "failed to update ref", "cannot lock ref", "incorrect old value"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("pushing to %s %s: %w", r.URL, r.Branch, ErrRejected)
		}
	}
	return fmt.Errorf("pushing to %s %s: %w", r.URL, r.Branch, err)
}

// Reset moves the clone to the remote branch's current head, dropping the
// local commit.
func (r *Repo) Reset(ctx context.Context) error {
	if _, err := run(ctx, r.Dir, "fetch", "--quiet", "--depth", "1", "origin", "refs/heads/"+r.Branch); err != nil {
		return fmt.Errorf("fetching %s %s: %w", r.URL, r.Branch, err)
	}
	_, err := run(ctx, r.Dir, "reset", "--quiet", "--hard", "FETCH_HEAD")
	return err
}

// Publish applies a change, commits and pushes it; when the push is
// rejected because the branch moved, it resets to the new head, applies
// the change again (apply sees the new files) and retries, at most
// attempts times, waiting a jittered, growing delay in between. apply
// returns the paths it changed and the commit message; no paths means
// nothing to commit, and Publish returns "".
func (r *Repo) Publish(ctx context.Context, attempts int, a Author, apply func(ctx context.Context) ([]string, string, error)) (string, error) {
	delay := 100 * time.Millisecond
	for i := 1; ; i++ {
		paths, msg, err := apply(ctx)
		if err != nil || len(paths) == 0 {
			return "", err
		}
		sha, err := r.Commit(ctx, paths, msg, a)
		if err != nil {
			return "", err
		}
		err = r.Push(ctx)
		if err == nil {
			return sha, nil
		}
		if !errors.Is(err, ErrRejected) || i >= attempts {
			if errors.Is(err, ErrRejected) {
				err = fmt.Errorf("%w; gave up after %d attempts", err, attempts)
			}
			return "", err
		}
		// Jitter spreads out pipelines that collided.
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay))) //nolint:gosec // jitter, not a secret
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		delay = min(delay*2, 1600*time.Millisecond)
		if err := r.Reset(ctx); err != nil {
			return "", err
		}
	}
}

func run(ctx context.Context, dir string, args ...string) (string, error) {
	return runIn(ctx, dir, nil, args...)
}

func runIn(ctx context.Context, dir string, stdin *strings.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	// Never prompt: a missing credential is an error, not a hung pipeline.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=")
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		if msg == "" {
			return "", err
		}
		return "", errors.New(redact(msg))
	}
	return stdout.String(), nil
}

// redact removes credentials from URLs in git's messages.
func redact(s string) string {
	for _, f := range strings.Fields(s) {
		if u := strings.Trim(f, "'\""); strings.Contains(u, "@") {
			if r := gitinfo.SanitizeURL(u); r != u {
				s = strings.ReplaceAll(s, u, r)
			}
		}
	}
	return s
}

// Diff shows the uncommitted change in the clone.
func (r *Repo) Diff(ctx context.Context) (string, error) {
	return run(ctx, r.Dir, "-c", "color.ui=never", "diff", "--no-ext-diff")
}
