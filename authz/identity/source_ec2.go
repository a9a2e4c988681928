package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"go.uber.org/zap"
)

// EC2Config configures the ec2 identity source: the caller's source IP is
// looked up with ec2:DescribeNetworkInterfaces (filter
// addresses.private-ip-address, or ipv6-addresses.ipv6-address) in Warden's
// own account and region, and the network interface that holds it yields:
//
//	aws.eni          the ENI id                          strong
//	aws.account      the ENI's owner account             strong
//	aws.vpc          the ENI's VPC                       strong
//	aws.subnet       the ENI's subnet                    strong
//	aws.vpce         the VPC endpoint the caller came through (PROXY protocol v2 AWS TLV)  strong
//	aws.instance_id  the attached instance, if any       strong
//	aws.region       the region looked up                strong
//	aws.tag.<key>    each ENI tag (tag_keys filters)     WEAK: anyone with ec2:CreateTags on it edits them
//
// With ecs_tasks, an ECS task's ENI (awsvpc, Fargate) also yields its task
// (ecs:ListTasks, ecs:DescribeTasks, ecs:DescribeTaskDefinition in the
// ENI's account): ecs.task_arn, ecs.cluster, ecs.launch_type and
// ecs.task_role_arn strong; ecs.family, ecs.revision and ecs.service weak
// (whoever registers the task definition or runs the task chooses them).
//
// A central Warden serves many VPCs and accounts. Spokes that reach it
// through PrivateLink (an endpoint service on an NLB with PROXY protocol v2,
// whose addresses are listen.proxy_protocol.trusted) arrive with their VPC
// endpoint id, and their networks may overlap, so the address is looked up
// only together with the endpoint: the endpoint's owner comes from
// ec2:DescribeVpcEndpointConnections in Warden's account (which owns the
// endpoint service), its VPC from ec2:DescribeVpcEndpoints in the owner's
// account, and the interface from ec2:DescribeNetworkInterfaces in that
// account filtered by that VPC. Other accounts are reached through a role
// each (accounts[].role_arn, assumed with its external id); an endpoint
// whose owner is not listed names the caller by account and endpoint
// alone (aws.account, aws.vpce). An endpoint with no available connection
// to Warden's endpoint services is refused. Routed spokes (transit
// gateway, peering) have unique addresses: accounts[].cidrs says which
// account to look them up in (default: Warden's own).
//
//	identity:
//	  ec2:
//	    endpoint_services: [vpce-svc-0123456789abcdef0]  # optional: only these services' connections
//	    ecs_tasks: true
//	    accounts:
//	      - {account: "222233334444", role_arn: "arn:aws:iam::222233334444:role/warden-identity", external_id: x-7f3a, cidrs: [10.20.0.0/16]}
//
//	identity:
//	  sources: [ec2]
//	  trusted_cidrs: [10.0.0.0/16]   # required: only these client addresses are looked up
//	  ec2:
//	    region: eu-west-1    # default: upstream.region / AWS_REGION
//	    endpoint: ""         # override (tests, VPC endpoints); https unless loopback
//	    cache_ttl: 60s       # fresh answers
//	    verify_after: 5s     # an answer older than this is re-checked (the IP may have moved)
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
// An address can change hands between lookups: whoever may call
// ec2:AssignPrivateIpAddresses can request a specific free private IP, and
// AWS frees an address the moment it is unassigned or its ENI deleted. So
// an answer is believed for verify_after only: a background sweep
// re-checks, in batches, that the addresses in use are still held by the
// same ENI and by it alone, and drops those that moved; an answer not
// verified that recently is looked up again before it is served (and, if
// the EC2 API fails, served only marked stale, which refuse_stale_identity
// denies). An address held by several ENIs is refused: the call is denied.
// Addresses in identity.kubernetes.pod_cidrs are never looked up: with the
// VPC CNI their ENI is the node's.
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
	// VerifyAfter bounds how long an answer is believed without checking
	// that its ENI still holds the address (default 5s; equal to cache_ttl
	// turns verification off).
	VerifyAfter time.Duration `yaml:"verify_after"`
	TagKeys     []string      `yaml:"tag_keys"`
	// LookupLimits bound DescribeNetworkInterfaces calls for uncached
	// addresses (defaults: DefaultEC2LookupLimits).
	LookupLimits LookupLimits `yaml:"lookup_limits"`

	// Accounts are the accounts whose interfaces are looked up, other than
	// through Warden's own credentials (see EC2AccountConfig).
	Accounts []EC2AccountConfig `yaml:"accounts"`
	// EndpointServices, when set, are the only endpoint services whose
	// connections name callers.
	EndpointServices []string `yaml:"endpoint_services"`
	// ECSTasks resolves ECS task ENIs to their tasks.
	ECSTasks bool `yaml:"ecs_tasks"`
	// STSEndpoint and ECSEndpoint override the STS and ECS endpoints (tests,
	// VPC endpoints); https unless loopback.
	STSEndpoint string `yaml:"sts_endpoint"`
	ECSEndpoint string `yaml:"ecs_endpoint"`

	// accountNets are Accounts[i].CIDRs, compiled by validate.
	accountNets []TrustedNets

	// trusted is identity.trusted_cidrs, compiled by validateNetwork.
	trusted TrustedNets
	// podNets is identity.kubernetes.pod_cidrs, compiled by
	// validateNetwork: the source does not answer for pod addresses.
	podNets TrustedNets
}

