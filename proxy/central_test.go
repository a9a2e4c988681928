package proxy_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
	"github.com/warden-egress/warden/proxy/proxyproto"
)

// The central Warden's world: Warden runs in the hub account, which owns
// the endpoint service; two spoke accounts reach it through their own VPC
// endpoints, from the same address; a third spoke's account is not listed.
const (
	centralHub      = "111111111111"
	centralSpokeA   = "222222222222"
	centralSpokeB   = "333333333333"
	centralUnlisted = "444444444444"
	centralHubKey   = "AKIACENTRALE2E000001"
	centralHubSec   = "central-e2e-secret"
	centralRoleA    = "arn:aws:iam::222222222222:role/warden-identity"
	centralRoleB    = "arn:aws:iam::333333333333:role/warden-identity"
	centralVPCEA    = "vpce-0a1a1a1a1a1a1a1a1"
	centralVPCEB    = "vpce-0b2b2b2b2b2b2b2b2"
	centralVPCEC    = "vpce-0c3c3c3c3c3c3c3c3"
	centralTaskRole = "arn:aws:iam::333333333333:role/search-task"
	centralService  = "vpce-svc-0central00000001"
)

// centralPolicy: spoke A's prod app selects on its account; spoke B's on
// its VPC and its ECS task role (strong), never on a security group.
const centralPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0, proxy_protocol: {trusted: [127.0.0.1/32]}}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true}
identity:
  sources: [ec2]
  trusted_cidrs: [10.0.0.0/8]
  ec2:
    endpoint: "${EC2}"
    sts_endpoint: "${STS}"
    ecs_endpoint: "${ECS}"
    ecs_tasks: true
    endpoint_services: [` + centralService + `]
    accounts:
      - {account: "` + centralSpokeA + `", role_arn: "` + centralRoleA + `", external_id: central-a}
      - {account: "` + centralSpokeB + `", role_arn: "` + centralRoleB + `", external_id: central-b}
apps:
  - name: payments-prod
    match: {in: {aws.account: ["` + centralSpokeA + `"]}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse]}
  - name: search-nonprod
    match: {tags: {aws.vpc: vpc-b, ecs.task_role_arn: "` + centralTaskRole + `"}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse]}
