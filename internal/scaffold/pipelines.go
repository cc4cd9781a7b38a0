package scaffold

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shipit-dev/shipit/ci/templates"
)

// CI systems init writes a pipeline for (--ci).
const (
	CIGitHub   = "github"
	CICircleCI = "circleci"
	CIGitLab   = "gitlab"
)

// CIs are the values of --ci.
var CIs = []string{CIGitHub, CICircleCI, CIGitLab}

// shaPlaceholder is SHIPIT_SHA256 in the templates: not a digest, so the
// pipeline's sha256sum --check fails on it until it is filled in.
const shaPlaceholder = `SHIPIT_SHA256: "fill-in-the-sha256-of-shipit-linux-amd64"`

// pipelineFiles are the files a CI's pipeline is, and its template's.
var pipelineFiles = map[string][]struct{ path, template string }{
	CIGitHub:   {{".github/workflows/shipit.yml", "github-actions.yml"}, {".github/workflows/preview.yml", "github-preview.yml"}},
	CICircleCI: {{".circleci/config.yml", "circleci.yml"}},
	CIGitLab:   {{".gitlab-ci.yml", "gitlab-ci.yml"}},
}

// DetectCI is the CI a repository already has: .github/, .circleci/ or
// .gitlab-ci.yml in dir (the first found, in that order), else GitHub.
func DetectCI(dir string) string {
	switch {
	case exists(filepath.Join(dir, ".github")):
		return CIGitHub
	case exists(filepath.Join(dir, ".circleci")):
		return CICircleCI
	case exists(filepath.Join(dir, ".gitlab-ci.yml")):
		return CIGitLab
	}
	return CIGitHub
}

// pipelines adds the CI pipeline: tests, build and release, production
// behind the CI's approval, and previews unless the Image Updater writes
// the pins. An existing pipeline is never touched: init says so, and
// where the template is.
func (p *planned) pipelines(d data) error {
	for _, f := range pipelineFiles[d.CI] {
		if f.template == "github-preview.yml" && d.ImageUpdater {
			continue
		}
		b, err := pipeline(d, f.template)
		if err != nil {
			return err
		}
		if exists(filepath.Join(d.Dir, f.path)) {
			p.found(Finding{What: f.path + " exists, and init leaves it as it is", Warning: true,
				Change: fmt.Sprintf("shipit's pipeline for it is ci/templates/%s in shipit's repository (https://github.com/shipit-dev/shipit/blob/%s/ci/templates/%s): merge its jobs into yours", f.template, templateRef(d.Version), f.template)})
		}
		p.add(f.path, b)
	}
	if d.ShipitSHA256 == "" {
		p.found(Finding{What: "the pipeline's SHIPIT_SHA256 is a placeholder, which fails every install of shipit until it is set", Warning: true,
			Change: "set it to the sha256 of the release's shipit-linux-amd64 (sha256sum shipit-linux-amd64, or its line in the release's checksums.txt, read once and written into the pipeline); a release of shipit for linux/amd64 running init fills it in itself"})
	}
	return nil
}

func templateRef(version string) string {
	if releaseVersion.MatchString(version) {
		return version
	}
	return "main"
}

// pipeline renders one template for the project: its version of shipit
// and sha256, its branch, the test job for its kind, no --wait where
// nothing can be waited for.
func pipeline(d data, name string) ([]byte, error) {
	b, err := templates.FS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	b = pinVersion(b, d.Version)
	if d.ShipitSHA256 != "" {
		b = bytes.ReplaceAll(b, []byte(shaPlaceholder), []byte(`SHIPIT_SHA256: "`+d.ShipitSHA256+`"`))
	}
	if d.ImageUpdater { // release and promote cannot wait: the updater makes the commit
		b = bytes.ReplaceAll(b, []byte(`SHIPIT_WAIT: "10m"`), []byte(`SHIPIT_WAIT: ""`))
	}
	switch name {
	case "github-actions.yml":
		return workflow(d, b)
	case "github-preview.yml":
		return onBranch(b, d.Branch), nil
	case "circleci.yml":
		b = bytes.ReplaceAll(b, []byte("              only: main\n"), []byte("              only: "+d.Branch+"\n"))
		b = bytes.ReplaceAll(b, []byte("                - main\n"), []byte("                - "+d.Branch+"\n"))
		return fillJob(b, "    # shipit init: test job\n", "    # shipit init: end of test job\n", circleciTest(d))
	case "gitlab-ci.yml":
		return fillJob(b, "  # shipit init: test job\n", "  # shipit init: end of test job\n", gitlabTest(d))
	}
	return nil, fmt.Errorf("no pipeline template %s", name)
}

// fillJob replaces what lies between two marker lines of a template.
func fillJob(b []byte, begin, end, job string) ([]byte, error) {
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return nil, errors.New("the pipeline template has no test job to fill")
	}
	return []byte(s[:i+len(begin)] + job + s[j:]), nil
}

// testCommand is the app's own test command, as init can tell it, or ""
// when it cannot (the pipeline then says to add one, and fails).
func testCommand(d data) string {
	switch {
	case d.Rails && d.RSpec:
		return "bin/rails db:prepare && bundle exec rspec"
	case d.Rails:
		return "bin/rails db:prepare test"
	case d.Kind == KindGo || exists(filepath.Join(d.Dir, "go.mod")):
		return "go test ./..."
	case hasMakeTarget(filepath.Join(d.Dir, "Makefile"), "test"):
		return "make test"
	}
	return ""
}

// hasMakeTarget reports whether the Makefile at path, a regular file (not
// a link, nor a device) of at most 1 MiB, has a rule for target.
func hasMakeTarget(path, target string) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return false
	}
	f, err := os.Open(path) // #nosec G304 -- the project's own Makefile, read only
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, target+":") {
			return true
		}
	}
	return false
}

const noTests = `echo "Add your tests here; the release waits for this job." && exit 1`

func gitlabTest(d data) string {
	cmd := testCommand(d)
	var image, setup string
	switch {
	case d.Rails:
		image, setup = "ruby:"+orString(d.CIRuby, "3.3"), "    - bundle install\n"
	case strings.HasPrefix(cmd, "go "):
		image = "golang:1.26"
	default:
		image = "debian:12"
	}
	if cmd == "" {
		cmd = noTests
	}
	s := "  image: " + image + "\n"
	if d.Rails {
		s += "  variables:\n    RAILS_ENV: test   # add your database as a service\n"
	}
	return s + "  script:\n" + setup + "    - " + cmd + "\n"
}

func circleciTest(d data) string {
	cmd := testCommand(d)
	image, setup := "cimg/base:current", ""
	switch {
	case d.Rails:
		image = "cimg/ruby:" + orString(d.CIRuby, "3.3")
		setup = "      - run:\n          name: Install gems\n          command: bundle install\n"
	case strings.HasPrefix(cmd, "go "):
		image = "cimg/go:1.26"
	}
	if cmd == "" {
		cmd = noTests
	}
	s := "    docker:\n      - image: " + image + "\n"
	if d.Rails {
		s += "    environment:\n      RAILS_ENV: test   # add your database as a second image\n"
	}
	return s + "    steps:\n      - checkout\n" + setup + "      - run:\n          name: Test\n          command: " + cmd + "\n"
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
