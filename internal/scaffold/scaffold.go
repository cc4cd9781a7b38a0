// Package scaffold writes a new shipit project into an existing
// repository: shipit.yaml, Dockerfiles from the templates, a kustomize base
// with staging and production overlays, a CI workflow and the Argo CD
// Applications. It never overwrites a file.
package scaffold

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/shipit-dev/shipit/dockerfiles"
	"github.com/shipit-dev/shipit/internal/confine"
	"github.com/shipit-dev/shipit/internal/lazyre"
)

// Kinds of project init recognises.
const (
	KindRails      = "rails"
	KindGo         = "go"
	KindDockerfile = "dockerfile" // an existing Dockerfile, kept as it is
)

// Options configure Init.
type Options struct {
	Dir      string // the repository
	Name     string // the app's name; default: the directory's
	Registry string // default: an ECR placeholder to edit
	RepoURL  string // the Git URL Argo CD syncs from; default: origin, else a placeholder
	Branch   string // the branch CI releases from and Argo CD syncs: origin's default, else the current one; default main
	// RepoPath is Dir's path from the repository's root ("services/shop"
	// in a monorepo; "" at the root): Argo CD's paths start there.
	RepoPath     string
	ImageUpdater bool // deploy.mode: image-updater, and its configuration
	DryRun       bool
	Version      string // shipit's version: the workflows install it, when it is a release
	// CI is the pipeline to write: github, circleci or gitlab; default:
	// the one the repository has (DetectCI).
	CI string
	// ShipitSHA256 is the sha256 of the shipit-linux-amd64 of Version,
	// which the pipeline checks its download against; "" writes a
	// placeholder that fails closed.
	ShipitSHA256 string
}

// File is one file init writes, or skips.
type File struct {
	Path    string `json:"path"`
	Skipped bool   `json:"skipped,omitempty"` // it exists: left as it is
	// Appended: a line added at the end of an existing file (.gitignore
	// gains /.shipit/); never anything else.
	Appended bool     `json:"appended,omitempty"`
	Lines    []string `json:"lines,omitempty"` // the lines appended, or added to a new file
	content  []byte
}

// Result is what init did.
type Result struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	Findings []Finding `json:"findings"` // what init read in the project, and what it assumed
	Files    []File    `json:"files"`
}

var nonName = lazyre.New(`[^a-z0-9]+`)

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
		return nil, fmt.Errorf("%s has no Gemfile, go.mod or Dockerfile: shipit init sets up Rails apps and Go services, and any app with a Dockerfile (kept as it is). Add a Dockerfile that builds your app, then run shipit init again", o.Dir)
	}
	o, err := defaults(o)
	if err != nil {
		return nil, err
	}
	files, findings, err := plan(kind, o)
	if err != nil {
		return nil, err
	}
	res := &Result{Kind: kind, Name: o.Name, Findings: findings}
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
	// shipit's build output is never committed (build refuses a tracked
	// .shipit): a first `git add -A` after `shipit build` must not take
	// it; nor is it, or k8s/, sent in a build context.
	written := map[string]bool{}
	for _, f := range res.Files {
		written[f.Path] = !f.Skipped
	}
	for _, a := range appendices {
		f, err := appendLines(root, o.Dir, a, o.DryRun, written)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.file, err)
		}
		if f != nil {
			res.Files = append(res.Files, *f)
		}
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
	Kind        string
	Rails       bool
	Images      []image
	AppPort     int
	Workdir     string // the image's WORKDIR: where the app's public/ is
	Health      string // the path of HTTP probes; "" for TCP ones
	Web         *run   // the web container's command and args
	Migrate     *run
	Workers     []worker // the job runners
	SQLite      string   // where the SQLite volume is mounted in the image; "" without one
	Redis       bool     // the app needs Redis: REDIS_URL in the example Secret
	Puma        Puma
	RSpec       bool   // the CI test step runs rspec
	CIRuby      string // the Ruby the CI test job sets up, when the app has no .ruby-version
	Memory      string
	MemoryLimit string
	EnvFrom     envFrom
	JobEnvFrom  envFrom
	Envs        []string
}

