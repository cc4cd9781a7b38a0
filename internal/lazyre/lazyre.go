// Package lazyre holds regular expressions that compile on first use, not
// at program start: a package-level regexp.MustCompile runs in every
// command's start-up (shipit version pays for init's Gemfile patterns),
// and a few large ones ({0,251} repetitions) cost a millisecond each.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled once, when it is first used.
// Its methods are regexp.Regexp's.
type Regexp struct {
	re func() *regexp.Regexp
}

// New returns the expression expr, compiled on first use; an invalid one
// panics then, as regexp.MustCompile would at start-up (tests use each).
func New(expr string) *Regexp {
	return &Regexp{re: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })}
}

// Regexp is the compiled expression.
func (r *Regexp) Regexp() *regexp.Regexp { return r.re() }

// String is the source text of the expression.
func (r *Regexp) String() string { return r.re().String() }

// MatchString is regexp.Regexp.MatchString.
func (r *Regexp) MatchString(s string) bool { return r.re().MatchString(s) }

// FindString is regexp.Regexp.FindString.
func (r *Regexp) FindString(s string) string { return r.re().FindString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.re().FindStringSubmatch(s) }

// FindSubmatch is regexp.Regexp.FindSubmatch.
func (r *Regexp) FindSubmatch(b []byte) [][]byte { return r.re().FindSubmatch(b) }

// FindAllStringSubmatch is regexp.Regexp.FindAllStringSubmatch.
func (r *Regexp) FindAllStringSubmatch(s string, n int) [][]string {
	return r.re().FindAllStringSubmatch(s, n)
}

// ReplaceAllString is regexp.Regexp.ReplaceAllString.
func (r *Regexp) ReplaceAllString(src, repl string) string { return r.re().ReplaceAllString(src, repl) }

// Match is regexp.Regexp.Match.
func (r *Regexp) Match(b []byte) bool { return r.re().Match(b) }
