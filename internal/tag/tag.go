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
	"sync"
	"text/template"
	"time"
)

// Layout is the time layout of a release tag.
const Layout = "20060102-150405"

// DirtySuffix marks a tag built from a work tree with uncommitted changes.
const DirtySuffix = "-dirty"

// MaxLen is the longest tag an OCI registry accepts.
const MaxLen = 128

// The grammars below are compiled when first used, not when the program
// starts: every shipit command links this package, few parse tags.
var (
	// ociTag is the grammar of a tag in the OCI distribution spec.
	ociTag = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	// release matches PREFIX YYYYMMDD-HHMMSS-sha7 [-dirty].
	release = lazyRegexp(`^(.*?)(\d{8}-\d{6})-([0-9a-f]{7})(-dirty)?$`)
	// prefixChars is what a prefix may hold: tag characters, not starting with . or -.
	prefixChars = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// FutureAllowance is how far after the build machine's clock a commit's
// committer time may be and still get a release tag: clocks of laptops and
// CI runners differ by seconds, a commit from the future by hours or years.
const FutureAllowance = 10 * time.Minute

// ErrClockSkew is returned by New when a commit's time cannot give a
// release tag: it is in the future of the build machine's clock
// (ErrFutureCommit), or it is far behind a parent that is not.
var ErrClockSkew = errors.New("clock skew")

// ErrFutureCommit is returned by New when a commit's committer time is more
// than FutureAllowance after the build machine's clock. It wraps
// ErrClockSkew.
var ErrFutureCommit = fmt.Errorf("%w: commit time is in the future", ErrClockSkew)

// Commit is what a tag is made from.
type Commit struct {
	SHA  string    // full hex commit id
	Time time.Time // committer time
	// Ancestors are the committer times of the first-parent chain before
	// the commit, nearest first (as far as the clone has history).
	Ancestors []time.Time
	Dirty     bool // the work tree has uncommitted changes
	// Now is the build machine's clock; zero means time.Now().
	Now time.Time
}

// ReleaseTime is the time in a commit's tag, from history alone: its
// committer time, except that a commit made in the same second as its
// parent (or, after a clock was behind, earlier than an ancestor) gets one
// second more than the parent's release time. So along first-parent
// history release times strictly increase and tags sort in commit order,
// however fast commits come. An ancestor made more than FutureAllowance
// after a later commit is from the future (a skewed clock): it never had a
// tag and orders nothing, so one such commit cannot push every later tag
// to its date. Rebuilding a commit gives the same time.
func ReleaseTime(c Commit) time.Time {
	skip := futureAncestors(c)
	return chainTime(c, func(i int) bool { return skip[i] })
}

// futureAncestors marks the ancestors that history alone says are from the
// future: made more than FutureAllowance after the earliest of the commit
// and the ancestors between them that are not.
func futureAncestors(c Commit) []bool {
	skip := make([]bool, len(c.Ancestors))
	ref := c.Time
	for i, a := range c.Ancestors {
		if a.After(ref.Add(FutureAllowance)) {
			skip[i] = true
			continue
		}
		if a.Before(ref) {
			ref = a
		}
	}
	return skip
}

// chainTime is the release time along the ancestors that skip does not
// leave out, oldest first.
func chainTime(c Commit, skip func(i int) bool) time.Time {
	var t time.Time
	for i := len(c.Ancestors) - 1; i >= 0; i-- {
		switch {
		case skip(i):
		case t.IsZero():
			t = c.Ancestors[i].UTC().Truncate(time.Second)
		default:
			t = later(c.Ancestors[i], t)
		}
	}
	if t.IsZero() {
		return c.Time.UTC().Truncate(time.Second)
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

// New makes the release tag for a commit. It refuses (ErrClockSkew) a
// commit whose time is more than FutureAllowance after c.Now (such a tag
// would sort after every release until that date), and a commit whose tag
// history alone cannot settle against the clock: one far behind a parent
// that is not in the future (the committer's clock was behind), or one
// following a commit from the future whose date this clock has reached.
func New(prefix string, c Commit) (Tag, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return Tag{}, err
	}
	if len(c.SHA) < 7 {
		return Tag{}, fmt.Errorf("commit id %q is too short", c.SHA)
	}
	rt, err := checkClock(c)
	if err != nil {
		return Tag{}, err
	}
	t := Tag{Prefix: prefix, Time: rt, SHA7: strings.ToLower(c.SHA[:7]), Dirty: c.Dirty}
	if n := len(t.String()); n > MaxLen {
		return Tag{}, fmt.Errorf("tag %q is %d characters long; registries accept at most %d (shorten tag.prefix)", t.String(), n, MaxLen)
	}
	return t, nil
}

// checkClock is the commit's release time, checked against the build
// machine's clock: the commit and its tag are not from the future, and the
// ancestors the clock says may have had tags give the time history gives.
func checkClock(c Commit) (time.Time, error) {
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	limit := now.Add(FutureAllowance)
	sha7 := c.SHA[:7]
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	if c.Time.After(limit) {
		return time.Time{}, fmt.Errorf("%w: commit %s was made at %s, %s after this machine's clock (%s), and a release tag from it would sort after every release until then (fix the committer's clock and amend the commit with `git commit --amend --no-edit --date=now`; if it is pushed already, the next commit made with a right clock gets a tag; or pass --tag)",
			ErrFutureCommit, sha7, stamp(c.Time), c.Time.Sub(now).Round(time.Second), stamp(now))
	}
	skip := futureAncestors(c)
	rt := chainTime(c, func(i int) bool { return skip[i] })
	if rt.After(limit) {
		return time.Time{}, fmt.Errorf("%w: commit %s would get the release time %s, after its parents', which is more than %s after this machine's clock (%s) (build it again in a few minutes, or pass --tag)",
			ErrFutureCommit, sha7, stamp(rt), FutureAllowance, stamp(now))
	}
	byClock := chainTime(c, func(i int) bool { return c.Ancestors[i].After(limit) })
	if rt.Equal(byClock) {
		return rt, nil
	}
	// History left out an ancestor the clock says may have had a tag.
	i := 0
	for i < len(skip) && (!skip[i] || c.Ancestors[i].After(limit)) {
		i++
	}
	if i == 0 {
		return time.Time{}, fmt.Errorf("%w: commit %s was made at %s, more than %s before its parent (%s), which is not in the future of this machine's clock (%s): the committer's clock was behind (or the parent's was ahead, and that time has passed), and its tag could sort before its parent's (fix the committer's clock and amend the commit with `git commit --amend --no-edit --date=now`; or pass --tag, with the tag it had if it is a rebuild)",
			ErrClockSkew, sha7, stamp(c.Time), FutureAllowance, stamp(c.Ancestors[0]), stamp(now))
	}
	return time.Time{}, fmt.Errorf("%w: commit %s follows, %d first parents back, a commit made at %s, more than %s after the commits that came after it; this machine's clock (%s) no longer says that time is in the future, so shipit cannot tell whether that commit had a release tag that a tag from %s would sort before (a commit made after %s gets a tag; or pass --tag, with the tag it had if it is a rebuild)",
		ErrClockSkew, sha7, i+1, stamp(c.Ancestors[i]), FutureAllowance, stamp(now), sha7, stamp(byClock))
}

// IsFuture reports whether the tag's time is more than FutureAllowance
// after now: no build at now made it from a commit's time (a skewed clock
// did, or --tag). Such a tag is not to be pinned, and a pin holding one is
// not newer than a release made now.
func (t Tag) IsFuture(now time.Time) bool {
	return t.Time.After(now.Add(FutureAllowance))
}

// IsFuture reports whether s is a release tag (of any prefix, dirty or
// not) whose time is more than FutureAllowance after now; anything that is
// not a release tag is not from the future. Release refuses to pin such a
// tag, and forward-only does not count a pin holding one as newer.
func IsFuture(s string, now time.Time) bool {
	t, err := Parse(s)
	return err == nil && t.IsFuture(now)
}

// ValidatePrefix checks that a prefix can start an OCI tag.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !prefixChars().MatchString(prefix) {
		return fmt.Errorf("tag prefix %q may hold only letters, digits, '_', '.' and '-', and must not start with '.' or '-'", prefix)
	}
	return nil
}

// Parse parses a release tag with any prefix.
func Parse(s string) (Tag, error) {
	if err := Validate(s); err != nil {
		return Tag{}, err
	}
	m := release().FindStringSubmatch(s)
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
	if !ociTag().MatchString(s) {
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
