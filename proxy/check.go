package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy/mitm"
)

// CheckConfig runs the checks New makes of a valid config that need no
// network, no files of the config's own and no keys: the region (from
// upstream.region, else the AWS configuration New loads: environment and
// shared config files), the policy and guard compilation, the upstream URLs
// that region gives (New's own buildUpstreams), the CA's regions and the
// egress tunnels. `warden policy
// validate` runs it so that it rejects what serve would; keep it in step
// with New (a test in cmd/warden compares the two).
func CheckConfig(ctx context.Context, cfg *config.Config) error {
	region, err := awsRegion(ctx, cfg)
	if err != nil {
		return err
	}
	var errs []error
	if region == "" {
		errs = append(errs, errNoRegion)
	} else {
		if _, err := buildUpstreams(cfg.Upstream, region); err != nil {
			errs = append(errs, errors.New(strings.TrimPrefix(err.Error(), "proxy: ")))
		}
		if cfg.Listen.Proxy != "" || cfg.Listen.Transparent != "" {
			for _, r := range append([]string{region}, cfg.CA.ExtraRegions...) {
				if !bedrock.ValidRegion(r) {
					errs = append(errs, fmt.Errorf("ca: %q is not a region name", r))
				}
			}
		}
	}
	if _, err := newSnapshot(cfg, region); err != nil {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	if _, err := cfg.Egress.Rules(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CheckRegion is the part of CheckConfig that holds for a config with other
// problems: a region, from upstream.region or the AWS configuration.
func CheckRegion(ctx context.Context, cfg *config.Config) error {
	region, err := awsRegion(ctx, cfg)
	if err == nil && region == "" {
		err = errNoRegion
	}
	return err
}

var errNoRegion = errors.New("upstream.region: not set, and the AWS configuration names no region; set upstream.region or AWS_REGION")

// awsRegion is upstream.region, else the AWS configuration's (as New finds
// it); "" when neither names one.
func awsRegion(ctx context.Context, cfg *config.Config) (string, error) {
	if cfg.Upstream.Region != "" {
		return cfg.Upstream.Region, nil
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("loading AWS configuration: %w", err)
	}
	return awsCfg.Region, nil
}

// CheckFiles loads what New and serve read from files when they start —
// listen.tls's certificate and key, the MITM CA's (ca.cert_file and
// ca.key_file, with an intercepting listener), the identity sources' files
// (identity.Config.CheckFiles) and the Redis password file — with the same
// loaders, and contacts nothing. `warden policy validate --files` runs it
// beside CheckConfig where Warden will run; without --files the files may
// live elsewhere (a laptop or CI checking a task definition's config).
// Directories serve creates (audit.spool.dir, a file sink's) and addresses
// it binds are not checked: only starting can.
func CheckFiles(cfg *config.Config) error {
	var errs []error
	if t := cfg.Listen.TLS; t != nil {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("listen.tls: %w", err))
		}
	}
	if (cfg.Listen.Proxy != "" || cfg.Listen.Transparent != "") && cfg.CA.CertFile != "" {
		if _, err := mitm.Load(cfg.CA.CertFile, cfg.CA.KeyFile, mitm.Options{ExtraRegions: cfg.CA.ExtraRegions}); err != nil {
			errs = append(errs, fmt.Errorf("ca: %w", err))
		}
	}
	if err := cfg.Identity.CheckFiles(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Budgets.CheckFiles(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
