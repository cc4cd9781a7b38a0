package argocd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// typedCore is client-go's typed core client (its fake, in tests) as a Core.
type typedCore struct{ c corev1client.CoreV1Interface }

func (t typedCore) ListNodes(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error) {
	return t.c.Nodes().List(ctx, opts)
}

func (t typedCore) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	return t.c.Nodes().Get(ctx, name, metav1.GetOptions{})
}

func (t typedCore) ListPods(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.PodList, error) {
	return t.c.Pods(ns).List(ctx, opts)
}

func (t typedCore) ListEvents(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.EventList, error) {
	return t.c.Events(ns).List(ctx, opts)
}

func (t typedCore) Logs(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return t.c.Pods(ns).GetLogs(pod, opts).Stream(ctx)
}

// TestRESTCore: the core/v1 REST client asks the API server's paths with
// the selectors, limits and log options, decodes what it answers, and
// turns a Status into the API's error.
func TestRESTCore(t *testing.T) {
	t.Parallel()
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/prefix/api/v1/nodes":
			_ = json.NewEncoder(w).Encode(corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"},
				Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "arm64"}}}}})
		case "/prefix/api/v1/namespaces/shop/pods":
			_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
				Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop"}}}})
		case "/prefix/api/v1/namespaces/shop/pods/web-1/log":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "line 1\nline 2\n")
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404, Message: `nodes "gone" not found`})
		}
	}))
	defer srv.Close()
	core, err := NewCore(&rest.Config{Host: srv.URL + "/prefix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := (&Client{core: core}).NodePlatforms(ctx)
	if err != nil || strings.Join(got, ",") != "linux/arm64" {
		t.Errorf("NodePlatforms = %v, %v", got, err)
	}
	pods, err := core.ListPods(ctx, "shop", metav1.ListOptions{LabelSelector: "app=web", Limit: 20})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Name != "web-1" {
		t.Errorf("ListPods = %+v, %v", pods, err)
	}
	lines, bytes := int64(5), int64(4096)
	rc, err := core.Logs(ctx, "shop", "web-1", &corev1.PodLogOptions{Container: "web", Previous: true, TailLines: &lines, LimitBytes: &bytes})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	if string(b) != "line 1\nline 2\n" {
		t.Errorf("log %q", b)
	}
	if _, err := core.GetNode(ctx, "gone"); err == nil || !strings.Contains(err.Error(), `nodes "gone" not found`) {
		t.Errorf("GetNode of a missing node: %v", err)
	}
	want := []string{
		"/prefix/api/v1/nodes?limit=500",
		"/prefix/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb&limit=20",
		"/prefix/api/v1/namespaces/shop/pods/web-1/log?container=web&limitBytes=4096&previous=true&tailLines=5",
		"/prefix/api/v1/nodes/gone?",
	}
	if strings.Join(asked, "\n") != strings.Join(want, "\n") {
		t.Errorf("asked:\n%s\nwant:\n%s", strings.Join(asked, "\n"), strings.Join(want, "\n"))
	}
}
