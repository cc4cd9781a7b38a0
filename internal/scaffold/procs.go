package scaffold

import (
	"fmt"
	"strings"

	"github.com/shipit-dev/shipit/internal/lazyre"
)

var (
	procLine = lazyre.New(`^([A-Za-z0-9_-]+):\s*(.+?)\s*$`)
	// servers are Procfile commands that serve HTTP: the web container
	// runs rails server, not a second copy of them.
	serverCmd = lazyre.New(`(^|\s)(rails\s+(s|server)|puma|thrust|unicorn|falcon|passenger|iodine)(\s|$)`)
	// services are Procfile commands that run a service the app needs, not
	// one of its own processes.
	serviceCmd = lazyre.New(`^(redis-server|memcached|postgres|mysqld|nginx|caddy)\b`)
	shellMeta  = lazyre.New("[;&|<>()`\\\\\n]")
	envAssign  = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// readProcesses finds the job runners: every Procfile process but the web
// server and release (run through sh -c, so that FOO=1 prefixes and $PORT
// work as in foreman), else the one the bundle's job gem implies.
func (r *Rails) readProcesses() error {
	r.BinRails = r.exists("bin/rails")
	r.BinJobs = r.exists("bin/jobs")
	procfile, ok, err := r.read("Procfile")
	if err != nil {
		return err
	}
	if ok {
		for _, line := range strings.Split(procfile, "\n") {
			m := procLine.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil || strings.HasPrefix(line, "#") {
				continue
			}
			r.procfileEntry(m[1], m[2])
		}
	}
	if len(r.Workers) == 0 {
		if c := r.jobGem(); c != nil {
			r.Workers = []Process{{Name: "worker", Command: *c}}
		}
	}
	for _, w := range r.Workers {
		from := "Procfile"
		if g, ok := strings.CutPrefix(w.Command.Source, "gem "); ok {
			from = r.gems[g].from
		}
		where := "a worker Deployment"
		if r.SQLite != nil {
			where = "a container beside the app, on the SQLite volume"
		}
		r.found(fmt.Sprintf("job runner (%s): %s", w.Command.Source, where), from)
	}
	return nil
}

func (r *Rails) procfileEntry(name, line string) {
	switch {
	case name == "release":
		r.Release = &Command{Line: shLine(line), Source: "Procfile release:"}
		r.found("the migration runs the Procfile's release: "+line, "Procfile")
	case name == "web" || serverCmd.MatchString(line):
		r.found("Procfile "+name+": serves HTTP: the web container runs rails server (its args in k8s/base/deployment.yaml)", "Procfile")
	case serviceCmd.MatchString(line):
		r.found("Procfile "+name+": runs "+strings.Fields(line)[0]+", a service the cluster provides: not a worker", "Procfile")
	default:
		r.Workers = append(r.Workers, Process{Name: name, Command: Command{Line: shLine(line), Source: "Procfile " + name + ":"}})
	}
}

// shLine runs a Procfile command as foreman does, through a shell; a
// simple command is exec'd, so that it gets the signals (env runs the
// VAR=value prefixes).
func shLine(line string) []string {
	if shellMeta.MatchString(line) {
		return []string{"sh", "-c", line}
	}
	if envAssign.MatchString(line) {
		return []string{"sh", "-c", "exec env " + line}
	}
	return []string{"sh", "-c", "exec " + line}
}

// jobGem is the job runner a gem of the bundle implies.
func (r *Rails) jobGem() *Command {
	switch {
	case r.gems.has("sidekiq") != "":
		return &Command{Bundle: []string{"sidekiq"}, Source: "gem sidekiq"}
	case r.gems.has("solid_queue") != "":
		if r.BinJobs {
			return &Command{Line: []string{"./bin/jobs"}, Source: "gem solid_queue"}
		}
		return &Command{Rails: []string{"solid_queue:start"}, Source: "gem solid_queue"}
	case r.gems.has("good_job") != "":
		return &Command{Bundle: []string{"good_job", "start"}, Source: "gem good_job"}
	case r.gems.has("resque-pool") != "":
		return &Command{Bundle: []string{"resque-pool"}, Source: "gem resque-pool"}
	case r.gems.has("resque") != "":
		return &Command{Line: []string{"sh", "-c", "exec env QUEUE='*' bundle exec rake resque:work"}, Source: "gem resque"}
	case r.gems.has("delayed_job_active_record") != "":
		return &Command{Rails: []string{"jobs:work"}, Source: "gem delayed_job_active_record"}
	case r.gems.has("delayed_job") != "":
		return &Command{Rails: []string{"jobs:work"}, Source: "gem delayed_job"}
	}
	return nil
}
