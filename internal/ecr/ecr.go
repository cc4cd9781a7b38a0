// Package ecr checks and creates Amazon ECR repositories through the ECR
// API, with credentials from the standard AWS chain. AWS_ENDPOINT_URL_ECR
// points it elsewhere (a stand-in in tests, a VPC endpoint in production).
package ecr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
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
	for _, r := range repositories {
		repo, ok := Parse(r)
		if !ok {
			continue
		}
		c := clients[repo.Region]
		if c == nil {
			cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(repo.Region))
			if err != nil {
				return created, fmt.Errorf("loading AWS configuration for %s: %w", repo.Host, err)
			}
			c = ecr.NewFromConfig(cfg)
			clients[repo.Region] = c
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
				{FilterType: types.ImageTagMutabilityExclusionFilterTypeWildcard, Filter: aws.String(cacheTag)},
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
