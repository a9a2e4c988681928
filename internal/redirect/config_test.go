package redirect

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNewConfig(t *testing.T) {
	cases := []struct {
		name           string
		port           int
		uid, gid       int64
		ipv6           bool
		cidrs, exclude []string
		wantErr        error
		wantMsg        string
		wantCIDRs      string
	}{
		{name: "defaults", port: 8482, uid: 65532, gid: -1, ipv6: true, wantCIDRs: "0.0.0.0/0 ::/0"},
		{name: "defaults_ipv4_only", port: 8482, ipv6: false, wantCIDRs: "0.0.0.0/0"},
		{name: "max_id", port: 1, uid: MaxID, gid: MaxID, ipv6: true, wantCIDRs: "0.0.0.0/0 ::/0"},
		{name: "cidrs_dedup_order", port: 65535, ipv6: true, cidrs: []string{"fd00::/8, 10.0.0.0/8", "10.0.0.0/8"}, wantCIDRs: "fd00::/8 10.0.0.0/8"},
		// A family without a CIDR of its own is redirected everywhere (fail closed).
		{name: "v4_cidrs_only", port: 1, ipv6: true, cidrs: []string{"52.94.0.0/16"}, wantCIDRs: "52.94.0.0/16 ::/0"},
		{name: "v4_cidrs_only_no_ipv6", port: 1, ipv6: false, cidrs: []string{"52.94.0.0/16"}, wantCIDRs: "52.94.0.0/16"},
		{name: "v6_cidrs_only", port: 1, ipv6: true, cidrs: []string{"2600:1f00::/24"}, wantCIDRs: "2600:1f00::/24 0.0.0.0/0"},
		{name: "port_zero", port: 0, wantErr: ErrPort, wantMsg: "--port 0: port out of range: want 1-65535"},
		{name: "port_high", port: 65536, wantErr: ErrPort, wantMsg: "--port 65536"},
		{name: "uid_negative", port: 1, uid: -1, wantErr: ErrID, wantMsg: "--uid -1: uid or gid out of range: want 0-4294967294"},
		{name: "gid_too_big", port: 1, gid: MaxID + 1, wantErr: ErrID, wantMsg: "--gid 4294967295"},
		{name: "cidr_garbage", port: 1, cidrs: []string{"bedrock"}, wantErr: ErrCIDR, wantMsg: `--cidr "bedrock": invalid CIDR: not a CIDR`},
		{name: "cidr_bare_ip", port: 1, cidrs: []string{"10.0.0.1"}, wantErr: ErrCIDR, wantMsg: `--cidr "10.0.0.1"`},
		{name: "cidr_host_bits", port: 1, cidrs: []string{"10.0.0.1/8"}, wantErr: ErrCIDR, wantMsg: "did you mean 10.0.0.0/8?"},
		{name: "cidr_zone", port: 1, ipv6: true, cidrs: []string{"fe80::%eth0/64"}, wantErr: ErrCIDR, wantMsg: "not a CIDR"},
		{name: "cidr_mapped", port: 1, ipv6: true, cidrs: []string{"::ffff:10.0.0.0/104"}, wantErr: ErrCIDR, wantMsg: "IPv4-mapped"},
		{name: "cidr_v6_without_ipv6", port: 1, cidrs: []string{"fd00::/8"}, wantErr: ErrCIDR, wantMsg: "IPv6 CIDR with --ipv6=false"},
		{name: "exclude_empty_item", port: 1, exclude: []string{"10.0.0.0/8,"}, wantErr: ErrCIDR, wantMsg: `--exclude-cidr "": invalid CIDR`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := NewConfig(tc.port, tc.uid, tc.gid, tc.ipv6, tc.cidrs, tc.exclude)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("error %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range cfg.CIDRs {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != tc.wantCIDRs {
				t.Errorf("CIDRs %v, want %s", got, tc.wantCIDRs)
			}
		})
	}
}

// FuzzParseCIDRs: any input is either refused with ErrCIDR or yields
// canonical prefixes of the allowed families, each of which renders into the
// rule set as itself.
func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.0.0.0/8,fd00::/8", " 0.0.0.0/0 , ::/0", "169.254.169.254/32",
		"fd00:ec2::254/128", "10.0.0.1/8", "::ffff:1.2.3.4/128", "fe80::1%eth0/64", "", ",", "x/33", "1.2.3.4/33"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, ipv6 bool) {
		ps, err := ParseCIDRs("--cidr", []string{s}, ipv6)
		if err != nil {
			if !errors.Is(err, ErrCIDR) {
				t.Fatalf("%q: error %v does not wrap ErrCIDR", s, err)
			}
			return
		}
		seen := map[netip.Prefix]bool{}
		for _, p := range ps {
			if p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() || (p.Addr().Is6() && !ipv6) || seen[p] {
				t.Fatalf("%q: accepted %v", s, p)
			}
			seen[p] = true
			if q, err := netip.ParsePrefix(p.String()); err != nil || q != p {
				t.Fatalf("%q: %v does not round-trip: %v %v", s, p, q, err)
			}
		}
		if len(ps) == 0 {
			return
		}
		text := Build(Config{Port: 8482, CIDRs: ps, IPv6: ipv6}).Text(false)
		if strings.Contains(text, "unknown-expression") {
			t.Fatalf("%q: rule set renders an unknown expression:\n%s", s, text)
		}
		for _, p := range ps {
			want := p.String()
			if p.IsSingleIP() {
				want = p.Addr().String()
			}
			if p.Bits() > 0 && !strings.Contains(text, "daddr "+want+" ") {
				t.Fatalf("%q: %v is not in the rule set:\n%s", s, p, text)
			}
		}
	})
}
