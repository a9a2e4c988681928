package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/internal/kubetest"
)

// TestMain stops the shared kube-apiserver (started by the first test that
// needs it) after the package's tests.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

var k8sPodNets = k8sTrusted("10.0.0.0/8")

func k8sTrusted(cidrs ...string) TrustedNets {
	t, err := ParseTrustedNets(cidrs)
	if err != nil {
		panic(err)
	}
	return t
}

func k8sConn(ip string) *Conn {
	return &Conn{Remote: netip.AddrPortFrom(netip.MustParseAddr(ip), 40000)}
}

// k8sEventually polls f until it returns "" (the informer is asynchronous).
func k8sEventually(t *testing.T, what string, f func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resolver is a Source or a Resolver.
type resolver interface {
	Resolve(ctx context.Context, c *Conn) (Identity, error)
}

// k8sResolvesTo reports "" when ip resolves to namespace/pod.
func k8sResolvesTo(s resolver, ip, ns, pod string) func() string {
	return func() string {
		id, err := s.Resolve(context.Background(), k8sConn(ip))
		if err != nil {
			return "resolve " + ip + ": " + err.Error()
		}
		if got := id.Tags[TagK8sNamespace].Value + "/" + id.Tags[TagK8sPod].Value; got != ns+"/"+pod {
			return "resolve " + ip + ": got " + got
		}
		return ""
	}
}

// k8sNoIdentity reports "" when ip resolves to nobody, with reason in the
// error: ErrNoIdentity for an address no pod holds (later sources may
// answer), a plain error for a pod address the source refuses (shared,
// reused, hostNetwork), which denies instead of falling through.
func k8sNoIdentity(s Source, ip, reason string) func() string {
	return func() string {
		id, err := s.Resolve(context.Background(), k8sConn(ip))
		if err == nil {
			return "resolve " + ip + ": want no identity, got " + id.String()
		}
		refused := reason == "hostNetwork" || reason == "held by 2 pods" || reason == "released by another pod"
		if refused == errors.Is(err, ErrNoIdentity) {
			return "resolve " + ip + ": refused=" + fmt.Sprint(refused) + " but error " + k8sErr(err)
		}
		if !strings.Contains(err.Error(), reason) {
			return "resolve " + ip + ": error " + err.Error() + " does not say " + reason
		}
		return ""
	}
}

func k8sErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func startK8sSource(t *testing.T, client kubernetes.Interface, cfg KubernetesConfig) *KubernetesSource {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := NewKubernetesSource(ctx, cfg, client, k8sPodNets, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := s.WaitSynced(wctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKubernetesSourceAPIServer runs the source against a real kube-apiserver:
// pods are created, given IPs through the status subresource (as a kubelet
// would), duplicated, moved to the host network and deleted.
func TestKubernetesSourceAPIServer(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	kc.ServiceAccount(t, ns, "batch")

	s := startK8sSource(t, kc.Client, KubernetesConfig{ReuseGrace: 1500 * time.Millisecond})

	// A pod that runs before the source starts and one created after.
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "web", ServiceAccount: "chatbot", Node: "node-a",
		Labels: map[string]string{"app": "chatbot", "env": "prod"}, IP: "10.1.0.1"})
	k8sEventually(t, "new pod", k8sResolvesTo(s, "10.1.0.1", ns, "web"))

	id, err := s.Resolve(context.Background(), k8sConn("10.1.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Tag{
		TagK8sNamespace:           StrongTag(SourceKubernetes, ns),
		TagK8sServiceAccount:      StrongTag(SourceKubernetes, "chatbot"),
		TagK8sPod:                 StrongTag(SourceKubernetes, "web"),
		TagK8sNode:                StrongTag(SourceKubernetes, "node-a"),
		TagK8sLabelPrefix + "app": WeakTag(SourceKubernetes, "chatbot"),
		TagK8sLabelPrefix + "env": WeakTag(SourceKubernetes, "prod"),
	}
	if len(id.Tags) != len(want) {
		t.Errorf("tags = %v, want %v", id.Tags, want)
	}
	for k, w := range want {
		if id.Tags[k] != w {
			t.Errorf("tag %s = %+v, want %+v", k, id.Tags[k], w)
		}
	}
	if id.Source != SourceKubernetes || id.Stale {
		t.Errorf("identity source %q stale %v", id.Source, id.Stale)
	}

	// Outside identity.trusted_cidrs nobody resolves, even a pod's IP.
	if _, err := s.Resolve(context.Background(), k8sConn("127.0.0.1")); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("loopback: %v, want ErrNoIdentity", err)
	}
	// IPv4-mapped IPv6 is the same address.
	k8sEventually(t, "mapped", k8sResolvesTo(s, "::ffff:10.1.0.1", ns, "web"))
	k8sEventually(t, "unknown IP", k8sNoIdentity(s, "10.1.0.99", "no running pod"))

	// A label change (weak) shows up without a restart.
	web, err := kc.Client.CoreV1().Pods(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web.Labels["env"] = "dev"
	if _, err := kc.Client.CoreV1().Pods(ns).Update(context.Background(), web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k8sEventually(t, "label update", func() string {
		id, err := s.Resolve(context.Background(), k8sConn("10.1.0.1"))
		if err != nil || id.Tags[TagK8sLabelPrefix+"env"].Value != "dev" {
			return "label not updated: " + id.String() + " " + k8sErr(err)
		}
		return ""
	})

	// hostNetwork pods carry the node's IP: never resolved.
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "agent", ServiceAccount: "batch", HostNetwork: true, IP: "10.1.0.2"})
	k8sEventually(t, "hostNetwork", k8sNoIdentity(s, "10.1.0.2", "hostNetwork"))

	// Two pods claiming one IP: neither resolves.
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "dup-a", ServiceAccount: "chatbot", IP: "10.1.0.3"})
	k8sEventually(t, "dup-a alone", k8sResolvesTo(s, "10.1.0.3", ns, "dup-a"))
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "dup-b", ServiceAccount: "batch", IP: "10.1.0.3"})
	k8sEventually(t, "duplicate", k8sNoIdentity(s, "10.1.0.3", "held by 2 pods"))
	// One of them goes: the IP was just held by another pod, so it stays
	// unresolved for reuse_grace, then resolves to the survivor.
	kc.DeletePod(t, ns, "dup-a")
	k8sEventually(t, "after duplicate", k8sNoIdentity(s, "10.1.0.3", "released by another pod"))
	k8sEventually(t, "survivor", k8sResolvesTo(s, "10.1.0.3", ns, "dup-b"))

	// Deletion, then reuse of the IP by a new pod within reuse_grace.
	kc.DeletePod(t, ns, "web")
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "newcomer", ServiceAccount: "batch", IP: "10.1.0.1"})
	k8sEventually(t, "reused", k8sNoIdentity(s, "10.1.0.1", "released by another pod"))
	k8sEventually(t, "after grace", k8sResolvesTo(s, "10.1.0.1", ns, "newcomer"))

	// A pod that finishes (phase Succeeded) no longer holds its IP.
	nc, err := kc.Client.CoreV1().Pods(ns).Get(context.Background(), "newcomer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nc.Status.Phase = corev1.PodSucceeded
	if _, err := kc.Client.CoreV1().Pods(ns).UpdateStatus(context.Background(), nc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k8sEventually(t, "finished pod", k8sNoIdentity(s, "10.1.0.1", ""))
}

// TestKubernetesSourceNotSynced: before the first list completes the source
// denies (an error, not ErrNoIdentity) rather than guessing.
func TestKubernetesSourceNotSynced(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there
	client, err := kubernetes.NewForConfig(&rest.Config{Host: "http://" + addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := NewKubernetesSource(ctx, KubernetesConfig{}, client, k8sPodNets, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Resolve(ctx, k8sConn("10.2.0.1"))
	if err == nil || errors.Is(err, ErrNoIdentity) {
		t.Fatalf("unsynced: %v, want a denying error", err)
	}
	// Untrusted callers are none of its business, synced or not.
	if _, err := s.Resolve(ctx, k8sConn("192.168.1.1")); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("untrusted: %v", err)
	}
}

// TestKubernetesSourceOutage cuts the source's connection to a real API
// server: it keeps answering from its last state, flagged stale, until
// max_staleness, then denies; when the API server is back it recovers.
func TestKubernetesSourceOutage(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "app")
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "p", ServiceAccount: "app", IP: "10.3.0.1"})

	cut := newK8sCutProxy(t, strings.TrimPrefix(kc.URL, "https://"))
	rc := rest.CopyConfig(kc.Config)
	rc.Host = "https://" + cut.addr
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	s := startK8sSource(t, client, KubernetesConfig{MaxStaleness: 2 * time.Second})
	k8sEventually(t, "before outage", k8sResolvesTo(s, "10.3.0.1", ns, "p"))

	cut.down()
	k8sEventually(t, "stale", func() string {
		id, err := s.Resolve(context.Background(), k8sConn("10.3.0.1"))
		if err != nil {
			return err.Error()
		}
		if !id.Stale {
			return "not flagged stale yet"
		}
		return ""
	})
	k8sEventually(t, "past max_staleness", func() string {
		_, err := s.Resolve(context.Background(), k8sConn("10.3.0.1"))
		if err == nil || errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "stale") {
			return "want a staleness error, got " + k8sErr(err)
		}
		return ""
	})

	cut.up()
	k8sEventually(t, "recovered", func() string {
		id, err := s.Resolve(context.Background(), k8sConn("10.3.0.1"))
		if err != nil {
			return err.Error()
		}
		if id.Stale {
			return "still stale"
		}
		return ""
	})
}

