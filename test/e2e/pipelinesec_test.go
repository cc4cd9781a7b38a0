package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

var (
	releaseOnce sync.Once
	releaseBin  string
	releaseErr  error
)

// releaseShipit is shipit built as the release workflow builds it, with a
// release version: init hashes it into the pipelines it writes.
func releaseShipit(t *testing.T) (bin, sum string) {
	t.Helper()
	releaseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shipit-release-bin")
		if err != nil {
			releaseErr = err
			return
		}
		releaseBin = filepath.Join(dir, "shipit")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X github.com/shipit-dev/shipit/internal/cli.version=v9.8.7", "-o", releaseBin, "./cmd/shipit")
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			releaseErr = &buildError{err, string(out)}
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	b, err := os.ReadFile(releaseBin)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return releaseBin, hex.EncodeToString(h[:])
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "building a release shipit: " + e.err.Error() + "\n" + e.out
}

func parseYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(mustRead(t, path)), &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func mapAt(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, _ := m[k].(map[string]any)
		m = next
	}
	return m
}

var (
	usesLine  = regexp.MustCompile(`(?m)^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	pinnedUse = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)
	tagNote   = regexp.MustCompile(`^\s+# v[0-9]+(\.[0-9]+)*\s*$`)
)

// checkDigest asserts the file pins shipit's version and sha256 (the
// binary that ran init) and that every download of shipit is checked
// against that digest, and nothing else.
func checkDigest(t *testing.T, path, sum string) {
	t.Helper()
	text := mustRead(t, path)
	if !strings.Contains(text, `SHIPIT_SHA256: "`+sum+`"`) || !strings.Contains(text, "SHIPIT_VERSION: v9.8.7") {
		t.Errorf("%s does not pin shipit v9.8.7 by the sha256 of the binary that wrote it (%s)", path, sum)
	}
	downloads := strings.Count(text, "/releases/download/")
	checks := strings.Count(text, `echo "${SHIPIT_SHA256}  `)
	if downloads == 0 || checks != downloads || strings.Count(text, "sha256sum -c")+strings.Count(text, "sha256sum --check") != downloads {
		t.Errorf("%s: %d downloads of shipit, %d checked against SHIPIT_SHA256", path, downloads, checks)
	}
	if strings.Contains(text, "checksums.txt") || strings.Contains(text, "releases/latest") {
		t.Errorf("%s trusts a checksums file or the latest release", path)
	}
	if !strings.Contains(text, "moby/buildkit:v0.33.1@sha256:cec9f139f45e93c5c69c60f8b07cfad9f43f4ef6b6a6cd917527fea5ff2e3dea") {
		t.Errorf("%s: BuildKit is not pinned by digest", path)
	}
}

// TestGitHubPipelineSecurity: what init writes for GitHub passes
// actionlint, pins every action by commit (the tag beside it), checks
// shipit against the digest it wrote, and gives no job that runs a pull
// request's code a write token or the release role.
func TestGitHubPipelineSecurity(t *testing.T) {
	t.Parallel()
	bin, sum := releaseShipit(t)
	dir, _ := goApp(t, "github", bin)
	for _, f := range []string{"shipit.yml", "preview.yml"} {
		path := filepath.Join(dir, ".github/workflows", f)
		lintWorkflow(t, path)
		checkDigest(t, path, sum)
		for _, m := range usesLine.FindAllStringSubmatch(mustRead(t, path), -1) {
			if !pinnedUse.MatchString(m[1]) || !tagNote.MatchString(m[2]) {
				t.Errorf("%s: uses: %s%s is not pinned by a 40-hex commit with its tag in a comment", f, m[1], m[2])
			}
		}
		wf := parseYAML(t, path)
		if p, ok := wf["permissions"].(map[string]any); !ok || len(p) != 0 {
			t.Errorf("%s: top-level permissions %v, want {}", f, wf["permissions"])
		}
	}
	// The jobs that run a pull request's code.
	prJobs := map[string][]string{"shipit.yml": {"test", "pull-request"}, "preview.yml": {"build"}}
	for f, names := range prJobs {
		jobs := mapAt(parseYAML(t, filepath.Join(dir, ".github/workflows", f)), "jobs")
		for _, name := range names {
			job := mapAt(jobs, name)
			if job == nil {
				t.Fatalf("%s has no job %s", f, name)
			}
			for scope, v := range mapAt(job, "permissions") {
				if v == "write" && scope != "id-token" {
					t.Errorf("%s: job %s runs the pull request's code with %s: write", f, name, scope)
				}
			}
			steps, _ := job["steps"].([]any)
			for _, st := range steps {
				step, _ := st.(map[string]any)
				uses, _ := step["uses"].(string)
				with := mapAt(step, "with")
				if strings.HasPrefix(uses, "actions/checkout@") && with["persist-credentials"] != false {
					t.Errorf("%s: job %s checks out the pull request with its token persisted", f, name)
				}
				if role, _ := with["role-to-assume"].(string); role != "" && !strings.Contains(role, "PREVIEW_ROLE_ARN") {
					t.Errorf("%s: job %s runs the pull request's code with role %s", f, name, role)
				}
			}
		}
	}
	// The preview: the commenter's permission from the API, the commit bound
	// to the comment, and the job that writes runs no build.
	pv := mustRead(t, filepath.Join(dir, ".github/workflows/preview.yml"))
	for _, s := range []string{"collaborators/$COMMENTER/permission", "admin|write)", "COMMENTED_AT: ${{ github.event.comment.created_at }}", "ref: ${{ needs.authorize.outputs.sha }}"} {
		if !strings.Contains(pv, s) {
			t.Errorf("preview.yml lacks %s", s)
		}
	}
	if strings.Contains(pv, "author_association") {
		t.Error("preview.yml trusts the comment's author_association")
	}
	up, _ := yaml.Marshal(mapAt(parseYAML(t, filepath.Join(dir, ".github/workflows/preview.yml")), "jobs", "up"))
	if strings.Contains(string(up), "shipit build") || strings.Contains(string(up), "buildkit") || !strings.Contains(string(up), "--record") {
		t.Errorf("preview.yml's up job, which holds the write token, builds:\n%s", up)
	}
}

// circleGraph is ci/circleci-graph.js's output.
type circleGraph struct {
	Jobs      map[string]struct{ Runs []string }
	Workflows map[string]struct {
		Jobs map[string]struct {
			Job      string
			Type     string
			Requires []string
			Context  []string
			Filters  *struct {
				Branches struct{ Only, Ignore any }
			}
		}
		Triggers []any
	}
}

func strOrList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// TestCircleCIPipeline parses what init writes for CircleCI with
// CircleCI's own config parser and checks the graph: release after the
// tests, production only after the approval, previews never on the
// default branch nor for forks, only the preview role where branches'
// code runs, shipit checked against the digest.
func TestCircleCIPipeline(t *testing.T) {
	t.Parallel()
	modules := ciTool(t, "SHIPIT_TEST_NODE_MODULES")
	bin, sum := releaseShipit(t)
	dir, _ := goApp(t, "circleci", bin)
	path := filepath.Join(dir, ".circleci/config.yml")
	checkDigest(t, path, sum)
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("node", filepath.Join(filepath.Dir(file), "..", "..", "ci", "circleci-graph.js"), path)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parsing %s: %v\n%s", path, err, out)
	}
	var g circleGraph
	if err := json.Unmarshal(out, &g); err != nil {
		t.Fatal(err)
	}
	ship := g.Workflows["ship"].Jobs
	only := func(name string) []string {
		if ship[name].Filters == nil {
			return nil
		}
		return strOrList(ship[name].Filters.Branches.Only)
	}
	if !slices.Contains(ship["release"].Requires, "test") || !slices.Equal(only("release"), []string{"main"}) {
		t.Errorf("release: requires %v, branches %v: want test, main", ship["release"].Requires, only("release"))
	}
	if ship["approve-production"].Type != "approval" || !slices.Contains(ship["approve-production"].Requires, "release") {
		t.Errorf("approve-production: %+v", ship["approve-production"])
	}
	if !slices.Equal(ship["promote-production"].Requires, []string{"approve-production"}) || !slices.Equal(only("promote-production"), []string{"main"}) {
		t.Errorf("promote-production requires %v on %v: want the approval, on main", ship["promote-production"].Requires, only("promote-production"))
	}
	if !strings.Contains(strings.Join(g.Jobs["promote-production"].Runs, "\n"), "shipit promote production") {
		t.Errorf("promote-production does not promote: %v", g.Jobs["promote-production"].Runs)
	}
	pv := ship["preview"]
	if pv.Filters == nil || !slices.Contains(strOrList(pv.Filters.Branches.Ignore), "main") || !slices.Contains(strOrList(pv.Filters.Branches.Ignore), `/pull\/[0-9]+/`) || len(strOrList(pv.Filters.Branches.Only)) > 0 {
		t.Errorf("preview runs on the default branch or for forks: %+v", pv.Filters)
	}
	// Branches' code runs in test and preview: neither holds the release
	// context, and preview assumes the preview role.
	for _, name := range []string{"test", "preview"} {
		if slices.Contains(ship[name].Context, "shipit-release") {
			t.Errorf("%s runs a branch's code with the release context", name)
		}
	}
	runs := strings.Join(g.Jobs["preview"].Runs, "\n")
	if !strings.Contains(runs, "${PREVIEW_ROLE_ARN}") || strings.Contains(runs, "${AWS_ROLE_ARN}") || !strings.Contains(runs, "shipit preview up") {
		t.Errorf("preview's steps:\n%s", runs)
	}
	for name, j := range g.Jobs {
		r := strings.Join(j.Runs, "\n")
		if strings.Contains(r, "shipit-linux-amd64") && !strings.Contains(r, `sha256sum --check --strict`) {
			t.Errorf("job %s installs shipit unchecked", name)
		}
	}
	gc := g.Workflows["previews-gc"]
	if len(gc.Triggers) == 0 || !strings.Contains(strings.Join(g.Jobs["previews-gc"].Runs, "\n"), "shipit preview gc --keep") {
		t.Errorf("no scheduled preview gc --keep: %+v", gc)
	}
}