`

type centralEnv struct {
	*env
	ec2 *bedrocktest.EC2Server
	sts *bedrocktest.STSServer
	ecs *bedrocktest.ECSServer
	ln  net.Listener
}

func startCentralEnv(t *testing.T) *centralEnv {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": centralHubKey, "AWS_SECRET_ACCESS_KEY": centralHubSec, "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	iam := bedrocktest.NewIAM()
	iam.AddUser(centralHub, "warden", centralHubKey, centralHubSec)
	iam.AddRole(bedrocktest.IAMRole{ARN: centralRoleA, TrustedPrincipals: []string{centralHub}, ExternalID: "central-a"})
	iam.AddRole(bedrocktest.IAMRole{ARN: centralRoleB, TrustedPrincipals: []string{centralHub}, ExternalID: "central-b"})
	e := &centralEnv{env: &env{emu: newEmulator(t), audit: newRecorder()},
		ec2: bedrocktest.NewEC2Server(bedrocktest.EC2Config{IAM: iam, Logf: bedrocktest.TestLogf(t)}),
		sts: bedrocktest.NewSTSServer(bedrocktest.STSConfig{IAM: iam, Logf: bedrocktest.TestLogf(t)}),
		ecs: bedrocktest.NewECSServer(bedrocktest.ECSConfig{IAM: iam, Logf: bedrocktest.TestLogf(t)}),
	}
	t.Cleanup(e.ec2.Close)
	t.Cleanup(e.sts.Close)
	t.Cleanup(e.ecs.Close)
	// Both spokes' workloads are 10.0.5.7.
	e.ec2.PutENI(bedrocktest.ENI{ID: "eni-0spokea000000001", OwnerID: centralSpokeA, VpcID: "vpc-a", SubnetID: "subnet-a", PrivateIPs: []string{"10.0.5.7"},
		InstanceID: "i-0a00000000000001"})
	e.ec2.PutENI(bedrocktest.ENI{ID: "eni-0spokeb000000001", OwnerID: centralSpokeB, VpcID: "vpc-b", SubnetID: "subnet-b", PrivateIPs: []string{"10.0.5.7"},
		Description: "arn:aws:ecs:us-east-1:333333333333:attachment/att-b", RequesterManaged: true})
	e.ecs.PutTask(bedrocktest.ECSTask{ARN: "arn:aws:ecs:us-east-1:333333333333:task/search/0b0b", ClusterARN: "arn:aws:ecs:us-east-1:333333333333:cluster/search",
		TaskDefinitionARN: "arn:aws:ecs:us-east-1:333333333333:task-definition/search:3", Group: "service:search", ENI: "eni-0spokeb000000001", AttachmentID: "att-b"})
	e.ecs.PutTaskDefinition(bedrocktest.ECSTaskDefinition{ARN: "arn:aws:ecs:us-east-1:333333333333:task-definition/search:3", TaskRoleARN: centralTaskRole})
	for _, ep := range []bedrocktest.VPCEndpoint{
		{ID: centralVPCEA, OwnerID: centralSpokeA, VpcID: "vpc-a"},
		{ID: centralVPCEB, OwnerID: centralSpokeB, VpcID: "vpc-b"},
		{ID: centralVPCEC, OwnerID: centralUnlisted, VpcID: "vpc-c"},
	} {
		ep.ServiceID, ep.ServiceOwnerID = centralService, centralHub
		e.ec2.PutVPCEndpoint(ep)
	}
	policy := strings.NewReplacer("${UPSTREAM}", e.emu.URL, "${EC2}", e.ec2.URL, "${STS}", e.sts.URL, "${ECS}", e.ecs.URL).Replace(centralPolicy)
	cfg, err := config.ParseConfig([]byte(policy))
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	e.srv, err = proxy.New(context.Background(), proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       e.audit,
		Logger:      zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	e.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeEndpoint(e.ln, nil) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.srv.Shutdown(ctx)
	})
	return e
}

// TestCentralWardenAttributesSpokes is issue 16's acceptance: two spoke
// callers with the same address behind two VPC endpoints are told apart
// (each resolved in its own account through an assumed role), a third
// endpoint's unlisted account is named but matches no app.
func TestCentralWardenAttributesSpokes(t *testing.T) {
	e := startCentralEnv(t)
	client := netip.MustParseAddrPort("10.0.5.7:45678")
	via := func(vpce string) string {
		lb := startLoadBalancerTLV(t, e.ln.Addr().String(), client, proxyproto.AWSVPCEndpointTLV(vpce))
		return "http://" + lb.ln.Addr().String()
	}
	for _, vpce := range []string{centralVPCEA, centralVPCEB, centralVPCEA, centralVPCEB} {
		e.endpoint = via(vpce)
		if err := ec2Converse(e.client(t, nil)); err != nil {
			t.Fatalf("through %s: %v", vpce, err)
		}
	}
	e.endpoint = via(centralVPCEC)
	ec2WantDenied(t, ec2Converse(e.client(t, nil)), "")

	recs := e.audit.wait(t, 5)
	byVPCE := map[string][]audit.Record{}
	for _, r := range recs {
		byVPCE[r.Tags["aws.vpce"]] = append(byVPCE[r.Tags["aws.vpce"]], r)
	}
	for vpce, want := range map[string]struct{ app, account, vpc, eni, decision string }{
		centralVPCEA: {"payments-prod", centralSpokeA, "vpc-a", "eni-0spokea000000001", "allow"},
		centralVPCEB: {"search-nonprod", centralSpokeB, "vpc-b", "eni-0spokeb000000001", "allow"},
		centralVPCEC: {"", centralUnlisted, "", "", "deny"},
	} {
		rs := byVPCE[vpce]
		if len(rs) == 0 {
			t.Fatalf("no record for %s (records %+v)", vpce, recs)
		}
		for _, r := range rs {
			if r.App != want.app || r.Decision != want.decision || r.Tags["aws.account"] != want.account || r.Tags["aws.vpc"] != want.vpc ||
				r.Tags["aws.eni"] != want.eni || r.Client != client.String() {
				t.Errorf("%s: record app=%q decision=%s client=%s tags=%v, want %+v", vpce, r.App, r.Decision, r.Client, r.Tags, want)
			}
			// The record's network path: the caller's side from the
			// strong tags and the PROXY header, the upstream's from config.
			wantPath := audit.Path{Account: want.account, VPC: want.vpc, ENI: want.eni, VPCEndpoint: vpce,
				Upstream: strings.TrimPrefix(e.emu.URL, "http://"), Region: "us-east-1"}
			if want.vpc != "" {
				wantPath.Subnet = "subnet-" + strings.TrimPrefix(want.vpc, "vpc-")
			}
			if r.Path != wantPath {
				t.Errorf("%s: path %+v, want %+v", vpce, r.Path, wantPath)
			}
		}
	}
	if r := byVPCE[centralVPCEB][0]; r.Tags["ecs.task_role_arn"] != centralTaskRole || r.Tags["ecs.cluster"] != "search" {
		t.Errorf("spoke B's task: %v", r.Tags)
	}
	// Each spoke account was read through its own role, assumed once with
	// its external id by Warden's own (signed) key.
	var assumed []string
	for _, c := range e.sts.Calls() {
		if !c.SignatureOK || c.AccessKeyID != centralHubKey || c.Status != 200 {
			t.Errorf("sts call %+v", c)
		}
		assumed = append(assumed, c.RoleARN+"|"+c.ExternalID)
	}
	sort.Strings(assumed)
	if strings.Join(assumed, ",") != centralRoleA+"|central-a,"+centralRoleB+"|central-b" {
		t.Errorf("assumed %v", assumed)
	}
	accounts := map[string]bool{}
	for _, c := range e.ec2.Calls() {
		if !c.SignatureOK {
			t.Errorf("ec2 call %+v", c)
		}
		if c.Action == "DescribeNetworkInterfaces" {
			accounts[c.Account] = true
		}
	}
	if !accounts[centralSpokeA] || !accounts[centralSpokeB] || accounts[centralHub] {
		t.Errorf("interfaces looked up in %v", accounts)
	}

	// The path reaches both report views, through the records' JSON: the
	// access paths tell the two spokes apart although they share an
	// address, and the exposure view of spoke A's subnet lists exactly its
	// records.
	exposure := audit.ExposureFilter{Subnet: "subnet-a"}
	b := audit.NewReportBuilder(audit.ReportOptions{Exposure: &exposure})
	for i := range recs {
		if err := b.Add("central", recs[i].AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
	}
	rep := b.Report()
	model := recs[0].ModelCanonical
	if model == "" {
		model = recs[0].Model
	}
	wantPaths := map[audit.PathKey]audit.PathCounts{
		{Account: centralSpokeA, Network: "vpc-a/subnet-a", App: "payments-prod", Model: model}:  {Calls: 2},
		{Account: centralSpokeB, Network: "vpc-b/subnet-b", App: "search-nonprod", Model: model}: {Calls: 2},
		{Account: centralUnlisted, Network: centralVPCEC, App: "", Model: model}:                 {Calls: 1, Denied: 1},
	}
	if len(rep.Paths) != len(wantPaths) {
		t.Errorf("report paths %+v, want %+v", rep.Paths, wantPaths)
	}
	for _, p := range rep.Paths {
		if w, ok := wantPaths[p.PathKey]; !ok || w != p.PathCounts {
			t.Errorf("report path %+v: want %+v (known %v)", p, w, ok)
		}
	}
	var wantIDs []string
	for _, r := range byVPCE[centralVPCEA] {
		wantIDs = append(wantIDs, r.RequestID)
	}
	sort.Strings(wantIDs)
	if x := rep.Exposure; x == nil || len(x.Paths) != 1 || x.Paths[0].Account != centralSpokeA || x.Calls != 2 {
		t.Fatalf("exposure of subnet-a: %+v", x)
	}
	gotIDs := append([]string(nil), rep.Exposure.Paths[0].RecordIDs...)
	sort.Strings(gotIDs)
	if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") {
		t.Errorf("exposure record ids %v, want spoke A's %v", gotIDs, wantIDs)
	}
}

// TestCentralWardenBehindTLSTargetGroup: the ECS central Warden's NLB
// (deploy/ecs/central) has a TLS target group with PROXY protocol v2: on
// each connection to Warden it sends the header, then a TLS handshake.
// Warden's TLS endpoint reads the header first and attributes the caller
// by it and its VPC endpoint TLV. (Here the load balancer passes the
// client's own TLS through after the header; what Warden reads is the
// same.)
func TestCentralWardenBehindTLSTargetGroup(t *testing.T) {
	e := startCentralEnv(t)
	cert, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeEndpoint(ln, &tls.Config{Certificates: []tls.Certificate{cert}}) }()
	client := netip.MustParseAddrPort("10.0.5.7:45678")
	lb := startLoadBalancerTLV(t, ln.Addr().String(), client, proxyproto.AWSVPCEndpointTLV(centralVPCEA))
	e.endpoint = "https://" + lb.ln.Addr().String()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := ec2Converse(e.client(t, hc)); err != nil {
		t.Fatalf("through the TLS target group: %v", err)
	}
	r := e.audit.wait(t, 1)[0]
	if r.App != "payments-prod" || r.Decision != "allow" || r.Client != client.String() || r.Path.VPCEndpoint != centralVPCEA || r.Tags["aws.account"] != centralSpokeA {
		t.Errorf("record app=%q decision=%s client=%s path=%+v, want payments-prod from %s through %s", r.App, r.Decision, r.Client, r.Path, client, centralVPCEA)
	}
	// Straight to the TLS listener from the trusted address, without the
	// header: refused before TLS.
	e.endpoint = "https://" + ln.Addr().String()
	if err := ec2Converse(e.client(t, hc)); err == nil {
		t.Error("a trusted peer's TLS without a PROXY header was served")
	}
}
