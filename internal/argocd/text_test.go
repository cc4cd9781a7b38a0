package argocd

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"Deployment \"web\" exceeded its progress deadline", "Deployment \"web\" exceeded its progress deadline"},
		{"héllo, 世界", "héllo, 世界"},
		// OSC 52 writes the terminal's clipboard; CSI 2J erases the screen.
		{"ok\x1b]52;c;ZWNobyBwd25lZA==\x07", `ok\x1b]52;c;ZWNobyBwd25lZA==\x07`},
		{"\x1b[2J\x1b[1A\r", `\x1b[2J\x1b[1A\x0d`},
		{"line\nnext\x7f", `line\x0anext\x7f`},
		{"c1 \u009b2J", `c1 \u009b2J`},
		{"bidi \u202etxt.exe\u2066", `bidi \u202etxt.exe\u2066`},
		{"bad \xff utf-8", `bad \xff utf-8`},
	} {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestAppOfClean is issue 20's finding: Application status text reached
// the terminal raw. Whatever a status holds, what shipit prints of it (a
// failed wait's message, the progress line) has no control character.
func TestAppOfClean(t *testing.T) {
	t.Parallel()
	evil := "deadline\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2K\r\u009b1A\u202e"
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "shop", "namespace": "argocd"},
		"status": map[string]any{
			"sync":           map[string]any{"status": "Synced\x1b[31m", "revision": "abc\x1b[8m"},
			"health":         map[string]any{"status": "Degraded", "message": evil},
			"operationState": map[string]any{"phase": "Failed", "message": evil},
			"resources": []any{
				map[string]any{"kind": "Deployment", "namespace": "shop", "name": "web\x1b[2J", "status": "Synced", "health": map[string]any{"status": "Degraded", "message": evil}},
			},
		},
	}}
	a := appOf(u)
	for what, s := range map[string]string{
		"progress": a.String(),
		"failure":  (&WaitError{Why: "Argo CD reports degraded at abc:", Apps: []App{a}}).Error(),
	} {
		if i := strings.IndexFunc(s, func(r rune) bool { return r != '\n' && (r < 0x20 || r == 0x7f || unsafeRune(r)) }); i >= 0 {
			t.Errorf("the %s line holds a control character at %d: %q", what, i, s)
		}
		if !strings.Contains(s, "Synced") {
			t.Errorf("the %s line lost the text around the escapes: %q", what, s)
		}
	}
	if a.Message != `deadline\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2K\x0d\u009b1A\u202e` {
		t.Errorf("message: %q", a.Message)
	}
}

func TestLogTail(t *testing.T) {
	t.Parallel()
	var log strings.Builder
	for i := range 30 {
		log.WriteString(strings.Repeat("x", i) + "\n")
	}
	log.WriteString("\tat main()\r\n\x1b[31mfailing\x1b[0m\n" + strings.Repeat("y", 1000) + "\n\n")
	got := logTail(log.String())
	if len(got) != logLines {
		t.Fatalf("%d lines, want %d: %q", len(got), logLines, got)
	}
	if got[logLines-3] != "    at main()" || got[logLines-2] != `\x1b[31mfailing\x1b[0m` {
		t.Errorf("lines: %q", got[logLines-3:])
	}
	if last := got[logLines-1]; len([]rune(last)) != maxLine+1 || !strings.HasSuffix(last, "…") {
		t.Errorf("a long line is not cut: %d runes", len([]rune(last)))
	}
}
