package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

// The central Warden on ECS (docs/ecs.md, "A central Warden on ECS"): its
// task definition, its service, and the internal NLB in front of it.
const (
	centralTaskFile    = "ecs/central/task-definition.json"
	centralServiceFile = "ecs/central/service.json"
	centralLBFile      = "ecs/central/load-balancer.json"
	centralExample     = "examples/warden-central.yaml"
)

// centralLB is load-balancer.json: the Elastic Load Balancing calls that
// make the NLB, each as the SDK's input (the AWS CLI's --cli-input-json of
// the same call), and the CIDRs of the NLB's subnets, which Warden's
// listen.proxy_protocol.trusted must list exactly.
type centralLB struct {
	NLBSubnetCIDRs        map[string]string
	LoadBalancer          *elbv2.CreateLoadBalancerInput
	TargetGroup           *elbv2.CreateTargetGroupInput
	TargetGroupAttributes *elbv2.ModifyTargetGroupAttributesInput
	Listener              *elbv2.CreateListenerInput
}

// decodeStrict decodes file into v, refusing keys v does not have (a
// misspelt key would otherwise vanish), and returns the file's bytes.
func decodeStrict(t *testing.T, file string, v any) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: not a %T: %v", file, v, err)
	}
	return data
}

// queryRecorder is the ELBv2 client's HTTP client: the awsquery protocol's
// form bodies are kept, and each call is answered with an empty result.
type queryRecorder struct {
	mu    sync.Mutex
	forms []url.Values
}

func (r *queryRecorder) Do(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.forms = append(r.forms, form)
	r.mu.Unlock()
	a := form.Get("Action")
	xml := fmt.Sprintf(`<%sResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><%sResult></%sResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></%sResponse>`, a, a, a, a)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/xml"}},
		Body: io.NopCloser(strings.NewReader(xml)), Request: req}, nil
}

