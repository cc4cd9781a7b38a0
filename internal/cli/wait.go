package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/shipit-dev/shipit/internal/argocd"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/registry"
	"github.com/shipit-dev/shipit/release"
)

// DefaultWait is how long --wait waits when given without a duration.
const DefaultWait = 10 * time.Minute

// waitOptions are --wait and its companions, shared by release, promote
// and pin.
type waitOptions struct {
	wait       time.Duration // 0: do not wait
	rollback   bool
	kubeconfig string
	context    string
	states     []argocd.App // the final state of each Application
	failed     []argocd.App // those that failed the wait, with their pods' reasons
	rolledBack *release.Result
}

func (w *waitOptions) flags(f *pflag.FlagSet) {
	f.DurationVar(&w.wait, "wait", 0, "after the push, wait (up to this long; 10m when given alone) until every Argo CD Application of the environment is Synced to the pushed commit and Healthy")
	f.Lookup("wait").NoOptDefVal = DefaultWait.String()
	f.BoolVar(&w.rollback, "rollback-on-failure", false, "with --wait: when the rollout fails, pin the environment back to what it pinned before (with a hold), wait for that, and exit 1")
	f.StringVar(&w.kubeconfig, "kubeconfig", "", "kubeconfig for the cluster Argo CD runs in (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringVar(&w.context, "context", "", "the kubeconfig context to use")
}

// check refuses --wait where there is nothing to wait for.
func (w *waitOptions) check(env config.Environment, dep release.Deploy) error {
	if w.rollback && w.wait == 0 {
		return usagef("--rollback-on-failure needs --wait: shipit can only roll back a rollout it watched")
	}
	if w.wait < 0 {
		return usagef("--wait %s: write a positive duration such as 10m", w.wait)
	}
	if w.wait > 0 && len(env.ArgoCD.Applications) == 0 {
		return usagef("--wait: environment %s has no argocd.applications in shipit.yaml, so there is nothing to wait for: list its Argo CD Applications under deploy.environments[].argocd", orDefault(env.Name))
	}
	if w.wait > 0 && dep.ImageUpdater {
		return usagef("--wait is not available with deploy.mode: image-updater: the updater, not shipit, makes the commit Argo CD syncs")
	}
	return nil
}

func orDefault(s string) string {
	if s == "" {
		return config.DefaultEnvironment
	}
	return s
}

// after waits for the environment's Applications to sync revision, and on
// failure with --rollback-on-failure restores what the overlays pinned
// before (from the command's overlay results), waits for that too, and
// fails naming both.
func (w *waitOptions) after(ctx context.Context, d *deps, env config.Environment, dep release.Deploy, revision string, overlays []release.OverlayResult, what string) error {
	if w.wait == 0 || revision == "" {
		return nil
	}
	client, err := w.connect(dep, overlays)
	if err != nil {
		return err
	}
	client.Platforms = imagePlatforms(d.registry)
	ns := env.ArgoCD.Namespace
	progress.Infof(d.events, "waiting up to %s for %s to be Synced to %.7s and Healthy", w.wait, strings.Join(env.ArgoCD.Applications, ", "), revision)
	w.states, err = client.Wait(ctx, ns, env.ArgoCD.Applications, revision, w.wait, d.events)
	var we *argocd.WaitError
	if errors.As(err, &we) {
		w.failed = we.Apps
	}
	if we == nil || !w.rollback {
		return err
	}
	failure := fmt.Errorf("%s failed to roll out in %s: %w", what, env.Name, err)
	progress.Warnf(d.events, "%v", failure)
	progress.Infof(d.events, "rolling %s back to what it pinned before (--rollback-on-failure)", env.Name)
	res, rerr := release.Restore(ctx, dep, overlays, what+" did not become healthy", d.events)
	w.rolledBack = res
	if rerr != nil {
		return fmt.Errorf("%w; and rolling back failed too: %w", failure, rerr)
	}
	if res.Commit == "" {
		return fmt.Errorf("%w; nothing was rolled back: there was no earlier pin to go back to, or the pins moved since (a newer release) and are left as they are", failure)
	}
	client.Later = release.Later(dep, res.Overlays)
	w.states, rerr = client.Wait(ctx, ns, env.ArgoCD.Applications, res.Revision, w.wait, d.events)
	if rerr != nil {
		return fmt.Errorf("%w; rolled back in %.7s (held), which did not become healthy either: %w", failure, res.Commit, rerr)
	}
	return fmt.Errorf("%w; rolled back in %.7s: %s is Synced and Healthy on the earlier pins, which are held", failure, res.Commit, env.Name)
}

// connect reaches the Kubernetes API Argo CD runs in (--kubeconfig,
// --context); a wait there counts a later commit of dep's branch that
// still pins what the command wrote.
func (w *waitOptions) connect(dep release.Deploy, wrote []release.OverlayResult) (*argocd.Client, error) {
	client, err := argocd.Connect(w.kubeconfig, w.context)
	if err != nil {
		return nil, err
	}
	client.Later = release.Later(dep, wrote)
	return client, nil
}

// imagePlatforms lists the platforms of an image a pod runs
// (repo:tag@digest, as shipit pins it) through the registry client.
func imagePlatforms(reg *registry.Client) func(context.Context, string) ([]string, error) {
	return func(ctx context.Context, image string) ([]string, error) {
		repo, tag, ok := repoTag(image)
		if reg == nil || !ok {
			return nil, fmt.Errorf("%s names no tag", image)
		}
		return reg.Platforms(ctx, repo, tag)
	}
}

// repoTag splits repo:tag[@digest] (the registry's port is not a tag; an
// image ID, sha256:..., is no reference).
func repoTag(image string) (repo, tag string, ok bool) {
	if strings.HasPrefix(image, "sha256:") {
		return "", "", false
	}
	ref, _, _ := strings.Cut(image, "@")
	slash, colon := strings.LastIndex(ref, "/"), strings.LastIndex(ref, ":")
	if colon <= slash || colon == len(ref)-1 {
		return "", "", false
	}
	return ref[:colon], ref[colon+1:], true
}

// waitReport is what --output json adds about the wait: the last state of
// each Application, those that failed (with their pods' reasons, kept
// after a rollback) and the rollback.
type waitReport struct {
	Applications []argocd.App    `json:"applications,omitempty"`
	Failed       []argocd.App    `json:"failed,omitempty"`
	RolledBack   *release.Result `json:"rolledBack,omitempty"`
}

func (w *waitOptions) report() waitReport {
	return waitReport{Applications: w.states, Failed: w.failed, RolledBack: w.rolledBack}
}
