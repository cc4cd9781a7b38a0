package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/argocd"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/release"
)

// platformCheckTimeout bounds platformCheck; platformCheckGrace is how
// long a build that is done waits for it; platformCheckKeep is how long a
// check that found the daemon's platform where the first environment runs
// is taken as still true, for the same daemon platform, configuration and
// cluster, without reading the GitOps repository, the registry or the
// cluster again.
const (
	platformCheckTimeout = 10 * time.Second
	platformCheckGrace   = 3 * time.Second
	platformCheckKeep    = 12 * time.Hour
)

// platformCheckFile, in the state directory, is the last check that found
// no mismatch.
const platformCheckFile = "platform-check.json"

// platformResult is what a platform check found: the warnings, and
// whether it could tell (verified: every image's platforms compared, not
// one left unread); kept, that it was taken from platformCheckFile.
type platformResult struct {
	warnings []string
	verified bool
	kept     bool
	key      string
}

// platformCheck looks, beside the build, for the classic mistake: an image
// with no platforms built on a daemon whose own platform (an Apple-silicon
// laptop's linux/arm64) is not what the release pinned in the first
// environment runs. It is advice: anything it cannot read says nothing, and
// it gives up after platformCheckTimeout. plats are the daemon's
// workers' platforms as the dial read them; none: they are asked again.
// A check that found no mismatch is kept (platformCheckFile) and taken as
// true for platformCheckKeep; one that warned is done again every build.
func (d *deps) platformCheck(ctx context.Context, c *client.Client, plats, names []string) <-chan platformResult {
	out := make(chan platformResult, 1)
	var unset []string
	for _, n := range names {
		if len(d.cfg.Images[n].Platforms) == 0 && len(d.cfg.Platforms) == 0 {
			unset = append(unset, n)
		}
	}
	envs := d.cfg.Envs()
	if len(unset) == 0 || len(envs) == 0 {
		out <- platformResult{}
		return out
	}
	go func() {
		var res platformResult
		defer func() {
			progress.Debugf(d.events, "platform check finished")
			out <- res
		}()
		ctx, cancel := context.WithTimeout(ctx, platformCheckTimeout)
		defer cancel()
		if len(plats) == 0 {
			var err error
			if plats, err = workerPlatforms(ctx, c); err != nil || len(plats) == 0 {
				return
			}
		}
		native, env := plats[0], envs[0]
		var cluster *argocd.Client
		if len(env.ArgoCD.Applications) > 0 {
			cluster, _ = argocd.Connect("", "")
		}
		res.key = d.platformCheckKey(native, unset, env, cluster)
		if age, ok := keptPlatformCheck(d.cfg.StatePath(), res.key, time.Now()); ok {
			progress.Debugf(d.events, "platform check: no mismatch, as a check %s ago found (%s, kept %s)", age.Round(time.Second), platformCheckFile, platformCheckKeep)
			res.verified, res.kept = true, true
			return
		}
		if ws, ok := d.nodeMismatch(ctx, cluster, native, unset, env); ok {
			res.warnings, res.verified = ws, true
			return
		}
		res.warnings, res.verified = d.pinnedMismatch(ctx, native, unset, env)
	}()
	return out
}

// platformWarnings shows what the platform check found. It reads the
// GitOps repository and the registry beside the build; a build done first
// waits a little for it, not more. A check that found no mismatch is
// kept for the next builds.
func (d *deps) platformWarnings(check <-chan platformResult) {
	if check == nil {
		return
	}
	select {
	case res := <-check:
		for _, w := range res.warnings {
			progress.Warnf(d.events, "%s", w)
		}
		if res.verified && !res.kept && len(res.warnings) == 0 && res.key != "" {
			if err := savePlatformCheck(d.cfg.StatePath(), res.key, time.Now()); err != nil {
				progress.Debugf(d.events, "platform check not kept: %v", err)
			}
		}
	case <-time.After(platformCheckGrace):
	}
	progress.Debugf(d.events, "platform check done or given up")
}

