package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// A central Warden's world: Warden's account (the hub, owning the endpoint
// service), two spoke accounts whose roles trust the hub with an external
// id, and a third account that is not listed. Both spokes use 10.0.0.5.
const (
	hubAccount    = "111111111111"
	spokeA        = "222222222222"
	spokeB        = "333333333333"
	unlisted      = "444444444444"
	hubKey        = "AKIACENTRALHUB000001"
	hubSecret     = "central-hub-secret"
	roleA         = "arn:aws:iam::222222222222:role/warden-identity"
	roleB         = "arn:aws:iam::333333333333:role/warden-identity"
	vpceA         = "vpce-0aaaaaaaaaaaaaaa1"
	vpceB         = "vpce-0bbbbbbbbbbbbbbb1"
	vpceUnlisted  = "vpce-0ccccccccccccccc1"
	vpcePending   = "vpce-0ddddddddddddddd1"
	vpceElsewhere = "vpce-0eeeeeeeeeeeeeee1"
	hubService    = "vpce-svc-0hub000000000001"
	taskRoleA     = "arn:aws:iam::222222222222:role/search-task"
	taskA         = "arn:aws:ecs:eu-west-1:222222222222:task/apps/0123abcd"
)

type central struct {
	iam *bedrocktest.IAM
	ec2 *bedrocktest.EC2Server
	sts *bedrocktest.STSServer
	ecs *bedrocktest.ECSServer
}

func startCentral(t *testing.T) *central {
	t.Helper()
	iam := bedrocktest.NewIAM()
	iam.AddUser(hubAccount, "warden", hubKey, hubSecret)
	iam.AddRole(bedrocktest.IAMRole{ARN: roleA, TrustedPrincipals: []string{hubAccount}, ExternalID: "ext-a"})
	iam.AddRole(bedrocktest.IAMRole{ARN: roleB, TrustedPrincipals: []string{hubAccount}, ExternalID: "ext-b"})
	c := &central{iam: iam,
		ec2: bedrocktest.NewEC2Server(bedrocktest.EC2Config{IAM: iam, Region: "eu-west-1", Logf: bedrocktest.TestLogf(t)}),
		sts: bedrocktest.NewSTSServer(bedrocktest.STSConfig{IAM: iam, Region: "eu-west-1", Logf: bedrocktest.TestLogf(t)}),
		ecs: bedrocktest.NewECSServer(bedrocktest.ECSConfig{IAM: iam, Region: "eu-west-1", Logf: bedrocktest.TestLogf(t)}),
	}
	t.Cleanup(c.ec2.Close)
	t.Cleanup(c.sts.Close)
	t.Cleanup(c.ecs.Close)
	e := c.ec2
	// The same address in both spokes, and in a second VPC of spoke A.
	e.PutENI(bedrocktest.ENI{ID: "eni-0a", OwnerID: spokeA, VpcID: "vpc-a", SubnetID: "subnet-a1", PrivateIPs: []string{"10.0.0.5"},
		Description: "arn:aws:ecs:eu-west-1:222222222222:attachment/att-a", RequesterManaged: true, Tags: map[string]string{"team": "search"}})
	e.PutENI(bedrocktest.ENI{ID: "eni-0a2", OwnerID: spokeA, VpcID: "vpc-a2", SubnetID: "subnet-a2", PrivateIPs: []string{"10.0.0.5"}})
	e.PutENI(bedrocktest.ENI{ID: "eni-0b", OwnerID: spokeB, VpcID: "vpc-b", SubnetID: "subnet-b1", PrivateIPs: []string{"10.0.0.5"}, InstanceID: "i-0b"})
	e.PutENI(bedrocktest.ENI{ID: "eni-0r", OwnerID: spokeB, VpcID: "vpc-b", SubnetID: "subnet-b1", PrivateIPs: []string{"10.20.0.9"}})
	e.PutENI(bedrocktest.ENI{ID: "eni-0h", OwnerID: hubAccount, VpcID: "vpc-hub", SubnetID: "subnet-h", PrivateIPs: []string{"10.0.0.5"}})
	for _, ep := range []bedrocktest.VPCEndpoint{
		{ID: vpceA, OwnerID: spokeA, VpcID: "vpc-a", SubnetIDs: []string{"subnet-a1"}},
		{ID: vpceB, OwnerID: spokeB, VpcID: "vpc-b", SubnetIDs: []string{"subnet-b1"}},
		{ID: vpceUnlisted, OwnerID: unlisted, VpcID: "vpc-c"},
		{ID: vpcePending, OwnerID: spokeA, VpcID: "vpc-a", State: "pendingAcceptance"},
	} {
		ep.ServiceID, ep.ServiceOwnerID = hubService, hubAccount
		ep.ServiceName = "com.amazonaws.vpce.eu-west-1." + hubService
		e.PutVPCEndpoint(ep)
	}
	// An endpoint to somebody else's service: the hub has no connection.
	e.PutVPCEndpoint(bedrocktest.VPCEndpoint{ID: vpceElsewhere, OwnerID: spokeA, VpcID: "vpc-a", ServiceID: "vpce-svc-0other", ServiceOwnerID: unlisted})
	c.ecs.PutTask(bedrocktest.ECSTask{ARN: taskA, ClusterARN: "arn:aws:ecs:eu-west-1:222222222222:cluster/apps",
		TaskDefinitionARN: "arn:aws:ecs:eu-west-1:222222222222:task-definition/search:7", Group: "service:search",
		ENI: "eni-0a", PrivateIP: "10.0.0.5", AttachmentID: "att-a"})
	c.ecs.PutTaskDefinition(bedrocktest.ECSTaskDefinition{ARN: "arn:aws:ecs:eu-west-1:222222222222:task-definition/search:7", TaskRoleARN: taskRoleA})
	return c
}

