package build

import (
	"fmt"
	"strings"
	"testing"
)

func nodes(names ...string) []*Node {
	var out []*Node
	for _, n := range names {
		out = append(out, &Node{Name: n, Native: []string{"linux/amd64"}, Emulated: []string{"linux/arm64"}})
	}
	return out
}

func assignment(t *testing.T, ns []*Node, images int) map[string]string {
	t.Helper()
	var reqs []Request
	for i := range images {
		reqs = append(reqs, Request{Name: fmt.Sprintf("image-%03d", i), Platforms: []string{"linux/amd64"}})
	}
	jobs, _, err := Route(reqs, ns)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, j := range jobs {
		out[j.req.Name] = j.node.Name
	}
	return out
}

// TestRouteSticky: the same images land on the same nodes every time, in
// any node order; removing a node moves only its images, and adding one
// moves about 1/N of them, all to it.
func TestRouteSticky(t *testing.T) {
	t.Parallel()
	const n = 400
	a := assignment(t, nodes("n1", "n2", "n3", "n4"), n)
	if b := assignment(t, nodes("n4", "n2", "n1", "n3"), n); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("routing depends on the order of the nodes")
	}
	per := map[string]int{}
	for _, node := range a {
		per[node]++
	}
	for node, c := range per {
		if c < n/4-n/10 || c > n/4+n/10 {
			t.Errorf("node %s has %d of %d images: the hash does not spread them", node, c, n)
		}
	}
	// Remove n3: only n3's images move.
	without := assignment(t, nodes("n1", "n2", "n4"), n)
	for img, node := range a {
		if node != "n3" && without[img] != node {
			t.Errorf("%s moved from %s to %s when n3 went", img, node, without[img])
		}
	}
	// Add n5: what moves goes to n5, about a fifth.
	with := assignment(t, nodes("n1", "n2", "n3", "n4", "n5"), n)
	moved := 0
	for img, node := range a {
		if with[img] != node {
			moved++
			if with[img] != "n5" {
				t.Errorf("%s moved from %s to %s, not to the new node", img, node, with[img])
			}
		}
	}
	if moved < n/5-n/10 || moved > n/5+n/10 {
		t.Errorf("adding a fifth node moved %d of %d images", moved, n)
	}
}

// TestRoutePlatforms: each platform goes to a node that declares it; one
// that none declares goes to one that emulates it, with a warning; an image
// on one node is one solve, on two it is two parts.
func TestRoutePlatforms(t *testing.T) {
	t.Parallel()
	amd := &Node{Name: "amd", Native: []string{"linux/amd64"}, Emulated: []string{"linux/arm64"}}
	arm := &Node{Name: "arm", Native: []string{"linux/arm64"}}
	jobs, warnings, err := Route([]Request{{Name: "web", Platforms: []string{"linux/amd64", "linux/arm64"}}}, []*Node{amd, arm})
	if err != nil || len(warnings) != 0 || len(jobs) != 2 {
		t.Fatalf("jobs %v, warnings %v, err %v", jobs, warnings, err)
	}
	for _, j := range jobs {
		if !j.part || len(j.req.Platforms) != 1 || !strings.Contains(j.req.Platforms[0], j.node.Name) {
			t.Errorf("%s built %v on %s", j.req.Name, j.req.Platforms, j.node.Name)
		}
	}
	// Without the arm node: arm64 under emulation on amd, one solve.
	jobs, warnings, err = Route([]Request{{Name: "web", Platforms: []string{"linux/amd64", "linux/arm64"}}}, []*Node{amd, {Name: "amd2", Native: []string{"linux/amd64"}}})
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "emulation on amd") {
		t.Fatalf("warnings %v, err %v", warnings, err)
	}
	if len(jobs) == 1 && (jobs[0].part || len(jobs[0].req.Platforms) != 2) {
		t.Errorf("one node for both platforms should be one solve: %+v", jobs[0])
	}
	// Nobody builds s390x; an image without platforms is refused.
	if _, _, err := Route([]Request{{Name: "web", Platforms: []string{"linux/s390x"}}}, []*Node{amd, arm}); err == nil || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("s390x: %v", err)
	}
	if _, _, err := Route([]Request{{Name: "web"}}, []*Node{amd, arm}); err == nil || !strings.Contains(err.Error(), "platforms") {
		t.Errorf("no platforms: %v", err)
	}
}
