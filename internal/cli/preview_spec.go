package cli

import (
	"slices"

	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/release"
	"github.com/shipit-dev/shipit/release/preview"
)

// previewSpec is deploy.previews for one preview: its namespace and host
// from their templates, and what its namespace must not be (Argo CD's
// namespaces, every environment's).
func (d *deps) previewSpec(p *config.Previews, dep release.Deploy, name string) (preview.Spec, error) {
	spec := preview.Spec{Dir: p.Dir, From: dep.Overlays, Max: p.Max, Patches: p.Patches, Reserved: []string{"argocd"}}
	var err error
	if spec.Namespace, err = previewValue(p.Namespace, "namespace", name); err != nil {
		return spec, err
	}
	if p.Host != "" {
		if spec.Host, err = previewValue(p.Host, "host", name); err != nil {
			return spec, err
		}
	}
	if p.ArgoCD != nil && p.ArgoCD.Namespace != "" {
		spec.Reserved = append(spec.Reserved, p.ArgoCD.Namespace)
	}
	for _, e := range d.cfg.Envs() {
		if ns := e.ArgoCD.Namespace; ns != "" && !slices.Contains(spec.Reserved, ns) {
			spec.Reserved = append(spec.Reserved, ns)
		}
		spec.Environments = append(spec.Environments, e.Overlays...)
	}
	return spec, nil
}
