package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// EC2AccountConfig is one account whose network interfaces a central
// Warden resolves (identity.ec2.accounts).
//
//	identity:
//	  ec2:
//	    accounts:
//	      - account: "222233334444"
//	        role_arn: arn:aws:iam::222233334444:role/warden-identity
//	        external_id: warden-central-7f3a    # the role's sts:ExternalId condition
//	        cidrs: [10.20.0.0/16]               # routed callers (TGW, peering) from these networks
//	        ecs_clusters: [apps]                # default: every cluster (ecs:ListClusters)
//	      - account: "111122223333"             # Warden's own: no role
type EC2AccountConfig struct {
	Account string `yaml:"account"`
	// RoleARN is assumed (sts:AssumeRole with ExternalID) for every call
	// in the account; empty means Warden's own credentials, for the
	// account Warden runs in.
	RoleARN    string `yaml:"role_arn"`
	ExternalID string `yaml:"external_id"`
	// CIDRs are the networks whose routed callers (no VPC endpoint) are
	// looked up in this account. Routed networks cannot overlap, so an
	// address names one account.
	CIDRs []string `yaml:"cidrs"`
	// ECSClusters limits the ENI-to-task index to these clusters (names or
	// ARNs); empty means every cluster in the account.
	ECSClusters []string `yaml:"ecs_clusters"`
}

