package proxy_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/internal/kubetest"
)

// startIdentityEnv runs the runtime emulator, an EC2 emulator and Warden
// with policy (${UPSTREAM}, ${EC2} and the replacements in vars
// substituted). Warden reads the EC2 API with credentials from the
// environment, as in production; its background work stops with the test.
func startIdentityEnv(t *testing.T, policy string, vars ...string) (*env, *bedrocktest.EC2Server) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": ec2E2EKey, "AWS_SECRET_ACCESS_KEY": ec2E2ESecret, "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	e := &env{emu: newEmulator(t), audit: newRecorder()}
	ec2 := bedrocktest.NewEC2Server(bedrocktest.EC2Config{Region: "us-east-1", Credentials: map[string]string{ec2E2EKey: ec2E2ESecret}, Logf: bedrocktest.TestLogf(t)})
	t.Cleanup(ec2.Close)
	policy = strings.NewReplacer(append([]string{"${UPSTREAM}", e.emu.URL, "${EC2}", ec2.URL}, vars...)...).Replace(policy)
	e.start(t, policy, "", nil)
	return e, ec2
}

// eventuallyCall repeats a Converse from ip until check accepts its error
// and the audit record it produced, for at most 15 seconds.
func eventuallyCall(t *testing.T, e *env, ip, what string, check func(err error, rec audit.Record) string) {
	t.Helper()
	c := e.client(t, fromAddr(ip))
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := len(e.audit.wait(t, 0))
		err := ec2Converse(c)
		recs := e.audit.wait(t, n+1)
		msg := check(err, recs[len(recs)-1])
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func allowedAs(app string) func(error, audit.Record) string {
	return func(err error, rec audit.Record) string {
		if err != nil || rec.Decision != "allow" || rec.App != app {
			return "want allowed as " + app + ", got " + rec.Decision + " app " + rec.App + " rule " + rec.Rule + ": " + errString(err)
		}
		return ""
	}
}

func deniedSaying(s string) func(error, audit.Record) string {
	return func(err error, rec audit.Record) string {
		if err == nil || rec.Decision != "deny" || !strings.Contains(err.Error(), s) {
			return "want denied saying " + s + ", got " + rec.Decision + " app " + rec.App + " (eni " + rec.Tags["aws.eni"] + "): " + errString(err)
		}
		return ""
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestEC2IdentityAddressChangesHands: an address released by one ENI and
// requested by another (any principal with ec2:AssignPrivateIpAddresses can
// ask for a specific free IP) stops carrying the first ENI's identity within
// verify_after, not cache_ttl; past verify_after an answer the EC2 API
// cannot confirm is stale, and refuse_stale_identity denies it; an address
// two ENIs hold is denied, not passed to another source.
func TestEC2IdentityAddressChangesHands(t *testing.T) {
	e, ec2 := startIdentityEnv(t, `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true}
identity:
  sources: [ec2, static]
  static: {app: fallback}
  trusted_cidrs: [127.0.23.0/24]
  ec2: {endpoint: "${EC2}", cache_ttl: 1h, stale_ttl: 2h, negative_ttl: 100ms, verify_after: 300ms}
apps:
  - name: search
    refuse_stale_identity: true
    match: {tags: {aws.eni: eni-0victim}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse]}
  - name: fallback
    allow_weak_identity: true
    match: {tags: {app: fallback}}
    allow: {models: ["*"], operations: ["*"]}
`)
	ec2.PutENI(bedrocktest.ENI{ID: "eni-0victim", OwnerID: ec2Account, PrivateIPs: []string{"127.0.23.1"}, InstanceID: "i-0victim"})
	ec2.PutENI(bedrocktest.ENI{ID: "eni-0intruder", OwnerID: "444455556666", PrivateIPs: []string{"127.0.23.9"}, InstanceID: "i-0intruder"})

	eventuallyCall(t, e, "127.0.23.1", "victim", allowedAs("search"))
	// The victim's address goes to the intruder's ENI: within verify_after
	// (far inside cache_ttl) its calls carry the intruder's ENI.
	ec2.MovePrivateIP("127.0.23.1", "eni-0intruder")
	eventuallyCall(t, e, "127.0.23.1", "moved address", func(err error, rec audit.Record) string {
		if msg := deniedSaying("no app matches")(err, rec); msg != "" {
			return msg
		}
		if rec.Tags["aws.eni"] != "eni-0intruder" {
			return "identity " + rec.Tags["aws.eni"]
		}
		return ""
	})

	// Back with the victim; then the EC2 API fails: once the answer is
	// older than verify_after it is stale, and the app refuses stale
	// identities.
	ec2.MovePrivateIP("127.0.23.1", "eni-0victim")
	eventuallyCall(t, e, "127.0.23.1", "returned", allowedAs("search"))
	ec2.SetOutage(503)
	eventuallyCall(t, e, "127.0.23.1", "unverifiable", func(err error, rec audit.Record) string {
		if err == nil || !rec.IdentityStale || !strings.HasSuffix(rec.Rule, "refuse_stale_identity") {
			return "want a refused stale identity, got " + rec.Decision + " rule " + rec.Rule + ": " + errString(err)
		}
		return ""
	})
	ec2.SetOutage(0)

	// Two ENIs hold the address: denied, never the static fallback.
	ec2.AssignPrivateIP("eni-0intruder", "127.0.23.1")
	eventuallyCall(t, e, "127.0.23.1", "shared address", deniedSaying("more than one network interface"))
	m := scrape(t, e.srv)
	for _, l := range []string{`warden_identity_refusals_total{reason="shared",source="ec2"} `, `warden_identity_cache_invalidated_total{source="ec2"} `} {
		if !strings.Contains(m, "\n"+l) || strings.Contains(m, "\n"+l+"0\n") {
			t.Errorf("/metrics: want %s above 0", l)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", m)
	}
}

// TestKubernetesPodAddressNeverNamesNode: a shared Warden with
// [kubernetes, ec2], where (as with the VPC CNI) pod addresses are
// secondary addresses of the node's ENI. A caller from a pod address the
// pod watch does not know — here a pod whose status.podIP is not written
// yet — is denied; it never gets the node's app through ec2.
func TestKubernetesPodAddressNeverNamesNode(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	e, ec2 := startIdentityEnv(t, `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true}
identity:
  sources: [kubernetes, ec2]
  trusted_cidrs: [127.0.24.0/24, 127.0.25.0/24]
  kubernetes: {kubeconfig: "${KUBECONFIG}", reuse_grace: 1s, pod_cidrs: [127.0.24.0/24]}
  ec2: {endpoint: "${EC2}"}
apps:
  - name: chatbot
    match: {tags: {k8s.namespace: "${NS}", k8s.serviceaccount: chatbot}}
    allow: {models: ["anthropic.claude-3-5-haiku-*"], operations: [Converse]}
  - name: node
    match: {tags: {aws.instance_id: i-0node}}
    allow: {models: ["*"], operations: ["*"]}
`, "${KUBECONFIG}", kc.Kubeconfig, "${NS}", ns)
	ec2.PutENI(bedrocktest.ENI{ID: "eni-0node", OwnerID: ec2Account, InstanceID: "i-0node",
		PrivateIPs: []string{"127.0.25.1", "127.0.24.1", "127.0.24.2"}, Tags: map[string]string{"cluster.k8s.amazonaws.com/name": "prod"}})

	// The node's own address is the node.
	eventuallyCall(t, e, "127.0.25.1", "node", allowedAs("node"))
	// A pod that runs before its IP is written: denied, not the node.
	pod := kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "chatbot-0", ServiceAccount: "chatbot"})
	eventuallyCall(t, e, "127.0.24.1", "pod without an IP yet", deniedSaying("pod_cidrs"))
	if m := scrape(t, e.srv); !strings.Contains(m, "\n"+`warden_identity_refusals_total{reason="no_pod",source="kubernetes"} 1`+"\n") {
		t.Errorf("/metrics lacks the no_pod refusal:\n%s", m)
	}
	// Written: the pod is itself.
	kc.SetPodIP(t, pod, "127.0.24.1")
	eventuallyCall(t, e, "127.0.24.1", "pod", allowedAs("chatbot"))
	for _, r := range e.audit.wait(t, 0) {
		if r.App == "node" && !strings.HasPrefix(r.Client, "127.0.25.1:") {
			t.Errorf("a pod address was given the node's app: %+v", r)
		}
	}
}
