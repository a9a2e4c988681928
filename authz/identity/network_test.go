package identity

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseTrustedNets(t *testing.T) {
	tn, err := ParseTrustedNets([]string{"10.0.0.0/16", " 192.168.1.7 ", "fd00::/8", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.0.255.1":        true,
		"10.1.0.1":          false,
		"192.168.1.7":       true,
		"192.168.1.8":       false,
		"::ffff:10.0.3.4":   true, // v4-mapped is the v4 address
		"fd12::1":           true,
		"fe80::1%eth0":      false,
		"172.31.1.1":        true,
		"::ffff:172.32.0.1": false,
		"127.0.0.1":         false,
	} {
		if got := tn.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	if (TrustedNets{}).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the zero value trusts something")
	}
	for _, bad := range []string{"10.0.0.1/16", "0.0.0.0/0", "::/0", "10.0.0.0/33", "nonsense", "", "fe80::1%eth0"} {
		if _, err := ParseTrustedNets([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseTrustedNets([]string{"10.0.0.1/16"}); err == nil || !strings.Contains(err.Error(), "10.0.0.0/16") {
		t.Errorf("host bits error does not suggest the network: %v", err)
	}
}

func TestIdentityConfigTrusts(t *testing.T) {
	c := &Config{TrustedCIDRs: []string{"10.0.0.0/8"}}
	if !c.trusts(netip.MustParseAddr("10.2.3.4")) || c.trusts(netip.MustParseAddr("11.0.0.1")) {
		t.Fatal("trusts")
	}
	c.TrustedCIDRs = append(c.TrustedCIDRs, "bad")
	if c.trusts(netip.MustParseAddr("10.2.3.4")) {
		t.Fatal("an invalid list trusts")
	}
}

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

// Validate hands the compiled trusted networks to the IP-based sources.
func TestValidateHandsTrustedNets(t *testing.T) {
	cfg, err := parseIdentity([]byte(ec2Base))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Identity.EC2.trusted.Contains(netip.MustParseAddr("10.0.9.9")) {
		t.Fatal("validation did not hand the trusted networks to the ec2 source")
	}
}
