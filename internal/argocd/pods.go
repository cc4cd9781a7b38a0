package argocd

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Argo CD's Application status stops at the Deployment: "Degraded,
// progress deadline exceeded". Why its pods do not run is in the pods'
// container statuses, their events and their logs, read here with the
// same kubeconfig. Every read is bounded.
const (
	maxWorkloads = 20               // workloads read per Application
	maxPods      = 20               // pods listed per workload
	maxIssues    = 3                // pods reported per workload
	maxEvents    = 100              // events listed per pod
	logLines     = 10               // lines of a container's log shown
	logBytes     = 8 << 10          // bytes of a container's log read
	maxLine      = 300              // runes of one log line shown
	maxMessage   = 1000             // runes of a message shown (a registry's error names the image thrice)
	diagnoseFor  = 20 * time.Second // for everything a failed wait reads
)

// workloads are the kinds whose pods a failed wait reads.
var workloads = map[string]schema.GroupVersionResource{
	"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"ReplicaSet":  {Group: "apps", Version: "v1", Resource: "replicasets"},
	"Job":         {Group: "batch", Version: "v1", Resource: "jobs"},
}

// PodIssue is why one container of a workload's pod is not running or not
// ready, as the kubelet reports it.
type PodIssue struct {
	Pod       string `json:"pod"`
	Container string `json:"container,omitempty"`
	Node      string `json:"node,omitempty"`
	// Reason is the kubelet's: ImagePullBackOff, ErrImagePull,
	// CrashLoopBackOff, Error, OOMKilled, Unschedulable, ...; or "exec
	// format error" (the binary is for another platform) and "NotReady"
	// (running, its readiness probe failing).
	Reason   string   `json:"reason"`
	Message  string   `json:"message,omitempty"`
	Image    string   `json:"image,omitempty"`
	ExitCode *int32   `json:"exitCode,omitempty"`
	Restarts int32    `json:"restarts,omitempty"`
	Logs     []string `json:"logs,omitempty"` // the last lines of the container's log
	// PreviousLogs says Logs are those of the container's previous run
	// (the one that exited; the kubelet is restarting it).
	PreviousLogs bool `json:"previousLogs,omitempty"`
	// ImagePlatforms and NodePlatform, when the binary or the pull did not
	// match the node.
	ImagePlatforms []string `json:"imagePlatforms,omitempty"`
	NodePlatform   string   `json:"nodePlatform,omitempty"`
}

func (p PodIssue) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s", p.Pod)
	if p.Container != "" {
		fmt.Fprintf(&b, " container %s", p.Container)
	}
	fmt.Fprintf(&b, ": %s", p.Reason)
	if p.ExitCode != nil {
		fmt.Fprintf(&b, ", exit code %d", *p.ExitCode)
	}
	switch {
	case p.Restarts == 1:
		b.WriteString(", restarted once")
	case p.Restarts > 1:
		fmt.Fprintf(&b, ", restarted %d times", p.Restarts)
	}
	if p.NodePlatform != "" {
		img := "unknown"
		if len(p.ImagePlatforms) > 0 {
			img = strings.Join(p.ImagePlatforms, ", ")
		}
		fmt.Fprintf(&b, ": image %s is for %s, node %s is %s", p.Image, img, p.Node, p.NodePlatform)
	} else if p.Image != "" && pulling(p.Reason) {
		fmt.Fprintf(&b, ": image %s", p.Image)
	}
	if p.Message != "" {
		fmt.Fprintf(&b, ": %s", p.Message)
	}
	return b.String()
}

func pulling(reason string) bool {
	switch reason {
	case "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull":
		return true
	}
	return false
}

// logs says which log of a container an issue shows.
type logs int

const (
	noLogs logs = iota
	currentLogs
	previousLogs
)

// finding is an issue and what more to read for it.
type finding struct {
	PodIssue
	logs   logs
	events bool
}

