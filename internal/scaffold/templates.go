package scaffold

import (
	"bytes"
	"embed"
	"io/fs"
	"strings"
	"sync"
	"text/template"
)

// templateFS holds the files init renders that are not Dockerfiles or CI
// pipelines: shipit.yaml, .dockerignore, the Kubernetes manifests, the
// Argo CD objects (text/template, with partials.tmpl's definitions), and
// the test steps of the workflow for each kind of project (ci/, as they
// are).
//
//go:embed templates
var templateFS embed.FS

// manifests is every template of templateFS, each named by its path under
// templates/, all sharing the definitions of partials.tmpl. They are
// parsed when first rendered, not when any shipit command starts.
var manifests = sync.OnceValue(mustParse)

func mustParse() *template.Template {
	root := template.New("")
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".tmpl") {
			return err
		}
		b, err := templateFS.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = root.New(strings.TrimPrefix(p, "templates/")).Parse(string(b))
		return err
	})
	if err != nil {
		panic(err) // the embedded templates are part of the binary: a test parses them
	}
	return root
}

// render renders the template at path (under templates/) for an
// environment.
func render(path string, d data, env string) ([]byte, error) {
	var b bytes.Buffer
	err := manifests().ExecuteTemplate(&b, path, struct {
		data
		Env string
	}{d, env})
	return b.Bytes(), err
}
