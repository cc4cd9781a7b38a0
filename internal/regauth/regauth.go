// Package regauth finds registry credentials: for Amazon ECR hosts through
// the standard AWS credential chain (the ECR credential helper), for every
// other registry through the Docker config. The same keychain serves
// go-containerregistry (release) and BuildKit's session auth (build --push),
// so a registry that works for one works for the other.
package regauth

import (
	"context"
	"fmt"
	"io"

	ecrlogin "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"

	"github.com/shipit-dev/shipit/internal/ecr"
)

// Keychain resolves ECR hosts through the AWS chain and everything else
// through the Docker config.
type Keychain struct {
	ecr    authn.Helper
	docker authn.Keychain
}

// NewKeychain returns the default keychain. AWS SDK diagnostics go to logw.
func NewKeychain(logw io.Writer) *Keychain {
	if logw == nil {
		logw = io.Discard
	}
	return &Keychain{ecr: ecrlogin.NewECRHelper(ecrlogin.WithLogger(logw)), docker: authn.DefaultKeychain}
}

// Resolve implements authn.Keychain.
func (k *Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain. For an ECR host, an AWS
// credential failure is an error here, not an anonymous request that
// fails with 401 later. The ECR helper takes no context, so it runs aside
// and is abandoned when ctx ends: Ctrl-C and a deadline work while a token
// request hangs.
func (k *Keychain) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	host := target.RegistryStr()
	if !ecr.IsECR(host) {
		return authn.Resolve(ctx, k.docker, target)
	}
	type creds struct {
		user, secret string
		err          error
	}
	ch := make(chan creds, 1)
	go func() {
		u, s, err := k.ecr.Get(host)
		ch <- creds{u, s, err}
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("getting ECR credentials for %s: %w", host, ctx.Err())
	case c := <-ch:
		if c.err != nil {
			return nil, fmt.Errorf("getting ECR credentials for %s from the AWS credential chain (environment, profile, web identity, instance role): %w", host, c.err)
		}
		return authn.FromConfig(authn.AuthConfig{Username: c.user, Password: c.secret}), nil
	}
}

// Session returns a BuildKit session attachable that answers the daemon's
// credential requests from the keychain.
func Session(kc authn.Keychain) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(ctx context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if host == authprovider.DockerHubRegistryHost {
				host = name.DefaultRegistry
			}
			reg, err := name.NewRegistry(host, name.WeakValidation)
			if err != nil {
				return types.AuthConfig{}, err
			}
			a, err := authn.Resolve(ctx, kc, reg)
			if err != nil {
				return types.AuthConfig{}, err
			}
			cfg, err := authn.Authorization(ctx, a)
			if err != nil {
				return types.AuthConfig{}, err
			}
			return types.AuthConfig{
				ServerAddress: host,
				Username:      cfg.Username,
				Password:      cfg.Password,
				Auth:          cfg.Auth,
				IdentityToken: cfg.IdentityToken,
				RegistryToken: cfg.RegistryToken,
			}, nil
		},
	})
}
