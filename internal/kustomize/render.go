package kustomize

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// FindFile returns the kustomization file of an overlay directory.
func FindFile(fs filesys.FileSystem, dir string) (string, error) {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		p := filepath.Join(dir, n)
		if fs.Exists(p) && !fs.IsDir(p) {
			return p, nil
		}
	}
	if !fs.IsDir(dir) {
		return "", fmt.Errorf("overlay %s: no such directory", dir)
	}
	return "", fmt.Errorf("overlay %s: no kustomization.yaml in it", dir)
}

// overlayFS serves edited files in place of the ones on the underlying
// filesystem, so that an edit is rendered before anything is written.
type overlayFS struct {
	filesys.FileSystem
	files map[string][]byte
}

func (o overlayFS) ReadFile(path string) ([]byte, error) {
	if b, ok := o.files[filepath.Clean(path)]; ok {
		return b, nil
	}
	return o.FileSystem.ReadFile(path)
}

// Container is one container of a rendered workload.
type Container struct {
	Resource string // Kind/name
	Name     string
	Image    string
}

// Ingress is an Ingress of a rendered overlay, and its hosts.
type Ingress struct {
	Name  string
	Group string   // its API group: networking.k8s.io
	Rules []string // each rule's host ("" for none)
	TLS   [][]string
}

// Output is what an overlay renders to, as far as shipit looks.
type Output struct {
	Containers []Container
	Ingresses  []Ingress
	Namespaces []string // the namespaces of its resources, each once
	// NamespaceObjects are the Namespace resources it declares.
	NamespaceObjects []string
	// ClusterScoped are its other cluster-scoped resources (ClusterRole,
	// CustomResourceDefinition, a custom resource whose definition in the
	// output says scope: Cluster...).
	ClusterScoped []Object
}

// Object names a resource of a rendered overlay.
type Object struct {
	APIVersion, Kind, Name string
}

// String is Kind/name.
func (o Object) String() string { return o.Kind + "/" + o.Name }

// Render builds an overlay with the kustomize library, with edited files
// served in place of the ones on fs, and returns every container in it.
func Render(fs filesys.FileSystem, dir string, edited map[string][]byte) ([]Container, error) {
	out, err := RenderAll(fs, dir, edited)
	if err != nil {
		return nil, err
	}
	return out.Containers, nil
}

// RenderAll is Render, with the Ingresses and namespaces too.
func RenderAll(fs filesys.FileSystem, dir string, edited map[string][]byte) (*Output, error) {
	files := map[string][]byte{}
	for p, b := range edited {
		files[filepath.Clean(p)] = b
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(overlayFS{fs, files}, dir)
	if err != nil {
		return nil, err
	}
	out := &Output{}
	clusterKinds := clusterScopedKinds(rm.Resources())
	for _, r := range rm.Resources() {
		id := r.GetKind() + "/" + r.GetName()
		walkContainers(&r.RNode, func(n *yaml.RNode) {
			name, _ := n.GetString("name")
			image, _ := n.GetString("image")
			out.Containers = append(out.Containers, Container{Resource: id, Name: name, Image: image})
		})
		if ns := r.GetNamespace(); ns != "" && !slices.Contains(out.Namespaces, ns) {
			out.Namespaces = append(out.Namespaces, ns)
		}
		if r.GetKind() == "Namespace" {
			out.NamespaceObjects = append(out.NamespaceObjects, r.GetName())
		} else if clusterScoped(r.GetApiVersion(), r.GetKind(), clusterKinds) {
			out.ClusterScoped = append(out.ClusterScoped, Object{APIVersion: r.GetApiVersion(), Kind: r.GetKind(), Name: r.GetName()})
		}
		if r.GetKind() != "Ingress" {
			continue
		}
		ing := Ingress{Name: r.GetName(), Group: strings.Split(r.GetApiVersion(), "/")[0]}
		rules, _ := r.Pipe(yaml.Lookup("spec", "rules"))
		for _, e := range elements(rules) {
			h, _ := e.GetString("host")
			ing.Rules = append(ing.Rules, h)
		}
		tls, _ := r.Pipe(yaml.Lookup("spec", "tls"))
		for _, e := range elements(tls) {
			var hosts []string
			hn, _ := e.Pipe(yaml.Lookup("hosts"))
			for _, h := range elements(hn) {
				hosts = append(hosts, h.YNode().Value)
			}
			ing.TLS = append(ing.TLS, hosts)
		}
		out.Ingresses = append(out.Ingresses, ing)
	}
	return out, nil
}

// clusterScopedKinds are the group/kind of the custom resources whose
// definitions among the resources say scope: Cluster.
func clusterScopedKinds(rs []*resource.Resource) map[string]bool {
	out := map[string]bool{}
	for _, r := range rs {
		if r.GetKind() != "CustomResourceDefinition" {
			continue
		}
		scope, _ := r.GetString("spec.scope")
		group, _ := r.GetString("spec.group")
		kind, _ := r.GetString("spec.names.kind")
		if scope == "Cluster" && kind != "" {
			out[group+"/"+kind] = true
		}
	}
	return out
}

// clusterScoped reports whether a kind is cluster-scoped: by the
// Kubernetes schema kustomize knows, or by a definition in the output.
func clusterScoped(apiVersion, kind string, defined map[string]bool) bool {
	group := ""
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		group = g
	}
	return defined[group+"/"+kind] || openapi.IsCertainlyClusterScoped(yaml.TypeMeta{APIVersion: apiVersion, Kind: kind})
}

