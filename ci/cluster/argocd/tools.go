//go:build tools

// Package tools pins the Argo CD command ci/cluster.sh builds.
package tools

import _ "github.com/argoproj/argo-cd/v3/cmd"
