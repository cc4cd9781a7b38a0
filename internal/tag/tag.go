// Package tag makes, parses and orders shipit's release tags.
//
// A release tag is PREFIX + YYYYMMDD-HHMMSS-<sha7>, the time being the
// commit's committer time in UTC. Tags of one prefix sort byte-wise in
// commit order, which is what Argo CD Image Updater's "alphabetical"
// strategy, Flux's "alphabetical" policy and Kargo's "Lexical" selection use.
package tag

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Layout is the time layout of a release tag.
const Layout = "20060102-150405"

// DirtySuffix marks a tag built from a work tree with uncommitted changes.
const DirtySuffix = "-dirty"

// MaxLen is the longest tag an OCI registry accepts.
const MaxLen = 128

var (
	// ociTag is the grammar of a tag in the OCI distribution spec.
	ociTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	// release matches PREFIX YYYYMMDD-HHMMSS-sha7 [-dirty].
	release = regexp.MustCompile(`^(.*?)(\d{8}-\d{6})-([0-9a-f]{7})(-dirty)?$`)
	// prefixChars is what a prefix may hold: tag characters, not starting with . or -.
	prefixChars = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
)

// ErrClockSkew is returned by New when a commit is older than its first parent.
var ErrClockSkew = errors.New("commit time is earlier than its first parent's")

// Commit is what a tag is made from.
type Commit struct {
	SHA  string    // full hex commit id
	Time time.Time // committer time
	// Ancestors are the committer times of the first-parent chain before
	// the commit, nearest first (as far as the clone has history).
	Ancestors []time.Time
	Dirty     bool // the work tree has uncommitted changes
}

// ReleaseTime is the time in a commit's tag: its committer time, except
// that a commit made in the same second as its parent (or, after a clock
// was behind, earlier than an ancestor) gets one second more than the
// parent's release time. So along first-parent history release times
// strictly increase and tags sort in commit order, however fast commits
// come. Rebuilding a commit gives the same time.
func ReleaseTime(c Commit) time.Time {
	if len(c.Ancestors) == 0 {
		return c.Time.UTC().Truncate(time.Second)
	}
	t := c.Ancestors[len(c.Ancestors)-1].UTC().Truncate(time.Second)
	for i := len(c.Ancestors) - 2; i >= 0; i-- {
		t = later(c.Ancestors[i], t)
	}
	return later(c.Time, t)
}

// later is at, or prev plus a second when at is not after prev.
func later(at, prev time.Time) time.Time {
	at = at.UTC().Truncate(time.Second)
	if next := prev.Add(time.Second); at.Before(next) {
		return next
	}
	return at
}

// Tag is a parsed release tag.
type Tag struct {
	Prefix string
	Time   time.Time // UTC, second precision
	SHA7   string
	Dirty  bool
}

// String renders the tag.
func (t Tag) String() string {
	s := t.Prefix + t.Time.UTC().Format(Layout) + "-" + t.SHA7
	if t.Dirty {
		s += DirtySuffix
	}
	return s
}

// New makes the release tag for a commit. It refuses a commit whose
// committer time is earlier than its first parent's: such a tag would sort
// before the parent's and an updater would never pick it.
func New(prefix string, c Commit) (Tag, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return Tag{}, err
	}
	if len(c.SHA) < 7 {
		return Tag{}, fmt.Errorf("commit id %q is too short", c.SHA)
	}
	if len(c.Ancestors) > 0 && c.Time.Truncate(time.Second).Before(c.Ancestors[0].Truncate(time.Second)) {
		return Tag{}, fmt.Errorf("%w: commit %s was made at %s but its parent at %s; a tag from it would not say when it was made (fix the committer clock and amend the commit with `git commit --amend --no-edit --date=now`, or pass --tag)",
			ErrClockSkew, c.SHA[:7], c.Time.UTC().Format(time.RFC3339), c.Ancestors[0].UTC().Format(time.RFC3339))
	}
	t := Tag{Prefix: prefix, Time: ReleaseTime(c), SHA7: strings.ToLower(c.SHA[:7]), Dirty: c.Dirty}
	if n := len(t.String()); n > MaxLen {
		return Tag{}, fmt.Errorf("tag %q is %d characters long; registries accept at most %d (shorten tag.prefix)", t.String(), n, MaxLen)
	}
	return t, nil
}

// ValidatePrefix checks that a prefix can start an OCI tag.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !prefixChars.MatchString(prefix) {
		return fmt.Errorf("tag prefix %q may hold only letters, digits, '_', '.' and '-', and must not start with '.' or '-'", prefix)
	}
	return nil
}

// Parse parses a release tag with any prefix.
func Parse(s string) (Tag, error) {
	if err := Validate(s); err != nil {
		return Tag{}, err
	}
	m := release.FindStringSubmatch(s)
	if m == nil {
		return Tag{}, fmt.Errorf("tag %q is not a release tag: expected [PREFIX]YYYYMMDD-HHMMSS-<7 hex digits of the commit>", s)
	}
	ts, err := time.Parse(Layout, m[2])
	if err != nil {
		return Tag{}, fmt.Errorf("tag %q is not a release tag: %q is not a valid date and time", s, m[2])
	}
	return Tag{Prefix: m[1], Time: ts, SHA7: m[3], Dirty: m[4] != ""}, nil
}

// Validate checks that s is a valid OCI tag.
func Validate(s string) error {
	if !ociTag.MatchString(s) {
		return fmt.Errorf("%q is not a valid image tag: a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", s)
	}
	return nil
}

// Less reports whether tag a sorts before tag b, the order in which
// alphabetical updaters pick tags: byte-wise.
func Less(a, b string) bool { return a < b }

// Pattern returns an anchored regular expression that matches the release
// tags of a prefix (and not dirty ones), for an updater's allow-tags.
func Pattern(prefix string) string {
	return "^" + regexp.QuoteMeta(prefix) + `[0-9]{8}-[0-9]{6}-[0-9a-f]{7}$`
}

// ExpandPrefix evaluates a tag prefix as a text/template over environment
// variables: "pr-{{.PR_NUMBER}}-" reads PR_NUMBER from env (KEY=VALUE
// entries, as os.Environ gives them). A prefix without "{{" is returned
// as it is. A variable that is unset, or empty where the prefix would be
// nothing but separators, is an error saying which.
func ExpandPrefix(prefix string, env []string) (string, error) {
	if !strings.Contains(prefix, "{{") {
		return prefix, nil
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	t, err := template.New("tag.prefix").Option("missingkey=error").Parse(prefix)
	if err != nil {
		return "", fmt.Errorf("not a valid template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("%q needs an environment variable that is not set (%w)", prefix, err)
	}
	if b.Len() > 0 && strings.Trim(b.String(), "-_.") == "" {
		return "", fmt.Errorf("%q expands to %q: an environment variable it reads is empty", prefix, b.String())
	}
	return b.String(), nil
}
