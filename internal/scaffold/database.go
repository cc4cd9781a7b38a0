package scaffold

import (
	"path"
	"strings"

	"github.com/shipit-dev/shipit/internal/lazyre"
	yaml "go.yaml.in/yaml/v3"
)

var erbTag = lazyre.New(`<%=?[^%]*%>`)

// databaseSamples are the names apps give the database.yml they do not
// commit.
var databaseSamples = []string{"config/database.yml.sample", "config/database.yml.example", "config/example.database.yml"}

// readDatabase says whether production runs on SQLite files (Rails 8's
// default, lobsters, campfire): each pod would have its own empty
// database, so init runs one pod with the files on a volume. It says when
// config/database.yml is missing, as Rails then needs DATABASE_URL.
func (r *Rails) readDatabase() error {
	file := "config/database.yml"
	body, ok, err := r.read(file)
	if err != nil {
		return err
	}
	if !ok {
		change := "commit a config/database.yml for production, or set DATABASE_URL in the Secret (k8s/base/secret.example.yaml)"
		for _, s := range databaseSamples {
			if sample, found, err := r.read(s); err != nil {
				return err
			} else if found {
				file, body, ok = s, sample, true
				change = "commit config/database.yml (" + s + " is there) with production's settings, or set DATABASE_URL in the Secret"
				break
			}
		}
		r.Findings = append(r.Findings, Finding{Warning: true, From: "config/", What: "no config/database.yml: the image has none, and Rails boots only with DATABASE_URL", Change: change})
	}
	if ok {
		if db, isSQLite := productionSQLite(body); isSQLite {
			r.SQLite = &SQLite{Dir: sqliteDir(db), From: file}
		}
	} else if r.onlyAdapter("sqlite3") {
		r.SQLite = &SQLite{Dir: "storage", From: "Gemfile"}
	}
	if r.SQLite == nil {
		return nil
	}
	r.found("production runs on SQLite files in "+r.SQLite.Dir+"/: one pod (replicas 1, Recreate) with a PersistentVolumeClaim there, the migration and the job runners in that pod, no DATABASE_URL", r.SQLite.From)
	return nil
}

func (r *Rails) onlyAdapter(name string) bool {
	only := false
	for _, n := range natives {
		if n.adapter && r.gems.has(n.gem) != "" {
			if n.gem != name {
				return false
			}
			only = true
		}
	}
	return only
}

// productionSQLite reads database.yml (its ERB tags made plain strings)
// and gives the path of production's first SQLite database.
func productionSQLite(body string) (string, bool) {
	var cfg map[string]map[string]any
	if yaml.Unmarshal([]byte(erbTag.ReplaceAllString(body, "erb")), &cfg) != nil {
		return "", false
	}
	prod := cfg["production"]
	dbs := []map[string]any{prod}
	if _, single := prod["adapter"]; !single {
		dbs = nil
		for _, name := range []string{"primary"} {
			if m, ok := prod[name].(map[string]any); ok {
				dbs = append(dbs, m)
			}
		}
		for _, v := range prod {
			if m, ok := v.(map[string]any); ok {
				dbs = append(dbs, m)
			}
		}
	}
	for _, db := range dbs {
		if a, _ := db["adapter"].(string); strings.HasPrefix(a, "sqlite") {
			p, _ := db["database"].(string)
			return p, true
		}
	}
	return "", false
}

// sqliteDir is the directory the volume is mounted on: storage/ for a
// database under it (Rails' default), else the database's own directory.
func sqliteDir(db string) string {
	db = path.Clean(strings.TrimPrefix(db, "./"))
	switch {
	case db == "." || path.IsAbs(db) || strings.HasPrefix(db, "..") || strings.Contains(db, "erb"):
		return "storage"
	case strings.HasPrefix(db, "storage/"):
		return "storage"
	}
	return path.Dir(db)
}
