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
	for _, c := range []string{"init", "build", "release", "pin", "history", "status", "updater-config", "tag", "version"} {
		if !bytes.Contains(out.Bytes(), []byte("\n  "+c+" ")) {
			t.Errorf("--help does not list %s", c)
		}
	}
}
