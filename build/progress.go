package build

import (
	"fmt"
	"io"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// forward copies one solve's status to the shared display. With several
// images, each vertex is named after its image and given a digest of its
// own, so identical steps of two images show as two lines, as in buildx.
func forward(dst chan<- *client.SolveStatus, src <-chan *client.SolveStatus, image string, prefix bool) {
	for s := range src {
		if prefix {
			s = relabel(s, image)
		}
		dst <- s
	}
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

// printWarnings writes BuildKit's warnings (lint findings, deprecated
// syntax) after the display has finished.
func printWarnings(w io.Writer, warnings []client.VertexWarning) {
	for _, vw := range warnings {
		fmt.Fprintf(w, "warning: %s\n", vw.Short)
	}
}
