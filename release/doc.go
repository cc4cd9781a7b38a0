// Package release will push built images and bump kustomize pins; see the
// issue "shipit release". It depends on build's record, never the reverse.
package release
