package identity

import (
	"strings"
	"testing"
)

// TestIdentityWarnings: validation warns about source orders that let ec2
// name a pod's node (with the VPC CNI a pod address is the node ENI's).
func TestIdentityWarnings(t *testing.T) {
	for _, tc := range []struct {
		name, identity, want string
	}{
		{"kubernetes then ec2 without pod_cidrs", "sources: [kubernetes, ec2]", "falls through to ec2"},
		{"ec2 then kubernetes without pod_cidrs", "sources: [ec2, kubernetes]", "resolves to its node"},
		{"kubernetes then ec2 with pod_cidrs", "sources: [kubernetes, ec2], kubernetes: {pod_cidrs: [10.0.64.0/18]}", ""},
		{"ec2 alone", "sources: [ec2]", ""},
		{"kubernetes alone", "sources: [kubernetes]", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseIdentity([]byte(`
version: 1
upstream: {region: us-east-1}
identity: {trusted_cidrs: [10.0.0.0/16], ` + tc.identity + `}
apps:
  - name: a
    match: {tags: {k8s.serviceaccount: chatbot}}
    allow: {models: ["*"], operations: [Converse]}
`))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range Warnings(&cfg.Identity) {
				if strings.Contains(w, "identity.sources") {
					got = append(got, w)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("unexpected warnings %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.Contains(got[0], "pod_cidrs")):
				t.Errorf("warnings %q, want one saying %q and naming pod_cidrs", got, tc.want)
			}
		})
	}
	if _, err := parseIdentity([]byte("version: 1\nidentity: {sources: [kubernetes], trusted_cidrs: [10.0.0.0/8], kubernetes: {pod_cidrs: [10.0.0.1/8]}}\n")); err == nil ||
		!strings.Contains(err.Error(), "pod_cidrs") || !strings.Contains(err.Error(), "host bits") {
		t.Errorf("bad pod_cidrs: %v", err)
	}
}
