package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/lazyre"
	"github.com/shipit-dev/shipit/internal/scaffold"
)

const initLong = `Set up shipit in the repository in the working directory. It detects what it
can (a Gemfile: Rails, with an nginx image in front; go.mod: a Go service;
an existing Dockerfile: kept as it is) and writes:

  shipit.yaml                        images, registry cache, deploy branch and environments
  Dockerfile                         from shipit's Alpine multi-stage templates, unless the app
                                     has a production one (Dockerfile, docker/Dockerfile)
  docker/nginx/Dockerfile            Rails: nginx in front of the app, serving its assets
  .dockerignore                      secrets and build state kept out of the image
  k8s/base/                          Deployment, Service, Ingress, ConfigMap, an example Secret
                                     (never applied); Rails: the migration Job and the job
                                     runners (worker.yaml), or with SQLite a volume (storage.yaml)
  k8s/overlays/{staging,production}  with the images entries shipit pins
  k8s/argocd/                        the Argo CD Applications, and the previews ApplicationSet
                                     (or, with --image-updater, the Image Updater's configuration)
  the CI pipeline (--ci; default: the CI the repository has: .github/,
  .circleci/ or .gitlab-ci.yml, else github):
  .github/workflows/shipit.yml       github: test, build and release on merge, promote to
                                     production behind the environment's reviewers
  .github/workflows/preview.yml      github: a preview per pull request, on a /preview comment
                                     (not with --image-updater)
  .circleci/config.yml               circleci: the same, production behind an approval job,
                                     previews for branches, a daily preview gc
  .gitlab-ci.yml                     gitlab: the same, production a manual job, review apps
                                     for merge requests

Each pipeline installs shipit at this version and checks it against its
sha256, written into the pipeline when a release for linux/amd64 runs init
(otherwise a placeholder that fails until it is set: init says so). An
existing pipeline is never changed: init says where its template is.

and adds /.shipit/ to .gitignore, and /.shipit/ and /k8s/ to an existing
.dockerignore. The branch is origin's default branch (origin/HEAD), else the
current one. It never overwrites a file: existing ones are listed as skipped,
so running it twice changes nothing. Edit registry in shipit.yaml afterwards.`