func (c *central) yaml(extra string) string {
	return fmt.Sprintf(`
identity:
  sources: [ec2]
  trusted_cidrs: [10.0.0.0/8]
  ec2:
    region: eu-west-1
    endpoint: %q
    sts_endpoint: %q
    ecs_endpoint: %q
    ecs_tasks: true
    accounts:
      - {account: %q, role_arn: %q, external_id: ext-a}
      - {account: %q, role_arn: %q, external_id: ext-b, cidrs: [10.20.0.0/16]}
      - {account: %q}
%s`, c.ec2.URL, c.sts.URL, c.ecs.URL, spokeA, roleA, spokeB, roleB, hubAccount, extra)
}

func (c *central) source(t *testing.T, extra string) *EC2Source {
	t.Helper()
	cfg, err := parseIdentity([]byte(c.yaml(extra)))
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{AWS: aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider(hubKey, hubSecret, "")}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no background sweeps: tests run them
	src, err := newEC2Source(ctx, cfg.Identity.EC2, deps)
	if err != nil {
		t.Fatal(err)
	}
	return src.(*EC2Source)
}

func spokeConn(vpce, ip string) *Conn {
	return &Conn{Remote: netip.AddrPortFrom(netip.MustParseAddr(ip), 41000), VPCEndpoint: vpce}
}

func tagValues(id Identity, keys ...string) string {
	var out []string
	for _, k := range keys {
		t, ok := id.Tags[k]
		if !ok {
			out = append(out, k+"=<none>")
			continue
		}
		s := "weak"
		if t.Strong {
			s = "strong"
		}
		out = append(out, k+"="+t.Value+"("+s+")")
	}
	return strings.Join(out, " ")
}

