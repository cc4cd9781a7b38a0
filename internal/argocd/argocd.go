// Package argocd reads Argo CD Applications through the Kubernetes API
// (client-go's dynamic client; the argo-cd module is not linked) and waits
// for them to be Synced to a commit and Healthy; when a wait fails, it
// reads why from the pods of the workloads that are not healthy. Text
// from the cluster is cleaned (Clean) before anyone prints it.
package argocd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipit-dev/shipit/internal/progress"
)

// Applications is the resource Argo CD's Applications are.
var Applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// RefreshAnnotation asks Argo CD to compare an Application with git now,
// instead of at its next poll.
const RefreshAnnotation = "argocd.argoproj.io/refresh"

// Client reads and refreshes Applications.
type Client struct {
	dyn  dynamic.Interface
	core Core   // pods, their events and logs, nodes; nil: no pod-level reasons
	Host string // the API server, for messages
	// Later, when set, reports whether an Application's revision is a
	// later commit of the branch than the one waited for (another
	// process pushed on top of it): Argo CD syncs the branch's head, and
	// that head holds the commit waited for.
	Later func(ctx context.Context, revision, appRevision string) bool
	// Platforms, when set, lists the platforms of an image a pod runs
	// (repo:tag@digest), for a binary or a pull that does not match its
	// node.
	Platforms func(ctx context.Context, image string) ([]string, error)
}

// Connect makes a client with the standard kubeconfig loading rules:
// --kubeconfig (kubeconfig), else $KUBECONFIG, else ~/.kube/config, else
// the pod's service account when running in a cluster; --context picks a
// context.
func Connect(kubeconfig, kubeContext string) (*Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes API to read Argo CD from: %w (set KUBECONFIG or --kubeconfig, and --context)", err)
	}
	cfg.Timeout = 30 * time.Second
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	core, err := NewCore(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{dyn: dyn, core: core, Host: cfg.Host}, nil
}

// NewWith makes a client over a dynamic client and, when not nil, a core
// client for pod-level reasons (for tests).
func NewWith(dyn dynamic.Interface, core Core, host string) *Client {
	return &Client{dyn: dyn, core: core, Host: host}
}

// Resource is one resource an Application manages.
type Resource struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Sync      string `json:"sync,omitempty"`
	Health    string `json:"health,omitempty"`
	Message   string `json:"message,omitempty"`
	// Pods are why the workload's pods do not run or are not ready, read
	// when a wait fails; PodsError is what kept them from being read.
	Pods      []PodIssue `json:"pods,omitempty"`
	PodsError string     `json:"podsError,omitempty"`
}

// App is an Application's state.
type App struct {
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Sync      string     `json:"sync"`     // Synced, OutOfSync, Unknown
	Revision  string     `json:"revision"` // the commit it is synced to
	Health    string     `json:"health"`   // Healthy, Progressing, Degraded, ...
	Message   string     `json:"message,omitempty"`
	Operation string     `json:"operation,omitempty"` // the last sync operation's phase
	OpMessage string     `json:"operationMessage,omitempty"`
	Resources []Resource `json:"resources,omitempty"` // those not Healthy
	// workloads are the Deployments, StatefulSets, ... it manages, whose
	// pods a failed wait reads: Argo CD 3 keeps resources' health out of
	// the Application (in its cache), so their health is often unknown.
	workloads []Resource
	// ReconciledAt is when Argo CD last compared it with git.
	ReconciledAt time.Time `json:"reconciledAt,omitzero"`
}

func (a App) String() string {
	s := fmt.Sprintf("%s: %s at %.7s, %s", a.Name, OrUnknown(a.Sync), OrUnknown(a.Revision), OrUnknown(a.Health))
	if a.Operation != "" && a.Operation != "Succeeded" {
		s += ", sync " + a.Operation
	}
	return s
}

// OrUnknown is a state as shown: "unknown" when Argo CD has none yet.
func OrUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Get reads an Application.
func (c *Client) Get(ctx context.Context, namespace, name string) (App, error) {
	u, err := c.dyn.Resource(Applications).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return App{Name: name, Namespace: namespace}, c.explain(err, namespace, name)
	}
	return appOf(u), nil
}

