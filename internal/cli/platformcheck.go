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
// cluster again; platformCheckKeepUnread, one that could not compare (no
// release pinned yet, a remote that did not answer), so that an
// unreachable remote costs a build every few minutes, not every build.
const (
	platformCheckTimeout    = 10 * time.Second
	platformCheckGrace      = 3 * time.Second
	platformCheckKeep       = 12 * time.Hour
	platformCheckKeepUnread = 10 * time.Minute
)

// platformCheckFile, in the state directory, is the last check that gave
// no warning.
const platformCheckFile = "platform-check.json"

// platformResult is what a platform check found: the warnings, and
// whether it could tell (verified: every image's platforms compared, not
// one left unread); done, that its reads ran to their end (not given up at
// its timeout); kept, that it was taken from platformCheckFile instead.
type platformResult struct {
	warnings []string
	verified bool
	done     bool
	kept     bool
	key      string
	at       time.Time // when its reads began
}

// platformCheck looks, beside the build, for the classic mistake: an image
// with no platforms built on a daemon whose own platform (an Apple-silicon
// laptop's linux/arm64) is not what the release pinned in the first
// environment runs. It is advice: anything it cannot read says nothing, and
// it gives up after platformCheckTimeout. plats are the daemon's
// workers' platforms as the dial read them; none: they are asked again.
// A check that found no mismatch is kept (platformCheckFile) and taken as
// true for platformCheckKeep, one that could not compare for
// platformCheckKeepUnread; one that warned is done again every build.
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
		if k, age, ok := keptPlatformCheck(d.cfg.StatePath(), res.key, time.Now()); ok {
			what := "no mismatch, as a check"
			if !k.Verified {
				what = "nothing to compare, as a check"
			}
			progress.Debugf(d.events, "platform check: %s %s ago found (%s)", what, age.Round(time.Second), platformCheckFile)
			res.verified, res.kept = k.Verified, true
			return
		}
		res.at = time.Now()
		defer func() { res.done = ctx.Err() == nil }()
		if ws, ok := d.nodeMismatch(ctx, cluster, native, unset, env); ok {
			res.warnings, res.verified = ws, true
			return
		}
		res.warnings, res.verified = d.pinnedMismatch(ctx, native, unset, env)
		if cluster != nil {
			// The cluster was to be asked and did not answer: the pinned
			// release's platforms are not its nodes'.
			res.verified = false
		}
	}()
	return out
}

// platformWarnings shows what the platform check found. It reads the
// GitOps repository and the registry beside the build; a build done first
// waits a little for it, not more. A check that gave no warning is kept
// for the next builds.
func (d *deps) platformWarnings(check <-chan platformResult) {
	if check == nil {
		return
	}
	select {
	case res := <-check:
		for _, w := range res.warnings {
			progress.Warnf(d.events, "%s", w)
		}
		if res.done && !res.kept && len(res.warnings) == 0 {
			if err := savePlatformCheck(d.cfg.StatePath(), res.key, res.verified, res.at); err != nil {
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
		k.Origin = gitinfo.Origin(d.cfg.Dir()) // hashed, never shown: as configured
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

// forgetPlatformCheck drops the kept check, once a release or a pin from
// this checkout moved what an environment runs.
func (d *deps) forgetPlatformCheck() {
	_ = build.RemoveStateFile(d.cfg.StatePath(), platformCheckFile)
}

// keptCheck is platformCheckFile's content.
type keptCheck struct {
	Key      string    `json:"key"`
	Verified bool      `json:"verified"` // false: it could not compare
	Checked  time.Time `json:"checked"`
}

// keptPlatformCheck reports whether the state directory holds a check of
// key that gave no warning less than platformCheckKeep before now (or
// platformCheckKeepUnread, for one that could not compare), and how long
// ago. Anything else (no file, another key, one too large or not JSON, a
// time to come) is no kept check.
func keptPlatformCheck(stateDir, key string, now time.Time) (keptCheck, time.Duration, bool) {
	raw, err := build.ReadStateFile(stateDir, platformCheckFile, 4096)
	if err != nil {
		return keptCheck{}, 0, false
	}
	var k keptCheck
	if json.Unmarshal(raw, &k) != nil || k.Key != key {
		return keptCheck{}, 0, false
	}
	keep := platformCheckKeep
	if !k.Verified {
		keep = platformCheckKeepUnread
	}
	age := now.Sub(k.Checked)
	return k, age, age >= 0 && age < keep
}

func savePlatformCheck(stateDir, key string, verified bool, now time.Time) error {
	raw, err := json.Marshal(keptCheck{Key: key, Verified: verified, Checked: now.UTC()})
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