func elements(n *yaml.RNode) []*yaml.RNode {
	if n == nil || n.YNode().Kind != yaml.SequenceNode {
		return nil
	}
	out, _ := n.Elements()
	return out
}

// walkContainers calls fn for every container in any kind of resource:
// the elements of containers, initContainers and ephemeralContainers lists.
func walkContainers(n *yaml.RNode, fn func(*yaml.RNode)) {
	y := n.YNode()
	switch y.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i].Value, y.Content[i+1]
			if (k == "containers" || k == "initContainers" || k == "ephemeralContainers") && v.Kind == yaml.SequenceNode {
				for _, c := range v.Content {
					if c.Kind == yaml.MappingNode {
						fn(yaml.NewRNode(c))
					}
				}
				continue
			}
			walkContainers(yaml.NewRNode(v), fn)
		}
	case yaml.SequenceNode:
		for _, c := range y.Content {
			walkContainers(yaml.NewRNode(c), fn)
		}
	}
}

// Repository returns an image reference without its tag and digest.
func Repository(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// Ref is the reference kustomize renders for a pin.
func (p Pin) Ref() string {
	s := p.NewName
	if s == "" {
		s = p.Name
	}
	if p.NewTag != "" {
		s += ":" + p.NewTag
	}
	if p.Digest != "" {
		s += "@" + p.Digest
	}
	return s
}

// StaleError is a container that still runs another reference of a pinned
// image after the edit: something in the overlay (a patch, a generator)
// sets its image in a way the images list does not reach.
type StaleError struct {
	Overlay   string
	Container Container
	Want      string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("overlay %s: %s container %q would still run %s, not %s: kustomize's images list does not reach it (is its image set by a patch?)",
		e.Overlay, e.Container.Resource, e.Container.Name, e.Container.Image, e.Want)
}

// CheckPins checks the rendered containers against the pins: every
// container whose repository is one of a pin's names must run exactly the
// pin's reference. It returns, per pin name, the workloads that run it.
// aliases lists, per pin name, other repositories that meant the image
// before the edit (the old newName).
func CheckPins(overlay string, cs []Container, pins []Pin, aliases map[string][]string) (map[string][]string, error) {
	uses := map[string][]string{}
	for _, p := range pins {
		names := map[string]bool{p.Name: true, p.NewName: true}
		for _, a := range aliases[p.Name] {
			names[a] = true
		}
		want := p.Ref()
		for _, c := range cs {
			if !names[Repository(c.Image)] {
				continue
			}
			if c.Image != want {
				if other := pinWithRef(pins, c.Image); other != "" {
					uses[other] = append(uses[other], c.Resource+"/"+c.Name)
					continue // another entry of the same repository: a follower
				}
				return nil, &StaleError{Overlay: overlay, Container: c, Want: want}
			}
			uses[p.Name] = append(uses[p.Name], c.Resource+"/"+c.Name)
		}
	}
	for n := range uses {
		sort.Strings(uses[n])
		uses[n] = slices.Compact(uses[n])
	}
	return uses, nil
}

// pinWithRef is the name of the pin whose reference is ref, if any.
func pinWithRef(pins []Pin, ref string) string {
	for _, p := range pins {
		if p.Ref() == ref {
			return p.Name
		}
	}
	return ""
}

// DiskFS is the filesystem of this machine.
func DiskFS() filesys.FileSystem { return filesys.MakeFsOnDisk() }