func newELB(rec *queryRecorder) *elbv2.Client {
	return elbv2.New(elbv2.Options{Region: "us-east-1", HTTPClient: rec, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
}

func newECS(rec *recorder) *ecs.Client {
	return ecs.New(ecs.Options{Region: "us-east-1", HTTPClient: rec, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
}

// sendELB sends lb's four calls through the real ELBv2 client and returns
// the form bodies it would send AWS, by action.
func sendELB(t *testing.T, lb *centralLB) (map[string]url.Values, error) {
	t.Helper()
	rec := &queryRecorder{}
	c := newELB(rec)
	ctx := context.Background()
	if _, err := c.CreateLoadBalancer(ctx, lb.LoadBalancer); err != nil {
		return nil, fmt.Errorf("CreateLoadBalancer: %w", err)
	}
	if _, err := c.CreateTargetGroup(ctx, lb.TargetGroup); err != nil {
		return nil, fmt.Errorf("CreateTargetGroup: %w", err)
	}
	if _, err := c.ModifyTargetGroupAttributes(ctx, lb.TargetGroupAttributes); err != nil {
		return nil, fmt.Errorf("ModifyTargetGroupAttributes: %w", err)
	}
	if _, err := c.CreateListener(ctx, lb.Listener); err != nil {
		return nil, fmt.Errorf("CreateListener: %w", err)
	}
	out := map[string]url.Values{}
	for _, f := range rec.forms {
		out[f.Get("Action")] = f
	}
	return out, nil
}

// TestECSCentralSendsThroughSDK sends the central Warden's task
// definition and service through the real ECS client, and its NLB through
// the real Elastic Load Balancing v2 client: each SDK's own validation
// runs (required members, nested shapes), and what it would send AWS
// carries every field of the files.
func TestECSCentralSendsThroughSDK(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		file, target string
		send         func(*ecs.Client, []byte) error
	}{
		{centralTaskFile, "RegisterTaskDefinition", func(c *ecs.Client, _ []byte) error {
			var in ecs.RegisterTaskDefinitionInput
			decodeStrict(t, centralTaskFile, &in)
			_, err := c.RegisterTaskDefinition(ctx, &in)
			return err
		}},
		{centralServiceFile, "CreateService", func(c *ecs.Client, _ []byte) error {
			var in ecs.CreateServiceInput
			decodeStrict(t, centralServiceFile, &in)
			_, err := c.CreateService(ctx, &in)
			return err
		}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			data, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			if err := tc.send(newECS(rec), data); err != nil {
				t.Fatalf("%s: %v", tc.target, err)
			}
			if len(rec.bodies) != 1 || rec.target[0] != "AmazonEC2ContainerServiceV20141113."+tc.target {
				t.Fatalf("sent %v", rec.target)
			}
			var sent, file any
			if err := json.Unmarshal(rec.bodies[0], &sent); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &file); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sent, file) {
				a, _ := json.MarshalIndent(sent, "", " ")
				t.Errorf("the SDK would send something else than %s says:\n%s", tc.file, a)
			}
		})
	}

	t.Run("ELBv2", func(t *testing.T) {
		var lb centralLB
		decodeStrict(t, centralLBFile, &lb)
		forms, err := sendELB(t, &lb)
		if err != nil {
			t.Fatal(err)
		}
		// The wire carries what the semantics below rest on.
		for action, want := range map[string]map[string]string{
			"CreateLoadBalancer": {"Type": "network", "Scheme": "internal", "Subnets.member.1": lb.LoadBalancer.Subnets[0]},
			"CreateTargetGroup": {"Protocol": "TLS", "TargetType": "ip", "HealthCheckProtocol": "HTTP",
				"HealthCheckPath": "/readyz", "HealthCheckPort": aws.ToString(lb.TargetGroup.HealthCheckPort)},
			"ModifyTargetGroupAttributes": {"Attributes.member.1.Key": "proxy_protocol_v2.enabled", "Attributes.member.1.Value": "true"},
			"CreateListener": {"Protocol": "TLS", "Port": "443", "Certificates.member.1.CertificateArn": aws.ToString(lb.Listener.Certificates[0].CertificateArn),
				"DefaultActions.member.1.Type": "forward", "DefaultActions.member.1.TargetGroupArn": aws.ToString(lb.Listener.DefaultActions[0].TargetGroupArn)},
		} {
			f, ok := forms[action]
			if !ok {
				t.Errorf("no %s sent (sent %v)", action, slices.Collect(func(yield func(string) bool) {
					for a := range forms {
						if !yield(a) {
							return
						}
					}
				}))
				continue
			}
			for k, v := range want {
				if f.Get(k) != v {
					t.Errorf("%s sends %s=%q, want %q", action, k, f.Get(k), v)
				}
			}
		}
	})

	// The SDKs' validation is live: inputs missing what the API requires
	// fail before anything is sent.
	var lb centralLB
	decodeStrict(t, centralLBFile, &lb)
	for name, edit := range map[string]func(*centralLB){
		"target group without a name":    func(l *centralLB) { l.TargetGroup.Name = nil },
		"attributes without a group":     func(l *centralLB) { l.TargetGroupAttributes.TargetGroupArn = nil },
		"listener action without a type": func(l *centralLB) { l.Listener.DefaultActions = []elbtypes.Action{{TargetGroupArn: aws.String("x")}} },
		"load balancer without a name":   func(l *centralLB) { l.LoadBalancer.Name = nil },
	} {
		c := lb
		tg, ta, li, lbi := *lb.TargetGroup, *lb.TargetGroupAttributes, *lb.Listener, *lb.LoadBalancer
		c.TargetGroup, c.TargetGroupAttributes, c.Listener, c.LoadBalancer = &tg, &ta, &li, &lbi
		edit(&c)
		if _, err := sendELB(t, &c); err == nil || !strings.Contains(err.Error(), "validation") {
			t.Errorf("%s: the ELBv2 SDK did not refuse it (%v)", name, err)
		}
	}
	var svc ecs.CreateServiceInput
	decodeStrict(t, centralServiceFile, &svc)
	svc.ServiceName = nil
	rec := &recorder{}
	if _, err := newECS(rec).CreateService(ctx, &svc); err == nil || len(rec.bodies) != 0 {
		t.Errorf("CreateService without a name: the SDK sent it (%v)", err)
	}
}

