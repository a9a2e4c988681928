package authz

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"go.uber.org/zap"
)

// EC2Config configures the ec2 identity source: the caller's source IP is
// looked up with ec2:DescribeNetworkInterfaces (filter
// addresses.private-ip-address, or ipv6-addresses.ipv6-address) in Warden's
// own account and region, and the network interface that holds it yields:
//
//	aws.eni          the ENI id                          strong
//	aws.account      the ENI's owner account             strong
//	aws.instance_id  the attached instance, if any       strong
//	aws.region       the region looked up                strong
//	aws.tag.<key>    each ENI tag (tag_keys filters)     WEAK: anyone with ec2:CreateTags on it edits them
//
//	identity:
//	  sources: [ec2]
//	  trusted_cidrs: [10.0.0.0/16]   # required: only these client addresses are looked up
//	  ec2:
//	    region: eu-west-1    # default: upstream.region / AWS_REGION
//	    endpoint: ""         # override (tests, VPC endpoints); https unless loopback
//	    cache_ttl: 60s       # fresh answers
//	    negative_ttl: 5s     # "no ENI has this IP"; also the retry interval during an outage
//	    stale_ttl: 5m        # max age of an identity served while the EC2 API fails
//	    tag_keys: [team]     # import only these ENI tags (default: all)
//
// What an IP names depends on the platform. An ECS task in awsvpc mode (and
// Fargate) has its own ENI, but ECS does not copy task tags onto it and the
// ENI's description is the ECS attachment ARN, not the task ARN, so the ecs.*
// tags are not available from this source (use the ecs sidecar source). On
// EKS with the VPC CNI, pod IPs are secondary addresses on the NODE's ENIs,
// whose tags describe the node (cluster.k8s.amazonaws.com/name,
// node.k8s.amazonaws.com/instance_id): the lookup names the node, and every
// pod on it gets the same identity — use the kubernetes source there. IPs
// handed out from ENI prefixes (prefix delegation) are not matched by the
// address filter and do not resolve.
//
// Warden's role needs ec2:DescribeNetworkInterfaces. Lookups that fail
// (throttling, outage, access denied) serve the last identity fetched for
// the IP for up to stale_ttl, marked stale; without one the call is denied.
type EC2Config struct {
	Region      string        `yaml:"region"`
	Endpoint    string        `yaml:"endpoint"`
	CacheTTL    time.Duration `yaml:"cache_ttl"`
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	StaleTTL    time.Duration `yaml:"stale_ttl"`
	TagKeys     []string      `yaml:"tag_keys"`

	// trusted is identity.trusted_cidrs, compiled by validateNetwork.
	trusted TrustedNets
}

func (c EC2Config) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"cache_ttl": c.CacheTTL, "negative_ttl": c.NegativeTTL, "stale_ttl": c.StaleTTL} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("identity.ec2.%s: must not be negative", name))
		}
	}
	o := c.cacheOptions()
	if c.StaleTTL > 0 && c.StaleTTL < o.TTL {
		errs = append(errs, fmt.Errorf("identity.ec2.stale_ttl (%s) is shorter than cache_ttl (%s); set it equal to cache_ttl to disable stale serving", c.StaleTTL, o.TTL))
	}
	if c.Endpoint != "" {
		if err := validateAPIEndpoint(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("identity.ec2.endpoint: %w", err))
		}
	}
	for _, k := range c.TagKeys {
		if k == "" {
			errs = append(errs, errors.New("identity.ec2.tag_keys: empty key"))
		}
	}
	return errors.Join(errs...)
}

func (c EC2Config) cacheOptions() CacheOptions {
	return CacheOptions{TTL: c.CacheTTL, NegativeTTL: c.NegativeTTL, StaleTTL: c.StaleTTL}.withDefaults()
}

// validateAPIEndpoint accepts https URLs, and plain http only on loopback
// (a test emulator): whoever answers decides identities.
func validateAPIEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %v", raw, err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: must be scheme://host[:port]", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopbackHostPort(u.Host) || u.Hostname() == "localhost" {
			return nil
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q: plain http is allowed only on loopback (tests); the answers decide identities", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}

// describeNetworkInterfacesAPI is the part of the EC2 client the source uses.
type describeNetworkInterfacesAPI interface {
	DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
}

// EC2Source resolves a trusted source IP to its network interface's tags.
type EC2Source struct {
	client  describeNetworkInterfacesAPI
	region  string
	trusted TrustedNets
	tagKeys map[string]bool // nil: all
	cache   *IdentityCache
	log     *zap.Logger
}

// maxENIPages bounds pagination of one lookup (a filter on one address
// matches at most a handful of interfaces).
const maxENIPages = 20

func newEC2Source(_ context.Context, cfg EC2Config, deps Deps) (Source, error) {
	if cfg.trusted.Empty() {
		return nil, errors.New("identity.trusted_cidrs is not set (or the configuration was not validated): the ec2 source would answer for nobody")
	}
	awsCfg := deps.AWS.Copy()
	if cfg.Region != "" {
		awsCfg.Region = cfg.Region
	}
	if awsCfg.Region == "" {
		return nil, errors.New("no region: set identity.ec2.region, upstream.region or AWS_REGION")
	}
	client := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		// Fail fast into the stale path: the cache, not the SDK, rides out
		// an outage.
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 2
			so.MaxBackoff = 200 * time.Millisecond
		})
	})
	return NewEC2Source(client, awsCfg.Region, cfg, deps.Logger), nil
}

