package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/updater"
	"github.com/shipit-dev/shipit/release"
)

type updaterOptions struct {
	env, app, strategy string
	annotations        bool
}

func newUpdaterConfigCmd(g *globals) *cobra.Command {
	var o updaterOptions
	cmd := &cobra.Command{
		Use:   "updater-config",
		Short: "Print the Argo CD Image Updater configuration that matches shipit's tags",
		Long: `Print the Argo CD Image Updater configuration for deploy.mode: image-updater,
for every environment and overlay (or those of --env): one v1 ImageUpdater
resource per Argo CD Application, in the namespace of the environment's
Applications (deploy.environments[].argocd.namespace), and after each, as a
comment, the v0.x annotations that do the same on the Application
(--annotations prints those alone, as merge patches).

Each names strategy alphabetical, an anchored allow-tags regexp for
shipit's release tags (with tag.prefix), each image's kustomize name, and
git write-back to the overlay's kustomization by its path from the GitOps
repository's root ("kustomization:/<path>"; with deploy.repo "." that
path starts at shipit.yaml's directory).

An environment's one overlay is synced by each of its Applications, or
the i-th overlay by the i-th Application; an overlay with no Application
configured is assumed synced by one named after its path (--app names it).`,
		Example: `  shipit updater-config | kubectl apply -f -
  shipit updater-config --env production --annotations`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := g.resolve(cmd, nil, newRenderer(cmd.ErrOrStderr(), progressPlain, g.verbose, g.start))
			if err != nil {
				return err
			}
			c, err := d.updaterConfig(cmd, o)
			if err != nil {
				return err
			}
			render := updater.Render
			if o.annotations {
				render = updater.RenderAnnotations
			}
			s, err := render(c)
			if errors.Is(err, updater.ErrDuplicate) {
				return &config.Error{File: d.cfg.File, Key: "deploy.environments", Msg: err.Error()}
			} else if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), s)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.env, "env", "", "print only this environment's (default: every environment's)")
	f.StringVar(&o.app, "app", "", "the Argo CD Application's name, when one overlay is printed (default: deploy.environments[].argocd.applications, else from the overlay's path)")
	f.StringVar(&o.strategy, "strategy", updater.Alphabetical, "the update strategy: alphabetical, or newest-build (which never rolls back)")
	f.BoolVar(&o.annotations, "annotations", false, "print the v0.x Application annotations alone, as merge patches")
	return cmd
}

// updaterConfig is what updater-config prints: the selected environments'
// Applications and overlays, with the overlays' paths from the GitOps
// repository's root.
func (d *deps) updaterConfig(cmd *cobra.Command, o updaterOptions) (updater.Config, error) {
	var c updater.Config
	if !slices.Contains(updater.Strategies, o.strategy) {
		return c, usagef("--strategy %s: use %s", o.strategy, strings.Join(updater.Strategies, " or "))
	}
	if o.strategy == updater.NewestBuild {
		progress.Warnf(d.events, "--strategy newest-build never rolls back: the tag shipit pin makes carries the old release's created time, so the updater stays on the release rolled back from; use alphabetical")
	}
	envs := d.cfg.Envs()
	if len(envs) == 0 {
		return c, usagef("no deploy.environments (or deploy.overlays) in %s: the updater needs a kustomization to write to", d.cfg.File)
	}
	if o.env != "" {
		e, err := d.env(o.env, "--env")
		if err != nil {
			return c, err
		}
		envs = []config.Environment{e}
	}
	prefix, err := d.tagPrefix()
	if err != nil {
		return c, err
	}
	c = updater.Config{Branch: d.cfg.Deploy.Branch, TagPrefix: prefix, Strategy: o.strategy}
	for _, n := range d.cfg.ImageNames() {
		kn := d.cfg.Images[n].KustomizeName
		if kn == "" {
			kn = n
		}
		c.Images = append(c.Images, updater.Image{Alias: n, Repository: d.cfg.RepositoryFor(n), KustomizeName: kn})
	}
	if c.Targets, err = d.updaterTargets(cmd, envs); err != nil {
		return c, err
	}
	if o.app != "" {
		if len(c.Targets) != 1 {
			return c, usagef("--app %s names one Application, but %d are printed: pick one environment with one overlay with --env", o.app, len(c.Targets))
		}
		c.Targets[0].Application = o.app
	}
	return c, nil
}

// updaterTargets pairs each environment's overlays with its Applications.
func (d *deps) updaterTargets(cmd *cobra.Command, envs []config.Environment) ([]updater.Target, error) {
	// The overlays' paths start where release's do: shipit.yaml's
	// directory, for a deploy.repo of "."; the repository's root otherwise.
	// updater-config pushes nothing: a repository without an origin (yet)
	// still has its paths.
	dep, err := d.deploy(cmd.Context(), nil)
	if err != nil && !errors.Is(err, release.ErrNoOrigin) {
		return nil, err
	}
	var out []updater.Target
	for _, e := range envs {
		ts, err := updater.Targets(updater.Env{Name: e.Name, Namespace: e.ArgoCD.Namespace, Overlays: e.Overlays, Applications: e.ArgoCD.Applications}, dep.Prefix)
		if err != nil {
			key := "deploy.overlays"
			if i := slices.Index(d.cfg.EnvNames(), e.Name); len(d.cfg.Deploy.Environments) > 0 {
				key = fmt.Sprintf("deploy.environments[%d].argocd.applications", i)
				if errors.Is(err, updater.ErrNamespace) {
					key = fmt.Sprintf("deploy.environments[%d].argocd.namespace", i)
				}
			}
			return nil, &config.Error{File: d.cfg.File, Key: key, Msg: err.Error()}
		}
		out = append(out, ts...)
	}
	return out, nil
}
