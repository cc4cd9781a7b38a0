package cli

import "testing"

func TestRepoTag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ image, repo, tag string }{
		{"127.0.0.1:5055/e2e/web:20260601-080000-ddf3e65@sha256:6575", "127.0.0.1:5055/e2e/web", "20260601-080000-ddf3e65"},
		{"registry.example/web:1", "registry.example/web", "1"},
		{"127.0.0.1:5055/e2e/web@sha256:6575", "", ""},
		{"127.0.0.1:5055/e2e/web", "", ""},
		{"sha256:547abb0cc62e", "", ""},
	} {
		repo, tag, ok := repoTag(tc.image)
		if repo != tc.repo || tag != tc.tag || ok != (tc.tag != "") {
			t.Errorf("repoTag(%q) = %q, %q, %v", tc.image, repo, tag, ok)
		}
	}
}