// Refresh asks Argo CD to compare the Application with git now.
func (c *Client) Refresh(ctx context.Context, namespace, name string) error {
	patch := []byte(`{"metadata":{"annotations":{"` + RefreshAnnotation + `":"normal"}}}`)
	_, err := c.dyn.Resource(Applications).Namespace(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return c.explain(err, namespace, name)
}

// explain turns API errors into what to do.
func (c *Client) explain(err error, namespace, name string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("Argo CD Application %s not found in namespace %s at %s: check argocd.applications and argocd.namespace in shipit.yaml", name, namespace, c.Host) //nolint:staticcheck // a proper noun
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return fmt.Errorf("not allowed to read Argo CD Application %s in namespace %s at %s: grant get and patch on applications.argoproj.io (%w)", name, namespace, c.Host, err)
	}
	return fmt.Errorf("reading Argo CD Application %s/%s at %s: %w", namespace, name, c.Host, err)
}

// appOf reads an Application's status; every string is cleaned, as
// whoever can write the status writes them.
func appOf(u *unstructured.Unstructured) App {
	s := func(path ...string) string {
		v, _, _ := unstructured.NestedString(u.Object, path...)
		return Clean(v)
	}
	str := func(m map[string]any, key string) string {
		v, _ := m[key].(string)
		return Clean(v)
	}
	a := App{
		Name: Clean(u.GetName()), Namespace: Clean(u.GetNamespace()),
		Sync: s("status", "sync", "status"), Revision: s("status", "sync", "revision"),
		Health: s("status", "health", "status"), Message: s("status", "health", "message"),
		Operation: s("status", "operationState", "phase"), OpMessage: s("status", "operationState", "message"),
	}
	if t, err := time.Parse(time.RFC3339, s("status", "reconciledAt")); err == nil {
		a.ReconciledAt = t
	}
	res, _, _ := unstructured.NestedSlice(u.Object, "status", "resources")
	for _, r := range res {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		rs := Resource{Kind: str(m, "kind"), Namespace: str(m, "namespace"), Name: str(m, "name"), Sync: str(m, "status")}
		if h, ok := m["health"].(map[string]any); ok {
			rs.Health, rs.Message = str(h, "status"), str(h, "message")
		}
		if rs.Health != "" && rs.Health != "Healthy" || rs.Sync == "OutOfSync" {
			a.Resources = append(a.Resources, rs)
		}
		if _, ok := workloads[rs.Kind]; ok && rs.Namespace != "" && rs.Health != "Healthy" && rs.Health != "Missing" && len(a.workloads) < maxWorkloads {
			a.workloads = append(a.workloads, rs)
		}
	}
	return a
}

// WaitError is a wait that ended without every Application Synced to the
// commit and Healthy.
type WaitError struct {
	Why  string // degraded, sync failed, deadline
	Apps []App
}

func (e *WaitError) Error() string {
	var b strings.Builder
	b.WriteString(e.Why)
	for _, a := range e.Apps {
		fmt.Fprintf(&b, "\n  %s", a)
		if a.Message != "" {
			fmt.Fprintf(&b, ": %s", a.Message)
		}
		if a.OpMessage != "" && a.Operation != "Succeeded" {
			fmt.Fprintf(&b, " (sync: %s)", a.OpMessage)
		}
		for _, r := range a.Resources {
			fmt.Fprintf(&b, "\n    %s %s/%s", r.Kind, r.Namespace, r.Name)
			if r.Health != "" {
				fmt.Fprintf(&b, ": %s", r.Health)
			}
			if r.Message != "" {
				fmt.Fprintf(&b, ": %s", r.Message)
			}
			for _, p := range r.Pods {
				fmt.Fprintf(&b, "\n      %s", p)
				if len(p.Logs) > 0 {
					which := "its log"
					if p.PreviousLogs {
						which = "the log of its previous run"
					}
					n := fmt.Sprintf("%d lines", len(p.Logs))
					if len(p.Logs) == 1 {
						n = "line"
					}
					fmt.Fprintf(&b, "\n        the last %s of %s:", n, which)
					for _, l := range p.Logs {
						fmt.Fprintf(&b, "\n        | %s", l)
					}
				}
			}
			if r.PodsError != "" {
				fmt.Fprintf(&b, "\n      (no pod-level reason: %s)", r.PodsError)
			}
		}
	}
	return b.String()
}