// k8sCutProxy is a TCP relay to the API server that a test can cut (closing
// every connection and refusing new ones) and restore on the same port.
type k8sCutProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newK8sCutProxy(t *testing.T, target string) *k8sCutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &k8sCutProxy{t: t, target: target, addr: l.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(l)
	t.Cleanup(p.down)
	return p
}

func (p *k8sCutProxy) serve(l net.Listener) {
	p.mu.Lock()
	p.ln = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[u] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *k8sCutProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *k8sCutProxy) up() {
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("relisten %s: %v", p.addr, err)
	}
	p.serve(l)
}

// TestKubernetesSourceFake covers the index with client-go's fake clientset,
// so it runs without the API server binaries: a pod recreated under the same
// name with the same IP (a StatefulSet pod) counts as reuse.
func TestKubernetesSourceFake(t *testing.T) {
	client := fake.NewClientset()
	s := startK8sSource(t, client, KubernetesConfig{ReuseGrace: time.Hour})
	pods := client.CoreV1().Pods("db")
	mk := func(uid string) {
		_, err := pods.Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "db", UID: k8stypes.UID("uid-" + uid)},
			Spec:       corev1.PodSpec{ServiceAccountName: "db"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.4.0.1"},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("1")
	k8sEventually(t, "first", k8sResolvesTo(s, "10.4.0.1", "db", "db-0"))
	id, _ := s.Resolve(context.Background(), k8sConn("10.4.0.1"))
	if got := id.Tags[TagK8sServiceAccount]; !got.Strong || got.Value != "db" {
		t.Errorf("service account tag %+v", got)
	}
	if err := pods.Delete(context.Background(), "db-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mk("2")
	k8sEventually(t, "recreated", k8sNoIdentity(s, "10.4.0.1", "released by another pod"))

	// A pod without a service account name (a mirror pod: the API server
	// names "default" for all others) has no service account tag.
	_, err := client.CoreV1().Pods("db").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "db"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.4.0.2"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k8sEventually(t, "no sa", func() string {
		id, err := s.Resolve(context.Background(), k8sConn("10.4.0.2"))
		if _, has := id.Tags[TagK8sServiceAccount]; err != nil || has || id.Tags[TagK8sPod].Value != "x" {
			return id.String() + k8sErr(err)
		}
		return ""
	})
}