// findings reads a pod's status: one finding per container that is
// waiting (not merely being created), exited non-zero, or running but not
// ready; or the pod's own, when it cannot be scheduled.
func findings(p *corev1.Pod) []finding {
	var out []finding
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		f := finding{PodIssue: PodIssue{Pod: p.Name, Container: cs.Name, Node: p.Spec.NodeName, Image: Clean(specImage(p, cs)), Restarts: cs.RestartCount}}
		last := cs.LastTerminationState.Terminated
		switch st := cs.State; {
		case st.Waiting != nil && st.Waiting.Reason != "" && st.Waiting.Reason != "ContainerCreating" && st.Waiting.Reason != "PodInitializing":
			f.Reason, f.Message = Clean(st.Waiting.Reason), cut(st.Waiting.Message, maxMessage)
			if last != nil {
				f.exited(last)
				f.logs = previousLogs
			}
			f.events = f.Message == "" && last == nil
		case st.Terminated != nil && st.Terminated.ExitCode != 0:
			f.Reason = Clean(st.Terminated.Reason)
			f.exited(st.Terminated)
			f.logs = currentLogs
		case st.Running != nil && !cs.Ready && !initContainer(p, cs.Name):
			f.Reason, f.events = "NotReady", true
		default:
			continue
		}
		if f.Reason == "" {
			f.Reason = "Error"
		}
		out = append(out, f)
	}
	if len(out) == 0 && p.Status.Phase == corev1.PodPending {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				out = append(out, finding{PodIssue: PodIssue{Pod: p.Name, Reason: Clean(c.Reason), Message: cut(c.Message, maxMessage)}})
			}
		}
	}
	return out
}

// specImage is the image a container runs as the pod asks for it
// (repo:tag@digest as shipit pins it); the status may hold only the
// runtime's image ID.
func specImage(p *corev1.Pod, cs corev1.ContainerStatus) string {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == cs.Name && c.Image != "" {
			return c.Image
		}
	}
	return cs.Image
}

func (f *finding) exited(t *corev1.ContainerStateTerminated) {
	code := t.ExitCode
	f.ExitCode = &code
	if t.Message != "" && f.Message == "" {
		f.Message = cut(t.Message, maxMessage)
	}
}

// initContainer reports whether name is one of the pod's init containers
// (they run to completion and are never ready); a sidecar (restartPolicy:
// Always) is probed like any container.
func initContainer(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return c.RestartPolicy == nil
		}
	}
	return false
}

// diagnose fills in, for each workload of apps that is not Healthy (or
// whose health Argo CD did not record), why its pods do not run: a
// workload with such pods joins the Application's Resources. Best effort:
// what cannot be read of a workload listed as not Healthy is said in
// PodsError. It has diagnoseFor in all.
func (c *Client) diagnose(ctx context.Context, apps []App) {
	if c.core == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, diagnoseFor)
	defer cancel()
	nodes := map[string]string{}
	for i := range apps {
		a := &apps[i]
		for _, w := range a.workloads {
			listed := -1
			for j, r := range a.Resources {
				if r.Kind == w.Kind && r.Namespace == w.Namespace && r.Name == w.Name {
					listed = j
				}
			}
			pods, message, err := c.podIssues(ctx, &w, nodes)
			if listed < 0 && len(pods) == 0 {
				continue
			}
			if listed < 0 {
				a.Resources = append(a.Resources, w)
				listed = len(a.Resources) - 1
			}
			r := &a.Resources[listed]
			r.Pods = pods
			if r.Message == "" {
				r.Message = message
			}
			if err != nil {
				r.PodsError = Clean(err.Error())
			}
		}
	}
}

// podIssues reads the pods of one workload, newest first, and what is
// wrong with up to maxIssues of them.
// The workload's own Progressing condition (a Deployment past its
// progress deadline) comes back as a message.
func (c *Client) podIssues(ctx context.Context, r *Resource, nodes map[string]string) ([]PodIssue, string, error) {
	sel, message, err := c.selector(ctx, r)
	if err != nil {
		return nil, "", err
	}
	list, err := c.core.ListPods(ctx, r.Namespace, metav1.ListOptions{LabelSelector: sel, Limit: maxPods})
	if err != nil {
		return nil, message, fmt.Errorf("listing the pods of %s %s/%s: %w", r.Kind, r.Namespace, r.Name, err)
	}
	pods := list.Items
	sort.SliceStable(pods, func(i, j int) bool { return pods[j].CreationTimestamp.Before(&pods[i].CreationTimestamp) })
	var out []PodIssue
	seen := sets.New[string]()
	for i := range pods {
		for _, f := range findings(&pods[i]) {
			// Replicas failing the same way say it once; another image
			// (another ReplicaSet's pods) is another failure.
			key := f.Container + "\x00" + f.Reason + "\x00" + f.Image
			if len(out) >= maxIssues || seen.Has(key) {
				continue
			}
			seen.Insert(key)
			c.complete(ctx, r.Namespace, &f, nodes)
			out = append(out, f.PodIssue)
		}
	}
	return out, message, nil
}

