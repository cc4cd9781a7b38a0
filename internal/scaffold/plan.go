package scaffold

import (
	"fmt"
	pathpkg "path"
	"path/filepath"
	"sort"
	"strings"

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
		Envs: environments, EnvFrom: envFrom{Name: o.Name, Database: true}, JobEnvFrom: envFrom{Name: o.Name, Optional: true, Database: true}}
	p := &planned{}
	existing, err := readDockerfile(o.Dir)
	if err != nil {
		return nil, nil, err
	}
	switch kind {
	case KindRails:
		err = p.rails(&d)
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
// rendered from what init read, unless the app has a production one) and
// nginx, and what the manifests run.
func (p *planned) rails(d *data) error {
	d.AppPort, d.Memory, d.MemoryLimit = 3000, "512Mi", "1Gi"
	r, err := ReadRails(d.Dir)
	if err != nil {
		return err
	}
	path, dockerfile, kept, err := p.railsDockerfile(d, r)
	if err != nil {
		return err
	}
	for _, f := range r.Findings {
		if !kept || !f.image {
			p.found(f)
		}
	}
	df, err := ParseDockerfile(dockerfile)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := p.ignored(d.Dir, df); err != nil {
		return err
	}
	from := path
	if !kept {
		from = "the template"
	}
	p.found(df.findings(from)...)
	launch, why, assumed := df.Launch(func(rel string) ([]byte, bool) {
		b, err := confine.ReadFile(filepath.Join(d.Dir, filepath.FromSlash(rel)))
		return b, err == nil
	})
	p.found(Finding{What: "how the container starts: " + why, From: from, Assumed: assumed, Change: "the args of k8s/base/deployment.yaml, migrate-job.yaml and worker.yaml"})
	d.Workdir, d.Health, d.Redis, d.Puma, d.RSpec = df.Workdir, r.Health, r.Redis != "", r.Puma, r.RSpec
	if !r.RubyVersionFile {
		d.CIRuby = r.Ruby // setup-ruby reads .ruby-version, and there is none
	}
	d.Web = newRun(launch.Run(Command{Rails: []string{"server"}}, r.BinRails))
	migrate := Command{Rails: []string{"db:prepare"}}
	if r.Release != nil {
		migrate = *r.Release
	}
	d.Migrate = newRun(launch.Run(migrate, r.BinRails))
	for _, w := range r.Workers {
		run := newRun(launch.Run(w.Command, r.BinRails))
		name := workerName(d.Name, w.Name)
		d.Workers = append(d.Workers, worker{Name: name, Container: strings.TrimPrefix(name, d.Name+"-"), Source: w.Command.Source, Run: run})
	}
	if r.SQLite != nil {
		d.SQLite = pathpkg.Join(d.Workdir, r.SQLite.Dir)
	}
	for _, e := range []*envFrom{&d.EnvFrom, &d.JobEnvFrom} {
		e.Database, e.Redis = d.SQLite == "", d.Redis
	}
	nginx, err := dockerfiles.Template("nginx")
	if err != nil {
		return err
	}
	d.Images = []image{{Name: "app", Context: ".", Dockerfile: path, Target: df.Target},
		{Name: "nginx", Context: "docker/nginx", Dockerfile: "Dockerfile"}}
	p.add("docker/nginx/Dockerfile", nginx)
	return nil
}

// workerName is a job runner's Deployment: <app>-worker, <app>-<process>.
func workerName(app, process string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(process), "-"), "-")
	if n == "" || n == "worker" {
		return app + "-worker"
	}
	return app + "-" + n
}

// railsDockerfiles are where apps keep the Dockerfile of their production
// image, in the order init looks.
var railsDockerfiles = []string{"Dockerfile", "docker/Dockerfile"}

// railsDockerfile picks the Dockerfile of the app image: the app's own, if
// it builds a production image (it copies the app in), else the template,
// written at the root or, when a development Dockerfile is there, at
// docker/app/Dockerfile. kept says it is the app's own.
func (p *planned) railsDockerfile(d *data, r *Rails) (path string, b []byte, kept bool, err error) {
	taken, dev := false, []string{}
	for _, f := range railsDockerfiles {
		b, err := readFile(d.Dir, f)
		if err != nil || b == nil {
			if err != nil {
				return "", nil, false, err
			}
			continue
		}
		taken = taken || f == "Dockerfile"
		df, err := ParseDockerfile(b)
		if err != nil {
			return "", nil, false, fmt.Errorf("%s: %w", f, err)
		}
		if df.CopiesApp {
			return f, b, true, nil
		}
		dev = append(dev, f)
	}
	path = "Dockerfile"
	if taken {
		path = "docker/app/Dockerfile"
	}
	others, err := filepath.Glob(filepath.Join(d.Dir, "docker", "*.dockerfile"))
	if err != nil {
		return "", nil, false, err
	}
	for _, o := range others {
		rel := "docker/" + filepath.Base(o)
		p.found(Finding{From: rel, What: rel + " is not built: shipit.yaml builds " + path + " (set images.app.dockerfile to " + rel + " to build it, with its context)"})
	}
	for _, f := range dev {
		p.found(Finding{Warning: true, From: f, What: f + " is a development image (no stage copies the app in, as COPY . . does): not the production image",
			Change: "shipit.yaml builds " + path + ", from shipit's template; to build yours instead, make it COPY the app and set images.app.dockerfile to it"})
	}
	b, err = dockerfiles.RenderRails(railsTemplate(d.Dir, r))
	if err != nil {
		return "", nil, false, err
	}
	p.add(path, b)
	return path, b, false, nil
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
	switch {
	case d.SQLite != "":
		ms = append(ms, manifest{"k8s/base/storage.yaml", "k8s/base/storage.yaml.tmpl"})
	case d.Rails:
		ms = append(ms, manifest{"k8s/base/migrate-job.yaml", "k8s/base/migrate-job.yaml.tmpl"})
		if len(d.Workers) > 0 {
			ms = append(ms, manifest{"k8s/base/worker.yaml", "k8s/base/worker.yaml.tmpl"})
		}
	}
	for _, env := range d.Envs {
		ms = append(ms,
			manifest{"k8s/overlays/" + env + "/kustomization.yaml", "k8s/overlays/kustomization.yaml.tmpl"},
			manifest{"k8s/argocd/" + env + ".yaml", "k8s/argocd/application.yaml.tmpl"})
	}
	if d.ImageUpdater {
		ms = append(ms, manifest{"k8s/argocd/image-updater.yaml", "k8s/argocd/image-updater.yaml.tmpl"})
	} else {
		ms = append(ms, manifest{"k8s/argocd/previews.yaml", "k8s/argocd/previews.yaml.tmpl"},
			manifest{"k8s/argocd/previews-project.yaml", "k8s/argocd/previews-project.yaml.tmpl"})
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
