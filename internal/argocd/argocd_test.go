package argocd

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	fresh, stale := since.Add(time.Second), since.Add(-time.Second)
	const rev = "59b5e77aaaa"
	for _, tc := range []struct {
		name string
		app  App
		want verdict
	}{
		{"synced and healthy", App{Sync: "Synced", Revision: rev, Health: "Healthy", ReconciledAt: fresh}, verdictDone},
		{"healthy, but from before the refresh", App{Sync: "Synced", Revision: rev, Health: "Healthy", ReconciledAt: stale}, verdictWaiting},
		{"healthy at the previous commit", App{Sync: "Synced", Revision: "0ld", Health: "Healthy", ReconciledAt: fresh}, verdictWaiting},
		{"sync still running", App{Sync: "Synced", Revision: rev, Health: "Healthy", Operation: "Running", ReconciledAt: fresh}, verdictWaiting},
		{"progressing", App{Sync: "Synced", Revision: rev, Health: "Progressing", ReconciledAt: fresh}, verdictWaiting},
		{"degraded once applied", App{Sync: "Synced", Revision: rev, Health: "Degraded", Operation: "Succeeded", ReconciledAt: fresh}, verdictFailed},
		// Right after a commit Argo CD shows the new revision OutOfSync with
		// the old state's health: not this commit's failure.
		{"degraded before the sync", App{Sync: "OutOfSync", Revision: rev, Health: "Degraded", Operation: "Running", ReconciledAt: fresh}, verdictWaiting},
		{"degraded from the previous commit", App{Sync: "Synced", Revision: "0ld", Health: "Degraded", ReconciledAt: fresh}, verdictWaiting},
		{"sync failed", App{Sync: "OutOfSync", Revision: rev, Health: "Healthy", Operation: "Failed", ReconciledAt: fresh}, verdictFailed},
		{"an older sync failed", App{Sync: "OutOfSync", Revision: "0ld", Health: "Healthy", Operation: "Failed", OpMessage: "one or more objects failed to apply", ReconciledAt: fresh}, verdictWaiting},
	} {
		if got, _ := judge(tc.app, rev, tc.app.Revision == rev, since); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAppOf reads an Application as Argo CD writes it, and keeps only the
// resources that are not healthy.
func TestAppOf(t *testing.T) {
	t.Parallel()
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "shop-staging", "namespace": "argocd"},
		"status": map[string]any{
			"sync":           map[string]any{"status": "Synced", "revision": "abc"},
			"health":         map[string]any{"status": "Degraded", "message": "one is degraded"},
			"operationState": map[string]any{"phase": "Succeeded", "message": "successfully synced"},
			"reconciledAt":   "2026-11-26T02:00:01Z",
			"resources": []any{
				map[string]any{"kind": "Deployment", "namespace": "shop", "name": "web", "status": "Synced", "health": map[string]any{"status": "Degraded", "message": "progress deadline exceeded"}},
				map[string]any{"kind": "Service", "namespace": "shop", "name": "web", "status": "Synced", "health": map[string]any{"status": "Healthy"}},
			},
		},
	}}
	a := appOf(u)
	if a.Sync != "Synced" || a.Revision != "abc" || a.Health != "Degraded" || a.ReconciledAt.IsZero() || len(a.Resources) != 1 || a.Resources[0].Name != "web" {
		t.Fatalf("appOf = %+v", a)
	}
	msg := (&WaitError{Why: "Argo CD reports degraded at abc:", Apps: []App{a}}).Error()
	for _, want := range []string{"shop-staging", "Degraded", "Deployment shop/web", "progress deadline exceeded"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure does not say %q:\n%s", want, msg)
		}
	}
}