// ErrDeadline is a wait that ran out of time.
var ErrDeadline = errors.New("the deadline passed")

// Wait refreshes the Applications and waits until each is Synced to
// revision and Healthy, reporting each change of state. It fails at once
// when one is Degraded at that revision or its sync operation failed, and
// when the deadline passes. The states it returns are the last seen.
func (c *Client) Wait(ctx context.Context, namespace string, apps []string, revision string, deadline time.Duration, events progress.Sink) ([]App, error) {
	// Only what Argo CD compared after the refresh counts: a state from
	// before it can name the commit while the cluster still runs another.
	since := time.Now().Truncate(time.Second)
	for _, a := range apps {
		if err := c.Refresh(ctx, namespace, a); err != nil {
			return nil, err
		}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	last := map[string]string{}
	states := make([]App, len(apps))
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	refreshed := time.Now()
	for {
		done := 0
		var failed []int
		why := ""
		for i, name := range apps {
			a, err := c.Get(ctx, namespace, name)
			if err != nil {
				if parent.Err() != nil {
					return states, parent.Err()
				}
				if ctx.Err() != nil {
					return states, &WaitError{Why: fmt.Sprintf("%v: no answer from the Kubernetes API within %v:", ErrDeadline, deadline), Apps: states}
				}
				return states, err
			}
			states[i] = a
			if s := a.String(); s != last[name] {
				last[name] = s
				progress.Infof(events, "argocd: %s", s)
			}
			at := a.Revision == revision || (a.Revision != "" && c.Later != nil && c.Later(ctx, revision, a.Revision))
			switch v, w := judge(a, revision, at, since); v {
			case verdictDone:
				done++
			case verdictFailed:
				failed, why = append(failed, i), w
			}
		}
		if done == len(apps) {
			return states, nil
		}
		if len(failed) > 0 {
			c.diagnose(parent, states)
			we := &WaitError{Why: fmt.Sprintf("Argo CD reports %s at %.7s:", why, revision)}
			for _, i := range failed {
				we.Apps = append(we.Apps, states[i])
			}
			return states, we
		}
		// A refresh can be taken before the push is visible to Argo CD's
		// repo server; ask again now and then.
		if time.Since(refreshed) > 10*time.Second {
			refreshed = time.Now()
			for _, a := range apps {
				_ = c.Refresh(ctx, namespace, a)
			}
		}
		select {
		case <-ctx.Done():
			if parent.Err() == nil {
				sort.Slice(states, func(i, j int) bool { return states[i].Name < states[j].Name })
				c.diagnose(parent, states)
				return states, &WaitError{Why: fmt.Sprintf("%v: not every Application is Synced to %.7s and Healthy after %v:", ErrDeadline, revision, deadline), Apps: states}
			}
			return states, ctx.Err()
		case <-tick.C:
		}
	}
}

type verdict int

const (
	verdictWaiting verdict = iota
	verdictDone
	verdictFailed
)

// judge says where one Application stands in a wait for revision (at: its
// revision is that commit, or a later one of the branch), from a
// state Argo CD reconciled at or after since: done (Synced at the
// revision, Healthy, no sync running), failed (Degraded once the revision
// is applied, or its sync failed), or still waiting.
func judge(a App, revision string, atRevision bool, since time.Time) (verdict, string) {
	fresh := !a.ReconciledAt.Before(since)
	switch {
	case atRevision && fresh && a.Sync == "Synced" && a.Health == "Healthy" && a.Operation != "Running":
		return verdictDone, ""
	case atRevision && fresh && a.Health == "Degraded" && a.Sync == "Synced" && a.Operation != "Running":
		// Degraded counts once the commit is applied: until then the health
		// is the previous state's.
		return verdictFailed, "degraded"
	case (a.Operation == "Failed" || a.Operation == "Error") && (atRevision || strings.Contains(a.OpMessage, revision)):
		return verdictFailed, "sync failed"
	}
	return verdictWaiting, ""
}
