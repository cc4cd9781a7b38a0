// Package ecrtest is a stand-in for the Amazon ECR API, for tests: it
// speaks AWS JSON 1.1 for the calls shipit makes, checks that requests are
// signed with the test access key, and issues registry tokens.
package ecrtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// AccessKey is the access key id the stand-in accepts.
const AccessKey = "AKIDSHIPITTEST"

// API is the stand-in.
type API struct {
	Password string        // the registry password GetAuthorizationToken issues (user AWS)
	Hang     chan struct{} // when set, GetAuthorizationToken waits until it is closed
	mu       sync.Mutex
	repos    map[string]bool
	Calls    []string
	Created  []map[string]any
	// Deleted lists the tags BatchDeleteImage removed; Batches the size of
	// each call.
	Deleted []string
	Batches []int
	// Images are what DescribeImages lists, by repository name; PageSize
	// caps a page below the request's maxResults (0: no cap).
	Images   map[string][]Image
	PageSize int
}

// Image is one image of a repository, as DescribeImages describes it.
type Image struct {
	Digest   string
	Tags     []string
	PushedAt time.Time
}

// SetImages sets the images a repository holds.
func (a *API) SetImages(repo string, imgs ...Image) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Images == nil {
		a.Images = map[string][]Image{}
	}
	a.Images[repo] = imgs
}

// New starts a stand-in holding the given repositories; its URL goes in
// AWS_ENDPOINT_URL_ECR (Env).
func New(t testing.TB, repos ...string) (*API, *httptest.Server) {
	a := &API{Password: "ecr-token-secret", repos: map[string]bool{}}
	for _, r := range repos {
		a.repos[r] = true
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

// Env is the environment that points the AWS SDK at the stand-in, with
// test credentials and nothing from the machine.
func Env(t testing.TB, url string) map[string]string {
	home := t.TempDir()
	return map[string]string{
		"AWS_ENDPOINT_URL_ECR":        url,
		"AWS_ECR_DISABLE_CACHE":       "true",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "none"),
		"AWS_ACCESS_KEY_ID":           AccessKey,
		"AWS_SECRET_ACCESS_KEY":       "shipit-test-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "us-east-1",
		"HOME":                        home,
		"DOCKER_CONFIG":               filepath.Join(home, ".docker"),
	}
}

// Ops lists the API operations called so far.
func (a *API) Ops() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.Calls...)
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	if op == "GetAuthorizationToken" && a.Hang != nil {
		select {
		case <-a.Hang:
		case <-r.Context().Done():
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Calls = append(a.Calls, op)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(typ, msg string) {
		w.Header().Set("X-Amzn-Errortype", typ)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":%q,"message":%q}`, typ, msg) //nolint:gosec // a JSON test server, not a page
	}
	if !strings.Contains(r.Header.Get("Authorization"), "Credential="+AccessKey+"/") {
		fail("UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	switch op {
	case "GetAuthorizationToken":
		tok := base64.StdEncoding.EncodeToString([]byte("AWS:" + a.Password))
		fmt.Fprintf(w, `{"authorizationData":[{"authorizationToken":%q,"expiresAt":%d,"proxyEndpoint":"https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}]}`,
			tok, time.Now().Add(12*time.Hour).Unix())
	case "DescribeRepositories":
		names, _ := body["repositoryNames"].([]any)
		if len(names) > 100 {
			fail("InvalidParameterException", "repositoryNames: at most 100")
			return
		}
		for _, n := range names {
			if s, _ := n.(string); !a.repos[s] {
				fail("RepositoryNotFoundException", fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '123456789012'", s))
				return
			}
		}
		// As ECR does: every repository named, or an error.
		var repos []map[string]string
		for _, n := range names {
			s, _ := n.(string)
			repos = append(repos, map[string]string{"repositoryName": s, "registryId": "123456789012"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"repositories": repos})
	case "CreateRepository":
		name, _ := body["repositoryName"].(string)
		a.repos[name] = true
		a.Created = append(a.Created, body)
		fmt.Fprintf(w, `{"repository":{"repositoryName":%q,"registryId":"123456789012"}}`, name)
	case "BatchDeleteImage":
		ids, _ := body["imageIds"].([]any)
		if len(ids) > 100 {
			fail("InvalidParameterException", "imageIds: at most 100")
			return
		}
		a.Batches = append(a.Batches, len(ids))
		var out []string
		for _, id := range ids {
			m, _ := id.(map[string]any)
			t, _ := m["imageTag"].(string)
			a.Deleted = append(a.Deleted, t)
			a.untag(body["repositoryName"], t)
			out = append(out, fmt.Sprintf(`{"imageTag":%q}`, t))
		}
		fmt.Fprintf(w, `{"imageIds":[%s],"failures":[]}`, strings.Join(out, ","))
	case "DescribeImages":
		a.describeImages(w, body, fail)
	default:
		fail("InvalidParameterException", "unexpected "+op)
	}
}

// describeImages answers one page of DescribeImages: tagged images only
// (the filter shipit sends), nextToken the index of the next image.
func (a *API) describeImages(w http.ResponseWriter, body map[string]any, fail func(typ, msg string)) {
	repo, _ := body["repositoryName"].(string)
	imgs, ok := a.Images[repo]
	if !ok && !a.repos[repo] {
		fail("RepositoryNotFoundException", fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '123456789012'", repo))
		return
	}
	size := 100
	if m, ok := body["maxResults"].(float64); ok {
		size = int(m)
	}
	if a.PageSize > 0 {
		size = min(size, a.PageSize)
	}
	start := 0
	if tok, _ := body["nextToken"].(string); tok != "" {
		if _, err := fmt.Sscan(tok, &start); err != nil {
			fail("InvalidParameterException", "bad nextToken")
			return
		}
	}
	var details []map[string]any
	end := min(start+size, len(imgs))
	for _, im := range imgs[start:end] {
		details = append(details, map[string]any{
			"imageDigest": im.Digest, "imageTags": im.Tags, "repositoryName": repo, "registryId": "123456789012",
			"imagePushedAt": float64(im.PushedAt.UnixMilli()) / 1000,
		})
	}
	out := map[string]any{"imageDetails": details}
	if end < len(imgs) {
		out["nextToken"] = fmt.Sprint(end)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// untag removes a deleted tag from the images DescribeImages lists, and
// an image with it once its last tag is gone (as ECR does).
func (a *API) untag(repo any, t string) {
	r, _ := repo.(string)
	var kept []Image
	for _, im := range a.Images[r] {
		var tags []string
		for _, x := range im.Tags {
			if x != t {
				tags = append(tags, x)
			}
		}
		if len(tags) > 0 {
			im.Tags = tags
			kept = append(kept, im)
		}
	}
	if a.Images[r] != nil {
		a.Images[r] = kept
	}
}
