package config

import (
	"strings"
	"testing"
)

const ec2Base = `
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity:
  sources: [ec2]
  trusted_cidrs: [10.0.0.0/16]
  ec2: {}
apps:
  - name: a
    match: {tags: {aws.account: "111122223333"}}
    allow: {models: ["*"], operations: [Converse]}
`

func TestValidateNetwork(t *testing.T) {
	pp := strings.Replace(ec2Base, "listen: {endpoint: 127.0.0.1:8480}", "listen: {endpoint: 127.0.0.1:8480, proxy_protocol: {trusted: [10.1.0.0/24], header_timeout: 2s}}", 1)
	cfg, err := ParseConfig([]byte(pp))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.ProxyProtocol.Timeout().Seconds() != 2 || !cfg.Listen.ProxyProtocol.Enabled() {
		t.Fatalf("proxy protocol %+v", cfg.Listen.ProxyProtocol)
	}

	cases := []struct{ name, yaml, want string }{
		{"ec2 needs trusted cidrs", strings.Replace(ec2Base, "  trusted_cidrs: [10.0.0.0/16]\n", "", 1), "identity.trusted_cidrs: required"},
		{"bad trusted cidr", strings.Replace(ec2Base, "[10.0.0.0/16]", "[10.0.0.0/16, 10.0.0.300/32]", 1), "identity.trusted_cidrs"},
		{"trust everything", strings.Replace(ec2Base, "[10.0.0.0/16]", "[0.0.0.0/0]", 1), "trusts every address"},
		{"trust everything, IPv4-mapped", strings.Replace(ec2Base, "[10.0.0.0/16]", `["::ffff:0.0.0.0/96"]`, 1), "trusts every address"},
		{"load balancers among the clients", strings.Replace(pp, "[10.1.0.0/24]", "[10.0.3.0/24]", 1), "overlaps identity.trusted_cidrs"},
		{"bad lb cidr", strings.Replace(pp, "[10.1.0.0/24]", "[10.1.0.1/24]", 1), "listen.proxy_protocol.trusted"},
		{"negative header timeout", strings.Replace(pp, "header_timeout: 2s", "header_timeout: -2s", 1), "header_timeout"},
		{"timeout without lbs", strings.Replace(pp, "trusted: [10.1.0.0/24], ", "", 1), "without trusted load balancers"},
		{"stale shorter than ttl", strings.Replace(ec2Base, "ec2: {}", "ec2: {cache_ttl: 2m, stale_ttl: 1m}", 1), "stale_ttl"},
		{"negative ttl", strings.Replace(ec2Base, "ec2: {}", "ec2: {negative_ttl: -1s}", 1), "negative_ttl"},
		{"plain http endpoint off loopback", strings.Replace(ec2Base, "ec2: {}", `ec2: {endpoint: "http://ec2.example.com"}`, 1), "loopback"},
		{"empty tag key", strings.Replace(ec2Base, "ec2: {}", `ec2: {tag_keys: [""]}`, 1), "tag_keys"},
		{"unknown ec2 key", strings.Replace(ec2Base, "ec2: {}", `ec2: {regoin: x}`, 1), "regoin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	for _, ok := range []string{
		strings.Replace(ec2Base, "ec2: {}", `ec2: {endpoint: "http://127.0.0.1:9999", region: eu-west-1, cache_ttl: 30s, negative_ttl: 2s, stale_ttl: 30s, tag_keys: [team]}`, 1),
		strings.Replace(ec2Base, "ec2: {}", `ec2: {endpoint: "https://ec2.eu-west-1.amazonaws.com"}`, 1),
	} {
		if _, err := ParseConfig([]byte(ok)); err != nil {
			t.Errorf("rejected: %v", err)
		}
	}
}

// A loopback load balancer next to a source that answers loopback callers
// would let any process in the pod claim any client address (and make LOCAL
// health checks loopback calls): refused. Without such a source (a shared
// proxy with a co-located load balancer) it stays allowed.
func TestValidateNetworkLoopbackLoadBalancer(t *testing.T) {
	static := `
version: 1
listen: {endpoint: 127.0.0.1:8480, proxy_protocol: {trusted: [LB]}}
upstream: {region: us-east-1}
identity:
  sources: [SOURCES]
  static: {app: a}
  trusted_cidrs: [10.0.0.0/16]
  ec2: {}
apps:
  - name: a
    allow_weak_identity: true
    match: {tags: {app: a}}
    allow: {models: ["*"], operations: [Converse]}
`
	cases := []struct {
		lb, sources string
		refused     bool
	}{
		{"127.0.0.1", "static", true},
		{"127.0.0.0/8", "static, ec2", true},
		{"::1", "static", true},
		{"::ffff:127.0.0.1", "static", true},
		{"120.0.0.0/5", "static", true}, // a wide range that includes 127/8
		{"10.1.0.0/24", "static", false},
		{"127.0.0.1", "ec2", false},
	}
	for _, tc := range cases {
		y := strings.NewReplacer("LB", `"`+tc.lb+`"`, "SOURCES", tc.sources).Replace(static)
		_, err := ParseConfig([]byte(y))
		if tc.refused != (err != nil && strings.Contains(err.Error(), "includes loopback addresses")) {
			t.Errorf("trusted %s with sources [%s]: %v (want refused=%v)", tc.lb, tc.sources, err, tc.refused)
		}
	}
}
