// Package ecr checks and creates Amazon ECR repositories through the ECR
// API, with credentials from the standard AWS chain. AWS_ENDPOINT_URL_ECR
// points it elsewhere (a stand-in in tests, a VPC endpoint in production).
package ecr

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
)

// Repo is a repository in an ECR registry.
type Repo struct {
	Host    string // <account>.dkr.ecr.<region>.amazonaws.com[:port]
	Account string
	Region  string
	Name    string // the repository path, e.g. team/web
}

// Parse splits a repository reference; ok is false for a non-ECR registry.
func Parse(repository string) (Repo, bool) {
	host, name, found := strings.Cut(repository, "/")
	if !found {
		return Repo{}, false
	}
	reg, err := api.ExtractRegistry(host)
	if err != nil || reg.Service != api.ServiceECR {
		return Repo{}, false
	}
	return Repo{Host: host, Account: reg.ID, Region: reg.Region, Name: name}, true
}

// IsECR reports whether a registry host is a private Amazon ECR registry.
func IsECR(host string) bool {
	reg, err := api.ExtractRegistry(host)
	return err == nil && reg.Service == api.ServiceECR
}

// Ensure checks that each repository exists and, when create is set,
// creates the missing ones: immutable tags except cacheTag (the registry
// cache, rewritten by every build), scan on push. A missing repository without create is an error naming it and the
// setting that would create it. Non-ECR repositories are left alone.
func Ensure(ctx context.Context, repositories []string, create bool, cacheTag string) ([]string, error) {
	clients := map[string]*ecr.Client{}
	var created []string
	exist := map[string]bool{}
	batched := map[string]bool{} // by region and account
	for _, r := range repositories {
		repo, ok := Parse(r)
		if !ok || exist[r] {
			continue
		}
		c := clients[repo.Region]
		if c == nil {
			var err error
			if c, err = newClient(ctx, repo); err != nil {
				return created, err
			}
			clients[repo.Region] = c
		}
		if k := repo.Region + "/" + repo.Account; !batched[k] {
			batched[k] = true
			// One call for every repository of this account and region
			// that exists, the usual case, rather than one each.
			found, err := existing(ctx, c, repo, repositories)
			if err != nil {
				return created, fmt.Errorf("checking ECR repository %s: %w", r, clean(err))
			}
			maps.Copy(exist, found)
			if exist[r] {
				continue
			}
		}
		_, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{
			RegistryId:      aws.String(repo.Account),
			RepositoryNames: []string{repo.Name},
		})
		var notFound *types.RepositoryNotFoundException
		switch {
		case err == nil:
			continue
		case !errors.As(err, &notFound) && !create && accessDenied(err):
			continue // not allowed to look: the push itself will say if the repository is missing
		case !errors.As(err, &notFound):
			return created, fmt.Errorf("checking ECR repository %s: %w", r, clean(err))
		case !create:
			return created, fmt.Errorf("ECR repository %s does not exist: create it, or set registry.create_repositories: true in shipit.yaml to let shipit create it", r)
		}
		_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{
			RegistryId:         aws.String(repo.Account),
			RepositoryName:     aws.String(repo.Name),
			ImageTagMutability: types.ImageTagMutabilityImmutableWithExclusion,
			ImageTagMutabilityExclusionFilters: []types.ImageTagMutabilityExclusionFilter{
				// cacheTag*: also the per-platform caches of an image built
				// over several builder nodes (buildcache-linux-arm64).
				{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String(cacheTag + "*")},
			},
			ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: true},
		})
		var exists *types.RepositoryAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			return created, fmt.Errorf("creating ECR repository %s: %w", r, clean(err))
		}
		created = append(created, r)
	}
	return created, nil
}

// describeBatch is how many names one DescribeRepositories call takes
// (the API's limit).
const describeBatch = 100

// existing are the repositories of repositories in like's account and
// region that DescribeRepositories lists, asked for in batches. A batch
// the API refuses (one of its repositories is missing, the call is denied)
// says nothing of its names: each is asked for alone. A call that reached
// no answer (no credentials, the network) is the error: asked again, it
// would fail again.
func existing(ctx context.Context, c *ecr.Client, like Repo, repositories []string) (map[string]bool, error) {
	byName := map[string]string{}
	var names []string
	for _, r := range repositories {
		repo, ok := Parse(r)
		if ok && repo.Region == like.Region && repo.Account == like.Account && byName[repo.Name] == "" {
			byName[repo.Name] = r
			names = append(names, repo.Name)
		}
	}
	out := map[string]bool{}
	if len(names) < 2 {
		return out, nil
	}
	for batch := range slices.Chunk(names, describeBatch) {
		res, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{
			RegistryId:      aws.String(like.Account),
			RepositoryNames: batch,
		})
		var ae smithy.APIError
		switch {
		case err != nil && !errors.As(err, &ae):
			return out, err
		case err != nil:
			continue
		}
		for _, rp := range res.Repositories {
			if r := byName[aws.ToString(rp.RepositoryName)]; r != "" && slices.Contains(batch, aws.ToString(rp.RepositoryName)) {
				out[r] = true
			}
		}
	}
	return out, nil
}

