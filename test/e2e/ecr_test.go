package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ecrStandIn answers the ECR API calls shipit makes, as AWS JSON 1.1, and
// issues the token that the test registry's htpasswd accepts for user AWS.
type ecrStandIn struct {
	t        *testing.T
	password string
	mu       sync.Mutex
	repos    map[string]bool
	calls    []string
	created  []map[string]any
}

func (s *ecrStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, op)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if !strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDSHIPITTEST/") {
		w.Header().Set("X-Amzn-Errortype", "UnrecognizedClientException")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
		return
	}
	switch op {
	case "GetAuthorizationToken":
		tok := base64.StdEncoding.EncodeToString([]byte("AWS:" + s.password))
		fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d,"proxyEndpoint":"https://%s"}]}`,
			tok, time.Now().Add(12*time.Hour).Unix(), os.Getenv("SHIPIT_TEST_ECR_REGISTRY"))
	case "DescribeRepositories":
		names, _ := body["repositoryNames"].([]any)
		for _, n := range names {
			if !s.repos[n.(string)] {
				w.Header().Set("X-Amzn-Errortype", "RepositoryNotFoundException")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"__type":"RepositoryNotFoundException","message":"The repository with name '%s' does not exist in the registry with id '210987654321'"}`, n)
				return
			}
		}
		// As ECR does: every repository named, or an error.
		var repos []map[string]string
		for _, n := range names {
			s, _ := n.(string)
			repos = append(repos, map[string]string{"repositoryName": s, "registryId": "210987654321"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"repositories": repos})
	case "CreateRepository":
		name := body["repositoryName"].(string)
		s.repos[name] = true
		s.created = append(s.created, body)
		fmt.Fprintf(w, `{"repository":{"repositoryName":%q,"registryId":"210987654321"}}`, name)
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"InvalidParameterException","message":"unexpected %s"}`, op)
	}
}

func ecrEnv(t testing.TB, api string, withCreds bool) []string {
	home := t.TempDir()
	env := []string{
		"AWS_ENDPOINT_URL_ECR=" + api,
		"AWS_ECR_DISABLE_CACHE=true",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_WEB_IDENTITY_TOKEN_FILE=",
		"HOME=" + home,
		"DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"SSL_CERT_FILE=" + os.Getenv("SHIPIT_TEST_ECR_CA"),
	}
	if withCreds {
		env = append(env, "AWS_ACCESS_KEY_ID=AKIDSHIPITTEST", "AWS_SECRET_ACCESS_KEY=shipit-test-secret-key")
	}
	return env
}

func TestECR(t *testing.T) {
	t.Parallel()
	reg := os.Getenv("SHIPIT_TEST_ECR_REGISTRY")
	pw, err := os.ReadFile(os.Getenv("SHIPIT_TEST_ECR_PASSWORD_FILE"))
	if reg == "" || err != nil {
		t.Fatalf("no ECR test registry (SHIPIT_TEST_ECR_REGISTRY): run the tests through `make test`: %v", err)
	}
	api := &ecrStandIn{t: t, password: strings.TrimSpace(string(pw)), repos: map[string]bool{}}
	srv := httptest.NewServer(api)
	defer srv.Close()

	a := newApp(t)
	team := fmt.Sprintf("team%d", time.Now().UnixNano()%1e9)
	cfg := mustRead(t, filepath.Join(a.dir, "shipit.yaml"))
	cfg = strings.Replace(cfg, "registry: "+a.repo, "registry:\n  url: "+reg+"/"+team+"\n  create_repositories: false", 1)
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": cfg})
	git(t, a.dir, "", "commit", "-qam", "ecr")

	// Without create_repositories, a missing repository is named with the
	// setting that would create it.
	r := shipitRun(t, a.dir, append(a.env(), ecrEnv(t, srv.URL, true)...), "build", "--push", "--progress", "quiet")
	if r.code != 1 || !strings.Contains(r.stderr, "ECR repository "+reg+"/"+team+"/") || !strings.Contains(r.stderr, "registry.create_repositories: true") {
		t.Errorf("missing repository: exit %d: %s", r.code, r.stderr)
	}

	// With it, shipit creates them, and BuildKit pushes with the token the
	// AWS chain got (through shipit's session auth).
	writeFiles(t, a.dir, map[string]string{"shipit.yaml": strings.Replace(cfg, "create_repositories: false", "create_repositories: true", 1)})
	git(t, a.dir, "", "commit", "-qam", "create")
	r = mustShipit(t, a.dir, append(a.env(), ecrEnv(t, srv.URL, true)...), "build", "--push", "--progress", "plain")
	if !strings.Contains(r.stdout, reg+"/"+team+"/web:") || !strings.Contains(r.stderr, "created ECR repository") {
		t.Errorf("build --push to ECR:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}
	api.mu.Lock()
	if len(api.created) != 2 {
		t.Fatalf("CreateRepository calls: %v", api.created)
	}
	c := api.created[0]
	filters, _ := json.Marshal(c["imageTagMutabilityExclusionFilters"])
	scan, _ := json.Marshal(c["imageScanningConfiguration"])
	if c["imageTagMutability"] != "IMMUTABLE_WITH_EXCLUSION" || !strings.Contains(string(filters), `"filter":"buildcache*"`) || string(scan) != `{"scanOnPush":true}` {
		t.Errorf("CreateRepository asked for %v", c)
	}
	calls := strings.Join(api.calls, ",")
	api.mu.Unlock()
	if !strings.Contains(calls, "GetAuthorizationToken") {
		t.Errorf("the ECR token was never asked for: %s", calls)
	}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, api.password) || strings.Contains(out, "shipit-test-secret-key") {
			t.Error("a credential reached shipit's output")
		}
	}

	// A release of a build kept locally pushes through go-containerregistry
	// with the same credentials; the tag is then checked, not moved.
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho v2\n"})
	git(t, a.dir, "", "commit", "-qam", "v2")
	mustShipit(t, a.dir, append(a.env(), ecrEnv(t, srv.URL, true)...), "build", "--progress", "quiet")
	r = mustShipit(t, a.dir, ecrEnv(t, srv.URL, true), "release")
	if !strings.Contains(r.stderr, "web: pushed") {
		t.Errorf("release to ECR: %s", r.stderr)
	}

	// No AWS credentials: said as such, not as a 401 from the registry.
	writeFiles(t, a.dir, map[string]string{"worker/job.sh": "#!/bin/sh\necho v3\n"})
	git(t, a.dir, "", "commit", "-qam", "v3")
	mustShipit(t, a.dir, append(a.env(), ecrEnv(t, srv.URL, true)...), "build", "--progress", "quiet")
	r = shipitRun(t, a.dir, ecrEnv(t, srv.URL, false), "release")
	if r.code != 1 || !strings.Contains(r.stderr, "no AWS credentials: the AWS credential chain") || strings.Contains(r.stderr, "401") {
		t.Errorf("no AWS credentials: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("without AWS credentials, shipit says: %s", r.stderr)
}
