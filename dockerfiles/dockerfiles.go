// Package dockerfiles holds the Dockerfile templates shipit ships: Alpine,
// multi-stage, secrets through mounts, caches in cache mounts, no syntax
// line (BuildKit's built-in Dockerfile frontend serves them). shipit init
// writes them into projects.
package dockerfiles

import "embed"

// FS holds the templates, named <kind>.Dockerfile.
//
//go:embed *.Dockerfile
var FS embed.FS

// Template returns the template of a kind: rails, nginx, go or shipit.
func Template(kind string) ([]byte, error) {
	return FS.ReadFile(kind + ".Dockerfile")
}