func TestKubernetesConfigValidate(t *testing.T) {
	if err := (KubernetesConfig{}).validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	if err := (KubernetesConfig{ReuseGrace: -time.Second}).validate(); err == nil {
		t.Error("negative reuse_grace accepted")
	}
	c := KubernetesConfig{}.withDefaults()
	if c.ReuseGrace != 30*time.Second || c.MaxStaleness != 5*time.Minute {
		t.Errorf("defaults %+v", c)
	}
}

// TestKubernetesAndTokenConfigYAML: the keys as a security team writes them,
// and identity.trusted_cidrs handed to the kubernetes source.
func TestKubernetesAndTokenConfigYAML(t *testing.T) {
	cfg, err := parseIdentity([]byte(`
version: 1
identity:
  sources: [token, kubernetes]
  trusted_cidrs: [10.0.0.0/8]
  kubernetes: {kubeconfig: /etc/k.yaml, resync: 10m, reuse_grace: 45s, max_staleness: 2m, sync_timeout: 5s}
  token: {header: X-Pod-Token, audience: warden, kubeconfig: /etc/k.yaml, cache_ttl: 30s, timeout: 2s}
apps:
  - name: a
    match: {tags: {k8s.namespace: team-a, k8s.serviceaccount: chatbot}}
    allow: {models: ["*"], operations: [Converse]}
`))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Identity.Kubernetes
	if k.Kubeconfig != "/etc/k.yaml" || k.Resync != 10*time.Minute || k.ReuseGrace != 45*time.Second ||
		k.MaxStaleness != 2*time.Minute || k.SyncTimeout != 5*time.Second {
		t.Errorf("kubernetes: %+v", k)
	}
	if !k.trusted.Contains(netip.MustParseAddr("10.1.2.3")) || k.trusted.Contains(netip.MustParseAddr("192.168.0.1")) {
		t.Errorf("trusted_cidrs not handed over: %v", k.trusted)
	}
	tc := cfg.Identity.Token
	if tc.Header != "X-Pod-Token" || tc.Audience != "warden" || tc.CacheTTL != 30*time.Second || tc.Timeout != 2*time.Second {
		t.Errorf("token: %+v", tc)
	}
	if _, err := parseIdentity([]byte("version: 1\nidentity: {sources: [token], token: {}}\n")); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("token without audience: %v", err)
	}
}

