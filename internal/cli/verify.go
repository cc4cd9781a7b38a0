package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/sign"
	"github.com/shipit-dev/shipit/release"
)

type verifyOptions struct {
	env    string
	output string
}

func newVerifyCmd(g *globals) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify [IMAGE[:TAG|@DIGEST]]",
		Short: "Check that what an environment pins is signed (and, where required, built from this repository)",
		Long: `Check each digest an environment pins (--env, default the first of
deploy.environments), or the one image, tag or digest given:

  - a signature by one of the public keys of verify.keys (cosign's: the
    tag sha256-<digest>.sig beside the digest; any one key suffices);
  - when the environment requires provenance (require.provenance), that the
    SLSA provenance BuildKit put into the image index names this
    repository (its origin remote, compared without credentials, scheme or
    .git) and the commit of the release tag (YYYYMMDD-HHMMSS-<sha7>).

stdout: one line per digest, ok or FAILED with what is missing
(--output json: the reports). Exit code 1 when a digest fails, 2 for bad
input (no verify.keys, a key that cannot be read).`,
		Example: `  shipit verify --env production
  shipit verify web@sha256:...
  shipit verify web:20261201-101500-abcdef1 --output json`,
		GroupID: "main",
		Args:    argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd, g, o, args)
		},
	}
	cmd.Flags().StringVar(&o.env, "env", "", "the environment whose pins are checked (default: the first of deploy.environments)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "result format on stdout: text or json")
	return cmd
}

func runVerify(cmd *cobra.Command, g *globals, o *verifyOptions, args []string) error {
	ctx := cmd.Context()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	d, err := g.resolve(cmd, nil, newRenderer(cmd.ErrOrStderr(), progressPlain, g.verbose, g.start))
	if err != nil {
		return err
	}
	if len(d.cfg.Verify.Keys) == 0 {
		return usagef("%s: verify.keys lists no public key: add the cosign.pub of sign.key (a file of a cosign public key)", d.cfg.File)
	}
	c, err := d.checker()
	if err != nil {
		return err
	}
	env, err := d.env(o.env, "--env")
	if err != nil && (o.env != "" || len(args) == 0) {
		return err
	}
	subjects, err := d.verifySubjects(ctx, env.Name, args)
	if err != nil {
		return err
	}
	want := sign.Require{Signature: true, Provenance: env.Require.Provenance, Source: d.source()}
	reports, err := c.CheckAll(ctx, subjects, want)
	if err != nil {
		return err
	}
	if err := printVerify(cmd.OutOrStdout(), o.output, env.Name, reports); err != nil {
		return err
	}
	for _, r := range reports {
		if !r.OK() {
			return &sign.RefusedError{Where: "verification failed:", Reports: reports}
		}
	}
	return nil
}

// verifySubjects are the digests to check: the one named, or what the
// environment pins.
func (d *deps) verifySubjects(ctx context.Context, env string, args []string) ([]sign.Subject, error) {
	var name, t, digest string
	if len(args) > 0 {
		name, digest, _ = strings.Cut(args[0], "@")
		name, t, _ = strings.Cut(name, ":")
		if name == "" {
			return nil, usagef("%q: write IMAGE, IMAGE:TAG or IMAGE@DIGEST (IMAGE as in %s)", args[0], d.cfg.File)
		}
	}
	if t == "" && digest == "" {
		return d.pinnedSubjects(ctx, env, name)
	}
	if _, err := d.images([]string{name}); err != nil {
		return nil, err
	}
	s, err := release.Resolve(ctx, d.registry, sign.Subject{Image: name, Repository: d.cfg.RepositoryFor(name), Tag: t, Digest: digest})
	if err != nil {
		return nil, err
	}
	return []sign.Subject{s}, nil
}

// pinnedSubjects are what the environment pins of the images (all when
// name is empty).
func (d *deps) pinnedSubjects(ctx context.Context, env, name string) ([]sign.Subject, error) {
	var names []string
	if name != "" {
		names = []string{name}
	}
	imgs, err := d.pinImages(names)
	if err != nil {
		return nil, err
	}
	e, _ := d.cfg.Env(env)
	dep, err := d.deployEnv(ctx, e)
	if err != nil {
		return nil, err
	}
	subj, err := release.Pinned(ctx, dep, d.registry, imgs)
	if err == nil && len(subj) == 0 {
		err = usagef("environment %s pins none of the images asked for: nothing to verify (name a tag: shipit verify IMAGE:TAG)", env)
	}
	return subj, err
}

func printVerify(out io.Writer, format, env string, reports []sign.Report) error {
	if format == "json" {
		ok := true
		for _, r := range reports {
			ok = ok && r.OK()
		}
		return writeJSON(out, struct {
			Env     string        `json:"environment,omitempty"`
			OK      bool          `json:"ok"`
			Reports []sign.Report `json:"images"`
		}{env, ok, reports})
	}
	for _, r := range reports {
		if !r.OK() {
			fmt.Fprintf(out, "FAILED %s %s: %s\n", r.Image, r.Ref(), strings.Join(r.Missing, "; "))
			continue
		}
		line := fmt.Sprintf("ok %s %s: signed by %s", r.Image, r.Ref(), r.SignedBy)
		if r.Provenance != nil {
			line += fmt.Sprintf("; provenance: %s at %s", r.Provenance.Source, r.Provenance.Revision)
		}
		fmt.Fprintln(out, line)
	}
	return nil
}
