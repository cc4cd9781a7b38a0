// Package templates holds the CI configurations shipit init writes for
// users: GitHub Actions, CircleCI and GitLab CI.
package templates

import "embed"

// FS holds github-actions.yml, circleci.yml and gitlab-ci.yml.
//
//go:embed *.yml
var FS embed.FS
