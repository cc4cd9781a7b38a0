package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	sessioncontent "github.com/moby/buildkit/session/content"
	"github.com/moby/buildkit/session/filesync"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// Images built from one directory share one BuildKit session.
//
// BuildKit names a solve's local sources by the session that serves them:
// when a web app and its worker, built from one context and Dockerfile,
// each bring a session of their own (as every BuildKit client does for
// each solve), the daemon is sent the context once for each, and each
// load is a step of its own. Solved in one session, the loads are one
// step: the context is sent once, and the two solves share every step
// that follows until their targets part.
//
// A session serves its images' directories, secrets and SSH agents and the
// registry credentials, so only images alike in all of those share one,
// and images pushed to a registry apart from those that go to OCI
// layouts. The daemon writes every layout of a session into its one
// export store: a layoutStore over the images' layouts, and shipit writes
// each layout's index.json, as BuildKit's client does for a layout of its
// own. An image with a local cache keeps its own session: the daemon
// reads and writes that cache through the session's one cache store.

// dialer is a Solver that can serve a session of shipit's own
// (*client.Client).
type dialer interface {
	Dialer() session.Dialer
}

// sessionKey is what images must have alike to share a session; "" for
// an image that cannot share one.
func sessionKey(r Request) string {
	for _, c := range append(append([]client.CacheOptionsEntry(nil), r.CacheImports...), r.CacheExports...) {
		if c.Type != "registry" {
			return ""
		}
	}
	var b strings.Builder
	// Images of one directory pair have one generation on a daemon.
	b.WriteString(map[bool]string{true: "push", false: "oci"}[r.Push] + "\x00" + baseSharedKey(r))
	for _, s := range r.Secrets {
		b.WriteString("\x00secret\x00" + s.ID + "\x00" + s.File + "\x00" + s.Env)
	}
	for _, s := range r.SSH {
		b.WriteString("\x00ssh\x00" + s.ID + "\x00" + strings.Join(s.Paths, "\x01"))
	}
	return b.String()
}

// shareable are the sessions worth sharing among jobs, on a single daemon
// that can serve one: those of two images or more, by key, each with its
// images' layout directories (none when they are pushed).
func shareable(jobs []job, solver Solver) map[string][]string {
	if _, ok := solver.(dialer); !ok {
		return nil
	}
	n := map[string]int{}
	layouts := map[string][]string{}
	for _, j := range jobs {
		if k := sessionKey(j.req); k != "" && !j.part {
			n[k]++
			if !j.req.Push {
				layouts[k] = append(layouts[k], j.req.LayoutDir)
			}
		}
	}
	share := map[string][]string{}
	for k, c := range n {
		if c > 1 {
			share[k] = layouts[k]
		}
	}
	return share
}

// sessionFunc is the session an image's solve on solver uses: a zero
// sessionUse when the image brings its own.
type sessionFunc func(r Request, solver Solver) (sessionUse, error)

// sessionUse is an image's use of a shared session.
type sessionUse struct {
	sh      *sharedSession
	release func()
}

// session is the shared session; nil for an image's own.
func (u sessionUse) session() *session.Session {
	if u.sh == nil {
		return nil
	}
	return u.sh.s
}

// explain adds to a failed solve's error why the shared session ended,
// when it did: the daemon then says only that it has no such session.
func (u sessionUse) explain(err error) error {
	if u.sh == nil || err == nil {
		return err
	}
	select {
	case <-u.sh.done:
		if u.sh.err != nil {
			return fmt.Errorf("%w (%s: %w)", err, sessionEnded, u.sh.err)
		}
	default:
	}
	return err
}

// done gives the session back.
func (u sessionUse) done() {
	if u.release != nil {
		u.release()
	}
}