// worker is one job runner's Deployment (its container, with SQLite).
type worker struct {
	Name      string // the Deployment's: <app>-worker, <app>-<process>
	Container string // the container's: worker, or <process> beside the app with SQLite
	Source    string // what it runs, for a comment
	Run       *run
}

// envFrom names the ConfigMap and the Secret a container reads.
type envFrom struct {
	Name     string
	Optional bool // the migration's PreSync hook runs before the ConfigMap exists on a first sync
	Database bool // the Secret holds DATABASE_URL (not with SQLite files)
	Redis    bool // and REDIS_URL
}

type image struct {
	Name, Context, Dockerfile, Target string
}

// run is a container's command and args, as YAML flow sequences.
type run struct {
	Command, Args string
	Source        string
}

func newRun(command, args []string) *run {
	r := &run{}
	if command != nil {
		r.Command = flow(command)
	}
	if args != nil {
		r.Args = flow(args)
	}
	return r
}

// flow writes a list of strings as a YAML flow sequence (JSON).
func flow(v []string) string {
	b, _ := json.Marshal(v)
	return strings.ReplaceAll(string(b), `","`, `", "`)
}

// environments init sets up, in promotion order.
var environments = []string{"staging", "production"}

// readDockerfile reads the project's Dockerfile, if it has one.
func readDockerfile(dir string) ([]byte, error) { return readFile(dir, "Dockerfile") }

// readFile reads a file of the project, confined to it; nil when there is
// none.
func readFile(dir, rel string) ([]byte, error) {
	b, err := confine.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return b, nil
}

// fromDockerfile reads the target and the port of a service's Dockerfile.
func fromDockerfile(b []byte, existing bool) (target string, port int, findings []Finding, err error) {
	df, err := ParseDockerfile(b)
	if err != nil {
		return "", 0, nil, fmt.Errorf("Dockerfile: %w", err)
	}
	port = 8080
	if len(df.Expose) > 0 {
		if p, err := strconv.Atoi(strings.SplitN(df.Expose[0], "/", 2)[0]); err == nil && p > 0 && p < 65536 {
			port = p
		}
	}
	from := "Dockerfile"
	if !existing {
		from = "the template"
	}
	findings = df.findings(from)
	if len(df.Expose) > 0 {
		findings = append(findings, Finding{What: fmt.Sprintf("port %d (EXPOSE)", port), From: "Dockerfile"})
	} else {
		findings = append(findings, Finding{What: "port 8080 (no EXPOSE)", Assumed: true, Change: "k8s/base/deployment.yaml and configmap.yaml"})
	}
	return df.Target, port, findings, nil
}

// findings says what init took from the Dockerfile.
func (d *Dockerfile) findings(from string) []Finding {
	var out []Finding
	if d.Target == "" {
		out = append(out, Finding{What: "no build target: the last stage is unnamed, and none is called runtime, production or final", From: from})
	} else {
		out = append(out, Finding{What: "build target " + d.Target, From: from})
	}
	out = append(out, Finding{What: "WORKDIR " + d.Workdir, From: from})
	return out
}

