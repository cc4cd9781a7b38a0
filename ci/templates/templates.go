// Package templates holds the CI configurations shipit init writes for
// users: GitHub Actions, CircleCI and GitLab CI.
package templates

import "embed"

// FS holds github-actions.yml, github-preview.yml, circleci.yml and
// gitlab-ci.yml: shipit init --ci fills them in (internal/scaffold).
//
//go:embed *.yml
var FS embed.FS
