package scaffold

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shipit-dev/shipit/ci/templates"
	"github.com/shipit-dev/shipit/dockerfiles"
	"github.com/shipit-dev/shipit/internal/confine"
)

// planned is the files init makes, and what it found on the way.
type planned struct {
	files    []File
	findings []Finding
}

func (p *planned) add(path string, content []byte) {
	p.files = append(p.files, File{Path: path, content: content})
}

func (p *planned) found(f ...Finding) { p.findings = append(p.findings, f...) }

// plan reads the project and makes the files to write. Every finding, and
// every assumption, is reported.
func plan(kind string, o Options) ([]File, []Finding, error) {
	d := data{Options: o, Kind: kind, Rails: kind == KindRails, AppPort: 8080, Memory: "64Mi", MemoryLimit: "256Mi",
		Envs: environments, EnvFrom: envFrom{Name: o.Name}, JobEnvFrom: envFrom{Name: o.Name, Optional: true}}
	p := &planned{}
	existing, err := readDockerfile(o.Dir)
	if err != nil {
		return nil, nil, err
	}
	switch kind {
	case KindRails:
		err = p.rails(&d, existing)
	case KindGo:
		err = p.goService(&d, existing)
	case KindDockerfile:
		err = p.service(&d, existing, existing)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := p.manifests(d); err != nil {
		return nil, nil, err
	}
	if err := p.pipelines(d); err != nil {
		return nil, nil, err
	}
	sort.SliceStable(p.files, func(i, j int) bool { return p.files[i].Path < p.files[j].Path })
	return p.files, p.findings, nil
}

// rails plans a Rails app's images: the app's Dockerfile (the template,
// rendered from what init read, unless the app has one) and nginx.
func (p *planned) rails(d *data, existing []byte) error {
	d.AppPort, d.Memory, d.MemoryLimit = 3000, "512Mi", "1Gi"
	r, err := ReadRails(d.Dir)
	if err != nil {
		return err
	}
	p.found(r.Findings...)
	dockerfile := existing
	if dockerfile == nil {
		b, err := dockerfiles.RenderRails(railsTemplate(d.Dir, r))
		if err != nil {
			return err
		}
		p.add("Dockerfile", b)
		dockerfile = b
	}
	df, err := ParseDockerfile(dockerfile)
	if err != nil {
		return fmt.Errorf("Dockerfile: %w", err)
	}
	p.found(df.findings(existing != nil)...)
	launch, why, assumed := df.Launch(func(rel string) ([]byte, bool) {
		b, err := confine.ReadFile(filepath.Join(d.Dir, filepath.FromSlash(rel)))
		return b, err == nil
	})
	from := "Dockerfile"
	if existing == nil {
		from = "the template"
	}
	p.found(Finding{What: "how the container starts: " + why, From: from, Assumed: assumed, Change: "the args of k8s/base/deployment.yaml, migrate-job.yaml and worker.yaml"})
	d.Workdir, d.Health = df.Workdir, r.Health
	d.Web = newRun(launch.Run(Command{Rails: []string{"server"}}, r.BinRails))
	d.Migrate = newRun(launch.Run(Command{Rails: []string{"db:prepare"}}, r.BinRails))
	if r.Worker != nil {
		c, a := launch.Run(*r.Worker, r.BinRails)
		d.Worker = newRun(c, a)
		d.Worker.Source = r.Worker.Source
	}
	nginx, err := dockerfiles.Template("nginx")
	if err != nil {
		return err
	}
	d.Images = []image{{Name: "app", Context: ".", Dockerfile: "Dockerfile", Target: df.Target},
		{Name: "nginx", Context: "docker/nginx", Dockerfile: "Dockerfile"}}
	p.add("docker/nginx/Dockerfile", nginx)
	return nil
}

// goService plans a Go service: shipit's Go template, unless it has a
// Dockerfile.
func (p *planned) goService(d *data, existing []byte) error {
	dockerfile := existing
	if dockerfile == nil {
		g, err := dockerfiles.Template("go")
		if err != nil {
			return err
		}
		p.add("Dockerfile", g)
		dockerfile = g
	}
	return p.service(d, dockerfile, existing)
}

// service plans one image from a Dockerfile; existing is the project's own
// (nil when init writes it).
func (p *planned) service(d *data, dockerfile, existing []byte) error {
	target, port, findings, err := fromDockerfile(dockerfile, existing != nil)
	if err != nil {
		return err
	}
	p.found(findings...)
	d.AppPort = port
	d.Images = []image{{Name: "app", Context: ".", Dockerfile: "Dockerfile", Target: target}}
	return nil
}

// manifest is a file init renders from a template of templates/.
type manifest struct{ path, tmpl string }

// manifests renders shipit.yaml, .dockerignore, the base, the overlays and
// the Argo CD objects.
func (p *planned) manifests(d data) error {
	ms := []manifest{
		{"shipit.yaml", "shipit.yaml.tmpl"},
		{".dockerignore", "dockerignore.tmpl"},
	}
	for _, f := range []string{"kustomization", "deployment", "service", "ingress", "configmap", "secret.example"} {
		ms = append(ms, manifest{"k8s/base/" + f + ".yaml", "k8s/base/" + f + ".yaml.tmpl"})
	}
	if d.Rails {
		ms = append(ms, manifest{"k8s/base/migrate-job.yaml", "k8s/base/migrate-job.yaml.tmpl"})
	}
	if d.Worker != nil {
		ms = append(ms, manifest{"k8s/base/worker.yaml", "k8s/base/worker.yaml.tmpl"})
	}
	for _, env := range d.Envs {
		ms = append(ms,
			manifest{"k8s/overlays/" + env + "/kustomization.yaml", "k8s/overlays/kustomization.yaml.tmpl"},
			manifest{"k8s/argocd/" + env + ".yaml", "k8s/argocd/application.yaml.tmpl"})
	}
	if d.ImageUpdater {
		ms = append(ms, manifest{"k8s/argocd/image-updater.yaml", "k8s/argocd/image-updater.yaml.tmpl"})
	} else {
		ms = append(ms, manifest{"k8s/argocd/previews.yaml", "k8s/argocd/previews.yaml.tmpl"})
	}
	for _, m := range ms {
		env := d.Envs[0]
		for _, e := range d.Envs {
			if strings.Contains(m.path, "/"+e) {
				env = e
			}
		}
		b, err := render(m.tmpl, d, env)
		if err != nil {
			return fmt.Errorf("%s: %w", m.path, err)
		}
		p.add(m.path, b)
	}
	return nil
}

// pipelines adds the CI workflows: build and release, and previews unless
// the Image Updater writes the pins.
func (p *planned) pipelines(d data) error {
	ci, err := Workflow(d.Kind, d.Version)
	if err != nil {
		return err
	}
	p.add(".github/workflows/shipit.yml", ci)
	if d.ImageUpdater {
		return nil
	}
	pw, err := templates.FS.ReadFile("github-preview.yml")
	if err != nil {
		return err
	}
	p.add(".github/workflows/preview.yml", pinVersion(pw, d.Version))
	return nil
}
