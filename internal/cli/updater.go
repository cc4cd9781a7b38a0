package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/release"
)

func newUpdaterConfigCmd(g *globals) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "updater-config",
		Short: "Print the Argo CD Image Updater configuration that matches shipit's tags",
		Long: `Print the Argo CD Image Updater configuration for deploy.mode: image-updater:
the v1 ImageUpdater resource and the v0.x Application annotations, with
strategy alphabetical, an anchored allow-tags regexp for shipit's release
tags (with tag.prefix), each image's kustomize name, and git write-back to
the first deploy overlay's kustomization.`,
		Example: `  shipit updater-config --app shop-production | kubectl apply -f -`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := g.resolve(cmd, nil, nil)
			if err != nil {
				return err
			}
			cfg := d.cfg
			envs := cfg.Envs()
			if len(envs) == 0 {
				return usagef("no deploy.overlays in %s: the updater needs a kustomization to write to", cfg.File)
			}
			prefix, err := d.tagPrefix()
			if err != nil {
				return err
			}
			if app == "" {
				app = strings.TrimSuffix(strings.ReplaceAll(strings.Trim(envs[0].Overlays[0], "/"), "/", "-"), "-")
				if apps := envs[0].ArgoCD.Applications; len(apps) > 0 {
					app = apps[0]
				}
			}
			var imgs []release.UpdaterImage
			for _, n := range cfg.ImageNames() {
				kn := cfg.Images[n].KustomizeName
				if kn == "" {
					kn = n
				}
				imgs = append(imgs, release.UpdaterImage{Alias: n, Repository: cfg.RepositoryFor(n), KustomizeName: kn})
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), release.UpdaterConfig(app, envs[0].Overlays[0], cfg.Deploy.Branch, prefix, imgs))
			return err
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the Argo CD Application's name (default: from the overlay's path)")
	return cmd
}