var (
	roleARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$`)
	// externalIDPattern is STS's own constraint on ExternalId.
	externalIDPattern = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// validateAccounts checks identity.ec2.accounts and compiles their
// networks.
func (c *EC2Config) validateAccounts() []error {
	var errs []error
	seen := map[string]bool{}
	own := 0
	var nets []netip.Prefix
	c.accountNets = make([]TrustedNets, len(c.Accounts))
	for i, a := range c.Accounts {
		key := fmt.Sprintf("identity.ec2.accounts[%d]", i)
		if !isAccountID(a.Account) {
			errs = append(errs, fmt.Errorf("%s.account: %q is not a 12-digit account id", key, a.Account))
		} else if seen[a.Account] {
			errs = append(errs, fmt.Errorf("%s.account: %s listed twice", key, a.Account))
		}
		seen[a.Account] = true
		switch {
		case a.RoleARN == "":
			own++
			if a.ExternalID != "" {
				errs = append(errs, fmt.Errorf("%s.external_id: set without role_arn", key))
			}
		default:
			m := roleARNPattern.FindStringSubmatch(a.RoleARN)
			if m == nil {
				errs = append(errs, fmt.Errorf("%s.role_arn: %q is not an IAM role ARN", key, a.RoleARN))
			} else if m[1] != a.Account {
				errs = append(errs, fmt.Errorf("%s.role_arn: %s is in account %s, not %s: the role must be the account's own", key, a.RoleARN, m[1], a.Account))
			}
			// Without an external id any other customer of Warden's
			// account could point it at a role of theirs (confused deputy).
			if n := len(a.ExternalID); n < 2 || n > 1224 || !externalIDPattern.MatchString(a.ExternalID) {
				errs = append(errs, fmt.Errorf("%s.external_id: required with role_arn (2-1224 characters of [\\w+=,.@:/-])", key))
			}
		}
		t, _ := ParseTrustedNets(a.CIDRs)
		errs = append(errs, TrustedNetsErrors(key+".cidrs", a.CIDRs)...)
		for _, p := range t.Prefixes() {
			for _, q := range nets {
				if p.Overlaps(q) {
					errs = append(errs, fmt.Errorf("%s.cidrs: %s overlaps %s of another account: a routed address must name one account", key, p, q))
				}
			}
		}
		nets = append(nets, t.Prefixes()...)
		c.accountNets[i] = t
		for _, cl := range a.ECSClusters {
			if cl == "" {
				errs = append(errs, fmt.Errorf("%s.ecs_clusters: empty name", key))
			}
		}
	}
	if own > 1 {
		errs = append(errs, errors.New("identity.ec2.accounts: more than one account without role_arn; only Warden's own account uses Warden's credentials"))
	}
	for _, s := range c.EndpointServices {
		if !strings.HasPrefix(s, "vpce-svc-") {
			errs = append(errs, fmt.Errorf("identity.ec2.endpoint_services: %q is not an endpoint service id (vpce-svc-…)", s))
		}
	}
	for name, ep := range map[string]string{"sts_endpoint": c.STSEndpoint, "ecs_endpoint": c.ECSEndpoint} {
		if ep != "" {
			if err := validateAPIEndpoint(ep); err != nil {
				errs = append(errs, fmt.Errorf("identity.ec2.%s: %w", name, err))
			}
		}
	}
	return errs
}

// ec2API is what the source asks EC2 in one account.
type ec2API interface {
	describeNetworkInterfacesAPI
	DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error)
}

// endpointConnectionsAPI is what the source asks EC2 in Warden's own
// account, which owns the endpoint service.
type endpointConnectionsAPI interface {
	DescribeVpcEndpointConnections(ctx context.Context, in *ec2.DescribeVpcEndpointConnectionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointConnectionsOutput, error)
}

// ecsAPI is what the ENI-to-task index asks ECS in one account.
type ecsAPI interface {
	ListClusters(ctx context.Context, in *ecs.ListClustersInput, optFns ...func(*ecs.Options)) (*ecs.ListClustersOutput, error)
	ListTasks(ctx context.Context, in *ecs.ListTasksInput, optFns ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	DescribeTasks(ctx context.Context, in *ecs.DescribeTasksInput, optFns ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
	DescribeTaskDefinition(ctx context.Context, in *ecs.DescribeTaskDefinitionInput, optFns ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error)
}

// ec2Account is one account the source looks interfaces up in.
type ec2Account struct {
	id    string // "" for Warden's own when not listed
	ec2   describeNetworkInterfacesAPI
	nets  TrustedNets
	tasks *ecsTaskIndex // nil: ECS tasks are not resolved
}

// endpointInfo is what the source learned about a VPC endpoint.
type endpointInfo struct {
	id, owner, service string
	vpc                string // "" when the owner's account is not listed
}

// endpointTTL bounds how long an endpoint's owner and VPC are believed:
// neither can change for a given endpoint id, but a rejected or deleted
// connection should stop naming callers.
const endpointTTL = 10 * time.Minute

// endpoints resolves VPC endpoint ids through DescribeVpcEndpointConnections
// (Warden's account owns the endpoint service) and, in the owner's account,
// DescribeVpcEndpoints (for the VPC).
type endpoints struct {
	conns    endpointConnectionsAPI
	services []string // allowed endpoint services; empty: any of Warden's
	accounts map[string]*ec2Account
	cache    *expirable.LRU[string, endpointInfo]
	sf       singleflight.Group
}

// errUnknownEndpoint refuses a VPC endpoint Warden's account has no
// accepted connection from.
func unknownEndpoint(id, why string) error {
	return &RefusedError{Reason: RefusedEndpoint, Msg: fmt.Sprintf("VPC endpoint %s %s", id, why)}
}

func (e *endpoints) get(ctx context.Context, id string) (endpointInfo, error) {
	if info, ok := e.cache.Get(id); ok {
		return info, nil
	}
	v, err, _ := e.sf.Do(id, func() (any, error) {
		info, err := e.fetch(ctx, id)
		if err == nil {
			e.cache.Add(id, info)
		}
		return info, err
	})
	if err != nil {
		return endpointInfo{}, err
	}
	return v.(endpointInfo), nil
}

func (e *endpoints) fetch(ctx context.Context, id string) (endpointInfo, error) {
	if e.conns == nil {
		return endpointInfo{}, errors.New("no EC2 client for DescribeVpcEndpointConnections")
	}
	out, err := e.conns.DescribeVpcEndpointConnections(ctx, &ec2.DescribeVpcEndpointConnectionsInput{
		Filters: []ec2types.Filter{{Name: aws.String("vpc-endpoint-id"), Values: []string{id}}},
	})
	if err != nil {
		return endpointInfo{}, fmt.Errorf("ec2:DescribeVpcEndpointConnections for %s: %w", id, err)
	}
	var found *ec2types.VpcEndpointConnection
	for i := range out.VpcEndpointConnections {
		c := &out.VpcEndpointConnections[i]
		if aws.ToString(c.VpcEndpointId) != id {
			continue
		}
		if len(e.services) > 0 && !slices.Contains(e.services, aws.ToString(c.ServiceId)) {
			continue
		}
		if found != nil {
			return endpointInfo{}, unknownEndpoint(id, "is connected to more than one of Warden's endpoint services; list the one Warden serves in identity.ec2.endpoint_services")
		}
		found = c
	}
	if found == nil {
		return endpointInfo{}, unknownEndpoint(id, "has no connection to Warden's endpoint services (ec2:DescribeVpcEndpointConnections)")
	}
	if !strings.EqualFold(string(found.VpcEndpointState), "available") {
		return endpointInfo{}, unknownEndpoint(id, fmt.Sprintf("connection is %s, not available", found.VpcEndpointState))
	}
	info := endpointInfo{id: id, owner: aws.ToString(found.VpcEndpointOwner), service: aws.ToString(found.ServiceId)}
	if !isAccountID(info.owner) {
		return endpointInfo{}, unknownEndpoint(id, fmt.Sprintf("has owner %q, not an account id", info.owner))
	}
	acct := e.accounts[info.owner]
	if acct == nil {
		return info, nil
	}
	api, ok := acct.ec2.(ec2API)
	if !ok {
		return endpointInfo{}, fmt.Errorf("no EC2 client for DescribeVpcEndpoints in account %s", info.owner)
	}
	eps, err := api.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{id}})
	if err != nil {
		return endpointInfo{}, fmt.Errorf("ec2:DescribeVpcEndpoints for %s in account %s: %w", id, info.owner, err)
	}
	for _, ep := range eps.VpcEndpoints {
		if aws.ToString(ep.VpcEndpointId) == id && aws.ToString(ep.OwnerId) == info.owner {
			info.vpc = aws.ToString(ep.VpcId)
		}
	}
	if info.vpc == "" {
		return endpointInfo{}, unknownEndpoint(id, "is not in its owner's account "+info.owner+" (ec2:DescribeVpcEndpoints)")
	}
	return info, nil
}

// ecsTaskInfo is what names an ECS task's workload.
type ecsTaskInfo struct {
	arn, cluster, taskDef, group, launch, role string
}

// ecsMinRebuild bounds how often an account's ENI-to-task index is rebuilt
// on a miss: a flood of unknown task ENIs costs one rebuild per interval.
const ecsMinRebuild = 2 * time.Second

// ecsMaxTasks bounds one index rebuild.
const ecsMaxTasks = 20000

// ecsTaskIndex maps an account's task ENIs to their tasks. ECS does not
// look a task up by its network interface, so the index lists the
// account's running tasks (ListTasks, DescribeTasks) and keeps each task's
// ENI; an ENI belongs to one task for the task's whole life, so entries
// never go stale, they are only dropped when the task is gone from a
// rebuild. Task roles come from the task definitions (immutable per
// revision, so fetched once) unless the task overrides them.
type ecsTaskIndex struct {
	api      ecsAPI
	clusters []string

	mu       sync.Mutex
	byENI    map[string]ecsTaskInfo
	roles    map[string]string // task definition ARN -> task role ARN
	built    time.Time
	sf       singleflight.Group
	rebuilds int
}

func newECSTaskIndex(api ecsAPI, clusters []string) *ecsTaskIndex {
	return &ecsTaskIndex{api: api, clusters: clusters, byENI: map[string]ecsTaskInfo{}, roles: map[string]string{}}
}

// lookup returns the task whose ENI is eni; ok is false when no running
// task has it.
func (x *ecsTaskIndex) lookup(ctx context.Context, eni string) (ecsTaskInfo, bool, error) {
	x.mu.Lock()
	t, ok := x.byENI[eni]
	recent := !x.built.IsZero() && time.Since(x.built) < ecsMinRebuild
	x.mu.Unlock()
	if ok || recent {
		return t, ok, nil
	}
	if _, err, _ := x.sf.Do("rebuild", func() (any, error) { return nil, x.rebuild(ctx) }); err != nil {
		return ecsTaskInfo{}, false, err
	}
	x.mu.Lock()
	t, ok = x.byENI[eni]
	x.mu.Unlock()
	return t, ok, nil
}

func (x *ecsTaskIndex) rebuild(ctx context.Context) error {
	clusters := x.clusters
	if len(clusters) == 0 {
		p := ecs.NewListClustersPaginator(x.api, &ecs.ListClustersInput{})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("ecs:ListClusters: %w", err)
			}
			clusters = append(clusters, out.ClusterArns...)
		}
	}
	next := map[string]ecsTaskInfo{}
	n := 0
	for _, cl := range clusters {
		var arns []string
		p := ecs.NewListTasksPaginator(x.api, &ecs.ListTasksInput{Cluster: aws.String(cl), DesiredStatus: ecstypes.DesiredStatusRunning})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("ecs:ListTasks in %s: %w", cl, err)
			}
			arns = append(arns, out.TaskArns...)
			if n += len(out.TaskArns); n > ecsMaxTasks {
				return fmt.Errorf("ecs:ListTasks: more than %d running tasks; list the clusters Warden serves in identity.ec2.accounts[].ecs_clusters", ecsMaxTasks)
			}
		}
		for i := 0; i < len(arns); i += 100 {
			out, err := x.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(cl), Tasks: arns[i:min(i+100, len(arns))]})
			if err != nil {
				return fmt.Errorf("ecs:DescribeTasks in %s: %w", cl, err)
			}
			for _, t := range out.Tasks {
				eni := taskENI(t)
				if eni == "" {
					continue
				}
				info := ecsTaskInfo{arn: aws.ToString(t.TaskArn), cluster: aws.ToString(t.ClusterArn), taskDef: aws.ToString(t.TaskDefinitionArn),
					group: aws.ToString(t.Group), launch: string(t.LaunchType)}
				if t.Overrides != nil && aws.ToString(t.Overrides.TaskRoleArn) != "" {
					info.role = aws.ToString(t.Overrides.TaskRoleArn)
				} else if info.role, err = x.taskRole(ctx, info.taskDef); err != nil {
					return err
				}
				next[eni] = info
			}
		}
	}
	x.mu.Lock()
	x.byENI, x.built = next, time.Now()
	x.rebuilds++
	x.mu.Unlock()
	return nil
}

func (x *ecsTaskIndex) taskRole(ctx context.Context, taskDef string) (string, error) {
	x.mu.Lock()
	role, ok := x.roles[taskDef]
	x.mu.Unlock()
	if ok {
		return role, nil
	}
	out, err := x.api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(taskDef)})
	if err != nil {
		return "", fmt.Errorf("ecs:DescribeTaskDefinition %s: %w", taskDef, err)
	}
	if out.TaskDefinition != nil {
		role = aws.ToString(out.TaskDefinition.TaskRoleArn)
	}
	x.mu.Lock()
	if len(x.roles) > ecsMaxTasks {
		clear(x.roles)
	}
	x.roles[taskDef] = role
	x.mu.Unlock()
	return role, nil
}

// taskENI is the networkInterfaceId of a task's ENI attachment.
func taskENI(t ecstypes.Task) string {
	for _, a := range t.Attachments {
		if aws.ToString(a.Type) != "ElasticNetworkInterface" {
			continue
		}
		for _, d := range a.Details {
			if aws.ToString(d.Name) == "networkInterfaceId" {
				return aws.ToString(d.Value)
			}
		}
	}
	return ""
}

// isECSTaskENI reports whether an interface's description is an ECS
// attachment's ARN, as ECS writes it on the ENIs of awsvpc tasks.
func isECSTaskENI(ni *ec2types.NetworkInterface) bool {
	d := aws.ToString(ni.Description)
	return strings.HasPrefix(d, "arn:aws") && strings.Contains(d, ":ecs:") && strings.Contains(d, ":attachment/")
}

// addTaskTags adds an ECS task's tags to id. The task, its cluster, launch
// type and role are AWS's answers about the running task: strong. Family,
// revision and service are chosen by whoever registers the task definition
// or runs the task (RunTask sets any group): weak.
func addTaskTags(id *Identity, t ecsTaskInfo) {
	strong := func(k, v string) {
		if v != "" {
			id.Tags[k] = StrongTag(SourceEC2, v)
		}
	}
	weak := func(k, v string) {
		if v != "" {
			id.Tags[k] = WeakTag(SourceEC2, v)
		}
	}
	strong(TagECSTaskARN, t.arn)
	strong(TagECSCluster, clusterName(t.cluster))
	strong(TagECSLaunch, t.launch)
	strong(TagECSTaskRole, t.role)
	if i := strings.LastIndex(t.taskDef, "/"); i >= 0 {
		fam, rev, _ := strings.Cut(t.taskDef[i+1:], ":")
		weak(TagECSFamily, fam)
		weak(TagECSRevision, rev)
	}
	if svc, ok := strings.CutPrefix(t.group, "service:"); ok {
		weak(TagECSService, svc)
	}
}