// DefaultEC2VerifyAfter is identity.ec2.verify_after's default.
const DefaultEC2VerifyAfter = 5 * time.Second

func (c *EC2Config) validate() error {
	errs := c.validateAccounts()
	for name, d := range map[string]time.Duration{"cache_ttl": c.CacheTTL, "negative_ttl": c.NegativeTTL, "stale_ttl": c.StaleTTL, "verify_after": c.VerifyAfter} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("identity.ec2.%s: must not be negative", name))
		}
	}
	o := c.cacheOptions()
	if c.StaleTTL > 0 && c.StaleTTL < o.TTL {
		errs = append(errs, fmt.Errorf("identity.ec2.stale_ttl (%s) is shorter than cache_ttl (%s); set it equal to cache_ttl to disable stale serving", c.StaleTTL, o.TTL))
	}
	if c.VerifyAfter > o.TTL {
		errs = append(errs, fmt.Errorf("identity.ec2.verify_after (%s) is longer than cache_ttl (%s); set it equal to cache_ttl to turn verification off", c.VerifyAfter, o.TTL))
	}
	if c.Endpoint != "" {
		if err := validateAPIEndpoint(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("identity.ec2.endpoint: %w", err))
		}
	}
	if err := c.LookupLimits.validate("identity.ec2.lookup_limits"); err != nil {
		errs = append(errs, err)
	}
	for _, k := range c.TagKeys {
		if k == "" {
			errs = append(errs, errors.New("identity.ec2.tag_keys: empty key"))
		}
	}
	return errors.Join(errs...)
}

func (c EC2Config) cacheOptions() CacheOptions {
	o := CacheOptions{TTL: c.CacheTTL, NegativeTTL: c.NegativeTTL, StaleTTL: c.StaleTTL}.withDefaults()
	o.VerifyAfter = c.VerifyAfter
	if o.VerifyAfter <= 0 {
		o.VerifyAfter = min(DefaultEC2VerifyAfter, o.TTL)
	}
	if o.VerifyAfter >= o.TTL {
		o.VerifyAfter = 0 // the lookup at cache_ttl is the check
	}
	return o
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
	home    *ec2Account            // routed callers in no account's cidrs
	byID    map[string]*ec2Account // identity.ec2.accounts by id
	routed  []*ec2Account          // accounts with cidrs, in config order
	eps     *endpoints
	region  string
	trusted TrustedNets
	podNets TrustedNets
	tagKeys map[string]bool // nil: all
	cache   *IdentityCache
	limiter *lookupLimiter
	log     *zap.Logger
	refused refusalCounts
}

// maxENIPages bounds pagination of one lookup (a filter on one address
// matches at most a handful of interfaces).
const maxENIPages = 20

