package build

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// forward copies one solve's status to the shared display and returns the
// solve's warnings. With several images, each vertex is named after its
// image and given a digest of its own, so identical steps of two images
// show as two lines, as in buildx.
func forward(dst chan<- *client.SolveStatus, src <-chan *client.SolveStatus, image string, prefix bool) []string {
	var warnings []string
	for s := range src {
		for _, w := range s.Warnings {
			warnings = append(warnings, warningLine(image, w))
		}
		if prefix {
			s = relabel(s, image)
		}
		dst <- s
	}
	return warnings
}

// warningLine renders a BuildKit warning (a lint finding, deprecated
// syntax) with the image and the Dockerfile line it concerns.
func warningLine(image string, w *client.VertexWarning) string {
	s := fmt.Sprintf("warning: image %s: %s", image, w.Short)
	if w.SourceInfo != nil && len(w.Range) > 0 && !strings.Contains(s, "(line ") {
		s += fmt.Sprintf(" (%s:%d)", w.SourceInfo.Filename, w.Range[0].Start.Line)
	}
	if w.URL != "" {
		s += " " + w.URL
	}
	return s
}

func relabel(s *client.SolveStatus, image string) *client.SolveStatus {
	re := func(d digest.Digest) digest.Digest {
		if d == "" {
			return d
		}
		return digest.FromString(image + "\x00" + d.String())
	}
	out := &client.SolveStatus{}
	for _, v := range s.Vertexes {
		nv := *v
		nv.Digest = re(v.Digest)
		nv.Name = "[" + image + "] " + v.Name
		nv.Inputs = make([]digest.Digest, len(v.Inputs))
		for i, in := range v.Inputs {
			nv.Inputs[i] = re(in)
		}
		out.Vertexes = append(out.Vertexes, &nv)
	}
	for _, st := range s.Statuses {
		ns := *st
		ns.Vertex = re(st.Vertex)
		out.Statuses = append(out.Statuses, &ns)
	}
	for _, l := range s.Logs {
		nl := *l
		nl.Vertex = re(l.Vertex)
		out.Logs = append(out.Logs, &nl)
	}
	for _, w := range s.Warnings {
		nw := *w
		nw.Vertex = re(w.Vertex)
		out.Warnings = append(out.Warnings, &nw)
	}
	return out
}
