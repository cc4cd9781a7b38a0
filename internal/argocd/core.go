package argocd

import (
	"context"
	"io"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// Core is the part of the Kubernetes core API (v1) a diagnosis and the
// platform check read: nodes, pods, their events and logs.
//
// It is not client-go's typed clientset: that registers every API group
// of Kubernetes in its scheme when the program starts, and every shipit
// command, shipit version too, paid for it (about 6 ms). The real one is
// a REST client of core/v1 alone (NewCore).
type Core interface {
	ListNodes(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error)
	GetNode(ctx context.Context, name string) (*corev1.Node, error)
	ListPods(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.PodList, error)
	ListEvents(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.EventList, error)
	// Logs streams a container's log as PodLogOptions say.
	Logs(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
}

// NewCore makes the core/v1 client of a REST configuration.
func NewCore(cfg *rest.Config) (Core, error) {
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return restCore{rc}, nil
}

type restCore struct{ rc *rest.RESTClient }

// list asks for one page of a resource, as opts say.
func (c restCore) list(ns, resource string, opts metav1.ListOptions) *rest.Request {
	r := c.rc.Get().Namespace(ns).Resource(resource)
	if opts.LabelSelector != "" {
		r = r.Param("labelSelector", opts.LabelSelector)
	}
	if opts.FieldSelector != "" {
		r = r.Param("fieldSelector", opts.FieldSelector)
	}
	if opts.Limit > 0 {
		r = r.Param("limit", strconv.FormatInt(opts.Limit, 10))
	}
	return r
}

func (c restCore) ListNodes(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error) {
	out := &corev1.NodeList{}
	return out, c.list("", "nodes", opts).Do(ctx).Into(out)
}

func (c restCore) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	out := &corev1.Node{}
	return out, c.rc.Get().Resource("nodes").Name(name).Do(ctx).Into(out)
}

func (c restCore) ListPods(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	return out, c.list(ns, "pods", opts).Do(ctx).Into(out)
}

func (c restCore) ListEvents(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.EventList, error) {
	out := &corev1.EventList{}
	return out, c.list(ns, "events", opts).Do(ctx).Into(out)
}

func (c restCore) Logs(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	r := c.rc.Get().Namespace(ns).Resource("pods").Name(pod).SubResource("log")
	if opts.Container != "" {
		r = r.Param("container", opts.Container)
	}
	if opts.Previous {
		r = r.Param("previous", "true")
	}
	if opts.TailLines != nil {
		r = r.Param("tailLines", strconv.FormatInt(*opts.TailLines, 10))
	}
	if opts.LimitBytes != nil {
		r = r.Param("limitBytes", strconv.FormatInt(*opts.LimitBytes, 10))
	}
	return r.Stream(ctx)
}
