package regauth

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipit-dev/shipit/internal/ecr/ecrtest"
)

// Not parallel: the AWS SDK and the Docker config are read from the
// process environment.

func TestKeychainECR(t *testing.T) {
	api, srv := ecrtest.New(t)
	for k, v := range ecrtest.Env(t, srv.URL) {
		t.Setenv(k, v)
	}
	reg, _ := name.NewRegistry("123456789012.dkr.ecr.us-east-1.amazonaws.com")
	a, err := NewKeychain(nil).Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil || cfg.Username != "AWS" || cfg.Password != api.Password {
		t.Errorf("ECR credentials = %+v, %v: want user AWS and the token the API issued", cfg, err)
	}

	// No AWS credentials: an error naming the chain, not an anonymous pull.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := NewKeychain(nil).Resolve(reg); err == nil {
		t.Error("no AWS credentials, but the keychain answered")
	}
}

// TestKeychainECRHangs: a token request that never answers ends with the
// context (Ctrl-C, --timeout), not with the process.
func TestKeychainECRHangs(t *testing.T) {
	api, srv := ecrtest.New(t)
	api.Hang = make(chan struct{})
	defer close(api.Hang)
	for k, v := range ecrtest.Env(t, srv.URL) {
		t.Setenv(k, v)
	}
	reg, _ := name.NewRegistry("123456789012.dkr.ecr.us-east-1.amazonaws.com")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := authn.Resolve(ctx, NewKeychain(nil), reg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v after the context ended", d)
	}
}

func TestKeychainDockerConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	auth := base64.StdEncoding.EncodeToString([]byte("robot:s3cret"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"registry.example.com":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, _ := name.NewRegistry("registry.example.com")
	a, err := NewKeychain(nil).Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := a.Authorization(); err != nil || cfg.Username != "robot" || cfg.Password != "s3cret" {
		t.Errorf("docker config credentials = %+v, %v", cfg, err)
	}
}
