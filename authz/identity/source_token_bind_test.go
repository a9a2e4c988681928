package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/warden-egress/warden/internal/kubetest"
)

const bindConfig = `
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity:
  sources: [token, kubernetes]
  trusted_cidrs: [10.77.0.0/16]
  kubernetes: {kubeconfig: "KUBECONFIG"}
  token: {audience: warden.example.com, kubeconfig: "KUBECONFIG", bind_pod_ip: true}
apps:
  - name: a
    match: {tags: {k8s.namespace: x}}
    allow: {models: ["*"], operations: [Converse]}
`

// token.bind_pod_ip: a pod's projected token replayed from another pod's
// address is refused, against a real kube-apiserver (TokenReview for the
// token, the pod watch for the address), through NewResolver as serve
// builds it.
func TestTokenBindPodIP(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	kc.ServiceAccount(t, ns, "batch")
	podA := kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "chatbot-a", ServiceAccount: "chatbot", IP: "10.77.0.1"})
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "batch-b", ServiceAccount: "batch", IP: "10.77.0.2"})
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "node-agent", ServiceAccount: "batch", IP: "10.77.0.3", HostNetwork: true})

	cfg, err := parseIdentity([]byte(strings.ReplaceAll(bindConfig, "KUBECONFIG", kc.Kubeconfig)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := NewResolver(ctx, cfg.Identity, Deps{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	k8sEventually(t, "pod b indexed", k8sResolvesTo(r, "10.77.0.2", ns, "batch-b"))

	tokA := kc.Token(t, ns, "chatbot", tokenAudience, podA)
	unbound := kc.Token(t, ns, "chatbot", tokenAudience, nil)
	from := func(tok, ip string) *Conn {
		c := tokenConn(DefaultTokenHeader, tok)
		c.Remote = netip.MustParseAddrPort(ip)
		return c
	}
	cases := []struct {
		name, tok, from string
		refused         string // "" = resolves to the token's service account
	}{
		{"own address", tokA, "10.77.0.1:4000", ""},
		{"own address, v4-mapped", tokA, "[::ffff:10.77.0.1]:4000", ""},
		{"another pod's address", tokA, "10.77.0.2:4000", "token of pod " + ns + "/chatbot-a presented from 10.77.0.2, the address of pod " + ns + "/batch-b"},
		{"another pod's address, again (cached token)", tokA, "10.77.0.2:4001", "the address of pod " + ns + "/batch-b"},
		{"an address no pod holds", tokA, "10.77.0.99:4000", ""},
		{"an untrusted address", tokA, "192.0.2.50:4000", ""},
		{"a node's address (hostNetwork)", tokA, "10.77.0.3:4000", ""},
		{"unbound token from a pod's address", unbound, "10.77.0.2:4000", "token is bound to no pod but was presented from 10.77.0.2"},
		{"unbound token from elsewhere", unbound, "10.77.0.99:4000", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := r.Resolve(context.Background(), from(tc.tok, tc.from))
			if tc.refused == "" {
				if err != nil || id.Source != SourceToken || id.Tags[TagK8sServiceAccount].Value != "chatbot" {
					t.Fatalf("%+v %v", id, err)
				}
				return
			}
			if err == nil || errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "bind_pod_ip") {
				t.Fatalf("got %v (%s), want refused: %s", err, id, tc.refused)
			}
		})
	}
}

func TestTokenBindPodIPNeedsKubernetes(t *testing.T) {
	y := strings.NewReplacer("sources: [token, kubernetes]", "sources: [token]", "KUBECONFIG", "/nonexistent").Replace(bindConfig)
	if _, err := parseIdentity([]byte(y)); err == nil || !strings.Contains(err.Error(), "bind_pod_ip needs the kubernetes source") {
		t.Fatalf("bind_pod_ip without kubernetes: %v", err)
	}
}

// A mirror (static) pod runs with no service account; it must not be
// taken for the namespace's default account, a strong tag policies select
// on. Other pods without one get "default" from the API server itself.
func TestKubernetesMirrorPodHasNoServiceAccount(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	s := startK8sSource(t, kc.Client, KubernetesConfig{})
	mirror, err := kc.Client.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etcd-node-1", Namespace: ns, Annotations: map[string]string{
			"kubernetes.io/config.mirror": "abc", "kubernetes.io/config.source": "file",
		}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mirror.Spec.ServiceAccountName != "" {
		t.Fatalf("the API server gave the mirror pod service account %q", mirror.Spec.ServiceAccountName)
	}
	kc.SetPodIP(t, mirror, "10.78.0.1")
	kc.ServiceAccount(t, ns, "default") // no controller manager here to create it
	kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "plain", IP: "10.78.0.2"})

	k8sEventually(t, "mirror pod", func() string {
		id, err := s.Resolve(context.Background(), k8sConn("10.78.0.1"))
		if err != nil || id.Tags[TagK8sPod].Value != "etcd-node-1" {
			return fmt.Sprintf("%s %s", id, k8sErr(err))
		}
		if sa, ok := id.Tags[TagK8sServiceAccount]; ok {
			return fmt.Sprintf("mirror pod has service account tag %+v", sa)
		}
		return ""
	})
	k8sEventually(t, "plain pod", func() string {
		id, err := s.Resolve(context.Background(), k8sConn("10.78.0.2"))
		if sa := id.Tags[TagK8sServiceAccount]; err != nil || sa.Value != "default" || !sa.Strong {
			return fmt.Sprintf("%s %s", id, k8sErr(err))
		}
		return ""
	})
}

// Zone ids never reach the pod index: fe80::5%eth0 is the pod holding
// fe80::5.
func TestKubernetesSourceStripsZone(t *testing.T) {
	client := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := NewKubernetesSource(ctx, KubernetesConfig{}, client, k8sTrusted("fe80::/64", "fd00::/8"), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	for name, ip := range map[string]string{"ll": "fe80::5", "ula": "fd00::5"} {
		_, err := client.CoreV1().Pods("ns").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: k8stypes.UID("uid-" + name)},
			Spec:       corev1.PodSpec{ServiceAccountName: "sa"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Both pods, not the last one created: map order is random, and the
	// informer indexes each create on its own.
	k8sEventually(t, "indexed", k8sResolvesTo(s, "fd00::5", "ns", "ula"))
	k8sEventually(t, "indexed", k8sResolvesTo(s, "fe80::5", "ns", "ll"))
	for _, remote := range []string{"[fe80::5%eth0]:4000", "[fd00::5%3]:4000"} {
		id, err := s.Resolve(ctx, &Conn{Remote: netip.MustParseAddrPort(remote)})
		if err != nil || id.Tags[TagK8sNamespace].Value != "ns" {
			t.Errorf("%s: %s %v", remote, id, err)
		}
	}
}
