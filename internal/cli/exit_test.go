package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/tag"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err         error
		interrupted bool
		want        int
	}{
		{nil, false, 0},
		{errors.New("push failed"), false, 1},
		{usagef("bad flag"), false, 2},
		{fmt.Errorf("loading: %w", &config.Error{Key: "images", Msg: "x"}), false, 2},
		{fmt.Errorf("tag: %w", tag.ErrClockSkew), false, 2},
		{context.Canceled, true, 130},
	} {
		var out bytes.Buffer
		if got := ExitCode(tc.err, tc.interrupted, &out); got != tc.want {
			t.Errorf("ExitCode(%v, %v) = %d, want %d", tc.err, tc.interrupted, got, tc.want)
		}
		if tc.err != nil && out.Len() == 0 {
			t.Errorf("%v: nothing said on stderr", tc.err)
		}
	}
}

func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	root := New()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"init", "build", "release", "promote", "pin", "history", "status", "prune", "lifecycle-policy", "updater-config", "tag", "version"} {
		if !bytes.Contains(out.Bytes(), []byte("\n  "+c+" ")) {
			t.Errorf("--help does not list %s", c)
		}
	}
}

// TestCLIConventions: --version, an unknown command, and a missing or an
// extra argument, as a user types them.
func TestCLIConventions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		code  int
		wants string // in stdout+stderr
	}{
		{[]string{"--version"}, 0, "shipit "},
		{[]string{"bogus"}, 2, "usage: shipit"},
		{[]string{"pin"}, 2, "usage: shipit pin <tag>"},
		{[]string{"promote"}, 2, "usage: shipit promote ENV"},
		{[]string{"status", "extra"}, 2, "usage: shipit status"},
		{[]string{"build", "--no-such-flag"}, 2, "usage: shipit build"},
	} {
		root := New()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		code := ExitCode(err, false, &out)
		if code != tc.code || !bytes.Contains(out.Bytes(), []byte(tc.wants)) {
			t.Errorf("shipit %v: exit %d, want %d; output:\n%s", tc.args, code, tc.code, out.String())
		}
	}
}
