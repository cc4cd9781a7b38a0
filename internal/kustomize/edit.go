// Package kustomize edits the image pins of kustomization files and checks
// that the overlay still renders with the new images. It imports no other
// shipit package.
//
// Pins are set as `kustomize edit set image` sets them (name, newName,
// newTag, digest), but the file is edited in place: the lines of the pin
// change and nothing else does, so comments, blank lines, key order,
// quoting and indentation all stay as the user wrote them. kyaml locates
// the nodes and checks the result; a layout the in-place edit does not
// handle falls back to kyaml's own re-encoding, which keeps comments and
// key order.
package kustomize

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Pin is the reference one image should have.
type Pin struct {
	// Name is the image's name in the kustomization's images list.
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"` // empty: no newTag
	Digest  string `json:"digest,omitempty"` // empty: no digest
}

// Entry is an image entry as it is in a kustomization: the same four
// fields as the pin that wrote it.
type Entry = Pin

// Found reports whether the entry exists.
func (e Entry) Found() bool { return e.Name != "" }

// Images returns the entries of a kustomization's images list.
func Images(data []byte) (map[string]Entry, error) {
	doc, err := yaml.Parse(string(data))
	if err != nil {
		return nil, err
	}
	out := map[string]Entry{}
	seq := doc.Field("images")
	if seq == nil || seq.Value.YNode().Kind != yaml.SequenceNode {
		return out, nil
	}
	for _, item := range seq.Value.Content() {
		e := entryOf(yaml.NewRNode(item))
		if e.Name != "" {
			out[e.Name] = e
		}
	}
	return out, nil
}

func entryOf(n *yaml.RNode) Entry {
	get := func(k string) string {
		f := n.Field(k)
		if f == nil || f.Value.YNode().Kind != yaml.ScalarNode {
			return ""
		}
		return f.Value.YNode().Value
	}
	return Entry{Name: get("name"), NewName: get("newName"), NewTag: get("newTag"), Digest: get("digest")}
}

// SetImage returns data with the images entry for pin.Name set to pin: the
// entry is added when missing, and newTag or digest is removed when the pin
// has none, as kustomize does. The result is checked by parsing it back.
func SetImage(data []byte, pin Pin) ([]byte, error) {
	if pin.Name == "" {
		return nil, errors.New("an image pin needs a name")
	}
	doc, err := yaml.Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if doc.YNode().Kind != yaml.MappingNode {
		return nil, errors.New("a kustomization must be a YAML mapping")
	}
	out, ok := editInPlace(data, doc, pin)
	if ok && check(out, pin) == nil {
		return out, nil
	}
	out, err = reencode(data, doc, pin)
	if err != nil {
		return nil, err
	}
	if err := check(out, pin); err != nil {
		return nil, err
	}
	return out, nil
}

// check parses the edited file back and compares the entry with the pin.
func check(data []byte, pin Pin) error {
	imgs, err := Images(data)
	if err != nil {
		return fmt.Errorf("the edited file does not parse: %w", err)
	}
	want := pin
	if pin.NewName == pin.Name {
		want.NewName = ""
	}
	if got := imgs[pin.Name]; got != want {
		return fmt.Errorf("the edited entry is %+v, want %+v", got, want)
	}
	return nil
}

// fields lists the keys of an entry in kustomize's order, with the values
// the pin wants (empty: the key must not be there).
func fields(pin Pin) [][2]string {
	newName := pin.NewName
	if newName == pin.Name {
		newName = ""
	}
	return [][2]string{{"newName", newName}, {"newTag", pin.NewTag}, {"digest", pin.Digest}}
}

// editInPlace changes only the lines of the pin. It handles block-style
// images lists and entries; it reports false for anything else.
func editInPlace(data []byte, doc *yaml.RNode, pin Pin) ([]byte, bool) {
	lines := strings.SplitAfter(string(data), "\n")
	imagesField := doc.Field("images")
	if imagesField == nil {
		return appendImages(data, pin), true
	}
	seq := imagesField.Value.YNode()
	if seq.Kind != yaml.SequenceNode || seq.Style&yaml.FlowStyle != 0 {
		return nil, false
	}
	item := findEntry(seq, pin.Name)
	if item == nil {
		return appendEntry(lines, seq, pin)
	}
	if item.Style&yaml.FlowStyle != 0 {
		return nil, false
	}
	insertAt := endLine(lines, item)
	edits, ok := entryEdits(lines, item, pin, insertAt)
	if !ok {
		return nil, false
	}
	return []byte(strings.Join(applyEdits(lines, edits, insertAt), "")), true
}