func newInitCmd() *cobra.Command {
	o := scaffold.Options{}
	var output string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Set up shipit in this repository: shipit.yaml, Dockerfiles, overlays, CI",
		Long:  initLong,
		Example: `  shipit init --dry-run
  shipit init --registry 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/shop
  shipit init --image-updater     # Argo CD Image Updater writes the pins
  shipit init --ci gitlab         # .gitlab-ci.yml instead of GitHub Actions`,
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
			o.Dir, o.Version, o.ShipitSHA256 = wd, version, selfSHA256()
			o.RepoPath = initWarnings(cmd.Context(), cmd.ErrOrStderr(), wd)
			if o.RepoURL == "" {
				o.RepoURL = gitinfo.SanitizeURL(gitinfo.Origin(wd))
			}
			if o.Branch == "" {
				o.Branch = defaultBranch(cmd.Context(), wd)
			}
			res, err := scaffold.Init(o)
			if err != nil {
				return &usageError{err}
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			printInit(cmd.OutOrStdout(), cmd.ErrOrStderr(), res, o.DryRun)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "the app's name (default: the directory's)")
	f.StringVar(&o.Registry, "registry", "", "registry host[:port]/prefix (default: an ECR placeholder to edit)")
	f.StringVar(&o.RepoURL, "repo-url", "", "Git URL Argo CD syncs from (default: the origin remote)")
	f.StringVar(&o.Branch, "branch", "", "the branch CI releases from and Argo CD syncs (default: origin's default branch, else the current one)")
	f.BoolVar(&o.ImageUpdater, "image-updater", false, "let Argo CD Image Updater write the pins, and write its configuration")
	f.StringVar(&o.CI, "ci", "", "the CI pipeline to write: github, circleci or gitlab (default: the one the repository has, else github)")
	f.BoolVar(&o.DryRun, "dry-run", false, "list what would be written; write nothing")
	f.StringVarP(&output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

// initWarnings says what in the working directory may surprise: no git,
// another tool's shipit.yml. It returns wd's path from the repository's
// root ("" at the root, or outside git).
func initWarnings(ctx context.Context, stderr io.Writer, wd string) string {
	rel := ""
	if top, err := gitinfo.TopLevel(ctx, wd); err != nil {
		fmt.Fprintf(stderr, "warning: %s is not in a git repository: shipit tags images by commit, so build and release need one (git init, and commit)\n", wd)
	} else if resolved, err := filepath.EvalSymlinks(wd); err == nil {
		if r, err := filepath.Rel(top, resolved); err == nil && r != "." && !strings.HasPrefix(r, "..") {
			rel = filepath.ToSlash(r)
		}
	}
	for _, other := range []string{"shipit.yml", ".shipit.yml", ".shipit.yaml"} {
		if _, err := os.Stat(filepath.Join(wd, other)); err == nil {
			fmt.Fprintf(stderr, "warning: %s exists, and shipit reads only shipit.yaml: if it belongs to another tool (the shipit deploy gem uses shipit.yml), it stays as it is and the two do not mix\n", other)
		}
	}
	return rel
}

// defaultBranch is origin's default branch (origin/HEAD), else the one
// checked out; "" when neither is known (init then says main).
func defaultBranch(ctx context.Context, wd string) string {
	if ref, err := gitinfo.Run(ctx, wd, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"); err == nil {
		if b, ok := strings.CutPrefix(strings.TrimSpace(ref), "refs/remotes/origin/"); ok {
			return b
		}
	}
	if ref, err := gitinfo.Run(ctx, wd, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		return strings.TrimSpace(ref)
	}
	return ""
}

// printInit prints the findings and the files on stderr, and the paths
// written on stdout.
func printInit(stdout, stderr io.Writer, res *scaffold.Result, dryRun bool) {
	for _, f := range res.Findings {
		switch {
		case f.Warning:
			fmt.Fprintf(stderr, "shipit: warning: %s\n", f)
		case f.Assumed:
			fmt.Fprintf(stderr, "shipit: %s\n", f)
		default:
			fmt.Fprintf(stderr, "shipit: found %s\n", f)
		}
	}
	verb := "wrote"
	if dryRun {
		verb = "would write"
	}
	written := 0
	for _, f := range res.Files {
		if f.Skipped {
			fmt.Fprintf(stderr, "shipit: skipped %s (it exists)\n", f.Path)
			continue
		}
		written++
		if f.Appended {
			fmt.Fprintf(stderr, "shipit: appended %s to %s\n", strings.Join(f.Lines, " "), f.Path)
		}
		fmt.Fprintln(stdout, f.Path)
	}
	fmt.Fprintf(stderr, "shipit: %s project %q: %s %d file(s), skipped %d\n", res.Kind, res.Name, verb, written, len(res.Files)-written)
	if written > 0 && !dryRun {
		fmt.Fprintln(stderr, "shipit: next: set registry in shipit.yaml, commit, then `shipit build --push`")
	}
}

// selfSHA256 is the sha256 of the running binary when it is a release for
// linux/amd64, the binary the pipelines download; "" otherwise (a
// development build, another platform: its bytes are not the release's).
func selfSHA256() string {
	if !isRelease(version) || runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return ""
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(exe) // #nosec G304 -- this binary itself
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, 1<<30)); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// isRelease reports whether v is a release version, vX.Y.Z, as the
// release build sets it (-X …/internal/cli.version): the builds whose
// bytes a pipeline can download.
func isRelease(v string) bool { return releaseVersion.MatchString(v) }

var releaseVersion = lazyre.New(`^v[0-9]+\.[0-9]+\.[0-9]+$`)