func newEC2Source(ctx context.Context, cfg EC2Config, deps Deps) (Source, error) {
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
	retryer := func() aws.Retryer {
		// Fail fast into the stale path: the cache, not the SDK, rides
		// out an outage.
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 2
			so.MaxBackoff = 200 * time.Millisecond
		})
	}
	ec2For := func(c aws.Config) *ec2.Client {
		return ec2.NewFromConfig(c, func(o *ec2.Options) {
			if cfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(cfg.Endpoint)
			}
			o.Retryer = retryer()
		})
	}
	ecsFor := func(c aws.Config) *ecs.Client {
		return ecs.NewFromConfig(c, func(o *ecs.Options) {
			if cfg.ECSEndpoint != "" {
				o.BaseEndpoint = aws.String(cfg.ECSEndpoint)
			}
			o.Retryer = retryer()
		})
	}
	client := ec2For(awsCfg)
	stsClient := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
		if cfg.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.STSEndpoint)
		}
	})
	var accounts []*ec2Account
	for i, a := range cfg.Accounts {
		acfg := awsCfg.Copy()
		if a.RoleARN != "" {
			acfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
				o.ExternalID = aws.String(a.ExternalID)
				o.RoleSessionName = "warden-identity"
			}))
		}
		acct := &ec2Account{id: a.Account, ec2: ec2For(acfg)}
		if i < len(cfg.accountNets) {
			acct.nets = cfg.accountNets[i]
		}
		if cfg.ECSTasks {
			acct.tasks = newECSTaskIndex(ecsFor(acfg), a.ECSClusters)
		}
		accounts = append(accounts, acct)
	}
	home := &ec2Account{ec2: client}
	if cfg.ECSTasks {
		home.tasks = newECSTaskIndex(ecsFor(awsCfg), nil)
	}
	for _, a := range accounts {
		if i := slices.IndexFunc(cfg.Accounts, func(c EC2AccountConfig) bool { return c.Account == a.id }); i >= 0 && cfg.Accounts[i].RoleARN == "" {
			home = a // Warden's own account, listed
		}
	}
	s := buildEC2Source(client, awsCfg.Region, cfg, deps.Logger, home, accounts, client)
	go s.cache.RunVerifier(ctx)
	return s, nil
}

// NewEC2Source builds the source around an EC2 client (tests pass a stub),
// for Warden's own account only.
func NewEC2Source(client describeNetworkInterfacesAPI, region string, cfg EC2Config, log *zap.Logger) *EC2Source {
	return buildEC2Source(client, region, cfg, log, &ec2Account{ec2: client}, nil, nil)
}

func buildEC2Source(client describeNetworkInterfacesAPI, region string, cfg EC2Config, log *zap.Logger,
	home *ec2Account, accounts []*ec2Account, conns endpointConnectionsAPI) *EC2Source {
	if log == nil {
		log = zap.NewNop()
	}
	s := &EC2Source{client: client, home: home, byID: map[string]*ec2Account{}, region: region, trusted: cfg.trusted, podNets: cfg.podNets, log: log}
	for _, a := range accounts {
		s.byID[a.id] = a
		if !a.nets.Empty() {
			s.routed = append(s.routed, a)
		}
	}
	s.eps = &endpoints{conns: conns, services: cfg.EndpointServices, accounts: s.byID,
		cache: expirable.NewLRU[string, endpointInfo](4096, nil, endpointTTL)}
	if len(cfg.TagKeys) > 0 {
		s.tagKeys = make(map[string]bool, len(cfg.TagKeys))
		for _, k := range cfg.TagKeys {
			s.tagKeys[k] = true
		}
	}
	s.limiter = newLookupLimiter(SourceEC2, cfg.LookupLimits.withDefaults(DefaultEC2LookupLimits()))
	o := cfg.cacheOptions()
	o.Admit = func(key string) (func(), error) {
		scope, ip := splitEC2Key(key)
		a, _ := netip.ParseAddr(ip)
		return s.limiter.admitScoped(scope, a)
	}
	s.cache = NewVerifiedIdentityCache(s.lookup, s.verify, o)
	return s
}

// LookupsLimited counts lookups refused by identity.ec2.lookup_limits.
func (s *EC2Source) LookupsLimited() uint64 { return s.limiter.Limited() }

// Refusals returns how many calls the source refused, by reason (for
// metrics).
func (s *EC2Source) Refusals() map[string]uint64 {
	return s.refused.snapshot(RefusedShared, RefusedEndpoint)
}

// ec2Key is the cache key of a caller: its address, scoped by the VPC
// endpoint it came through (spoke networks behind one endpoint service may
// overlap; routed networks cannot).
func ec2Key(vpce string, a netip.Addr) string {
	if vpce == "" {
		return a.String()
	}
	return vpce + "/" + a.String()
}