// TestEC2CentralOverlappingSpokes: the same address behind two VPC
// endpoints names two workloads in two accounts, each found through its
// account's assumed role and its endpoint's VPC.
func TestEC2CentralOverlappingSpokes(t *testing.T) {
	c := startCentral(t)
	src := c.source(t, "")
	ctx := context.Background()
	keys := []string{TagAWSAccount, TagAWSVPC, TagAWSSubnet, TagAWSENI, TagAWSVPCE}
	for _, tc := range []struct {
		vpce, want string
	}{
		{vpceA, "aws.account=222222222222(strong) aws.vpc=vpc-a(strong) aws.subnet=subnet-a1(strong) aws.eni=eni-0a(strong) aws.vpce=" + vpceA + "(strong)"},
		{vpceB, "aws.account=333333333333(strong) aws.vpc=vpc-b(strong) aws.subnet=subnet-b1(strong) aws.eni=eni-0b(strong) aws.vpce=" + vpceB + "(strong)"},
		// The endpoint's owner is not listed: named by account and endpoint.
		{vpceUnlisted, "aws.account=444444444444(strong) aws.vpc=<none> aws.subnet=<none> aws.eni=<none> aws.vpce=" + vpceUnlisted + "(strong)"},
		// No endpoint: a caller in Warden's own network.
		{"", "aws.account=111111111111(strong) aws.vpc=vpc-hub(strong) aws.subnet=subnet-h(strong) aws.eni=eni-0h(strong) aws.vpce=<none>"},
	} {
		for range 2 { // the second answer is the cache's
			id, err := src.Resolve(ctx, spokeConn(tc.vpce, "10.0.0.5"))
			if err != nil {
				t.Fatalf("%s: %v", tc.vpce, err)
			}
			if got := tagValues(id, keys...); got != tc.want {
				t.Errorf("%s:\n got %s\nwant %s", tc.vpce, got, tc.want)
			}
		}
	}
	// The ECS task behind spoke A's ENI: role and cluster strong, family
	// and service weak.
	id, _ := src.Resolve(ctx, spokeConn(vpceA, "10.0.0.5"))
	want := "ecs.task_arn=" + taskA + "(strong) ecs.cluster=apps(strong) ecs.task_role_arn=" + taskRoleA +
		"(strong) ecs.launch_type=FARGATE(strong) ecs.family=search(weak) ecs.revision=7(weak) ecs.service=search(weak) aws.tag.team=search(weak)"
	if got := tagValues(id, TagECSTaskARN, TagECSCluster, TagECSTaskRole, TagECSLaunch, TagECSFamily, TagECSRevision, TagECSService, TagAWSTagPrefix+"team"); got != want {
		t.Errorf("task tags:\n got %s\nwant %s", got, want)
	}
	// One AssumeRole per account, with its external id.
	roles := map[string]string{}
	for _, call := range c.sts.Calls() {
		if call.Status != 200 || !call.SignatureOK {
			t.Errorf("sts call %+v", call)
		}
		if prev, dup := roles[call.RoleARN]; dup {
			t.Errorf("role %s assumed twice (%s, %s): the credentials are not cached", call.RoleARN, prev, call.ExternalID)
		}
		roles[call.RoleARN] = call.ExternalID
	}
	if roles[roleA] != "ext-a" || roles[roleB] != "ext-b" || len(roles) != 2 {
		t.Errorf("assumed %v", roles)
	}
	// Every EC2 call was made as the account it asked about.
	for _, call := range c.ec2.Calls() {
		if !call.SignatureOK {
			t.Errorf("ec2 call %+v", call)
		}
		if call.Action == "DescribeVpcEndpointConnections" && call.Account != hubAccount {
			t.Errorf("endpoint connections asked as %s", call.Account)
		}
	}
}

func TestEC2CentralRefusesUnknownEndpoints(t *testing.T) {
	c := startCentral(t)
	src := c.source(t, "")
	ctx := context.Background()
	for _, vpce := range []string{vpcePending, vpceElsewhere, "vpce-0fffffffffffffff1"} {
		_, err := src.Resolve(ctx, spokeConn(vpce, "10.0.0.5"))
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != RefusedEndpoint || !strings.Contains(err.Error(), vpce) {
			t.Errorf("%s: %v, want a refusal naming the endpoint", vpce, err)
		}
	}
	if n := src.Refusals()[RefusedEndpoint]; n != 3 {
		t.Errorf("endpoint refusals %d", n)
	}
	// endpoint_services narrows the accepted connections.
	src = c.source(t, "    endpoint_services: [vpce-svc-0someoneelse]\n")
	if _, err := src.Resolve(ctx, spokeConn(vpceA, "10.0.0.5")); err == nil {
		t.Error("an endpoint of a service not in endpoint_services was accepted")
	}
}

