package config

import (
	"strings"
	"testing"
)

// TestSelectorWarnings: an app or deny rule selecting on ecs.family,
// ecs.revision or ecs.service gets a warning naming it, the tag and the fix
// when a listed source produces that tag weak, and none otherwise.
func TestSelectorWarnings(t *testing.T) {
	const allow = "allow: {models: [\"*\"], operations: [Converse]}"
	for _, tc := range []struct {
		name     string
		identity string // the identity section's body
		policy   string // apps (and deny) after the identity section
		want     [][]string
	}{
		{
			name:     "sidecar, family, no platform_task_definitions",
			identity: "sources: [ecs-sidecar]",
			policy:   "apps:\n  - name: pay\n    match: {tags: {ecs.cluster: prod, ecs.family: pay}}\n    " + allow,
			want: [][]string{{"apps[0] (pay)", "ecs.family", "ecs.task_role_arn", "platform_task_definitions: true",
				"never selects a caller on it"}},
		},
		{
			name:     "sidecar, revision and service in in/glob",
			identity: "sources: [ecs-sidecar]",
			policy:   "apps:\n  - name: pay\n    match: {tags: {ecs.cluster: prod}, in: {ecs.revision: [\"3\"]}, glob: {ecs.service: \"pay-*\"}}\n    " + allow,
			want: [][]string{
				{"apps[0] (pay)", "ecs.revision", "ecs.task_role_arn", "platform_task_definitions"},
				{"apps[0] (pay)", "ecs.service", "ecs.task_role_arn", "platform_task_definitions"},
			},
		},
		{
			name:     "sidecar, exists, allow_weak_identity",
			identity: "sources: [ecs-sidecar]",
			policy:   "apps:\n  - name: any\n    allow_weak_identity: true\n    match: {exists: [ecs.family]}\n    " + allow,
			want:     [][]string{{"apps[0] (any)", "ecs.family", "any workload that gives its task definition or service that name is selected", "ecs.task_role_arn"}},
		},
		{
			name:     "sidecar with platform_task_definitions",
			identity: "sources: [ecs-sidecar], ecs_sidecar: {platform_task_definitions: true}",
			policy:   "apps:\n  - name: pay\n    match: {tags: {ecs.family: pay}}\n    " + allow,
		},
		{
			name:     "sidecar, task role only",
			identity: "sources: [ecs-sidecar]",
			policy:   "apps:\n  - name: pay\n    match: {tags: {ecs.task_role_arn: \"arn:aws:iam::111122223333:role/pay\"}}\n    " + allow,
		},
		{
			name:     "ec2 with ecs_tasks: platform_task_definitions does not help",
			identity: "sources: [ec2], trusted_cidrs: [10.0.0.0/16], ec2: {ecs_tasks: true}, ecs_sidecar: {platform_task_definitions: true}",
			policy:   "apps:\n  - name: pay\n    match: {tags: {aws.account: \"111122223333\", ecs.service: pay}}\n    " + allow,
			want:     [][]string{{"apps[0] (pay)", "ecs.service", "identity.ec2.ecs_tasks", "ecs.task_role_arn"}},
		},
		{
			name:     "ec2 without ecs_tasks produces no ECS tags",
			identity: "sources: [ec2], trusted_cidrs: [10.0.0.0/16]",
			policy:   "apps:\n  - name: pay\n    match: {tags: {aws.account: \"111122223333\", ecs.service: pay}}\n    " + allow,
		},
		{
			name:     "deny rule on a weak family",
			identity: "sources: [ecs-sidecar]",
			policy: "apps:\n  - name: pay\n    match: {tags: {ecs.task_role_arn: r}}\n    " + allow +
				"\ndeny:\n  - name: no-batch\n    match: {tags: {ecs.cluster: prod, ecs.family: batch}}\n    models: [\"*\"]",
			want: [][]string{{"deny[0]", "ecs.family", "escapes the rule", "ecs.task_role_arn"}},
		},
		{
			name:     "kubernetes",
			identity: "sources: [kubernetes], trusted_cidrs: [10.0.0.0/16]",
			policy:   "apps:\n  - name: pay\n    match: {tags: {k8s.namespace: pay}}\n    " + allow,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, "version: 1\nupstream: {region: us-east-1}\nidentity: {"+tc.identity+"}\n"+tc.policy+"\n")
			got := SelectorWarnings(cfg)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, parts := range tc.want {
				for _, p := range parts {
					if !strings.Contains(got[i], p) {
						t.Errorf("warning %d %q does not say %q", i, got[i], p)
					}
				}
			}
			// config.Warnings (what `warden policy validate` prints) includes them.
			all := strings.Join(Warnings(cfg), "\n")
			for _, w := range got {
				if !strings.Contains(all, w) {
					t.Errorf("Warnings lacks %q", w)
				}
			}
		})
	}
}
