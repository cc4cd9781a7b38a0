package argocd

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/scheme"
	fakecorev1 "k8s.io/client-go/kubernetes/typed/core/v1/fake"
	clienttesting "k8s.io/client-go/testing"
)

func container(name string, st corev1.ContainerState, last *corev1.ContainerStateTerminated, ready bool, restarts int32) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: name, Image: "127.0.0.1:5055/shop/web:20260506-071000-abcdef0@sha256:0123", State: st, Ready: ready, RestartCount: restarts}
	if last != nil {
		cs.LastTerminationState.Terminated = last
	}
	return cs
}

func pod(name string, age time.Duration, statuses ...corev1.ContainerStatus) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": "web"}, CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: statuses},
	}
}

// podWith is pod with the image its spec names for each container.
func podWith(name string, age time.Duration, image string, statuses ...corev1.ContainerStatus) *corev1.Pod {
	p := pod(name, age, statuses...)
	for _, cs := range statuses {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: cs.Name, Image: image})
	}
	return p
}

// TestFindings reads the container statuses the kubelet writes for each
// way a release fails (as measured on the test cluster's real node).
func TestFindings(t *testing.T) {
	t.Parallel()
	crashed := &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		reason string
		code   int32 // -1: none
		logs   logs
		events bool
	}{
		{"running and ready", pod("a", 0, container("web", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, nil, true, 0)), "", -1, noLogs, false},
		{"being created", pod("a", 0, container("web", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}, nil, false, 0)), "", -1, noLogs, false},
		{"tag does not pull", pod("a", 0, container("web", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "ImagePullBackOff", Message: `Back-off pulling image "127.0.0.1:5055/shop/web:nope": ErrImagePull: not found`}}, nil, false, 0)), "ImagePullBackOff", -1, noLogs, false},
		{"pull without a message", pod("a", 0, container("web", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}, nil, false, 0)), "ErrImagePull", -1, noLogs, true},
		{"crash loop", pod("a", 0, container("web", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, crashed, false, 3)), "CrashLoopBackOff", 1, previousLogs, false},
		{"exited, restarting", pod("a", 0, container("web", corev1.ContainerState{Terminated: crashed}, nil, false, 0)), "Error", 1, currentLogs, false},
		{"exited 0", pod("a", 0, container("web", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}, nil, false, 0)), "", -1, noLogs, false},
		{"not ready", pod("a", 0, container("web", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, nil, false, 0)), "NotReady", -1, noLogs, true},
	} {
		fs := findings(tc.pod)
		if tc.reason == "" {
			if len(fs) != 0 {
				t.Errorf("%s: %+v, want nothing", tc.name, fs)
			}
			continue
		}
		if len(fs) != 1 {
			t.Fatalf("%s: %d findings, want 1: %+v", tc.name, len(fs), fs)
		}
		f := fs[0]
		if f.Reason != tc.reason || f.logs != tc.logs || f.events != tc.events || (tc.code < 0) != (f.ExitCode == nil) || f.ExitCode != nil && *f.ExitCode != tc.code {
			t.Errorf("%s: %+v (logs %v, events %v)", tc.name, f.PodIssue, f.logs, f.events)
		}
	}
	unschedulable := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}}}}
	if fs := findings(unschedulable); len(fs) != 1 || fs[0].Reason != "Unschedulable" || !strings.Contains(fs[0].Message, "0/2 nodes") {
		t.Errorf("unschedulable: %+v", fs)
	}
}