// BenchmarkKubernetesResolve is a warm lookup in an index of 10,000 pods.
func BenchmarkKubernetesResolve(b *testing.B) {
	s := &KubernetesSource{cfg: KubernetesConfig{}.withDefaults(), log: zaptest.NewLogger(b), trusted: k8sPodNets, now: time.Now,
		pods: map[string]*k8sPod{}, byIP: map[netip.Addr][]*k8sPod{}, released: map[netip.Addr]time.Time{}}
	s.reg = syncedRegistration{}
	for i := range 10000 {
		s.upsert(&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p" + strconv.Itoa(i), UID: k8stypes.UID(strconv.Itoa(i)), Labels: map[string]string{"app": "a"}},
			Spec:       corev1.PodSpec{ServiceAccountName: "sa", NodeName: "n"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.5.%d.%d", i/250, i%250+1)},
		})
	}
	c := k8sConn("10.5.3.7")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Resolve(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type syncedRegistration struct {
	cache.ResourceEventHandlerRegistration
}

func (syncedRegistration) HasSynced() bool { return true }

// TestKubernetesPodCIDRsDoNotFallThrough runs [kubernetes, ec2] through
// NewResolver against a real kube-apiserver and the EC2 emulator, where
// (as with the VPC CNI) pod addresses are secondary addresses on the
// node's ENI. A pod address the pod watch cannot vouch for — a pod whose
// status.podIP is not written yet, one deleted more than reuse_grace ago —
// is denied; it never falls through to ec2, which would name the node.
func TestKubernetesPodCIDRsDoNotFallThrough(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	e := startEC2(t, 0)
	e.PutENI(bedrocktest.ENI{ID: "eni-0node", OwnerID: "111122223333", PrivateIPs: []string{"10.0.8.1", "10.0.9.1", "10.0.9.2"},
		InstanceID: "i-0node", Tags: map[string]string{"cluster.k8s.amazonaws.com/name": "prod", "node.k8s.amazonaws.com/instance_id": "i-0node"}})
	cfg, err := parseIdentity([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: eu-west-1}
identity:
  sources: [kubernetes, ec2]
  trusted_cidrs: [10.0.0.0/16]
  kubernetes: {kubeconfig: "` + kc.Kubeconfig + `", reuse_grace: 300ms, pod_cidrs: [10.0.9.0/24]}
  ec2: {region: eu-west-1, endpoint: "` + e.URL + `"}
apps:
  - name: a
    match: {tags: {k8s.serviceaccount: chatbot}}
    allow: {models: ["*"], operations: [Converse]}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(t.Context(), cfg.Identity, Deps{Logger: zaptest.NewLogger(t),
		AWS: aws.Config{Credentials: credentials.NewStaticCredentialsProvider(ec2TestKey, ec2TestSecret, "")}})
	if err != nil {
		t.Fatal(err)
	}
	var k8s *KubernetesSource
	var ec2src *EC2Source
	for _, s := range r.Sources() {
		switch s := s.(type) {
		case *KubernetesSource:
			k8s = s
		case *EC2Source:
			ec2src = s
		}
	}
	// refused reports "" when ip is denied with a refusal for reason.
	refused := func(ip, reason string) func() string {
		return func() string {
			id, err := r.Resolve(context.Background(), k8sConn(ip))
			var re *RefusedError
			if !errors.As(err, &re) || errors.Is(err, ErrNoIdentity) {
				return fmt.Sprintf("resolve %s: want a %s refusal, got %s (identity %s)", ip, reason, k8sErr(err), id)
			}
			if re.Reason != reason {
				return fmt.Sprintf("resolve %s: refusal %q (%v), want %q", ip, re.Reason, err, reason)
			}
			return ""
		}
	}

	// A pod that runs before its status.podIP is written: its address is
	// the node ENI's, and is denied.
	pod := kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "early", ServiceAccount: "chatbot"})
	k8sEventually(t, "pod without an IP yet", refused("10.0.9.1", RefusedNoPod))
	if _, err := r.Resolve(context.Background(), k8sConn("10.0.9.1")); !strings.Contains(err.Error(), "pod_cidrs") {
		t.Errorf("refusal does not name pod_cidrs: %v", err)
	}
	// Once written, the pod resolves.
	kc.SetPodIP(t, pod, "10.0.9.1")
	k8sEventually(t, "pod IP written", k8sResolvesTo(r, "10.0.9.1", ns, "early"))
	// Deleted: refused as reused for reuse_grace, then still refused.
	kc.DeletePod(t, ns, "early")
	k8sEventually(t, "deleted pod", refused("10.0.9.1", RefusedReused))
	k8sEventually(t, "past reuse_grace", refused("10.0.9.1", RefusedNoPod))

	// Outside pod_cidrs, ec2 still names the node's own address.
	id, err := r.Resolve(context.Background(), k8sConn("10.0.8.1"))
	if err != nil || id.Source != SourceEC2 || id.Tags[TagAWSENI].Value != "eni-0node" {
		t.Fatalf("node address: %v %v", err, id)
	}
	// And ec2 on its own never answers for a pod address.
	if id, err := ec2src.Resolve(context.Background(), k8sConn("10.0.9.2")); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("ec2 named pod address 10.0.9.2: %v %v", err, id)
	}
	if got := k8s.Refusals(); got[RefusedNoPod] < 2 || got[RefusedReused] < 1 {
		t.Fatalf("refusal counts %v", got)
	}
}
