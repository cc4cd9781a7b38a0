package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/acme/shop.git", "https://github.com/acme/shop.git"},
		{"https://x-access-token:ghs_SECRET@github.com/acme/shop.git", "https://github.com/acme/shop.git"},
		{"https://oauth2:glpat-SECRET%zz@gitlab.example/acme/shop", "https://gitlab.example/acme/shop"},
		{"https://u:pa ss/word@host/acme/shop", "https://host/acme/shop"},
		{"https://u:pa?ss@host/acme/shop", "https://[redacted]"},
		{"https://host/p?email=a@b.example&token=SECRET", "https://[redacted]"},
		{"https://host/acme/shop?access_token=SECRET", "https://host/acme/shop"},
		{"https://SECRETTOKEN@github.com/acme/shop", "https://github.com/acme/shop"},
		{"git@github.com:acme/shop.git", "git@github.com:acme/shop.git"},
		{"TOKEN@github.com:acme/shop.git", "github.com:acme/shop.git"},
		{"user:SECRET@host:acme/shop.git", "host:acme/shop.git"},
		{"ssh://git:SECRET@host:22/acme/shop", "ssh://host:22/acme/shop"},
		{"/srv/git/shop.git", "/srv/git/shop.git"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	in := "fatal: unable to access 'https://oauth2:glpat-SECRET@gitlab.example/acme/shop/': The requested URL returned error: 403"
	got := Text(in)
	if strings.Contains(got, "SECRET") || !strings.Contains(got, "'https://gitlab.example/acme/shop/'") {
		t.Errorf("Text = %q", got)
	}
	if got := Text("token hunter2xyz refused", "hunter2xyz"); strings.Contains(got, "hunter2xyz") {
		t.Errorf("a known secret survived: %q", got)
	}
}

// FuzzURL: whatever the URL, a password placed in its user information or
// its query never comes out.
func FuzzURL(f *testing.F) {
	for _, s := range []string{"https://u:%s@host/p", "https://%s@host/p", "https://host/p?t=%s", "u:%s@host:p", "ssh://git:%s@h:22/p", "https://a:%s@b@c/d"} {
		f.Add(s, "s3cr3tT0ken")
	}
	f.Fuzz(func(t *testing.T, shape, secret string) {
		if strings.Count(shape, "%s") != 1 || len(secret) < 6 {
			return
		}
		// The secret is a credential: it never holds the separators that
		// end user information or a query in the shapes.
		// Credentials are tokens: letters, digits and the URL-safe marks.
		if strings.Trim(secret, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~%+=") != "" || strings.Contains(strings.Replace(shape, "%s", "", 1), secret) {
			return
		}
		raw := strings.Replace(shape, "%s", secret, 1)
		i := strings.Index(shape, "%s")
		before := shape[:i]
		// Only shapes where the secret sits in user information (before an
		// "@" that follows it) or in a query (after a "?").
		inUser := strings.Contains(shape[i:], "@") && !strings.Contains(shape[i:], "://")
		sep := strings.Index(before, "://")
		inQuery := sep >= 0 && strings.Contains(before[sep+3:], "?")
		if !inUser && !inQuery {
			return
		}
		if strings.Contains(URL(raw), secret) {
			t.Errorf("URL(%q) = %q keeps the secret", raw, URL(raw))
		}
		// Text splits words at white space: a URL holding some is caught
		// when the caller names it, as callers that hold one do.
		if strings.Contains(Text("cloning "+raw+" failed", secret), secret) ||
			(!strings.ContainsAny(raw, " \t\n\r") && strings.Contains(Text("cloning "+raw+" failed"), secret)) {
			t.Errorf("Text keeps the secret of %q", raw)
		}
	})
}
