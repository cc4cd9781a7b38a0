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

// Resolve implements authn.Keychain. For an ECR host, an AWS credential
// failure is an error here, not an anonymous request that fails with 401 later.
func (k *Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	host := target.RegistryStr()
	if ecr.IsECR(host) {
		user, secret, err := k.ecr.Get(host)
		if err != nil {
			return nil, fmt.Errorf("getting ECR credentials for %s from the AWS credential chain (environment, profile, web identity, instance role): %w", host, err)
		}
		return authn.FromConfig(authn.AuthConfig{Username: user, Password: secret}), nil
	}
	return k.docker.Resolve(target)
}

// Session returns a BuildKit session attachable that answers the daemon's
// credential requests from the keychain.
func Session(kc authn.Keychain) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if host == authprovider.DockerHubRegistryHost {
				host = name.DefaultRegistry
			}
			reg, err := name.NewRegistry(host, name.WeakValidation)
			if err != nil {
				return types.AuthConfig{}, err
			}
			a, err := kc.Resolve(reg)
			if err != nil {
				return types.AuthConfig{}, err
			}
			cfg, err := authn.Authorization(context.Background(), a)
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
