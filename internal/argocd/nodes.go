package argocd

import (
	"context"
	"errors"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxNodes bounds how many nodes NodePlatforms reads.
const maxNodes = 500

// NodePlatforms lists the platforms (os/arch) the cluster's nodes report,
// each once: what an image must be built for to start there. Simulated
// nodes (kwok's) are left out: they start nothing.
func (c *Client) NodePlatforms(ctx context.Context) ([]string, error) {
	if c.core == nil {
		return nil, errors.New("no Kubernetes API client for nodes")
	}
	list, err := c.core.ListNodes(ctx, metav1.ListOptions{Limit: maxNodes})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range list.Items {
		if n.Annotations["kwok.x-k8s.io/node"] == "fake" {
			continue
		}
		info := n.Status.NodeInfo
		if info.OperatingSystem == "" || info.Architecture == "" {
			continue
		}
		p := Clean(info.OperatingSystem + "/" + info.Architecture)
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}
