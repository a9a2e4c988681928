package authz

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"anthropic.claude-3-5-haiku-*", "anthropic.claude-3-5-haiku-20241022-v1:0", true},
		{"anthropic.claude-3-5-haiku-*", "anthropic.claude-3-opus-20240229-v1:0", false},
		{"anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-20241022-v1:0", false},
		{"*", "anything:at/all", true},
		{"arn:aws:bedrock:*:123456789012:application-inference-profile/*", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc", true},
		{"arn:aws:bedrock:*:123456789012:application-inference-profile/*", "arn:aws:bedrock:us-east-1:999999999999:application-inference-profile/abc", false},
		{"amazon.nova-?ite-v1:0", "amazon.nova-lite-v1:0", true},
		{"amazon.nova-?ite-v1:0", "amazon.nova-liite-v1:0", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"", "", true},
		{"", "x", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	}
	for _, tc := range cases {
		if got := Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func mustModel(t *testing.T, s string) *bedrock.ModelID {
	t.Helper()
	m, err := bedrock.ParseModelID(s)
	if err != nil {
		t.Fatalf("ParseModelID(%q): %v", s, err)
	}
	return &m
}

func TestDecide(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
apps:
  - name: payments-prod
    match: {tags: {team: payments, env: prod}}
    allow: {models: ["anthropic.claude-3-5-haiku-*", "us.anthropic.claude-3-5-haiku-*"], operations: [Converse, ConverseStream]}
  - name: payments-any
    match: {tags: {team: payments}}
    allow: {models: ["amazon.nova-*"], operations: ["*"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(cfg.Apps)
	if err != nil {
		t.Fatal(err)
	}
	id := func(kv ...string) Identity {
		i := Identity{Source: "test", Tags: map[string]Tag{}}
		for j := 0; j+1 < len(kv); j += 2 {
			i.Tags[kv[j]] = Tag{Value: kv[j+1]}
		}
		return i
	}
	prod := id("team", "payments", "env", "prod")
	dev := id("team", "payments", "env", "dev")
	cases := []struct {
		name    string
		id      Identity
		op      bedrock.Operation
		model   string
		allow   bool
		app     string
		mention []string
	}{
		{"allowed", prod, bedrock.OpConverse, "anthropic.claude-3-5-haiku-20241022-v1:0", true, "payments-prod", nil},
		{"allowed via ARN", prod, bedrock.OpConverse, "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0", true, "payments-prod", nil},
		{"system profile", prod, bedrock.OpConverseStream, "us.anthropic.claude-3-5-haiku-20241022-v1:0", true, "payments-prod", nil},
		{"eu profile not allowed", prod, bedrock.OpConverse, "eu.anthropic.claude-3-5-haiku-20241022-v1:0", false, "payments-prod", []string{"payments-prod", "Converse", "eu.anthropic"}},
		{"model denied", prod, bedrock.OpConverse, "anthropic.claude-3-opus-20240229-v1:0", false, "payments-prod", []string{"payments-prod", "Converse", "anthropic.claude-3-opus-20240229-v1:0"}},
		{"op denied", prod, bedrock.OpInvokeModel, "anthropic.claude-3-5-haiku-20241022-v1:0", false, "payments-prod", []string{"payments-prod", "InvokeModel", "allow.operations"}},
		{"first match wins", prod, bedrock.OpConverse, "amazon.nova-lite-v1:0", false, "payments-prod", nil},
		{"second app", dev, bedrock.OpInvokeModel, "amazon.nova-lite-v1:0", true, "payments-any", nil},
		{"wildcard ops exclude bidi", dev, bedrock.OpInvokeModelWithBidirectionalStream, "amazon.nova-lite-v1:0", false, "", []string{"not supported"}},
		{"no app", id("team", "search"), bedrock.OpConverse, "amazon.nova-lite-v1:0", false, "", []string{"no app matches", "Converse", "amazon.nova-lite-v1:0"}},
		{"empty identity", Identity{}, bedrock.OpConverse, "amazon.nova-lite-v1:0", false, "", []string{"no app matches"}},
		{"no model op", dev, bedrock.OpListAsyncInvokes, "", true, "payments-any", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Call{Op: tc.op}
			if tc.model != "" {
				c.Model = mustModel(t, tc.model)
			}
			d := p.Decide(tc.id, c)
			if d.Allow != tc.allow || d.App != tc.app {
				t.Fatalf("Decide = %+v, want allow=%v app=%q", d, tc.allow, tc.app)
			}
			for _, m := range tc.mention {
				if !strings.Contains(d.Reason, m) {
					t.Errorf("reason %q does not mention %q", d.Reason, m)
				}
			}
		})
	}
}

func TestStaticSourceOnlyOnLoopback(t *testing.T) {
	s := NewStaticSource(map[string]string{"app": "x"})
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5000", true},
		{"127.9.9.9:5000", true},
		{"[::1]:5000", true},
		{"[::ffff:127.0.0.1]:5000", true},
		{"10.0.0.5:5000", false},
		{"[2001:db8::1]:5000", false},
		{"0.0.0.0:1", false},
	} {
		_, err := s.Resolve(context.Background(), &Conn{Remote: netip.MustParseAddrPort(tc.addr)})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
	if _, err := s.Resolve(context.Background(), nil); err == nil {
		t.Error("nil conn resolved")
	}
}
