package argocd

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Clean makes text read from the cluster safe to print. Argo CD's
// messages, Kubernetes events and container logs are written by whoever
// can write an Application's status, an event or a container's output:
// a control character there (an escape sequence that sets the clipboard,
// moves the cursor or erases the screen), a bidirectional override or
// invalid UTF-8 is shown as an escape (\x1b, \u202e) instead of reaching
// the terminal as it is.
func Clean(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// unsafeRune is a C1 control (0x9b is a one-byte CSI to many terminals),
// a bidirectional override or isolate, or a line or paragraph separator.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f,
		r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e,
		r >= 0x2066 && r <= 0x2069,
		r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// cut is s cleaned and cut to at most n runes, saying so.
func cut(s string, n int) string {
	s = Clean(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
