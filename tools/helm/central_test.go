package helm_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/internal/kubetest"
	"github.com/warden-egress/warden/proxy"
)

func centralMode(t *testing.T) mode {
	t.Helper()
	for _, m := range modes {
		if m.name == "central" {
			return m
		}
	}
	t.Fatal("no central mode")
	return mode{}
}

func nested[T any](t *testing.T, o *unstructured.Unstructured, path ...string) T {
	t.Helper()
	if o == nil {
		t.Fatalf(".%s of a missing object", strings.Join(path, "."))
	}
	v, ok, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s/%s has no .%s (%v)", o.GetKind(), o.GetName(), strings.Join(path, "."), err)
	}
	got, ok := v.(T)
	if !ok {
		t.Fatalf("%s/%s .%s is %T", o.GetKind(), o.GetName(), strings.Join(path, "."), v)
	}
	return got
}

// TestCentralMode checks what makes the central mode a central Warden: the
// Service is an internal NLB of IP targets with PROXY protocol v2 on every
// target group and a /readyz health check on the admin port; Warden's
// configuration trusts PROXY headers from exactly the NLB's subnets and
// resolves callers with the ec2 source through each spoke's role and
// external id, and passes the checks `warden serve` and `warden policy
// validate` run; the HPA replaces the Deployment's replicas; the RBAC reads
// pods only; and the NetworkPolicies admit only enrolled namespaces and the
// NLB, and keep every other pod off the Bedrock VPC endpoint.
func TestCentralMode(t *testing.T) {
	m := centralMode(t)
	vals := modeValues(t, m.name)
	r := mustRender(t, m)
	const n = "warden-central"

	svc := r.find("Service", n)
	if got := nested[string](t, svc, "spec", "type"); got != "LoadBalancer" {
		t.Errorf("Service type %s, want LoadBalancer", got)
	}
	ann := svc.GetAnnotations()
	for k, want := range map[string]string{
		"service.beta.kubernetes.io/aws-load-balancer-type":                 "external",
		"service.beta.kubernetes.io/aws-load-balancer-nlb-target-type":      "ip",
		"service.beta.kubernetes.io/aws-load-balancer-scheme":               "internal",
		"service.beta.kubernetes.io/aws-load-balancer-proxy-protocol":       "*",
		"service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol": "HTTP",
		"service.beta.kubernetes.io/aws-load-balancer-healthcheck-path":     "/readyz",
		"service.beta.kubernetes.io/aws-load-balancer-healthcheck-port":     "9090",
		"service.beta.kubernetes.io/aws-load-balancer-subnets":              "subnet-0aaa1111bbbb2222c,subnet-0ddd3333eeee4444f",
		"service.beta.kubernetes.io/aws-load-balancer-attributes":           "load_balancing.cross_zone.enabled=true",
	} {
		if ann[k] != want {
			t.Errorf("Service annotation %s = %q, want %q", k, ann[k], want)
		}
	}
	ports := nested[[]any](t, svc, "spec", "ports")
	if p := ports[0].(map[string]any); p["port"] != int64(443) && p["port"] != float64(443) || p["targetPort"] != "endpoint" {
		t.Errorf("Service's first port %v, want 443 → endpoint", p)
	}

	// Warden's configuration, as `warden serve` loads it.
	data := r.configMapData(t, n, "warden.yaml")
	cfg, err := config.ParseConfig(data)
	if err == nil {
		err = proxy.CheckConfig(context.Background(), cfg)
	}
	if err != nil {
		t.Fatalf("the central config is invalid:\n%s\n%s", strings.Join(config.Diagnostics("warden.yaml", data, err), "\n"), data)
	}
	if diff := cmp.Diff([]string{"172.31.0.0/24", "172.31.1.0/24"}, cfg.Listen.ProxyProtocol.Trusted); diff != "" {
		t.Errorf("listen.proxy_protocol.trusted is not the NLB's subnets (-want +got):\n%s", diff)
	}
	if !slices.Contains(cfg.Identity.Sources, "ec2") || !slices.Contains(cfg.Identity.Sources, "kubernetes") {
		t.Errorf("identity.sources %v, want the config's kubernetes and the chart's ec2", cfg.Identity.Sources)
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8"}, cfg.Identity.TrustedCIDRs); diff != "" {
		t.Errorf("identity.trusted_cidrs (-want +got):\n%s", diff)
	}
	ec2 := cfg.Identity.EC2
	if !ec2.ECSTasks || !slices.Equal(ec2.EndpointServices, []string{"vpce-svc-0123456789abcdef0"}) || len(ec2.Accounts) != 3 {
		t.Fatalf("identity.ec2 %+v", ec2)
	}
	want := nested[[]any](t, &unstructured.Unstructured{Object: vals}, "sharedProxy", "central", "identity", "ec2", "accounts")
	for i, a := range ec2.Accounts {
		w := want[i].(map[string]any)
		if a.Account != w["account"] || a.RoleARN != str(w["roleArn"]) || a.ExternalID != str(w["externalId"]) {
			t.Errorf("identity.ec2.accounts[%d] = %s %s %s, want the values' %v", i, a.Account, a.RoleARN, a.ExternalID, w)
		}
	}
	if !slices.Equal(ec2.Accounts[0].ECSClusters, []string{"payments"}) || !slices.Equal(ec2.Accounts[1].CIDRs, []string{"10.30.0.0/16"}) {
		t.Errorf("accounts' ecs_clusters/cidrs not carried: %+v", ec2.Accounts)
	}

	// The HPA owns the replica count.
	dep := r.find("Deployment", n)
	if _, ok, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "replicas"); ok {
		t.Error("Deployment sets replicas beside the HPA: every upgrade would reset the autoscaler's count")
	}
	hpa := r.find("HorizontalPodAutoscaler", n)
	if got := nested[string](t, hpa, "spec", "scaleTargetRef", "name"); got != n {
		t.Errorf("HPA scales %s", got)
	}

	// RBAC: the kubernetes source reads pods, and nothing else.
	rules := nested[[]any](t, r.find("ClusterRole", "egress-"+n), "rules")
	if diff := cmp.Diff([]any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"get", "list", "watch"}}}, rules); diff != "" {
		t.Errorf("ClusterRole rules (-want +got):\n%s", diff)
	}

	// Ingress to Warden: enrolled namespaces and the NLB's subnets.
	np := r.find("NetworkPolicy", n)
	if got := nested[[]any](t, np, "spec", "policyTypes"); !slices.Equal(got, []any{"Ingress"}) {
		t.Errorf("Warden's NetworkPolicy types %v", got)
	}
	ingress := nested[[]any](t, np, "spec", "ingress")
	from := ingress[0].(map[string]any)["from"].([]any)
	if diff := cmp.Diff([]any{
		map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"warden-egress.io/enrolled": "true"}}},
		map[string]any{"ipBlock": map[string]any{"cidr": "172.31.0.0/24"}},
		map[string]any{"ipBlock": map[string]any{"cidr": "172.31.1.0/24"}},
	}, from); diff != "" {
		t.Errorf("who reaches Warden's endpoint (-want +got):\n%s", diff)
	}
	if len(ingress) != 3 {
		t.Errorf("%d ingress rules, want the endpoint's, the NLB's health checks and adminFrom's", len(ingress))
	}

	// Egress: every namespace listed, and the release's but Warden, off the endpoint.
	var seen []string
	for _, o := range r.objects {
		if o.GetKind() != "NetworkPolicy" || o.GetName() != n+"-bedrock-egress" {
			continue
		}
		seen = append(seen, o.GetNamespace())
		to := nested[[]any](t, o, "spec", "egress")[0].(map[string]any)["to"].([]any)
		if diff := cmp.Diff([]any{
			map[string]any{"ipBlock": map[string]any{"cidr": "0.0.0.0/0", "except": []any{"10.0.250.10/32", "10.0.251.10/32"}}},
			map[string]any{"ipBlock": map[string]any{"cidr": "::/0", "except": []any{"fd00:ec2::/64"}}},
			map[string]any{"namespaceSelector": map[string]any{}},
		}, to); diff != "" {
			t.Errorf("%s: egress (-want +got):\n%s", o.GetNamespace(), diff)
		}
		sel := nested[map[string]any](t, o, "spec", "podSelector")
		if o.GetNamespace() == m.namespace {
			if diff := cmp.Diff(map[string]any{"matchExpressions": []any{map[string]any{"key": "app.kubernetes.io/name", "operator": "NotIn", "values": []any{n}}}}, sel); diff != "" {
				t.Errorf("release namespace's egress policy must select all but Warden (-want +got):\n%s", diff)
			}
		} else if len(sel) != 0 {
			t.Errorf("%s: egress policy selects %v, want every pod", o.GetNamespace(), sel)
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"egress", "reports", "shop"}) {
		t.Errorf("egress policies in %v, want egress, reports, shop", seen)
	}
	if !strings.Contains(r.notes, "PrivateLink endpoint service") || !strings.Contains(r.notes, "warden-egress.io/enrolled=true") {
		t.Errorf("NOTES.txt says nothing of the NLB or the enrolled label:\n%s", r.notes)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// TestCentralRefuses: value sets that would make a central Warden trust
// the wrong peers, miss its spokes, or leave the endpoint open are refused
// at render time, naming the value.
func TestCentralRefuses(t *testing.T) {
	set := setValue
	c := modeValues(t, "central")
	acct := func(a map[string]any) []any {
		return []any{a}
	}
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string
	}{
		{"no NLB subnets", set(c, "sharedProxy.central.proxyProtocol.trusted", []any{}), "sharedProxy.central.proxyProtocol.trusted is required"},
		{"PROXY trust in the config too", set(c, "sharedProxy.config.listen", map[string]any{"proxy_protocol": map[string]any{"trusted": []any{"10.0.0.0/8"}}}), "sharedProxy.config.listen.proxy_protocol"},
		{"no spoke networks", set(c, "sharedProxy.central.identity.trustedCIDRs", []any{}), "sharedProxy.central.identity.trustedCIDRs is required"},
		{"trusted cidrs in the config too", set(c, "sharedProxy.config.identity.trusted_cidrs", []any{"10.0.0.0/8"}), "sharedProxy.config.identity.trusted_cidrs"},
		{"ec2 in the config too", set(c, "sharedProxy.config.identity.ec2", map[string]any{"ecs_tasks": true}), "sharedProxy.config.identity.ec2"},
		{"role without external id", set(c, "sharedProxy.central.identity.ec2.accounts", acct(map[string]any{"account": "222233334444", "roleArn": "arn:aws:iam::222233334444:role/r"})), "accounts[0].externalId is required"},
		{"external id without role", set(c, "sharedProxy.central.identity.ec2.accounts", acct(map[string]any{"account": "222233334444", "externalId": "abc123"})), "accounts[0].externalId without a roleArn"},
		{"role of another account", set(c, "sharedProxy.central.identity.ec2.accounts", acct(map[string]any{"account": "222233334444", "roleArn": "arn:aws:iam::999988887777:role/r", "externalId": "abc123"})), "is not a role of account 222233334444"},
		{"account typo", set(c, "sharedProxy.central.identity.ec2.accounts", acct(map[string]any{"account": "2222", "role_arn": "x"})), "accounts"},
		{"not a CIDR", set(c, "sharedProxy.central.proxyProtocol.trusted", []any{"nlb.internal"}), "/sharedProxy/central/proxyProtocol/trusted"},
		{"PROXY protocol overridden", set(c, "sharedProxy.service.annotations", map[string]any{"service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": ""}), "aws-load-balancer-proxy-protocol: central mode sets it"},
		{"internet-facing", set(c, "sharedProxy.central.loadBalancer.annotations", map[string]any{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}), "aws-load-balancer-scheme: central mode sets it"},
		{"NLB overlapping the spokes", set(c, "sharedProxy.central.proxyProtocol.trusted", []any{"10.1.0.0/24"}), "overlaps identity.trusted_cidrs"},
		{"hpa max below min", set(c, "sharedProxy.autoscaling.maxReplicas", 2), "maxReplicas 2 is below minReplicas 3"},
		{"hpa min at the pdb", set(c, "sharedProxy.autoscaling.minReplicas", 1), "minReplicas 1 must exceed sharedProxy.podDisruptionBudget.minAvailable 1"},
		{"hpa without cpu request", set(c, "sharedProxy.resources.requests", nil), "sharedProxy.resources.requests.cpu is required"},
		{"every namespace enrolled", set(c, "sharedProxy.networkPolicy.enrolledNamespaceLabel", nil), "enrolledNamespaceLabel is required"},
		{"no endpoint to guard", set(c, "sharedProxy.networkPolicy.bedrockEndpointCIDRs", []any{}), "bedrockEndpointCIDRs is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := render(t, tc.vals, "egress")
			if err == nil {
				// Some refusals are Warden's own (config validation), as
				// `warden serve` would refuse the rendered file.
				data := r.configMapData(t, "warden-central", "warden.yaml")
				cfg, perr := config.ParseConfig(data)
				if perr == nil {
					perr = proxy.CheckConfig(context.Background(), cfg)
				}
				err = perr
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestCentralRBAC creates the central mode's ClusterRole and binding on the
// real API server (RBAC authorizer) and asks it, by SubjectAccessReview,
// what Warden's service account may do: read pods across namespaces (the
// kubernetes source's list and watch), and nothing else.
func TestCentralRBAC(t *testing.T) {
	c := kubetest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := centralMode(t)
	r := mustRender(t, m)
	const name = "egress-warden-central"
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		o := r.find(kind, name)
		if o == nil {
			t.Fatalf("no %s/%s", kind, name)
		}
		b, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			if err := json.Unmarshal(b, &cr); err != nil {
				t.Fatal(err)
			}
			cr.Name = "rbac-test-" + name
			if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, &cr, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = c.Client.RbacV1().ClusterRoles().Delete(context.Background(), cr.Name, metav1.DeleteOptions{})
			})
		case "ClusterRoleBinding":
			var crb rbacv1.ClusterRoleBinding
			if err := json.Unmarshal(b, &crb); err != nil {
				t.Fatal(err)
			}
			crb.Name = "rbac-test-" + name
			crb.RoleRef.Name = "rbac-test-" + name
			if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &crb, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = c.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
			})
		}
	}
	user := "system:serviceaccount:" + m.namespace + ":warden-central"
	for _, tc := range []struct {
		verb, resource, namespace string
		allowed                   bool
	}{
		{"list", "pods", "", true},
		{"watch", "pods", "", true},
		{"get", "pods", "shop", true},
		{"create", "pods", "shop", false},
		{"delete", "pods", "shop", false},
		{"get", "secrets", m.namespace, false},
		{"list", "configmaps", "", false},
		{"list", "namespaces", "", false},
		{"list", "serviceaccounts", "", false},
		{"create", "serviceaccounts/token", "shop", false},
	} {
		res, sub, _ := strings.Cut(tc.resource, "/")
		var got bool
		// The authorizer's cache follows the new binding within moments.
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			sar, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   user,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + m.namespace, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Verb: tc.verb, Resource: res, Subresource: sub, Namespace: tc.namespace,
					},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			got = sar.Status.Allowed
			return got == tc.allowed || !tc.allowed, nil
		})
		if err != nil || got != tc.allowed {
			t.Errorf("%s %s in %q: allowed=%v (%v), want %v", tc.verb, tc.resource, tc.namespace, got, err, tc.allowed)
		}
	}
}