// TestEC2CentralRoutedSpoke: a transit-gateway caller (no endpoint) in an
// account's cidrs is looked up in that account, through its role.
func TestEC2CentralRoutedSpoke(t *testing.T) {
	c := startCentral(t)
	src := c.source(t, "")
	id, err := src.Resolve(context.Background(), spokeConn("", "10.20.0.9"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tagValues(id, TagAWSAccount, TagAWSENI); got != "aws.account=333333333333(strong) aws.eni=eni-0r(strong)" {
		t.Fatal(got)
	}
	if calls := c.sts.Calls(); len(calls) != 1 || calls[0].RoleARN != roleB {
		t.Fatalf("sts calls %+v", calls)
	}
}

// TestEC2CentralVerifySweep: a sweep checks each key in its own account and
// VPC, and drops only the moved one.
func TestEC2CentralVerifySweep(t *testing.T) {
	c := startCentral(t)
	src := c.source(t, "    verify_after: 1ms\n")
	ctx := context.Background()
	for _, v := range []string{vpceA, vpceB, vpceUnlisted} {
		if _, err := src.Resolve(ctx, spokeConn(v, "10.0.0.5")); err != nil {
			t.Fatal(err)
		}
	}
	c.ec2.PutENI(bedrocktest.ENI{ID: "eni-0a9", OwnerID: spokeA, VpcID: "vpc-a", SubnetID: "subnet-a1"})
	c.ec2.MovePrivateIP("10.0.0.5", "eni-0a9") // in spoke A's vpc-a only... and everywhere else
	// MovePrivateIP takes the address from every ENI; give B its own back.
	c.ec2.AssignPrivateIP("eni-0b", "10.0.0.5")
	if err := src.cache.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	st := src.CacheStats()
	if st.Invalidated != 1 || st.Verified != 2 {
		t.Fatalf("sweep: %+v, want A's key dropped, B's and the endpoint-only one kept", st)
	}
	id, err := src.Resolve(ctx, spokeConn(vpceA, "10.0.0.5"))
	if err != nil || id.Tags[TagAWSENI].Value != "eni-0a9" {
		t.Fatalf("after the move: %v %s", err, id)
	}
}

func TestEC2CentralECSFailureIsNotAnIdentity(t *testing.T) {
	c := startCentral(t)
	src := c.source(t, "")
	c.ecs.SetOutage(500)
	if id, err := src.Resolve(context.Background(), spokeConn(vpceA, "10.0.0.5")); err == nil || !strings.Contains(err.Error(), "ecs:") {
		t.Fatalf("ECS outage: %v %s, want an error (a task ENI without its task tags must not match)", err, id)
	}
	c.ecs.SetOutage(0)
	// A task-role override wins over the task definition's role.
	c.ecs.PutTask(bedrocktest.ECSTask{ARN: "arn:aws:ecs:eu-west-1:222222222222:task/apps/0999", ClusterARN: "arn:aws:ecs:eu-west-1:222222222222:cluster/apps",
		TaskDefinitionARN: "arn:aws:ecs:eu-west-1:222222222222:task-definition/search:7", ENI: "eni-0a2", TaskRoleOverride: "arn:aws:iam::222222222222:role/other"})
	c.ec2.PutENI(bedrocktest.ENI{ID: "eni-0a2", OwnerID: spokeA, VpcID: "vpc-a", SubnetID: "subnet-a1", PrivateIPs: []string{"10.0.0.6"},
		Description: "arn:aws:ecs:eu-west-1:222222222222:attachment/att-2"})
	id, err := src.Resolve(context.Background(), spokeConn(vpceA, "10.0.0.6"))
	if err != nil || id.Tags[TagECSTaskRole].Value != "arn:aws:iam::222222222222:role/other" {
		t.Fatalf("override: %v %s", err, id)
	}
}

func TestEC2AccountsValidation(t *testing.T) {
	for name, tc := range map[string]struct{ accounts, want string }{
		"role in another account": {`[{account: "222222222222", role_arn: "arn:aws:iam::333333333333:role/x", external_id: ab}]`, "not 222222222222"},
		"no external id":          {`[{account: "222222222222", role_arn: "arn:aws:iam::222222222222:role/x"}]`, "external_id: required"},
		"bad account":             {`[{account: "2222"}]`, "12-digit"},
		"twice":                   {`[{account: "222222222222"}, {account: "222222222222", role_arn: "arn:aws:iam::222222222222:role/x", external_id: ab}]`, "listed twice"},
		"two own":                 {`[{account: "222222222222"}, {account: "333333333333"}]`, "more than one account without role_arn"},
		"overlap": {`[{account: "222222222222", cidrs: [10.1.0.0/16]}, {account: "333333333333", role_arn: "arn:aws:iam::333333333333:role/x", external_id: ab, cidrs: [10.1.2.0/24]}]`,
			"overlaps"},
		"external id alone": {`[{account: "222222222222", external_id: ab}]`, "set without role_arn"},
		"not a role":        {`[{account: "222222222222", role_arn: "arn:aws:iam::222222222222:user/x", external_id: ab}]`, "not an IAM role ARN"},
	} {
		_, err := parseIdentity([]byte(strings.Replace(ec2Base, "ec2: {}", "ec2: {accounts: "+tc.accounts+"}", 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "identity.ec2.accounts") {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	for name, ec2 := range map[string]string{
		"endpoint service": `{endpoint_services: [svc-1]}`,
		"sts endpoint":     `{sts_endpoint: "http://sts.example.com"}`,
	} {
		if _, err := parseIdentity([]byte(strings.Replace(ec2Base, "ec2: {}", "ec2: "+ec2, 1))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
