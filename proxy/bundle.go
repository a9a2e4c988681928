package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/warden-egress/warden/bundle"
)

// FollowBundles makes the Server take its policy from signed bundles, as
// the config's bundle section says: the cached last good bundle first
// (verified again; kept even if expired, and reported so), then the bundle
// service (or the S3 prefix, read with Warden's AWS credentials from the
// default chain), followed in the background until ctx ends. Until a bundle is
// applied /readyz answers 503 and every call is denied (fail closed).
// /readyz's body and the warden_policy_bundle_* metrics say which bundle
// runs, whether it has expired, and the last refusal.
func (s *Server) FollowBundles(ctx context.Context) (*bundle.Follower, error) {
	if s.cfg.Bundle == nil {
		return nil, errors.New("proxy: no bundle section in the config")
	}
	bc := s.cfg.Bundle.WithDefaults()
	keys := map[string]string{}
	for _, k := range bc.TrustedKeys {
		keys[k.ID] = k.PublicKey
	}
	trust, err := bundle.ParseTrust(keys)
	if err != nil {
		return nil, fmt.Errorf("bundle.trusted_keys: %w", err)
	}
	ns := bc.Namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if err := os.MkdirAll(bc.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("bundle.cache_dir: %w", err)
	}
	fo := bundle.FollowerOptions{
		Trust: trust, Target: bundle.Target{Fleet: bc.Fleet, Namespace: ns},
		CacheDir: bc.CacheDir, Wait: bc.Wait, Retry: bc.Retry, Logger: s.log, Registry: s.registry,
		Apply: func(_ context.Context, v *bundle.Verified) error {
			res := s.ApplyBundle([]byte(v.Policy), BundleMeta{Serial: v.Serial, Expires: v.ExpiresAt})
			if res.Err != nil {
				return errors.New(strings.Join(res.Errors, "; "))
			}
			return nil
		},
	}
	if strings.HasPrefix(bc.URL, "s3://") {
		o := bundle.S3Options{URL: bc.URL}
		if bc.S3 != nil {
			o.Region, o.Endpoint, o.PathStyle = bc.S3.Region, bc.S3.Endpoint, bc.S3.PathStyle
		}
		if fo.Store, err = bundle.NewS3Store(ctx, o); err != nil {
			return nil, err
		}
	} else {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if bc.CAPEM != "" {
			tc.RootCAs = bc.CertPool() // validated
		}
		if bc.CAFile != "" {
			pem, err := os.ReadFile(bc.CAFile)
			if err != nil {
				return nil, fmt.Errorf("bundle.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("bundle.ca_file %s: no PEM certificates", bc.CAFile)
			}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		tr.Proxy = nil // the service is reached directly, never through a proxy the environment names
		fo.URL, fo.Client = strings.TrimSuffix(bc.URL, "/"), &http.Client{Transport: tr}
	}
	f, err := bundle.NewFollower(fo)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	s.SetReadiness(f.Status)
	if err := f.LoadCache(ctx); err != nil {
		s.log.Error("the cached policy bundle was not used", zap.Error(err))
	}
	s.log.Info("following policy bundles", zap.String("url", bc.URL), zap.String("fleet", bc.Fleet),
		zap.String("namespace", ns), zap.Duration("wait", bc.Wait), zap.Int("trusted_keys", len(trust)))
	go f.Run(ctx)
	return f, nil
}

// bundleExpired says whether the snapshot's bundle is past its expiry.
func (snap *snapshot) bundleExpired(now time.Time) bool {
	return !snap.expires.IsZero() && !now.Before(snap.expires)
}