func splitEC2Key(key string) (vpce, ip string) {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

// accountFor is the account a routed (no endpoint) address is looked up in.
func (s *EC2Source) accountFor(a netip.Addr) *ec2Account {
	for _, acct := range s.routed {
		if acct.nets.Contains(a) {
			return acct
		}
	}
	return s.home
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
	if s.podNets.Contains(a) {
		// The kubernetes source answers for these (or refuses them).
		return Identity{}, fmt.Errorf("%w: %s is in identity.kubernetes.pod_cidrs: its network interface is the node's", ErrNoIdentity, a)
	}
	id, err := s.cache.Get(ctx, ec2Key(c.VPCEndpoint, a.WithZone("")))
	if err != nil {
		s.countRefusal(err)
	}
	return id, err
}

// scopeOf resolves where a key's address is looked up: the account, and
// for a caller that came through a VPC endpoint the endpoint (with its VPC,
// when its owner's account is listed). acct is nil for an endpoint whose
// owner is not listed: the caller is named by the endpoint alone.
func (s *EC2Source) scopeOf(ctx context.Context, vpce string, a netip.Addr) (acct *ec2Account, ep *endpointInfo, err error) {
	if vpce == "" {
		return s.accountFor(a), nil, nil
	}
	info, err := s.eps.get(ctx, vpce)
	if err != nil {
		return nil, nil, err
	}
	return s.byID[info.owner], &info, nil
}

func (s *EC2Source) lookup(ctx context.Context, key string) (Identity, error) {
	vpce, ip := splitEC2Key(key)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return Identity{}, ErrNoIdentity
	}
	acct, ep, err := s.scopeOf(ctx, vpce, addr)
	if err != nil {
		return Identity{}, err
	}
	if acct == nil {
		return s.endpointIdentity(ep), nil
	}
	filter := "addresses.private-ip-address"
	if addr.Is6() {
		filter = "ipv6-addresses.ipv6-address"
	}
	filters := []ec2types.Filter{{Name: aws.String(filter), Values: []string{ip}}}
	if ep != nil {
		filters = append(filters, ec2types.Filter{Name: aws.String("vpc-id"), Values: []string{ep.vpc}})
	}
	p := ec2.NewDescribeNetworkInterfacesPaginator(acct.ec2, &ec2.DescribeNetworkInterfacesInput{Filters: filters},
		func(o *ec2.DescribeNetworkInterfacesPaginatorOptions) { o.StopOnDuplicateToken = true })
	var match *ec2types.NetworkInterface
	for pages := 0; p.HasMorePages(); pages++ {
		if pages == maxENIPages {
			return Identity{}, fmt.Errorf("ec2:DescribeNetworkInterfaces for %s: more than %d pages", key, maxENIPages)
		}
		out, err := p.NextPage(ctx)
		if err != nil {
			return Identity{}, fmt.Errorf("ec2:DescribeNetworkInterfaces%s: %w", acct.in(), err)
		}
		for i := range out.NetworkInterfaces {
			ni := &out.NetworkInterfaces[i]
			// Trust the filters, but verify: only an interface that lists
			// the address, in the endpoint's VPC, names the caller.
			if !eniHolds(ni, addr) || (ep != nil && aws.ToString(ni.VpcId) != ep.vpc) {
				continue
			}
			if match != nil && aws.ToString(match.NetworkInterfaceId) != aws.ToString(ni.NetworkInterfaceId) {
				s.log.Warn("ec2 identity: address held by several network interfaces; refusing it",
					zap.String("key", key), zap.String("eni", aws.ToString(match.NetworkInterfaceId)), zap.String("other", aws.ToString(ni.NetworkInterfaceId)))
				// Overlapping VPCs, or an address in transit: neither
				// holder can be believed, and no later source may guess.
				return Identity{}, &RefusedError{Reason: RefusedShared, Msg: fmt.Sprintf("source IP %s is held by more than one network interface (%s, %s)",
					key, aws.ToString(match.NetworkInterfaceId), aws.ToString(ni.NetworkInterfaceId))}
			}
			match = ni
		}
	}
	if match == nil {
		return Identity{}, ErrNoIdentity
	}
	id := s.identityOf(match, ep)
	if acct.tasks != nil && isECSTaskENI(match) {
		t, ok, err := acct.tasks.lookup(ctx, aws.ToString(match.NetworkInterfaceId))
		if err != nil {
			return Identity{}, fmt.Errorf("ECS task of %s%s: %w", aws.ToString(match.NetworkInterfaceId), acct.in(), err)
		}
		if ok {
			addTaskTags(&id, t)
		}
	}
	id.precompute()
	return id, nil
}

// in names the account in messages.
func (a *ec2Account) in() string {
	if a == nil || a.id == "" {
		return ""
	}
	return " in account " + a.id
}

// endpointIdentity names a caller by its VPC endpoint alone: the endpoint's
// owner account is not listed in identity.ec2.accounts, so its interfaces
// cannot be looked up.
func (s *EC2Source) endpointIdentity(ep *endpointInfo) Identity {
	id := Identity{Source: SourceEC2, Tags: map[string]Tag{
		TagAWSAccount: StrongTag(SourceEC2, ep.owner),
		TagAWSVPCE:    StrongTag(SourceEC2, ep.id),
		TagAWSRegion:  StrongTag(SourceEC2, s.region),
	}}
	id.precompute()
	return id
}