// railsTemplate configures the Rails Dockerfile for what init read.
func railsTemplate(dir string, r *Rails) dockerfiles.Rails {
	t := dockerfiles.Rails{Ruby: r.Ruby, Bootsnap: r.Bootsnap, BinRails: r.BinRails, JS: r.JS.Manager, Node: r.JS.Node,
		Bun: r.JS.Bun, Berry: r.JS.Berry, Vendor: isDir(filepath.Join(dir, "vendor")),
		Build: r.Build, Runtime: r.Runtime, RubyVersionFile: r.RubyVersionFile, BundleConfig: r.BundleConfig,
		BundleCopies: r.BundleCopies, NoLockfile: !r.Lockfile}
	if t.JS != "" {
		t.JSFiles = []string{"package.json"}
		for _, f := range []string{r.JS.Lock, ".yarnrc.yml", ".npmrc", "pnpm-workspace.yaml"} {
			if f != "" && isFile(filepath.Join(dir, f)) {
				t.JSFiles = append(t.JSFiles, f)
			}
		}
		// yarn berry's own release, plugins and patches.
		if isDir(filepath.Join(dir, ".yarn")) {
			t.JSDirs = append(t.JSDirs, ".yarn/")
		}
		t.JSDirs = append(t.JSDirs, r.JS.Dirs...)
	}
	return t
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// templateVersion is the shipit version the workflow templates pin.
const templateVersion = "SHIPIT_VERSION: v0.1.0"

var releaseVersion = lazyre.New(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

var sha256Hex = lazyre.New(`^[0-9a-f]{64}$`)

// pinVersion makes a workflow install the shipit that wrote it, when that
// is a release.
func pinVersion(b []byte, version string) []byte {
	if !releaseVersion.MatchString(version) {
		return b
	}
	return bytes.ReplaceAll(b, []byte(templateVersion), []byte("SHIPIT_VERSION: "+version))
}

// workflow is the GitHub Actions workflow init writes for a project: the
// (actionlint-checked) template b, on the project's branch, with the test
// job's steps for its kind (templates/ci/<kind>-test-steps.yml.tmpl).
func workflow(d data, b []byte) ([]byte, error) {
	s := string(onBranch(b, d.Branch))
	const begin, end = "      # shipit init: test steps\n", "      # shipit init: end of test steps\n"
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return nil, errors.New("the workflow template has no test steps to fill")
	}
	steps, err := render("ci/"+d.Kind+"-test-steps.yml.tmpl", d, d.Envs[0])
	if err != nil {
		return nil, err
	}
	return []byte(s[:i+len(begin)] + string(steps) + s[j:]), nil
}

// onBranch makes a workflow release from the project's branch.
func onBranch(b []byte, branch string) []byte {
	return bytes.Replace(b, []byte("    branches: [main]\n"), []byte("    branches: ["+branch+"]\n"), 1)
}

// branchName is a branch init writes into YAML and workflows as it is.
var branchName = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$`)

// defaults fills in what the options leave out.
func defaults(o Options) (Options, error) {
	if o.Name == "" {
		abs, err := filepath.Abs(o.Dir)
		if err != nil {
			return o, err
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
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.CI == "" {
		o.CI = DetectCI(o.Dir)
	}
	if !slices.Contains(CIs, o.CI) {
		return o, fmt.Errorf("--ci %q: init writes pipelines for %s", o.CI, strings.Join(CIs, ", "))
	}
	if o.ShipitSHA256 != "" && !sha256Hex.MatchString(o.ShipitSHA256) {
		return o, fmt.Errorf("shipit's sha256 %q is not 64 lower-case hex digits", o.ShipitSHA256)
	}
	if o.RepoPath = strings.Trim(path.Clean("/"+filepath.ToSlash(o.RepoPath)), "/"); o.RepoPath != "" {
		o.RepoPath += "/" // joined to k8s/...
	}
	if strings.ContainsAny(o.RepoPath, " \t\n\"'{}[]#:*") {
		return o, fmt.Errorf("%s: init writes the directory's path from the repository's root into the Argo CD Applications, and takes no spaces, quotes or YAML punctuation in it", o.RepoPath)
	}
	if !branchName.MatchString(o.Branch) || strings.Contains(o.Branch, "..") {
		return o, fmt.Errorf("branch %q: init writes it into shipit.yaml and the workflows, and takes only letters, digits, '.', '_', '-' and '/': pass --branch", o.Branch)
	}
	return o, nil
}
