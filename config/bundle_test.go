package config

import (
	"reflect"
	"strings"
	"testing"
)

const bundleFile = `
version: 1
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: chatbot}}
bundle:
  url: https://warden-bundles.warden-system.svc:8443
  trusted_keys: [{id: sec-2026-12, public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]
  fleet: eks-prod
`

func TestBundleConfigValidate(t *testing.T) {
	cases := []struct {
		name, edit, want string
	}{
		{"valid", "", ""},
		{"http url", "url: https://warden-bundles.warden-system.svc:8443|url: http://x", "bundle.url"},
		{"no keys", `trusted_keys: [{id: sec-2026-12, public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]|trusted_keys: []`, "at least one key"},
		{"short key", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=|AAAA", "public_key: 3 bytes"},
		{"bad id", "id: sec-2026-12|id: a b", "trusted_keys[0].id"},
		{"long wait", "fleet: eks-prod|fleet: eks-prod\n  wait: 10m", "bundle.wait"},
		{"apps beside bundle", "fleet: eks-prod|fleet: eks-prod\napps: [{name: a, allow_weak_identity: true, match: {tags: {app: chatbot}}, allow: {models: [\"*\"]}}]", "comes from the signed bundle"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := bundleFile
			if c.edit != "" {
				from, to, _ := strings.Cut(c.edit, "|")
				y = strings.Replace(y, from, to, 1)
			}
			_, err := ParseConfig([]byte(y))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseConfig: %v, want an error about %q", err, c.want)
			}
		})
	}
}

func TestWithPolicy(t *testing.T) {
	base, err := ParseConfig([]byte(bundleFile))
	if err != nil {
		t.Fatal(err)
	}
	good := "apps:\n  - name: chatbot\n    allow_weak_identity: true\n    match: {tags: {app: chatbot}}\n    allow: {models: [\"amazon.nova-*\"]}\n"
	cases := []struct {
		name, policy, want string
	}{
		{"good", good, ""},
		{"with version", "version: 1\n" + good, ""},
		{"a restart key", good + "listen: {admin: ':9000'}\n", "bundle:6:1: listen: a policy bundle holds only"},
		{"unknown key in an app", strings.Replace(good, "allow: {", "colour: red\n    allow: {", 1), "bundle:5:5: apps[0].colour: unknown key"},
		{"invalid app", strings.Replace(good, "match: {tags: {app: chatbot}}", "match: {}", 1), "bundle:2:5: apps[0]"},
		{"not a mapping", "- a\n", "want a YAML mapping"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := WithPolicy(base, []byte(c.policy))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(cfg.Apps) != 1 || cfg.Bundle == nil || len(base.Apps) != 0 || cfg.Upstream.Region != "us-east-1" {
					t.Fatalf("merged config: apps %d bundle %v base apps %d", len(cfg.Apps), cfg.Bundle, len(base.Apps))
				}
				if PolicyHash(cfg) == PolicyHash(base) {
					t.Error("the policy hash did not change")
				}
				return
			}
			got := strings.Join(Diagnostics("bundle", []byte(c.policy), err), "\n")
			if err == nil || !strings.Contains(got, c.want) {
				t.Fatalf("WithPolicy: %q, want %q", got, c.want)
			}
		})
	}
}

// FuzzWithPolicy: a bundle's policy file is parsed by WithPolicy; whatever
// it accepts is a config that validates and keeps the base's other keys.
func FuzzWithPolicy(f *testing.F) {
	base, err := ParseConfig([]byte(bundleFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("apps:\n  - name: chatbot\n    allow_weak_identity: true\n    match: {tags: {app: chatbot}}\n    allow: {models: [\"amazon.nova-*\"]}\n"))
	f.Add([]byte("version: 1\nmode: dry-run\ndeny: [{name: d, models: [\"*\"]}]\napps: []\n"))
	f.Add([]byte("guards: {g: {words: {list: [acme], action: block}}}\napps: [{name: a, guards: [g], match: {tags: {k8s.namespace: a}}, allow: {models: [\"*\"]}}]\n"))
	f.Add([]byte("listen: {admin: ':1'}\n"))
	f.Add([]byte("- a\n"))
	f.Add([]byte("apps: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := WithPolicy(base, data)
		if err != nil {
			return
		}
		if cfg.Bundle != base.Bundle || !reflect.DeepEqual(cfg.Upstream, base.Upstream) || !reflect.DeepEqual(cfg.Listen, base.Listen) {
			t.Fatal("WithPolicy changed a key outside the policy")
		}
		c := *cfg
		c.Bundle = nil
		if err := c.Validate(); err != nil {
			t.Fatalf("an accepted policy does not validate: %v", err)
		}
	})
}
