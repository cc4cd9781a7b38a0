// Package scaffold writes a new shipit project into an existing
// repository: shipit.yaml, Dockerfiles from the templates, a kustomize base
// with staging and production overlays, a CI workflow and the Argo CD
// Applications. It never overwrites a file.
package scaffold

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/shipit-dev/shipit/ci/templates"
	"github.com/shipit-dev/shipit/dockerfiles"
	"github.com/shipit-dev/shipit/internal/confine"
)

// Kinds of project init recognises.
const (
	KindRails      = "rails"
	KindGo         = "go"
	KindDockerfile = "dockerfile" // an existing Dockerfile, kept as it is
)

// Options configure Init.
type Options struct {
	Dir          string // the repository
	Name         string // the app's name; default: the directory's
	Registry     string // default: an ECR placeholder to edit
	RepoURL      string // the Git URL Argo CD syncs from; default: origin, else a placeholder
	ImageUpdater bool   // deploy.mode: image-updater, and its configuration
	DryRun       bool
}

// File is one file init writes, or skips.
type File struct {
	Path    string `json:"path"`
	Skipped bool   `json:"skipped,omitempty"` // it exists: left as it is
	content []byte
}

// Result is what init did.
type Result struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Files []File `json:"files"`
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// Detect says what kind of project dir holds.
func Detect(dir string) string {
	switch {
	case exists(filepath.Join(dir, "Gemfile")):
		return KindRails
	case exists(filepath.Join(dir, "Dockerfile")):
		return KindDockerfile
	case exists(filepath.Join(dir, "go.mod")):
		return KindGo
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Init plans the files and, unless DryRun, writes the missing ones.
func Init(o Options) (*Result, error) {
	kind := Detect(o.Dir)
	if kind == "" {
		return nil, fmt.Errorf("%s has no Gemfile, go.mod or Dockerfile: shipit init detects Rails and Go projects, and keeps an existing Dockerfile. Add a Dockerfile (see shipit's dockerfiles/ templates), then run it again", o.Dir)
	}
	if o.Name == "" {
		abs, err := filepath.Abs(o.Dir)
		if err != nil {
			return nil, err
		}
		o.Name = filepath.Base(abs)
	}
	o.Name = strings.Trim(nonName.ReplaceAllString(strings.ToLower(o.Name), "-"), "-")
	if o.Name == "" {
		o.Name = "app"
	}
	if o.Registry == "" {
		o.Registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com/" + o.Name
	}
	if o.RepoURL == "" {
		o.RepoURL = "https://github.com/example/" + o.Name + ".git"
	}
	files, err := plan(kind, o)
	if err != nil {
		return nil, err
	}
	res := &Result{Kind: kind, Name: o.Name}
	// Every write goes through an os.Root of the directory, and no path
	// component may be a symbolic link: init never writes through one, in
	// the repository or out of it (k8s -> /elsewhere).
	root, err := os.OpenRoot(o.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for _, f := range files {
		if link, err := confine.FirstLink(o.Dir, filepath.Dir(f.Path)); err != nil {
			return nil, err
		} else if link != "" {
			return nil, &LinkError{Path: link}
		}
		if _, err := root.Lstat(f.Path); err == nil {
			f.Skipped = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		} else if !o.DryRun {
			if err := root.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
				return nil, err
			}
			// O_EXCL: never overwrite, even a file that appeared meanwhile.
			fh, err := root.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return nil, err
			}
			_, werr := fh.Write(f.content)
			if cerr := fh.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				return nil, werr
			}
		}
		res.Files = append(res.Files, f)
	}
	return res, nil
}

// LinkError is a directory on the way to a file init would write that is
// a symbolic link.
type LinkError struct{ Path string }

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s is a symbolic link: shipit init writes no file through one. Replace it with a directory, or run init where it is not", e.Path)
}

type data struct {
	Options
	Kind    string
	Images  []image
	AppPort int
}

type image struct {
	Name, Context, Dockerfile string
}

func plan(kind string, o Options) ([]File, error) {
	d := data{Options: o, Kind: kind, AppPort: 3000}
	var files []File
	add := func(path string, content []byte) { files = append(files, File{Path: path, content: content}) }
	switch kind {
	case KindRails:
		d.Images = []image{{Name: "app", Context: ".", Dockerfile: "Dockerfile"}, {Name: "nginx", Context: "docker/nginx", Dockerfile: "Dockerfile"}}
		rails, err := dockerfiles.Template("rails")
		if err != nil {
			return nil, err
		}
		nginx, err := dockerfiles.Template("nginx")
		if err != nil {
			return nil, err
		}
		add("Dockerfile", rails)
		add("docker/nginx/Dockerfile", nginx)
	case KindGo:
		d.AppPort = 8080
		d.Images = []image{{Name: "app", Context: ".", Dockerfile: "Dockerfile"}}
		g, err := dockerfiles.Template("go")
		if err != nil {
			return nil, err
		}
		add("Dockerfile", g)
	case KindDockerfile:
		d.AppPort = 8080
		d.Images = []image{{Name: "app", Context: ".", Dockerfile: "Dockerfile"}}
	}
	for _, t := range []struct{ path, tmpl string }{
		{"shipit.yaml", shipitYAML},
		{".dockerignore", dockerignore},
		{"k8s/base/kustomization.yaml", baseKustomization},
		{"k8s/base/deployment.yaml", deployment},
		{"k8s/base/service.yaml", service},
		{"k8s/base/migrate-job.yaml", migrateJob},
		{"k8s/overlays/staging/kustomization.yaml", overlay},
		{"k8s/overlays/production/kustomization.yaml", overlay},
		{"k8s/argocd/staging.yaml", application},
		{"k8s/argocd/production.yaml", application},
	} {
		env := "staging"
		if strings.Contains(t.path, "production") {
			env = "production"
		}
		b, err := render(t.tmpl, d, env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.path, err)
		}
		add(t.path, b)
	}
	ci, err := templates.FS.ReadFile("github-actions.yml")
	if err != nil {
		return nil, err
	}
	add(".github/workflows/shipit.yml", ci)
	if o.ImageUpdater {
		b, err := render(imageUpdater, d, "production")
		if err != nil {
			return nil, err
		}
		add("k8s/argocd/image-updater.yaml", b)
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func render(tmpl string, d data, env string) ([]byte, error) {
	t, err := template.New("").Parse(tmpl)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, struct {
		data
		Env string
	}{d, env})
	return b.Bytes(), err
}
