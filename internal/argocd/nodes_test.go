package argocd

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	fakecorev1 "k8s.io/client-go/kubernetes/typed/core/v1/fake"
	clienttesting "k8s.io/client-go/testing"
)

// TestNodePlatforms: the platforms real nodes report, each once; kwok's
// simulated nodes are not counted.
func TestNodePlatforms(t *testing.T) {
	t.Parallel()
	node := func(name, arch string, fake bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: arch}}}
		if fake {
			n.Annotations = map[string]string{"kwok.x-k8s.io/node": "fake"}
		}
		return n
	}
	tracker := clienttesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())
	for _, n := range []*corev1.Node{node("a", "amd64", false), node("b", "amd64", false), node("c", "arm64", false), node("kwok-0", "s390x", true)} {
		if err := tracker.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	core := &fakecorev1.FakeCoreV1{Fake: &clienttesting.Fake{}}
	core.AddReactor("*", "*", clienttesting.ObjectReaction(tracker))
	got, err := NewWith(nil, typedCore{core}, "").NodePlatforms(context.Background())
	if err != nil || strings.Join(got, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("NodePlatforms = %v, %v", got, err)
	}
}