// selector is a workload's pod selector, as a string, and the message of
// its Progressing condition when that is False (a Deployment past its
// progress deadline).
func (c *Client) selector(ctx context.Context, r *Resource) (string, string, error) {
	u, err := c.dyn.Resource(workloads[r.Kind]).Namespace(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("reading %s %s/%s: %w", r.Kind, r.Namespace, r.Name, err)
	}
	m, _, _ := unstructured.NestedMap(u.Object, "spec", "selector")
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &ls); err != nil {
		return "", "", fmt.Errorf("reading the selector of %s %s/%s: %w", r.Kind, r.Namespace, r.Name, err)
	}
	s, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil || s.Empty() {
		return "", "", fmt.Errorf("%s %s/%s has no pod selector to read its pods by", r.Kind, r.Namespace, r.Name)
	}
	message := ""
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Progressing" && m["status"] == "False" {
			reason, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			message = cut(reason+": "+msg, maxMessage)
		}
	}
	return s.String(), message, nil
}

// complete reads what a finding needs: its container's log (an "exec
// format error" there, or in the message, is a binary for another
// platform: then the image's and the node's platforms), or the pod's
// latest warning event.
func (c *Client) complete(ctx context.Context, ns string, f *finding, nodes map[string]string) {
	if f.logs != noLogs {
		f.PreviousLogs = f.logs == previousLogs
		f.Logs = c.tail(ctx, ns, f.Pod, f.Container, f.PreviousLogs)
	}
	if f.events {
		if m := c.lastWarning(ctx, ns, f.Pod, f.Reason == "NotReady"); m != "" {
			f.Message = m
		}
		if f.Reason == "NotReady" && f.Message == "" {
			f.Message = "running, not ready (no probe failure recorded)"
		}
	}
	text := f.Message + "\n" + strings.Join(f.Logs, "\n")
	foreign := strings.Contains(text, "exec format error")
	if foreign {
		f.Reason = "exec format error"
	}
	if foreign || strings.Contains(f.Message, "no match for platform") {
		f.NodePlatform = c.nodePlatform(ctx, f.Node, nodes)
		if c.Platforms != nil && f.Image != "" {
			if ps, err := c.Platforms(ctx, f.Image); err == nil {
				f.ImagePlatforms = ps
			}
		}
	}
}

// tail is the last logLines lines of a container's log (of its previous
// run), at most logBytes read, each line cleaned and cut. The kubelet can
// be restarting the container: that is no log, not a failure.
func (c *Client) tail(ctx context.Context, ns, pod, container string, previous bool) []string {
	lines, bytes := int64(logLines), int64(logBytes)
	opts := &corev1.PodLogOptions{Container: container, Previous: previous, TailLines: &lines, LimitBytes: &bytes}
	var rc io.ReadCloser
	var err error
	// While the kubelet restarts the container, its previous log can be
	// unreadable for a moment: three tries.
	for range 3 {
		if rc, err = c.core.Logs(ctx, ns, pod, opts); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(300 * time.Millisecond):
		}
	}
	if err != nil {
		return nil
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, logBytes))
	if err != nil && len(b) == 0 {
		return nil
	}
	return logTail(string(b))
}

// logTail is the last logLines non-empty lines of a log, cleaned and cut.
func logTail(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		l = strings.TrimRight(strings.ReplaceAll(l, "\t", "    "), "\r")
		if strings.TrimSpace(l) != "" {
			out = append(out, cut(l, maxLine))
		}
	}
	if len(out) > logLines {
		out = out[len(out)-logLines:]
	}
	return out
}

// lastWarning is the message of a pod's latest Warning event (of reason
// Unhealthy: a probe's failure, when probe).
func (c *Client) lastWarning(ctx context.Context, ns, pod string, probe bool) string {
	list, err := c.core.ListEvents(ctx, ns, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod + ",type=Warning",
		Limit:         maxEvents,
	})
	if err != nil {
		return ""
	}
	var best *corev1.Event
	for i := range list.Items {
		e := &list.Items[i]
		if probe && e.Reason != "Unhealthy" {
			continue
		}
		if best == nil || eventTime(e).After(eventTime(best)) {
			best = e
		}
	}
	if best == nil {
		return ""
	}
	return cut(best.Message, maxMessage)
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// nodePlatform is a node's os/arch as its kubelet reports it, read once
// per diagnosis.
func (c *Client) nodePlatform(ctx context.Context, node string, cache map[string]string) string {
	if node == "" {
		return ""
	}
	if p, ok := cache[node]; ok {
		return p
	}
	n, err := c.core.GetNode(ctx, node)
	p := ""
	if err == nil {
		p = Clean(n.Status.NodeInfo.OperatingSystem + "/" + n.Status.NodeInfo.Architecture)
	}
	cache[node] = p
	return p
}