// appendImages adds a new images list with the pin's entry at the end of
// the file.
func appendImages(data []byte, pin Pin) []byte {
	var b strings.Builder
	b.WriteString(string(data))
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\n")) {
		b.WriteString("\n")
	}
	b.WriteString("images:\n")
	b.WriteString(newEntry("", pin))
	return []byte(b.String())
}

// findEntry returns the block mapping of the images list that names the
// image (the last one, when several do), or nil.
func findEntry(seq *yaml.Node, name string) *yaml.Node {
	var item *yaml.Node
	for _, it := range seq.Content {
		if it.Kind == yaml.MappingNode && entryOf(yaml.NewRNode(it)).Name == name {
			item = it
		}
	}
	return item
}

// appendEntry adds the pin's entry after the last entry of a non-empty
// images list, indented like the entries. It reports false when the last
// entry is not a block mapping that follows "- " on its first line.
func appendEntry(lines []string, seq *yaml.Node, pin Pin) ([]byte, bool) {
	if len(seq.Content) == 0 {
		return nil, false
	}
	last := seq.Content[len(seq.Content)-1]
	if last.Kind != yaml.MappingNode || last.Style&yaml.FlowStyle != 0 {
		return nil, false
	}
	dash := strings.Repeat(" ", last.Column-3) // "- " precedes the entry's first key
	if last.Column < 3 || !strings.HasPrefix(strings.TrimLeft(lines[last.Line-1], " "), "- ") {
		return nil, false
	}
	end := endLine(lines, last)
	entry := newEntry(dash, pin)
	return []byte(strings.Join(lines[:end], "") + ensureNL(lines[:end]) + entry + strings.Join(lines[end:], "")), true
}

// lineEdit is one change to the lines of a file.
type lineEdit struct {
	line   int    // 0-based
	remove bool   // delete the line
	text   string // replacement or insertion
	insert bool   // insert text before line
}

// entryEdits lists the line edits that give an existing block entry the
// pin's fields: a value replaced in place, a missing key inserted at
// insertAt (the entry's end), a key the pin has no value for removed. It
// reports false for a layout it cannot edit line by line.
func entryEdits(lines []string, item *yaml.Node, pin Pin, insertAt int) ([]lineEdit, bool) {
	var edits []lineEdit
	indent := strings.Repeat(" ", item.Column-1)
	for _, f := range fields(pin) {
		key, val := f[0], f[1]
		var kn, vn *yaml.Node
		for i := 0; i+1 < len(item.Content); i += 2 {
			if item.Content[i].Value == key {
				kn, vn = item.Content[i], item.Content[i+1]
			}
		}
		switch {
		case kn == nil && val == "":
		case kn == nil:
			edits = append(edits, lineEdit{line: insertAt, insert: true, text: indent + key + ": " + scalar(val, 0) + "\n"})
		case vn.Kind != yaml.ScalarNode || vn.Line != kn.Line:
			return nil, false
		case val == "":
			if kn.Line == item.Line { // "- digest: x" on the dash line cannot be dropped alone
				return nil, false
			}
			edits = append(edits, lineEdit{line: kn.Line - 1, remove: true})
		default:
			l := lines[kn.Line-1]
			start := vn.Column - 1
			end, ok := scalarEnd(l, start)
			if !ok {
				return nil, false
			}
			edits = append(edits, lineEdit{line: kn.Line - 1, text: l[:start] + scalar(val, vn.Style) + l[end:]})
		}
	}
	return edits, true
}

// applyEdits applies the edits to lines: replacements in place, then the
// insertions (all at insertAt) and removals in one pass, so that the line
// numbers the edits hold stay true.
func applyEdits(lines []string, edits []lineEdit, insertAt int) []string {
	for _, e := range edits {
		if !e.insert && !e.remove {
			lines[e.line] = e.text
		}
	}
	var inserts []string
	for _, e := range edits {
		if e.insert {
			inserts = append(inserts, e.text)
		}
	}
	out := make([]string, 0, len(lines)+len(inserts))
	for i := 0; i <= len(lines); i++ {
		if i == insertAt && len(inserts) > 0 {
			if i > 0 && !strings.HasSuffix(out[len(out)-1], "\n") {
				out[len(out)-1] += "\n"
			}
			out = append(out, inserts...)
		}
		if i == len(lines) {
			break
		}
		removed := false
		for _, e := range edits {
			if e.remove && e.line == i {
				removed = true
			}
		}
		if !removed {
			out = append(out, lines[i])
		}
	}
	return out
}