// NewEC2Source builds the source around an EC2 client (tests pass a stub).
func NewEC2Source(client describeNetworkInterfacesAPI, region string, cfg EC2Config, log *zap.Logger) *EC2Source {
	if log == nil {
		log = zap.NewNop()
	}
	s := &EC2Source{client: client, region: region, trusted: cfg.trusted, log: log}
	if len(cfg.TagKeys) > 0 {
		s.tagKeys = make(map[string]bool, len(cfg.TagKeys))
		for _, k := range cfg.TagKeys {
			s.tagKeys[k] = true
		}
	}
	s.cache = NewIdentityCache(s.lookup, cfg.cacheOptions())
	return s
}

// Name implements Source.
func (s *EC2Source) Name() string { return SourceEC2 }

// CacheStats exposes the identity cache's counters for metrics.
func (s *EC2Source) CacheStats() CacheStats { return s.cache.Stats() }

// Resolve implements Source: ErrNoIdentity for connections from outside
// identity.trusted_cidrs and for addresses no ENI holds.
func (s *EC2Source) Resolve(ctx context.Context, c *Conn) (Identity, error) {
	if c == nil || !c.Remote.IsValid() {
		return Identity{}, ErrNoIdentity
	}
	a := c.Remote.Addr().Unmap()
	if !s.trusted.Contains(a) {
		return Identity{}, ErrNoIdentity
	}
	return s.cache.Get(ctx, a.WithZone("").String())
}

// errAmbiguousENI is a definitive miss: more than one interface claims the
// address (overlapping VPCs), so none can be believed.
var errAmbiguousENI = fmt.Errorf("address held by more than one network interface: %w", ErrNoIdentity)

func (s *EC2Source) lookup(ctx context.Context, ip string) (Identity, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return Identity{}, ErrNoIdentity
	}
	filter := "addresses.private-ip-address"
	if addr.Is6() {
		filter = "ipv6-addresses.ipv6-address"
	}
	p := ec2.NewDescribeNetworkInterfacesPaginator(s.client, &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{{Name: aws.String(filter), Values: []string{ip}}},
	}, func(o *ec2.DescribeNetworkInterfacesPaginatorOptions) { o.StopOnDuplicateToken = true })
	var match *ec2types.NetworkInterface
	for pages := 0; p.HasMorePages(); pages++ {
		if pages == maxENIPages {
			return Identity{}, fmt.Errorf("ec2:DescribeNetworkInterfaces for %s: more than %d pages", ip, maxENIPages)
		}
		out, err := p.NextPage(ctx)
		if err != nil {
			return Identity{}, fmt.Errorf("ec2:DescribeNetworkInterfaces: %w", err)
		}
		for i := range out.NetworkInterfaces {
			ni := &out.NetworkInterfaces[i]
			// Trust the filter, but verify: only an interface that lists
			// the address names the caller.
			if !eniHolds(ni, addr) {
				continue
			}
			if match != nil && aws.ToString(match.NetworkInterfaceId) != aws.ToString(ni.NetworkInterfaceId) {
				s.log.Warn("ec2 identity: address held by several network interfaces; not resolving",
					zap.String("ip", ip), zap.String("eni", aws.ToString(match.NetworkInterfaceId)), zap.String("other", aws.ToString(ni.NetworkInterfaceId)))
				return Identity{}, errAmbiguousENI
			}
			match = ni
		}
	}
	if match == nil {
		return Identity{}, ErrNoIdentity
	}
	return s.identityOf(match), nil
}

func eniHolds(ni *ec2types.NetworkInterface, a netip.Addr) bool {
	eq := func(s *string) bool {
		b, err := netip.ParseAddr(aws.ToString(s))
		return err == nil && b.Unmap() == a
	}
	if a.Is4() {
		if eq(ni.PrivateIpAddress) {
			return true
		}
		for _, p := range ni.PrivateIpAddresses {
			if eq(p.PrivateIpAddress) {
				return true
			}
		}
		return false
	}
	if eq(ni.Ipv6Address) {
		return true
	}
	for _, p := range ni.Ipv6Addresses {
		if eq(p.Ipv6Address) {
			return true
		}
	}
	return false
}

func (s *EC2Source) identityOf(ni *ec2types.NetworkInterface) Identity {
	id := Identity{Source: SourceEC2, Tags: make(map[string]Tag, 4+len(ni.TagSet))}
	put := func(k, v string, strong bool) {
		if v == "" {
			return
		}
		if strong {
			id.Tags[k] = StrongTag(SourceEC2, v)
		} else {
			id.Tags[k] = WeakTag(SourceEC2, v)
		}
	}
	put(TagAWSENI, aws.ToString(ni.NetworkInterfaceId), true)
	put(TagAWSAccount, aws.ToString(ni.OwnerId), true)
	put(TagAWSRegion, s.region, true)
	if ni.Attachment != nil {
		put(TagAWSInstance, aws.ToString(ni.Attachment.InstanceId), true)
	}
	for _, t := range ni.TagSet {
		k := aws.ToString(t.Key)
		if k == "" || (s.tagKeys != nil && !s.tagKeys[k]) || strings.ContainsAny(k, "\x00") {
			continue
		}
		put(TagAWSTagPrefix+k, aws.ToString(t.Value), false)
	}
	id.precompute()
	return id
}