// TestDiagnose: a Degraded Deployment's pods are read through the API, and
// the failure names each distinct reason once, with the exit code, the
// log, the probe's event and the platforms.
func TestDiagnose(t *testing.T) {
	t.Parallel()
	crashed := &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}
	objs := []runtime.Object{
		pod("web-crash-1", time.Second, container("web", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s restarting failed container"}}, crashed, false, 2)),
		pod("web-crash-2", 2*time.Second, container("web", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, crashed, false, 1)),
		pod("web-pull", 3*time.Second, container("sidecar", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff",
			Message: `Back-off pulling image "127.0.0.1:5056/shop/web:1": ErrImagePull: failed to resolve reference: 401 Unauthorized`}}, nil, false, 0)),
		pod("web-old", time.Hour, container("web", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, nil, true, 0)),
		// The previous ReplicaSet's pod, failing the same way with another
		// image.
		podWith("web-prev-1", 1500*time.Millisecond, "registry.example/web:1", container("web", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, crashed, false, 5)),
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "shop"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-crash-1"}, Type: "Warning", Reason: "BackOff", Message: "Back-off restarting failed container"},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64"}}},
	}
	tracker := clienttesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())
	for _, o := range objs {
		if err := tracker.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	core := &fakecorev1.FakeCoreV1{Fake: &clienttesting.Fake{}}
	core.AddReactor("*", "*", clienttesting.ObjectReaction(tracker))
	deploy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec":     map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}}},
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Progressing", "status": "False",
			"reason": "ProgressDeadlineExceeded", "message": `ReplicaSet "web-5d9c" has timed out progressing.`}}},
	}}
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), deploy)
	c := NewWith(dyn, typedCore{core}, "https://127.0.0.1:6443")

	// As Argo CD 3 writes it: no health for resources that have one of
	// their own, Missing for one that is not there.
	app := appOf(&unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "shop-staging", "namespace": "argocd"},
		"status": map[string]any{
			"sync":   map[string]any{"status": "Synced", "revision": "abc"},
			"health": map[string]any{"status": "Degraded"},
			"resources": []any{
				map[string]any{"kind": "Service", "namespace": "shop", "name": "web", "status": "Synced"},
				map[string]any{"kind": "Deployment", "namespace": "shop", "name": "gone", "status": "OutOfSync", "health": map[string]any{"status": "Missing"}},
				map[string]any{"kind": "Deployment", "namespace": "shop", "name": "web", "status": "Synced"},
				map[string]any{"kind": "StatefulSet", "namespace": "shop", "name": "db", "status": "Synced", "health": map[string]any{"status": "Degraded"}},
			},
		},
	}})
	apps := []App{app}
	c.diagnose(context.Background(), apps)
	r := apps[0].Resources
	if len(r) != 3 || r[0].Name != "gone" || r[1].Name != "db" || r[2].Name != "web" {
		t.Fatalf("resources: %+v", r)
	}
	web := r[2]
	byPod := map[string]PodIssue{}
	for _, p := range web.Pods {
		byPod[p.Pod] = p
	}
	if len(web.Pods) != 3 || byPod["web-crash-1"].Reason != "CrashLoopBackOff" || byPod["web-prev-1"].Image != "registry.example/web:1" || web.Pods[2].Reason != "ImagePullBackOff" {
		t.Fatalf("pods: %+v", web.Pods)
	}
	if !strings.Contains(web.Message, "ProgressDeadlineExceeded") {
		t.Errorf("the Deployment's own condition is not said: %q", web.Message)
	}
	// The fake API answers every log request with "fake logs".
	if p := byPod["web-crash-1"]; p.ExitCode == nil || *p.ExitCode != 1 || !p.PreviousLogs || len(p.Logs) != 1 || p.Logs[0] != "fake logs" {
		t.Errorf("the crash: %+v", p)
	}
	if r[0].PodsError != "" || r[0].Pods != nil {
		t.Errorf("a Missing workload has no pods to read: %+v", r[0])
	}
	if !strings.Contains(r[1].PodsError, `statefulsets.apps "db" not found`) {
		t.Errorf("a Degraded workload that cannot be read says so: %+v", r[1])
	}
	msg := (&WaitError{Why: "Argo CD reports degraded at abc:", Apps: apps}).Error()
	t.Log(msg)
	for _, want := range []string{
		"pod web-crash-1 container web: CrashLoopBackOff, exit code 1, restarted 2 times: back-off 10s restarting failed container",
		"the last line of the log of its previous run:\n        | fake logs",
		"pod web-pull container sidecar: ImagePullBackOff: image 127.0.0.1:5055/shop/web:20260506-071000-abcdef0@sha256:0123: Back-off pulling image",
		"401 Unauthorized",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure does not say %q:\n%s", want, msg)
		}
	}
	b, _ := json.Marshal(apps[0])
	if !strings.Contains(string(b), `"pods":[{"pod":"web-crash-1","container":"web","node":"node-1","reason":"CrashLoopBackOff"`) || !strings.Contains(string(b), `"exitCode":1`) || strings.Contains(string(b), "workloads") {
		t.Errorf("json: %s", b)
	}
}

// TestForeignPlatform: an exec format error in the log names the image's
// platforms beside the node's.
func TestForeignPlatform(t *testing.T) {
	t.Parallel()
	tracker := clienttesting.NewObjectTracker(scheme.Scheme, scheme.Codecs.UniversalDecoder())
	_ = tracker.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64"}}})
	core := &fakecorev1.FakeCoreV1{Fake: &clienttesting.Fake{}}
	core.AddReactor("*", "*", clienttesting.ObjectReaction(tracker))
	c := NewWith(nil, typedCore{core}, "")
	c.Platforms = func(_ context.Context, image string) ([]string, error) { return []string{"linux/s390x"}, nil }
	f := finding{PodIssue: PodIssue{Pod: "web-1", Container: "web", Node: "node-1", Reason: "Error", Image: "r/web:t@sha256:1", Message: "exec /app/app: exec format error"}}
	c.complete(context.Background(), "shop", &f, map[string]string{})
	if f.Reason != "exec format error" || f.NodePlatform != "linux/amd64" || len(f.ImagePlatforms) != 1 {
		t.Fatalf("%+v", f.PodIssue)
	}
	if s := f.String(); !strings.Contains(s, "image r/web:t@sha256:1 is for linux/s390x, node node-1 is linux/amd64") {
		t.Errorf("%s", s)
	}
}
