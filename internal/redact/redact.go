// Package redact keeps credentials out of everything shipit prints, labels
// or records. It fails closed: what it cannot parse, it cuts rather than
// shows. Every error from git and from registries that may quote a URL
// goes through Text.
package redact

import (
	"strings"
)

// Placeholder stands where a part that could not be told apart from a
// credential was cut.
const Placeholder = "[redacted]"

// URL removes credentials from a URL or a git remote address: the user
// information of the authority (everything up to its last "@"), and the
// query and fragment, which may hold tokens (?access_token=…). It works on
// the text itself, not on a parse, so a URL that does not parse (a "%zz"
// or a space in a password) loses the same parts. An scp-like address
// keeps the user git (git@host:org/repo) and loses any other: a token can
// be a user name.
func URL(raw string) string {
	raw = strings.TrimSpace(raw)
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		// scp-like: [user[:password]@]host:path, or a plain path.
		// The user git, as in git@github.com:org/repo, is no credential.
		if i := strings.LastIndex(raw, "@"); i >= 0 && raw[:i] != "git" {
			return raw[i+1:]
		}
		return raw
	}
	// Everything up to the last "@" is user information: a password may hold
	// "/", "?" or "#", so the first of those cannot be trusted to end it.
	// Everything from the first "?" or "#" is a query or a fragment. When
	// the two overlap ("?" before the last "@"), neither reading can be
	// trusted, and nothing after the scheme is kept.
	at, q := strings.LastIndex(rest, "@"), strings.IndexAny(rest, "?#")
	switch {
	case q >= 0 && at > q:
		return scheme + "://" + Placeholder
	case q >= 0:
		rest = rest[:q]
	}
	return scheme + "://" + rest[at+1:]
}

// Text removes credentials from every URL-like word of a message (words
// holding "://" or "@"), and every occurrence of the given secrets.
func Text(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	if !strings.Contains(s, "://") && !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexFunc(s, isSpace)
		if i < 0 {
			i = len(s)
		}
		word := s[:i]
		b.WriteString(redactWord(word))
		s = s[i:]
		j := strings.IndexFunc(s, func(r rune) bool { return !isSpace(r) })
		if j < 0 {
			j = len(s)
		}
		b.WriteString(s[:j])
		s = s[j:]
	}
	return b.String()
}

func redactWord(w string) string {
	if !strings.Contains(w, "://") && !strings.Contains(w, "@") {
		return w
	}
	// Keep quotes and brackets around a URL: 'https://…', <…>, (…).
	start := strings.IndexFunc(w, func(r rune) bool { return !strings.ContainsRune(`'"<([`, r) })
	if start < 0 {
		return w
	}
	end := strings.LastIndexFunc(w, func(r rune) bool { return !strings.ContainsRune(`'">)]:,.;`, r) }) + 1
	if end <= start {
		return w
	}
	return w[:start] + URL(w[start:end]) + w[end:]
}

func isSpace(r rune) bool { return r == ' ' || r == '\n' || r == '\t' || r == '\r' }