// verify checks, with one paginated call per address family, that each
// address is still held by the ENI its cached identity names, and by it
// alone.
func (s *EC2Source) verify(ctx context.Context, keys []string, ids []Identity) ([]bool, error) {
	// Keys are checked per account and VPC: one paginated call per
	// address family in each.
	type group struct {
		acct    *ec2Account
		vpc     string
		v4, v6  []string
		holders map[netip.Addr][]string
	}
	groups := map[string]*group{}
	addrs := make([]netip.Addr, len(keys))
	groupOf := make([]*group, len(keys))
	ok := make([]bool, len(keys))
	for i, k := range keys {
		vpce, ip := splitEC2Key(k)
		a, err := netip.ParseAddr(ip)
		if err != nil {
			continue // the zero Addr is held by nobody: dropped
		}
		acct, ep, err := s.scopeOf(ctx, vpce, a)
		if err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				continue // the endpoint's connection is gone: dropped
			}
			return nil, err
		}
		if acct == nil {
			// Named by its endpoint alone: nothing holds the address
			// that Warden can see, and the endpoint's owner is fixed.
			ok[i] = ids[i].Tags[TagAWSENI].Value == ""
			continue
		}
		vpc := ""
		if ep != nil {
			vpc = ep.vpc
		}
		gk := acct.id + "|" + vpc
		g := groups[gk]
		if g == nil {
			g = &group{acct: acct, vpc: vpc, holders: map[netip.Addr][]string{}}
			groups[gk] = g
		}
		addrs[i], groupOf[i] = a, g
		if a.Is6() {
			g.v6 = append(g.v6, ip)
		} else {
			g.v4 = append(g.v4, ip)
		}
	}
	for _, g := range groups {
		for _, q := range []struct {
			filter string
			values []string
		}{{"addresses.private-ip-address", g.v4}, {"ipv6-addresses.ipv6-address", g.v6}} {
			if len(q.values) == 0 {
				continue
			}
			filters := []ec2types.Filter{{Name: aws.String(q.filter), Values: q.values}}
			if g.vpc != "" {
				filters = append(filters, ec2types.Filter{Name: aws.String("vpc-id"), Values: []string{g.vpc}})
			}
			p := ec2.NewDescribeNetworkInterfacesPaginator(g.acct.ec2, &ec2.DescribeNetworkInterfacesInput{Filters: filters},
				func(o *ec2.DescribeNetworkInterfacesPaginatorOptions) { o.StopOnDuplicateToken = true })
			for pages := 0; p.HasMorePages(); pages++ {
				if pages == maxENIPages {
					return nil, fmt.Errorf("ec2:DescribeNetworkInterfaces for %d addresses%s: more than %d pages", len(q.values), g.acct.in(), maxENIPages)
				}
				out, err := p.NextPage(ctx)
				if err != nil {
					return nil, fmt.Errorf("ec2:DescribeNetworkInterfaces%s: %w", g.acct.in(), err)
				}
				for i := range out.NetworkInterfaces {
					ni := &out.NetworkInterfaces[i]
					if g.vpc != "" && aws.ToString(ni.VpcId) != g.vpc {
						continue
					}
					id := aws.ToString(ni.NetworkInterfaceId)
					for j, a := range addrs {
						if groupOf[j] == g && eniHolds(ni, a) && !slices.Contains(g.holders[a], id) {
							g.holders[a] = append(g.holders[a], id)
						}
					}
				}
			}
		}
	}
	for i, a := range addrs {
		g := groupOf[i]
		if g == nil {
			continue
		}
		was := ids[i].Tags[TagAWSENI].Value
		h := g.holders[a]
		ok[i] = len(h) == 1 && h[0] == was
		if !ok[i] {
			s.log.Info("ec2 identity: address no longer held by the same network interface alone; dropping its cached identity",
				zap.String("key", keys[i]), zap.String("was", was), zap.Strings("now", h))
		}
	}
	return ok, nil
}

func (s *EC2Source) countRefusal(err error) {
	if re := (*RefusedError)(nil); errors.As(err, &re) {
		s.refused.add(re.Reason)
	}
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

// identityOf builds the identity of an interface's holder (not yet
// precomputed: ECS task tags may follow).
func (s *EC2Source) identityOf(ni *ec2types.NetworkInterface, ep *endpointInfo) Identity {
	id := Identity{Source: SourceEC2, Tags: make(map[string]Tag, 7+len(ni.TagSet))}
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
	put(TagAWSVPC, aws.ToString(ni.VpcId), true)
	put(TagAWSSubnet, aws.ToString(ni.SubnetId), true)
	if ep != nil {
		put(TagAWSVPCE, ep.id, true)
	}
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
	return id
}
