package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
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
	var errs []error
	region := cfg.Upstream.Region
	if region == "" {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("loading AWS configuration: %w", err)
		}
		region = awsCfg.Region
	}
	if region == "" {
		errs = append(errs, errors.New("upstream.region: not set, and the AWS configuration names no region; set upstream.region or AWS_REGION"))
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
	for i, t := range cfg.Egress.Tunnel {
		if _, err := config.ParseTunnel(t); err != nil {
			errs = append(errs, fmt.Errorf("egress.tunnel[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