// TestGitLabPipelineScoped: the GitLab pipeline's review apps hold only
// the preview role and token, run for the project's own merge requests,
// and shipit is checked against the digest init wrote.
func TestGitLabPipelineScoped(t *testing.T) {
	t.Parallel()
	bin, sum := releaseShipit(t)
	dir, _ := goApp(t, "gitlab", bin)
	path := filepath.Join(dir, ".gitlab-ci.yml")
	checkDigest(t, path, sum)
	ci := parseYAML(t, path)
	review := mapAt(ci, ".review", "variables")
	if review["AWS_ROLE_ARN"] != "$PREVIEW_ROLE_ARN" || review["SHIPIT_PUSH_TOKEN"] != "$PREVIEW_GIT_TOKEN" {
		t.Errorf(".review's variables %v: want the preview role and token", review)
	}
	rules, _ := ci[".review"].(map[string]any)["rules"].([]any)
	for _, r := range rules {
		if s, _ := r.(map[string]any)["if"].(string); !strings.Contains(s, "$CI_MERGE_REQUEST_SOURCE_PROJECT_ID == $CI_PROJECT_ID") {
			t.Errorf("a review rule runs for forks' merge requests: %s", s)
		}
	}
	prod := mapAt(ci, "production")
	rule, _ := prod["rules"].([]any)[0].(map[string]any)
	if rule["when"] != "manual" || mapAt(prod, "environment")["name"] != "production" {
		t.Errorf("production is not a manual job on the production environment: %v", prod)
	}
	env := mapAt(ci, "review", "environment")
	if env["name"] != "review/$CI_COMMIT_REF_SLUG" || env["on_stop"] != "review-stop" || env["auto_stop_in"] == nil || env["url"] == nil {
		t.Errorf("review's environment: %v", env)
	}
	if mapAt(ci, ".shipit", "id_tokens", "AWS_WEB_IDENTITY_TOKEN")["aud"] != "sts.amazonaws.com" {
		t.Error("no OIDC id_token for AWS")
	}
}