// clean shortens AWS errors to their code and message, and says a
// credential failure is one.
func clean(err error) error {
	if strings.Contains(err.Error(), "get identity") || strings.Contains(err.Error(), "get credentials") {
		return fmt.Errorf("no AWS credentials: the AWS credential chain (environment, AWS_PROFILE, web identity, instance role) found none (%w)", err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
	}
	return err
}

func accessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "AccessDenied")
}

// BatchSize is how many image ids one BatchDeleteImage call takes (the
// API's limit).
const BatchSize = 100

// Deleter deletes tags from ECR repositories with BatchDeleteImage: the
// image goes when its last tag does.
type Deleter struct {
	mu      sync.Mutex
	clients map[string]*ecr.Client
}

// DeleteTags deletes tags of an ECR repository in batches of BatchSize,
// and returns those deleted. A tag ECR reports as already gone counts as
// deleted; any other failure is an error naming the tags.
func (d *Deleter) DeleteTags(ctx context.Context, repository string, tags []string) ([]string, error) {
	repo, ok := Parse(repository)
	if !ok {
		return nil, fmt.Errorf("%s is not an ECR repository", repository)
	}
	c, err := d.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for start := 0; start < len(tags); start += BatchSize {
		batch := tags[start:min(start+BatchSize, len(tags))]
		ids := make([]types.ImageIdentifier, len(batch))
		for i, t := range batch {
			ids[i] = types.ImageIdentifier{ImageTag: aws.String(t)}
		}
		out, err := c.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{
			RegistryId: aws.String(repo.Account), RepositoryName: aws.String(repo.Name), ImageIds: ids,
		})
		if err != nil {
			return deleted, fmt.Errorf("deleting tags of %s: %w", repository, clean(err))
		}
		for _, id := range out.ImageIds {
			deleted = append(deleted, aws.ToString(id.ImageTag))
		}
		var failed []string
		for _, f := range out.Failures {
			if f.FailureCode == types.ImageFailureCodeImageNotFound || f.FailureCode == types.ImageFailureCodeImageTagDoesNotMatchDigest {
				deleted = append(deleted, aws.ToString(f.ImageId.ImageTag))
				continue
			}
			failed = append(failed, fmt.Sprintf("%s (%s: %s)", aws.ToString(f.ImageId.ImageTag), f.FailureCode, aws.ToString(f.FailureReason)))
		}
		if len(failed) > 0 {
			return deleted, fmt.Errorf("ECR did not delete %s from %s", strings.Join(failed, ", "), repository)
		}
	}
	return deleted, nil
}

// maxImagePages bounds DescribeImages paging: 200 pages of 1000 images,
// past any repository's image limit.
const maxImagePages = 200

// PushedAt says when the tagged images of an ECR repository were pushed
// (imagePushedAt from DescribeImages), by tag: what --min-age of prune
// counts from on ECR, so that an image built from an old commit and
// pushed a minute ago is young.
func (d *Deleter) PushedAt(ctx context.Context, repository string) (map[string]time.Time, error) {
	repo, ok := Parse(repository)
	if !ok {
		return nil, fmt.Errorf("%s is not an ECR repository", repository)
	}
	c, err := d.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	in := &ecr.DescribeImagesInput{
		RegistryId: aws.String(repo.Account), RepositoryName: aws.String(repo.Name),
		Filter: &types.DescribeImagesFilter{TagStatus: types.TagStatusTagged}, MaxResults: aws.Int32(1000),
	}
	for range maxImagePages {
		page, err := c.DescribeImages(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("reading when the images of %s were pushed: %w", repository, clean(err))
		}
		for _, im := range page.ImageDetails {
			for _, t := range im.ImageTags {
				if im.ImagePushedAt != nil {
					out[t] = im.ImagePushedAt.UTC()
				}
			}
		}
		if aws.ToString(page.NextToken) == "" {
			return out, nil
		}
		in.NextToken = page.NextToken
	}
	return nil, fmt.Errorf("reading when the images of %s were pushed: more than %d pages of images", repository, maxImagePages)
}

func (d *Deleter) client(ctx context.Context, repo Repo) (*ecr.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.clients[repo.Region]; c != nil {
		return c, nil
	}
	c, err := newClient(ctx, repo)
	if err != nil {
		return nil, err
	}
	if d.clients == nil {
		d.clients = map[string]*ecr.Client{}
	}
	d.clients[repo.Region] = c
	return c, nil
}

// LifecyclePolicy is an ECR lifecycle policy that is safe beside shipit
// prune: it expires untagged images (manifests left without a tag) after
// days, and has no rule that selects tagged images, so it never removes a
// release tag, however old: only prune, which knows what runs, does that.
func LifecyclePolicy(days int) string {
	return fmt.Sprintf(`{
  "rules": [
    {
      "rulePriority": 1,
      "description": "Expire untagged images after %d days. No rule touches tagged images: release tags are pruned by shipit prune, which keeps what the GitOps repository pins, holds and may roll back to.",
      "selection": {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": %d
      },
      "action": {"type": "expire"}
    }
  ]
}
`, days, days)
}

// newClient is an ECR client for repo's region, from the AWS chain. The
// SDK logs nothing: its lines never reach a terminal or a CI log, and what
// goes wrong comes back as an error.
func newClient(ctx context.Context, repo Repo) (*ecr.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(repo.Region), awsconfig.WithLogger(logging.Nop{}))
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for %s: %w", repo.Host, err)
	}
	return ecr.NewFromConfig(cfg), nil
}