// platformCheckKey is what a check's answer depends on: the daemon's
// platform, the images compared and where they are pinned, and the
// cluster asked.
func (d *deps) platformCheckKey(native string, unset []string, env config.Environment, cluster *argocd.Client) string {
	k := struct {
		File, Native, Repo, Branch, Pin, Mode, Origin, Cluster string
		Env                                                    config.Environment
		Images                                                 [][3]string
	}{
		File: d.cfg.File, Native: native, Repo: d.cfg.Deploy.Repo, Branch: d.cfg.Deploy.Branch,
		Pin: d.cfg.Deploy.Pin, Mode: d.cfg.Deploy.Mode, Env: env,
	}
	if k.Repo == "." {
		k.Origin = gitinfo.SanitizeURL(gitinfo.Origin(d.cfg.Dir()))
	}
	if cluster != nil {
		k.Cluster = cluster.Host
	}
	for _, n := range unset {
		k.Images = append(k.Images, [3]string{n, d.cfg.RepositoryFor(n), d.cfg.Images[n].KustomizeName})
	}
	raw, _ := json.Marshal(k)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// keptCheck is platformCheckFile's content.
type keptCheck struct {
	Key     string    `json:"key"`
	Checked time.Time `json:"checked"`
}

// keptPlatformCheck reports whether the state directory holds a check of
// key that found no mismatch less than platformCheckKeep before now, and
// how long ago. Anything else (no file, another key, one too large or not
// JSON, a time to come) is no kept check.
func keptPlatformCheck(stateDir, key string, now time.Time) (time.Duration, bool) {
	raw, err := build.ReadStateFile(stateDir, platformCheckFile, 4096)
	if err != nil {
		return 0, false
	}
	var k keptCheck
	if json.Unmarshal(raw, &k) != nil || k.Key != key {
		return 0, false
	}
	age := now.Sub(k.Checked)
	return age, age >= 0 && age < platformCheckKeep
}

func savePlatformCheck(stateDir, key string, now time.Time) error {
	raw, err := json.Marshal(keptCheck{Key: key, Checked: now.UTC()})
	if err != nil {
		return err
	}
	return build.WriteStateFile(stateDir, platformCheckFile, append(raw, '\n'))
}

// nodeMismatch compares the daemon's platform with what the nodes of the
// environment's cluster report, when it has Argo CD Applications and the
// Kubernetes API answers (the standard kubeconfig rules); ok is false
// when the cluster could not be asked.
func (d *deps) nodeMismatch(ctx context.Context, c *argocd.Client, native string, unset []string, env config.Environment) ([]string, bool) {
	if c == nil {
		return nil, false
	}
	nodes, err := c.NodePlatforms(ctx)
	if err != nil || len(nodes) == 0 {
		return nil, false
	}
	if slices.Contains(nodes, native) {
		return nil, true
	}
	var ws []string
	for _, n := range unset {
		ws = append(ws, fmt.Sprintf("image %s has no platforms, so it was built for this daemon's own, %s; but the nodes of %s's cluster (%s) run %s: set platforms in %s (init writes [linux/amd64]), or this image will not start there",
			n, native, env.Name, c.Host, strings.Join(nodes, ", "), d.cfg.File))
	}
	return ws, true
}

// pinnedMismatch compares the daemon's platform with what the
// environment's pinned release runs, read from the GitOps repository and
// the registry; verified is true when every image's pinned platforms were
// read.
func (d *deps) pinnedMismatch(ctx context.Context, native string, unset []string, env config.Environment) (warnings []string, verified bool) {
	dep, err := d.deployEnv(ctx, env)
	if err != nil || dep.ImageUpdater {
		return nil, false
	}
	imgs, err := d.pinImages(unset)
	if err != nil {
		return nil, false
	}
	states, err := release.ReadOverlays(ctx, dep, imgs)
	if err != nil || len(states) == 0 {
		return nil, false
	}
	verified = true
	for _, im := range imgs {
		e, ok := states[0].Entries[im.Name]
		if !ok || e.NewTag == "" {
			verified = false
			continue
		}
		repo := e.NewName
		if repo == "" {
			repo = im.Repository
		}
		pinned, err := d.registry.Platforms(ctx, repo, e.NewTag)
		if err != nil || len(pinned) == 0 {
			verified = false
			continue
		}
		if slices.Contains(pinned, native) {
			continue
		}
		warnings = append(warnings, fmt.Sprintf("image %s has no platforms, so it was built for this daemon's own, %s; but %s runs %s (%s): set platforms in %s (init writes [linux/amd64]), or this image will not start there",
			im.Name, native, env.Name, strings.Join(pinned, ", "), e.NewTag, d.cfg.File))
	}
	return warnings, verified
}
