package scaffold

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/shipit-dev/shipit/internal/lazyre"
)

// ignored warns when the project's own .dockerignore leaves out a file the
// Dockerfile copies: the build would fail on it.
func (p *planned) ignored(dir string, df *Dockerfile) error {
	b, err := readFile(dir, ".dockerignore")
	if err != nil || b == nil {
		return err
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	for _, src := range df.Sources {
		if src == "." || strings.ContainsAny(src, "*?[$") {
			continue
		}
		if out, err := pm.MatchesOrParentMatches(strings.TrimSuffix(src, "/")); err == nil && out {
			p.found(Finding{Warning: true, From: ".dockerignore", What: "the Dockerfile copies " + src + ", which .dockerignore leaves out of the build",
				Change: "remove the line of .dockerignore that matches " + src})
		}
	}
	return nil
}

// appendix is lines init adds to the end of a file of the project that
// lacks them (shipit's build output and the deploy manifests kept out of
// git and of the build context).
type appendix struct {
	file    string
	comment string
	lines   []string         // each added unless has matches it
	has     []*lazyre.Regexp // one per line
	create  bool             // the file is created when missing
}

var appendices = []appendix{
	{file: ".gitignore", comment: "# shipit's build output (shipit build writes it; never commit it)", create: true,
		lines: []string{"/.shipit/"}, has: []*lazyre.Regexp{lazyre.New(`(?m)^/?\.shipit/?\s*$`)}},
	{file: ".dockerignore", comment: "# shipit's build output and the deploy manifests: not part of the image",
		lines: []string{"/.shipit/", "/k8s/"}, has: []*lazyre.Regexp{lazyre.New(`(?m)^/?\.shipit(/\*?)?\s*$`), lazyre.New(`(?m)^/?k8s(/\*?)?\s*$`)}},
}

// appendLines adds what a lacks to its file; nil when nothing is missing,
// or the file is missing and is not to be created.
func appendLines(root *os.Root, dir string, a appendix, dryRun bool, written map[string]bool) (*File, error) {
	before, err := readFile(dir, a.file)
	if err != nil {
		return nil, err
	}
	if before == nil && (!a.create || written[a.file]) {
		return nil, nil
	}
	var add []string
	for i, l := range a.lines {
		if !a.has[i].Match(before) {
			add = append(add, l)
		}
	}
	if len(add) == 0 {
		return nil, nil
	}
	f := &File{Path: a.file, Appended: before != nil, Lines: add}
	if dryRun {
		return f, nil
	}
	text := a.comment + "\n" + strings.Join(add, "\n") + "\n"
	if len(before) > 0 && before[len(before)-1] != '\n' {
		text = "\n" + text
	}
	fh, err := root.OpenFile(filepath.FromSlash(a.file), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	_, werr := fh.WriteString(text)
	if cerr := fh.Close(); werr == nil {
		werr = cerr
	}
	return f, werr
}