// sessionOf is the sessionFunc of a batch of jobs: a shared session for
// the images whose key is in share (shareable). Each batch has sessions
// of its own, so a session's layouts are those of its batch.
func sessionOf(ctx context.Context, opt Options, share map[string][]string) sessionFunc {
	ss := &sessions{}
	return func(r Request, solver Solver) (sessionUse, error) {
		key := sessionKey(r)
		layouts, ok := share[key]
		if key == "" || !ok {
			return sessionUse{}, nil
		}
		sh, err := ss.acquire(ctx, key, solver, r, opt.Auth, layouts)
		if err != nil {
			return sessionUse{}, err
		}
		return sessionUse{sh: sh, release: func() { ss.release(key, r.LayoutDir) }}, nil
	}
}

// sessionEnded begins what a build says of a shared session that ended.
const sessionEnded = "the session this build's images share with BuildKit ended"

// errSessionClosed is why a shared session ended when BuildKit gave none.
var errSessionClosed = errors.New("the daemon closed it")

// sessions are the shared sessions of a build, by key; each is closed when
// the last image that uses it is solved.
type sessions struct {
	mu   sync.Mutex
	open map[string]*sharedSession
}

type sharedSession struct {
	s     *session.Session
	store *layoutStore // of its images' layouts; nil when they are pushed
	users int
	stop  context.CancelFunc
	done  chan struct{} // closed when the session ends
	err   error         // why it ended, once done is closed
}

// acquire is the session for r under key, opened by the first image that
// asks; release gives it back.
func (ss *sessions) acquire(ctx context.Context, key string, solver Solver, r Request, auth session.Attachable, layouts []string) (*sharedSession, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if sh, ok := ss.open[key]; ok {
		select {
		case <-sh.done:
			return nil, fmt.Errorf("%s: %w", sessionEnded, cmp.Or(sh.err, errSessionClosed))
		default:
		}
		sh.users++
		return sh, nil
	}
	so, err := solveOpt(r)
	if err != nil {
		return nil, err
	}
	s, err := session.NewSession(context.WithoutCancel(ctx), so.SharedKey)
	if err != nil {
		return nil, err
	}
	// What BuildKit's client does for a session of its own: the
	// directories are sent with their files' owners reset to root.
	dirs := filesync.StaticDirSource{}
	for name, fs := range so.LocalMounts {
		if dirs[name], err = fsutil.NewFilterFS(fs, &fsutil.FilterOpt{Map: rootOwned}); err != nil {
			return nil, err
		}
	}
	s.Allow(filesync.NewFSSyncProvider(dirs))
	attachables, err := sessionAttachables(r)
	if err != nil {
		return nil, err
	}
	for _, a := range attachables {
		s.Allow(a)
	}
	if auth != nil {
		s.Allow(auth)
	}
	var store *layoutStore
	if len(layouts) > 0 {
		if store, err = newLayoutStore(layouts); err != nil {
			return nil, err
		}
		s.Allow(sessioncontent.NewAttachable(map[string]content.Store{"export": store}))
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	sh := &sharedSession{s: s, store: store, users: 1, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(sh.done)
		sh.err = s.Run(runCtx, solver.(dialer).Dialer())
	}()
	if ss.open == nil {
		ss.open = map[string]*sharedSession{}
	}
	ss.open[key] = sh
	return sh, nil
}

// release gives back the session under key, its image (of layout dir)
// solved; the last user closes it.
func (ss *sessions) release(key, dir string) {
	ss.mu.Lock()
	sh := ss.open[key]
	if sh.store != nil {
		sh.store.finish(dir)
	}
	if sh.users--; sh.users > 0 {
		ss.mu.Unlock()
		return
	}
	delete(ss.open, key)
	ss.mu.Unlock()
	_ = sh.s.Close()
	sh.stop()
	<-sh.done
	if sh.store != nil {
		_ = sh.store.close()
	}
}

// rootOwned resets a file's owner to root, as BuildKit's client does for
// the directories it sends.
func rootOwned(_ string, st *fstypes.Stat) fsutil.MapResult {
	st.Uid, st.Gid = 0, 0
	return fsutil.MapResultKeep
}