// TestPipelinePlaceholderFailsClosed: a development build of shipit
// cannot know the release's digest: the pipeline it writes carries a
// placeholder that sha256sum refuses, and init says how to fill it.
func TestPipelinePlaceholderFailsClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"go.mod": "module example.com/x\n\ngo 1.22\n", ".circleci/keep": ""})
	r := mustShipit(t, dir, nil, "init")
	if !strings.Contains(r.stderr, "SHIPIT_SHA256 is a placeholder") || !strings.Contains(r.stderr, "sha256sum shipit-linux-amd64") {
		t.Errorf("init does not say how to fill SHIPIT_SHA256:\n%s", r.stderr)
	}
	cfg := mustRead(t, filepath.Join(dir, ".circleci/config.yml")) // the CI the repository has
	m := regexp.MustCompile(`SHIPIT_SHA256: "([^"]*)"`).FindStringSubmatch(cfg)
	if m == nil {
		t.Fatalf("no SHIPIT_SHA256 in:\n%s", cfg)
	}
	bin := filepath.Join(dir, "shipit-linux-amd64")
	writeFiles(t, dir, map[string]string{"shipit-linux-amd64": "anything"})
	check := exec.Command("sha256sum", "--check", "--strict", "-")
	check.Stdin = strings.NewReader(m[1] + "  " + bin + "\n")
	if out, err := check.CombinedOutput(); err == nil {
		t.Errorf("the placeholder %q passes sha256sum --check: %s", m[1], out)
	}
	// A second init leaves the pipeline as it is, and says where its template is.
	r = mustShipit(t, dir, nil, "init", "--ci", "circleci")
	if !strings.Contains(r.stderr, ".circleci/config.yml exists") || !strings.Contains(r.stderr, "ci/templates/circleci.yml") {
		t.Errorf("init over an existing pipeline:\n%s", r.stderr)
	}
	if got := mustRead(t, filepath.Join(dir, ".circleci/config.yml")); got != cfg {
		t.Error("init changed an existing pipeline")
	}
}
