package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/shipit-dev/shipit/build"
	"github.com/shipit-dev/shipit/internal/config"
	"github.com/shipit-dev/shipit/internal/gitinfo"
	"github.com/shipit-dev/shipit/internal/progress"
	"github.com/shipit-dev/shipit/internal/sign"
	"github.com/shipit-dev/shipit/release"
)

// signer loads sign.key (its password from COSIGN_PASSWORD) before
// anything is pushed: nil when nothing is signed. A key that cannot be
// read or decrypted is bad input naming the key.
func (d *deps) signer() (*sign.Signer, error) {
	key := d.cfg.SignKey()
	if key == "" {
		return nil, nil
	}
	s, err := sign.LoadSigner(key, os.Getenv, d.registry)
	if err != nil {
		return nil, fmt.Errorf("%s: sign.key: %w", d.cfg.File, err)
	}
	progress.Debugf(d.events, "signing key %s loaded", key)
	return s, nil
}

// releaseSigner is signer as release takes it (a nil interface when
// nothing is signed).
func (d *deps) releaseSigner() (release.Signer, error) {
	s, err := d.signer()
	if s == nil || err != nil {
		return nil, err
	}
	return s, nil
}

// signerAsync decrypts sign.key beside what a command reads before its
// first push (cosign's key format costs a scrypt, about half a second
// here); the function it returns waits for the result, which the command
// takes before anything is pushed.
func (d *deps) signerAsync() func() (release.Signer, error) {
	type loaded struct {
		s   release.Signer
		err error
	}
	ch := make(chan loaded, 1)
	go func() {
		s, err := d.releaseSigner()
		ch <- loaded{s, err}
	}()
	return func() (release.Signer, error) {
		l := <-ch
		return l.s, l.err
	}
}

// checker is what checks signatures and provenance: verify.keys loaded.
func (d *deps) checker() (*sign.Checker, error) {
	keys, err := sign.LoadPublicKeys(d.cfg.VerifyKeys(), os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: verify.keys: %w", d.cfg.File, err)
	}
	return &sign.Checker{Keys: keys, Registry: d.registry}, nil
}

// source is this repository's URL, which provenance must name: the
// origin remote of the repository that holds shipit.yaml, without
// credentials.
func (d *deps) source() string {
	return gitinfo.SanitizeURL(strings.TrimSpace(gitinfo.Origin(d.cfg.Dir())))
}

// gate is what an environment requires of the digests pinned into it;
// nil when it requires nothing.
func (d *deps) gate(e config.Environment) (release.Gate, error) {
	req := e.Require
	if !req.Any() {
		return nil, nil
	}
	c, err := d.checker()
	if err != nil {
		return nil, err
	}
	want := sign.Require{Signature: req.Signature, Provenance: req.Provenance, Source: d.source()}
	where := fmt.Sprintf("refused: environment %s requires %s (deploy.environments[].require), and nothing was pinned:", e.Name, want.What())
	return func(ctx context.Context, imgs []sign.Subject) error {
		progress.Infof(d.events, "checking %s of %d image(s) for %s", want.What(), len(imgs), e.Name)
		return c.Gate(ctx, where, imgs, want)
	}, nil
}

// signPushed signs what build --push pushed of the images it built
// (names), all at once: a partial build's record carries the others from
// the last record, whose digests this build did not see pushed.
func (d *deps) signPushed(ctx context.Context, s *sign.Signer, rec *build.Record, names []string) error {
	if s == nil {
		return nil
	}
	subj := pushedSubjects(rec, names)
	out, err := s.SignAll(ctx, subj)
	for i, o := range out {
		if o != "" {
			progress.Infof(d.events, "%s: %s (%s)", subj[i].Ref(), o, s.Key())
		}
	}
	return err
}

// pushedSubjects are the record's pushed images among names.
func pushedSubjects(rec *build.Record, names []string) []sign.Subject {
	var subj []sign.Subject
	for _, im := range rec.Images {
		if im.Pushed && slices.Contains(names, im.Name) {
			subj = append(subj, sign.Subject{Image: im.Name, Repository: im.Repository, Tag: im.Tag, Digest: im.Digest})
		}
	}
	return subj
}
