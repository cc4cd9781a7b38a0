package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSharedKeyPerImage: each image's session names its own kept copy of
// its directories on the daemon, the same build after build, and another
// image's (or another checkout's) is another.
func TestSharedKeyPerImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, d := range []string{"web", "proxy"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	web := Request{Name: "web", ContextDir: dir + "/web", DockerfileDir: dir + "/web", DockerfileName: "Dockerfile", ContextExclude: []string{".shipit"}, LayoutDir: dir + "/l"}
	proxy := web
	proxy.Name, proxy.ContextDir, proxy.DockerfileDir = "proxy", dir+"/proxy", dir+"/proxy"
	key := func(r Request) string {
		so, err := solveOpt(r)
		if err != nil {
			t.Fatal(err)
		}
		return so.SharedKey
	}
	a, b, c := key(web), key(web), key(proxy)
	if a == "" || a != b || a == c || !strings.HasPrefix(a, "shipit-") {
		t.Errorf("shared keys: web %q then %q, proxy %q", a, b, c)
	}
	other := web
	other.ContextDir = t.TempDir() // another checkout
	if key(other) == a {
		t.Error("another checkout's context shares web's copy")
	}
	if strings.Contains(a, dir) {
		t.Errorf("the key %q shows the path", a)
	}
}
