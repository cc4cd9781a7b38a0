package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/scaffold"
)

func newInitCmd() *cobra.Command {
	o := scaffold.Options{}
	var output string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Set up shipit in this repository: shipit.yaml, Dockerfiles, overlays, CI",
		Long: `Set up shipit in the repository in the working directory. It detects what it
can (a Gemfile: Rails, with an nginx image in front; go.mod: a Go service;
an existing Dockerfile: kept as it is) and writes:

  shipit.yaml                     images, registry cache, deploy overlays
  Dockerfile(s)                   from shipit's Alpine multi-stage templates
  k8s/base/                       a Deployment, a Service and a migration Job
  k8s/overlays/{staging,production}  with the images entries shipit pins
  k8s/argocd/                     the Argo CD Applications
  .github/workflows/shipit.yml    build and release on merge, previews on PRs

It never overwrites a file: existing ones are listed as skipped, so running
it twice changes nothing. Edit registry in shipit.yaml afterwards.`,
		Example: `  shipit init --dry-run
  shipit init --registry 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/shop
  shipit init --image-updater     # Argo CD Image Updater writes the pins`,
		GroupID: "main",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			o.Dir, o.Version = wd, version
			stderr := cmd.ErrOrStderr()
			if _, err := gitinfo.TopLevel(cmd.Context(), wd); err != nil {
				fmt.Fprintf(stderr, "warning: %s is not in a git repository: shipit tags images by commit, so build and release need one (git init, and commit)\n", wd)
			}
			for _, other := range []string{"shipit.yml", ".shipit.yml", ".shipit.yaml"} {
				if _, err := os.Stat(filepath.Join(wd, other)); err == nil {
					fmt.Fprintf(stderr, "warning: %s exists, and shipit reads only shipit.yaml: if it belongs to another tool (the shipit deploy gem uses shipit.yml), it stays as it is and the two do not mix\n", other)
				}
			}
			if o.RepoURL == "" {
				o.RepoURL = gitinfo.SanitizeURL(gitinfo.Origin(wd))
			}
			res, err := scaffold.Init(o)
			if err != nil {
				return &usageError{err}
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			for _, f := range res.Findings {
				if f.Assumed {
					fmt.Fprintf(stderr, "shipit: %s\n", f)
				} else {
					fmt.Fprintf(stderr, "shipit: found %s\n", f)
				}
			}
			verb := "wrote"
			if o.DryRun {
				verb = "would write"
			}
			written := 0
			for _, f := range res.Files {
				if f.Skipped {
					fmt.Fprintf(cmd.ErrOrStderr(), "shipit: skipped %s (it exists)\n", f.Path)
					continue
				}
				written++
				if f.Appended {
					fmt.Fprintf(cmd.ErrOrStderr(), "shipit: appended /.shipit/ to %s\n", f.Path)
				}
				fmt.Fprintln(cmd.OutOrStdout(), f.Path)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "shipit: %s project %q: %s %d file(s), skipped %d\n", res.Kind, res.Name, verb, written, len(res.Files)-written)
			if written > 0 && !o.DryRun {
				fmt.Fprintln(cmd.ErrOrStderr(), "shipit: next: set registry in shipit.yaml, commit, then `shipit build --push`")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "the app's name (default: the directory's)")
	f.StringVar(&o.Registry, "registry", "", "registry host[:port]/prefix (default: an ECR placeholder to edit)")
	f.StringVar(&o.RepoURL, "repo-url", "", "Git URL Argo CD syncs from (default: the origin remote)")
	f.BoolVar(&o.ImageUpdater, "image-updater", false, "let Argo CD Image Updater write the pins, and write its configuration")
	f.BoolVar(&o.DryRun, "dry-run", false, "list what would be written; write nothing")
	f.StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}
