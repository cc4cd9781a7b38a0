package argocd

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/shipit-dev/shipit/internal/progress"
)

// ApplicationSets is the resource Argo CD's ApplicationSets are.
var ApplicationSets = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}

// AppSetRefreshAnnotation asks the ApplicationSet controller to run its
// generators now, instead of at its next poll (3 minutes by default).
const AppSetRefreshAnnotation = "argocd.argoproj.io/application-set-refresh"

// RefreshAppSet asks an ApplicationSet to regenerate its Applications.
func (c *Client) RefreshAppSet(ctx context.Context, namespace, name string) error {
	patch := []byte(`{"metadata":{"annotations":{"` + AppSetRefreshAnnotation + `":"true"}}}`)
	_, err := c.dyn.Resource(ApplicationSets).Namespace(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("Argo CD ApplicationSet %s not found in namespace %s at %s: check deploy.previews.argocd in shipit.yaml (shipit init writes one: k8s/argocd/previews.yaml)", name, namespace, c.Host) //nolint:staticcheck // a proper noun
	}
	return fmt.Errorf("refreshing Argo CD ApplicationSet %s/%s at %s: %w", namespace, name, c.Host, err)
}

// exists reports whether an Application exists.
func (c *Client) exists(ctx context.Context, namespace, name string) (bool, error) {
	_, err := c.dyn.Resource(Applications).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, c.explain(err, namespace, name)
}

// WaitCreated refreshes an ApplicationSet and waits until it has made the
// Application, then waits for that as Wait does. The deadline covers both.
func (c *Client) WaitCreated(ctx context.Context, namespace, appSet, app, revision string, deadline time.Duration, events progress.Sink) ([]App, error) {
	start := time.Now()
	if err := c.RefreshAppSet(ctx, namespace, appSet); err != nil {
		return nil, err
	}
	if err := c.poll(ctx, deadline, func(ctx context.Context) (bool, error) { return c.exists(ctx, namespace, app) }); err != nil {
		return nil, fmt.Errorf("ApplicationSet %s made no Application %s: %w", appSet, app, err)
	}
	progress.Infof(events, "argocd: ApplicationSet %s made %s", appSet, app)
	return c.Wait(ctx, namespace, []string{app}, revision, deadline-time.Since(start), events)
}

// WaitDeleted refreshes an ApplicationSet and waits until the Application
// is gone (with the resources finalizer, once what it ran is deleted).
func (c *Client) WaitDeleted(ctx context.Context, namespace, appSet, app string, deadline time.Duration, events progress.Sink) error {
	if err := c.RefreshAppSet(ctx, namespace, appSet); err != nil {
		return err
	}
	err := c.poll(ctx, deadline, func(ctx context.Context) (bool, error) {
		ok, err := c.exists(ctx, namespace, app)
		return !ok, err
	})
	if err != nil {
		return fmt.Errorf("Application %s is still there: %w", app, err) //nolint:staticcheck // a proper noun
	}
	progress.Infof(events, "argocd: %s is gone", app)
	return nil
}

// poll calls done every 250ms until it is true, it fails, or the deadline
// passes (ErrDeadline).
func (c *Client) poll(ctx context.Context, deadline time.Duration, done func(context.Context) (bool, error)) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := done(ctx)
		if ok && err == nil {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			return fmt.Errorf("%w (%v)", ErrDeadline, deadline)
		case <-tick.C:
		}
	}
}