// endLine is the 0-based index of the line after a block mapping's last
// line, not counting trailing comment or blank lines.
func endLine(lines []string, n *yaml.Node) int {
	last := n.Line
	var walk func(*yaml.Node)
	walk = func(x *yaml.Node) {
		if x.Line > last {
			last = x.Line
		}
		for _, c := range x.Content {
			walk(c)
		}
	}
	walk(n)
	// A multi-line scalar continues on more-indented lines.
	for last < len(lines) {
		next := lines[last]
		t := strings.TrimLeft(next, " ")
		if t == "" || t == "\n" || strings.HasPrefix(t, "#") || len(next)-len(t) <= n.Column-1 {
			break
		}
		last++
	}
	return last
}

func ensureNL(lines []string) string {
	if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
		return "\n"
	}
	return ""
}

func newEntry(dashIndent string, pin Pin) string {
	var b strings.Builder
	b.WriteString(dashIndent + "- name: " + scalar(pin.Name, 0) + "\n")
	for _, f := range fields(pin) {
		if f[1] != "" {
			b.WriteString(dashIndent + "  " + f[0] + ": " + scalar(f[1], 0) + "\n")
		}
	}
	return b.String()
}

// plainSafe is what can be written without quotes and still read back as
// the same string (kustomize's tags, digests and repository names),
// compiled on first use: not in every command's start-up.
var plainSafe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9._/:@+-]*$|^[0-9][0-9A-Za-z._/:@+-]*[A-Za-z_:@/+-][0-9A-Za-z._/:@+-]*$`)
})

// scalar renders a string value, keeping a quoted style when the old value
// was quoted, and quoting when a plain scalar would read as something else.
func scalar(v string, style yaml.Style) string {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		return fmt.Sprintf("%q", v)
	case style&yaml.SingleQuotedStyle != 0:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case plainSafe().MatchString(v) && !strings.Contains(v, ": ") && !strings.Contains(v, " #") && !isSpecial(v):
		return v
	}
	return fmt.Sprintf("%q", v)
}

func isSpecial(v string) bool {
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n":
		return true
	}
	return false
}

// scalarEnd finds where a scalar that starts at col of line ends.
func scalarEnd(line string, col int) (int, bool) {
	if col >= len(line) {
		return 0, false
	}
	switch line[col] {
	case '"':
		for i := col + 1; i < len(line); i++ {
			if line[i] == '\\' {
				i++
				continue
			}
			if line[i] == '"' {
				return i + 1, true
			}
		}
		return 0, false
	case '\'':
		for i := col + 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, true
			}
		}
		return 0, false
	case '|', '>', '&', '*', '!':
		return 0, false
	}
	rest := line[col:]
	end := len(rest)
	if i := strings.Index(rest, " #"); i >= 0 {
		end = i
	}
	rest = strings.TrimRight(rest[:end], " \t\r\n")
	return col + len(rest), true
}

// reencode edits the document with kyaml and writes it back whole, as
// kustomize edit does: comments and key order stay, spacing may not.
func reencode(data []byte, doc *yaml.RNode, pin Pin) ([]byte, error) {
	seq, err := doc.Pipe(yaml.LookupCreate(yaml.SequenceNode, "images"))
	if err != nil {
		return nil, err
	}
	seq.YNode().Style = 0
	var item *yaml.RNode
	for _, it := range seq.Content() {
		if entryOf(yaml.NewRNode(it)).Name == pin.Name {
			item = yaml.NewRNode(it)
		}
	}
	if item == nil {
		item = yaml.NewMapRNode(&map[string]string{"name": pin.Name})
		if err := seq.PipeE(yaml.Append(item.YNode())); err != nil {
			return nil, err
		}
	}
	item.YNode().Style = 0
	for _, f := range fields(pin) {
		if f[1] == "" {
			if _, err := item.Pipe(yaml.Clear(f[0])); err != nil {
				return nil, err
			}
			continue
		}
		if err := item.PipeE(yaml.SetField(f[0], yaml.NewStringRNode(f[1]))); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoderWithOptions(&b, &yaml.EncoderOptions{SeqIndent: yaml.SequenceIndentStyle(yaml.DeriveSeqIndentStyle(string(data)))})
	if err := enc.Encode(doc.Document()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