// TestECSCentralSemantics checks what the APIs accept but would not make a
// central Warden: PROXY protocol v2 on the target group, TLS on the
// listener with a certificate, Warden's config trusting exactly the NLB's
// subnets for PROXY headers (and the tasks outside them), the health check
// on /readyz of the admin port (which reads the NLB's header too), the
// ports agreeing across the four objects, and the identity section the
// IAM in deploy/iam was generated from.
func TestECSCentralSemantics(t *testing.T) {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, centralTaskFile, &td)
	var svc ecs.CreateServiceInput
	decodeStrict(t, centralServiceFile, &svc)
	var lb centralLB
	decodeStrict(t, centralLBFile, &lb)

	// The NLB: internal, network, in the subnets whose CIDRs are listed.
	if lb.LoadBalancer.Type != elbtypes.LoadBalancerTypeEnumNetwork || lb.LoadBalancer.Scheme != elbtypes.LoadBalancerSchemeEnumInternal {
		t.Errorf("load balancer %s/%s, want an internal network load balancer", lb.LoadBalancer.Type, lb.LoadBalancer.Scheme)
	}
	var subnets, cidrs []string
	for s, c := range lb.NLBSubnetCIDRs {
		subnets = append(subnets, s)
		cidrs = append(cidrs, c)
	}
	slices.Sort(subnets)
	slices.Sort(cidrs)
	if got := slices.Sorted(slices.Values(lb.LoadBalancer.Subnets)); !slices.Equal(got, subnets) {
		t.Errorf("the NLB's subnets %v, NLBSubnetCIDRs names %v", got, subnets)
	}

	// PROXY protocol v2 on; the client's address is the header's.
	attrs := map[string]string{}
	for _, a := range lb.TargetGroupAttributes.Attributes {
		attrs[aws.ToString(a.Key)] = aws.ToString(a.Value)
	}
	if attrs["proxy_protocol_v2.enabled"] != "true" {
		t.Errorf("target group attribute proxy_protocol_v2.enabled=%q, want true: Warden would see only the NLB's address", attrs["proxy_protocol_v2.enabled"])
	}
	tgARN := aws.ToString(lb.TargetGroupAttributes.TargetGroupArn)
	if !strings.Contains(tgARN, ":targetgroup/"+aws.ToString(lb.TargetGroup.Name)+"/") {
		t.Errorf("attributes for %s, not the target group %s", tgARN, aws.ToString(lb.TargetGroup.Name))
	}

	// TLS from the spokes to the NLB, and again from the NLB to Warden.
	l := lb.Listener
	if l.Protocol != elbtypes.ProtocolEnumTls || len(l.Certificates) == 0 || aws.ToString(l.SslPolicy) == "" {
		t.Errorf("listener %s with %d certificates and policy %q, want TLS with a certificate and a security policy", l.Protocol, len(l.Certificates), aws.ToString(l.SslPolicy))
	}
	if !strings.Contains(aws.ToString(l.LoadBalancerArn), ":loadbalancer/net/"+aws.ToString(lb.LoadBalancer.Name)+"/") {
		t.Errorf("listener on %s, not the NLB %s", aws.ToString(l.LoadBalancerArn), aws.ToString(lb.LoadBalancer.Name))
	}
	if len(l.DefaultActions) != 1 || l.DefaultActions[0].Type != elbtypes.ActionTypeEnumForward || aws.ToString(l.DefaultActions[0].TargetGroupArn) != tgARN {
		t.Errorf("listener actions %+v, want one forward to %s", l.DefaultActions, tgARN)
	}
	tg := lb.TargetGroup
	if tg.Protocol != elbtypes.ProtocolEnumTls || tg.TargetType != elbtypes.TargetTypeEnumIp {
		t.Errorf("target group %s/%s, want TLS to IP targets (the tasks' ENIs)", tg.Protocol, tg.TargetType)
	}

	// Warden's configuration in the task.
	var w, initC *ecstypes.ContainerDefinition
	for i := range td.ContainerDefinitions {
		switch aws.ToString(td.ContainerDefinitions[i].Name) {
		case "warden":
			w = &td.ContainerDefinitions[i]
		case "tls-init":
			initC = &td.ContainerDefinitions[i]
		}
	}
	if w == nil || initC == nil {
		t.Fatal("want containers warden and tls-init")
	}
	raw, ok := env(*w, "WARDEN_CONFIG")
	if !ok {
		t.Fatal("warden has no WARDEN_CONFIG")
	}
	cfg, err := config.ParseConfig([]byte(raw))
	if err == nil {
		// What `warden serve` and `warden policy validate` check before
		// starting: regions, policy and guard compilation, upstream.
		err = proxy.CheckConfig(context.Background(), cfg)
	}
	if err != nil {
		t.Fatalf("the task's Warden config: %v", err)
	}
	if got := slices.Sorted(slices.Values(cfg.Listen.ProxyProtocol.Trusted)); !slices.Equal(got, cidrs) {
		t.Errorf("listen.proxy_protocol.trusted %v, want exactly the NLB's subnets %v", got, cidrs)
	}
	if cfg.Listen.TLS == nil {
		t.Error("Warden's endpoint serves no TLS: the target group's TLS would fail")
	}
	port := func(hostport string) int32 {
		ap, err := netip.ParseAddrPort(hostport)
		if err != nil {
			t.Fatalf("listen address %q: %v", hostport, err)
		}
		return int32(ap.Port())
	}
	endpoint, admin := port(cfg.Listen.Endpoint), port(cfg.Listen.Admin)
	if aws.ToInt32(tg.Port) != endpoint {
		t.Errorf("target group port %d, Warden's endpoint %d", aws.ToInt32(tg.Port), endpoint)
	}
	if tg.HealthCheckProtocol != elbtypes.ProtocolEnumHttp || aws.ToString(tg.HealthCheckPath) != "/readyz" || aws.ToString(tg.HealthCheckPort) != strconv.Itoa(int(admin)) {
		t.Errorf("health check %s port %s path %s, want HTTP /readyz on the admin port %d", tg.HealthCheckProtocol, aws.ToString(tg.HealthCheckPort), aws.ToString(tg.HealthCheckPath), admin)
	}
	if tg.Matcher == nil || aws.ToString(tg.Matcher.HttpCode) != "200" {
		t.Errorf("health check matcher %+v, want 200 (/readyz answers 503 until ready)", tg.Matcher)
	}
	var mapped []int32
	for _, pm := range w.PortMappings {
		mapped = append(mapped, aws.ToInt32(pm.ContainerPort))
	}
	if !slices.Contains(mapped, endpoint) || !slices.Contains(mapped, admin) {
		t.Errorf("warden maps ports %v, want the endpoint %d and the admin %d (the NLB's health check)", mapped, endpoint, admin)
	}
	if hc := w.HealthCheck; hc == nil || !slices.Equal(hc.Command, []string{"CMD", "/warden", "healthcheck", "--url", fmt.Sprintf("http://127.0.0.1:%d/readyz", admin)}) {
		t.Errorf("container health check %+v, want /warden healthcheck of /readyz on the admin port", w.HealthCheck)
	}
	if st := aws.ToInt32(w.StopTimeout); time.Duration(st)*time.Second <= cfg.Shutdown.Grace() {
		t.Errorf("warden stopTimeout %ds is not above shutdown.grace_period %s", st, cfg.Shutdown.Grace())
	}
	if d, err := strconv.Atoi(attrs["deregistration_delay.timeout_seconds"]); err != nil || time.Duration(d)*time.Second > cfg.Shutdown.Grace()+5*time.Second {
		t.Errorf("deregistration_delay.timeout_seconds %q: want it set, and no longer than Warden drains (%s)", attrs["deregistration_delay.timeout_seconds"], cfg.Shutdown.Grace())
	}

	// The certificate: written by tls-init into a volume Warden reads.
	if aws.ToBool(initC.Essential) || len(w.DependsOn) != 1 || aws.ToString(w.DependsOn[0].ContainerName) != "tls-init" || w.DependsOn[0].Condition != ecstypes.ContainerConditionSuccess {
		t.Errorf("warden must start after tls-init succeeded (non-essential): dependsOn %+v", w.DependsOn)
	}
	if len(initC.Command) < 3 || initC.Command[0] != "inject" || initC.Command[1] != "--bootstrap-self-signed" {
		t.Fatalf("tls-init command %v", initC.Command)
	}
	vol := func(c *ecstypes.ContainerDefinition, path string) (string, bool) {
		for _, m := range c.MountPoints {
			if aws.ToString(m.ContainerPath) == path {
				return aws.ToString(m.SourceVolume), aws.ToBool(m.ReadOnly)
			}
		}
		return "", false
	}
	written, _ := vol(initC, initC.Command[2])
	read, ro := vol(w, strings.TrimSuffix(cfg.Listen.TLS.CertFile, "/tls.crt"))
	if written == "" || written != read || !ro || cfg.Listen.TLS.KeyFile != strings.TrimSuffix(cfg.Listen.TLS.CertFile, ".crt")+".key" {
		t.Errorf("tls-init writes volume %q, warden reads %q (read-only %v) for %s/%s", written, read, ro, cfg.Listen.TLS.CertFile, cfg.Listen.TLS.KeyFile)
	}

	// The service: behind the target group, on the endpoint port, in
	// subnets of its own: a task in the NLB's subnets could send its own
	// PROXY header to its peers.
	if len(svc.LoadBalancers) != 1 || aws.ToString(svc.LoadBalancers[0].TargetGroupArn) != tgARN ||
		aws.ToString(svc.LoadBalancers[0].ContainerName) != "warden" || aws.ToInt32(svc.LoadBalancers[0].ContainerPort) != endpoint {
		t.Errorf("service load balancers %+v, want warden:%d in %s", svc.LoadBalancers, endpoint, tgARN)
	}
	if aws.ToString(svc.TaskDefinition) != aws.ToString(td.Family) {
		t.Errorf("service runs %s, the task definition is %s", aws.ToString(svc.TaskDefinition), aws.ToString(td.Family))
	}
	vpc := svc.NetworkConfiguration.AwsvpcConfiguration
	for _, s := range vpc.Subnets {
		if slices.Contains(subnets, s) {
			t.Errorf("the tasks run in the NLB's subnet %s, which Warden trusts to send PROXY headers", s)
		}
	}
	if svc.EnableExecuteCommand {
		t.Error("enableExecuteCommand: a shell in Warden's task reads its credentials and traffic")
	}
	if vpc.AssignPublicIp != ecstypes.AssignPublicIpDisabled {
		t.Errorf("assignPublicIp %s", vpc.AssignPublicIp)
	}
	if aws.ToInt32(svc.DesiredCount) < 2 || svc.DeploymentConfiguration == nil || aws.ToInt32(svc.DeploymentConfiguration.MinimumHealthyPercent) < 100 {
		t.Errorf("service desiredCount %d, deployment %+v: want at least 2 and no capacity lost in a deployment", aws.ToInt32(svc.DesiredCount), svc.DeploymentConfiguration)
	}

	// Identity: the ec2 source, as deploy/examples/warden-central.yaml
	// (from which deploy/iam/central-*.json are generated) has it, and the
	// task runs as the role those policies name.
	if !slices.Equal(cfg.Identity.Sources, []string{identity.SourceEC2}) {
		t.Errorf("identity.sources %v, want [ec2]", cfg.Identity.Sources)
	}
	ex, err := os.ReadFile(centralExample)
	if err != nil {
		t.Fatal(err)
	}
	exCfg, err := config.ParseConfig(ex)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Identity.EC2, exCfg.Identity.EC2) || !slices.Equal(cfg.Identity.TrustedCIDRs, exCfg.Identity.TrustedCIDRs) {
		t.Errorf("the task's identity section differs from %s, which deploy/iam's central policies are generated from:\n%+v\n%+v", centralExample, cfg.Identity.EC2, exCfg.Identity.EC2)
	}
	if role := aws.ToString(td.TaskRoleArn); role != "arn:aws:iam::111122223333:role/warden/warden-central" {
		t.Errorf("task role %s, want the principal deploy/iam/central-spoke-trust-policy.json trusts", role)
	}
}
