// Package safeyaml reads YAML from files shipit does not trust (shipit.yaml,
// files in a GitOps repository) with bounds checked before anything walks
// the document: a size cap, and a budget on the nodes the document expands
// to when its aliases are followed. An alias bomb (a few kilobytes that
// expand to billions of nodes) is refused at once, instead of after
// seconds and gigabytes.
package safeyaml

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/shipit-dev/shipit/internal/confine"
)

// Limits of what shipit reads.
const (
	// MaxFileSize caps a document, as confine caps every file.
	MaxFileSize = confine.MaxFileSize
	// MaxNodes caps the nodes a document expands to, aliases followed.
	MaxNodes = 200_000
)

// ErrTooLarge is a file or document past the limits.
var ErrTooLarge = errors.New("too large")

// Parse parses data into a node tree after checking its size, then checks
// the tree's expanded size.
func Parse(data []byte) (*yaml.Node, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d shipit reads", ErrTooLarge, len(data), MaxFileSize)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if err := CheckExpansion(&doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// CheckExpansion counts the nodes a tree expands to when every alias is
// replaced by what it names, without expanding anything: each node's size
// is computed once.
func CheckExpansion(n *yaml.Node) error {
	sizes := map[*yaml.Node]int{}
	var size func(n *yaml.Node, depth int) (int, error)
	size = func(n *yaml.Node, depth int) (int, error) {
		if depth > 1000 {
			return 0, fmt.Errorf("%w: nested more than 1000 levels deep", ErrTooLarge)
		}
		if s, ok := sizes[n]; ok {
			if s < 0 {
				return 0, errors.New("an alias refers to a node that contains it")
			}
			return s, nil
		}
		sizes[n] = -1 // in progress: a cycle shows as -1
		total := 1
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			s, err := size(n.Alias, depth+1)
			if err != nil {
				return 0, err
			}
			total += s
		}
		for _, c := range n.Content {
			s, err := size(c, depth+1)
			if err != nil {
				return 0, err
			}
			total += s
			if total > MaxNodes {
				return 0, fmt.Errorf("%w: its aliases expand it to more than %d nodes", ErrTooLarge, MaxNodes)
			}
		}
		sizes[n] = total
		return total, nil
	}
	_, err := size(n, 0)
	return err
}
