package config

import (
	"os"
	"strings"
	"testing"
)

// TestMain clears the variables that override shipit.yaml, so that the
// tests see only the files they write (make test exports BUILDKIT_HOST).
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "BUILDKIT_HOST" || strings.HasPrefix(k, "SHIPIT_") {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}
