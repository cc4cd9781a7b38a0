package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/moby/buildkit/client"
	// Connection helpers for docker-container:// and kube-pod:// builders.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	"github.com/spf13/cobra"

	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/tag"
)

// builderTimeout bounds how long shipit waits for an unreachable daemon.
const builderTimeout = 8 * time.Second

// loadConfig reads shipit.yaml with the command's flags layered on top.
func loadConfig(cmd *cobra.Command, g *globals, flagKeys map[string]string) (*config.Config, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return config.Load(config.Options{File: g.configFile, Dir: wd, Flags: cmd.Flags(), FlagKeys: flagKeys})
}

// readHead reads the commit that shipit.yaml's repository has checked out.
func readHead(ctx context.Context, cfg *config.Config) (gitinfo.Head, error) {
	h, err := gitinfo.Read(ctx, cfg.Dir(), config.StateDir)
	if errors.Is(err, gitinfo.ErrNotRepository) {
		return h, &usageError{err}
	}
	return h, err
}

// releaseTag is the tag for HEAD, or the validated --tag override, and
// the time images are stamped with (SOURCE_DATE_EPOCH, created): the tag's.
func releaseTag(cfg *config.Config, h gitinfo.Head, override string) (string, time.Time, error) {
	if override != "" {
		if err := tag.Validate(override); err != nil {
			return "", time.Time{}, usagef("--tag: %v", err)
		}
		return override, h.Time, nil
	}
	prefix, err := expandPrefix(cfg, os.Environ())
	if err != nil {
		return "", time.Time{}, err
	}
	t, err := tag.New(prefix, tag.Commit{SHA: h.SHA, Time: h.Time, Ancestors: h.Ancestors, Dirty: h.Dirty})
	if err != nil {
		if errors.Is(err, tag.ErrClockSkew) {
			return "", time.Time{}, err
		}
		return "", time.Time{}, &config.Error{File: cfg.File, Key: "tag.prefix", Msg: err.Error()}
	}
	return t.String(), t.Time, nil
}

// expandPrefix evaluates tag.prefix as a template over the environment:
// "pr-{{.PR_NUMBER}}-" reads $PR_NUMBER.
func expandPrefix(cfg *config.Config, environ []string) (string, error) {
	p := cfg.Tag.Prefix
	if !strings.Contains(p, "{{") {
		return p, nil
	}
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	t, err := template.New("tag.prefix").Option("missingkey=error").Parse(p)
	if err != nil {
		return "", &config.Error{File: cfg.File, Key: "tag.prefix", Msg: fmt.Sprintf("not a valid template: %v", err)}
	}
	var b strings.Builder
	if err := t.Execute(&b, env); err != nil {
		return "", &config.Error{File: cfg.File, Key: "tag.prefix", Msg: fmt.Sprintf("%q needs an environment variable that is not set (%v)", p, err)}
	}
	if b.Len() > 0 && strings.Trim(b.String(), "-_.") == "" {
		return "", &config.Error{File: cfg.File, Key: "tag.prefix", Msg: fmt.Sprintf("%q expands to %q: an environment variable it reads is empty", p, b.String())}
	}
	return b.String(), nil
}

// connectBuilder connects to BuildKit and checks that it answers, so that
// an unreachable daemon fails in seconds with what to do.
func connectBuilder(ctx context.Context, cfg *config.Config) (*client.Client, error) {
	addr := cfg.Builder.Addr
	hint := fmt.Sprintf("start one (as root: `buildkitd --addr %s`; in shipit's repository: `make testenv`), or point builder.addr in %s, BUILDKIT_HOST or --builder at a running daemon", addr, config.FileName)
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("cannot reach BuildKit at %s: the socket does not exist; %s", addr, hint)
		}
	}
	var opts []client.ClientOpt
	if t := cfg.Builder.TLS; t.CA != "" || t.Cert != "" {
		if t.CA != "" {
			opts = append(opts, client.WithServerConfig(t.ServerName, cfg.Abs(t.CA)))
		} else {
			opts = append(opts, client.WithServerConfigSystem(t.ServerName))
		}
		if t.Cert != "" {
			opts = append(opts, client.WithCredentials(cfg.Abs(t.Cert), cfg.Abs(t.Key)))
		}
	}
	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot reach BuildKit at %s: %w; %s", addr, err, hint)
	}
	pctx, cancel := context.WithTimeout(ctx, builderTimeout)
	defer cancel()
	if _, err := c.Info(pctx); err != nil {
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach BuildKit at %s: %w; %s", addr, err, hint)
	}
	return c, nil
}

// logf writes a verbose log line.
func (g *globals) logf(w io.Writer, format string, args ...any) {
	if g.verbose {
		fmt.Fprintf(w, "shipit: "+format+"\n", args...)
	}
}
