package scaffold

import (
	"slices"
	"testing"
)

func TestParseDockerfile(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, dockerfile string
		scripts          map[string]string // the build context's files
		target, workdir  string
		launch           Launcher
		assumed          bool
		web, worker      []string // args for rails server and sidekiq
	}{
		{
			name:       "named final stage among others, WORKDIR from an ARG, relative WORKDIR",
			dockerfile: "ARG HOME=/srv\nFROM ruby AS base\nWORKDIR ${HOME}\nFROM base AS production\nWORKDIR app\nFROM production AS dev\nWORKDIR /dev\n",
			target:     "production", workdir: "/srv/app", launch: PassThrough,
			web: []string{"./bin/rails", "server"}, worker: []string{"bundle", "exec", "sidekiq"},
		},
		{
			name:       "unnamed last stage inherits the entrypoint of its base stage",
			dockerfile: "FROM ruby AS base\nWORKDIR /rails\nENTRYPOINT [\"/rails/bin/docker-entrypoint\"]\nFROM base AS build\nRUN true\nFROM base\nCMD [\"./bin/rails\", \"server\"]\n",
			scripts:    map[string]string{"bin/docker-entrypoint": "#!/bin/sh\nset -e\nexec \"$@\"\n"},
			target:     "", workdir: "/rails", launch: PassThrough,
			web: []string{"./bin/rails", "server"}, worker: []string{"bundle", "exec", "sidekiq"},
		},
		{
			name:       "bundle exec, shell form",
			dockerfile: "FROM ruby AS runtime\nWORKDIR /app\nENTRYPOINT bundle exec\n",
			target:     "runtime", workdir: "/app", launch: BundleExec,
			web: []string{"rails", "server"}, worker: []string{"sidekiq"},
		},
		{
			name:       "bin/rails as the entrypoint: a worker replaces it",
			dockerfile: "FROM ruby AS final\nWORKDIR /app\nENTRYPOINT [\"bin/rails\"]\n",
			target:     "final", workdir: "/app", launch: RailsEntrypoint,
			web: []string{"server"}, worker: nil,
		},
		{
			name:       "an entrypoint written in the Dockerfile",
			dockerfile: "FROM ruby AS runtime\nWORKDIR /app\nCOPY --chmod=0755 <<'SH' /usr/local/bin/entry\n#!/bin/sh\nexec \"${@}\"\nSH\nENTRYPOINT [\"entry\"]\n",
			target:     "runtime", workdir: "/app", launch: PassThrough, // found on PATH
			web: []string{"./bin/rails", "server"}, worker: []string{"bundle", "exec", "sidekiq"},
		},
		{
			name:       "an entrypoint written in the Dockerfile, by path",
			dockerfile: "FROM ruby AS runtime\nWORKDIR /app\nCOPY <<'SH' /usr/local/bin/entry\n#!/bin/sh\nexec \"${@}\"\nSH\nENTRYPOINT [\"/usr/local/bin/entry\"]\n",
			target:     "runtime", workdir: "/app", launch: PassThrough,
			web: []string{"./bin/rails", "server"}, worker: []string{"bundle", "exec", "sidekiq"},
		},
		{
			name:       "a script that does not run its arguments: assumed, and said",
			dockerfile: "FROM ruby AS runtime\nWORKDIR /app\nENTRYPOINT [\"/app/bin/start\"]\n",
			scripts:    map[string]string{"bin/start": "#!/bin/sh\nexec puma\n"},
			target:     "runtime", workdir: "/app", launch: PassThrough, assumed: true,
			web: []string{"./bin/rails", "server"}, worker: []string{"bundle", "exec", "sidekiq"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, err := ParseDockerfile([]byte(c.dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			if d.Target != c.target || d.Workdir != c.workdir {
				t.Errorf("target %q workdir %q, want %q %q", d.Target, d.Workdir, c.target, c.workdir)
			}
			l, why, assumed := d.Launch(func(rel string) ([]byte, bool) {
				s, ok := c.scripts[rel]
				return []byte(s), ok
			})
			if l != c.launch || assumed != c.assumed || why == "" {
				t.Errorf("launch %v assumed %v (%s), want %v %v", l, assumed, why, c.launch, c.assumed)
			}
			if _, args := l.Run(Command{Rails: []string{"server"}}, true); !slices.Equal(args, c.web) {
				t.Errorf("web args %v, want %v", args, c.web)
			}
			command, args := l.Run(Command{Bundle: []string{"sidekiq"}}, true)
			if c.worker == nil {
				if !slices.Equal(command, []string{"bundle", "exec", "sidekiq"}) || args != nil {
					t.Errorf("worker %v %v: want the command replaced", command, args)
				}
			} else if !slices.Equal(args, c.worker) || command != nil {
				t.Errorf("worker %v %v, want args %v", command, args, c.worker)
			}
		})
	}
	if _, err := ParseDockerfile([]byte("# nothing\n")); err == nil {
		t.Errorf("no stage: %v", err)
	}
}
