package config

import (
	"github.com/warden-egress/warden/bedrock"

	"strings"
	"testing"

	"github.com/warden-egress/warden/authz/policy"
)

const minimal = `
version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
apps:
  - name: a
    allow_weak_identity: true   # static sidecar tags are weak
    match: {tags: {app: a}}
    allow: {models: ["*"], operations: [Converse]}
`

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Signing != "resign" || cfg.Limits.MaxBodyBytes != 25_000_000 || len(cfg.Audit.Sinks) != 1 || cfg.Audit.Sinks[0].Stdout == nil {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.Apps[0].Line != 7 {
		t.Errorf("app line %d, want 7", cfg.Apps[0].Line)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key has a line", strings.Replace(minimal, "upstream:", "upstreem:", 1), []string{"line 4", "upstreem"}},
		{"bad version", strings.Replace(minimal, "version: 1", "version: 2", 1), []string{"version"}},
		{"unknown operation with line", strings.Replace(minimal, "[Converse]", "[Converze]", 1), []string{"line 7", "Converze"}},
		{"match everything", strings.Replace(minimal, "match: {tags: {app: a}}", "match: {}", 1), []string{"match.tags"}},
		{"non-loopback without tls", strings.Replace(minimal, "127.0.0.1:8480", "0.0.0.0:8480", 1), []string{"loopback", "listen.tls"}},
		{"plain http upstream", strings.Replace(minimal, "{region: us-east-1}", "{region: us-east-1, url: \"http://10.0.0.1\"}", 1), []string{"upstream.url", "insecure"}},
		{"plain http mantle", strings.Replace(minimal, "{region: us-east-1}", "{region: us-east-1, mantle_url: \"http://bedrock-mantle.us-east-1.api.aws\"}", 1), []string{"upstream.mantle_url", "plain http"}},
		{"mantle url on the runtime host", strings.Replace(minimal, "{region: us-east-1}", "{region: us-east-1, mantle_url: \"https://bedrock-runtime.us-east-1.amazonaws.com\"}", 1), []string{"upstream.mantle_url", "not a bedrock-mantle host"}},
		{"bedrock url elsewhere", strings.Replace(minimal, "{region: us-east-1}", "{region: us-east-1, bedrock_url: \"https://s3.us-east-1.amazonaws.com\"}", 1), []string{"upstream.bedrock_url", "not a bedrock host"}},
		{"bedrock url with a path", strings.Replace(minimal, "{region: us-east-1}", "{region: us-east-1, bedrock_url: \"https://bedrock.us-east-1.amazonaws.com/anthropic\"}", 1), []string{"upstream.bedrock_url", "no user, path or query"}},
		{"unknown source", strings.Replace(minimal, "sources: [static]", "sources: [magic]", 1), []string{"magic"}},
		{"duplicate app", minimal + "  - name: a\n    match: {tags: {x: y}}\n", []string{"already used"}},
		{"bad glob", strings.Replace(minimal, `["*"]`, `["[a-z]"]`, 1), []string{"allow.models"}},
		{"empty", "", []string{"empty"}},
		{"two documents", minimal + "---\nversion: 1\n", []string{"single YAML document"}},
		{"passthrough without an intercepting listener", strings.Replace(minimal, "{region: us-east-1}", "{region: us-east-1, signing: passthrough}", 1), []string{"passthrough", "listen.proxy"}},
		{"bad proxy address", strings.Replace(minimal, "{endpoint: 127.0.0.1:8480}", "{proxy: nowhere}", 1), []string{"listen.proxy"}},
		{"endpoint port out of range", strings.Replace(minimal, "127.0.0.1:8480", "127.0.0.1:84800", 1), []string{"listen.endpoint", `port "84800"`}},
		{"admin port not a port", strings.Replace(minimal, "{endpoint: 127.0.0.1:8480}", "{endpoint: 127.0.0.1:8480, admin: \"127.0.0.1:9x\"}", 1), []string{"listen.admin", `port "9x"`}},
		{"bad transparent address", strings.Replace(minimal, "{endpoint: 127.0.0.1:8480}", "{transparent: 15001}", 1), []string{"listen.transparent"}},
		{"tunnel to bedrock", minimal + "egress: {tunnel: [bedrock-runtime.us-east-1.amazonaws.com]}\n", []string{"egress.tunnel[0]", "never tunnelled"}},
		{"tunnel too broad", minimal + "egress: {tunnel: [ok.example.com, \"*.amazonaws.com\"]}\n", []string{"egress.tunnel[1]", "too broad"}},
		{"tunnel to an address", minimal + "egress: {tunnel: [\"10.0.0.1:443\"]}\n", []string{"egress.tunnel[0]", "not an address"}},
		{"ca key without cert", minimal + "ca: {key_file: /k}\n", []string{"ca: cert_file and key_file"}},
		{"audit durability", minimal + "audit: {spool: {durability: sometimes}}\n", []string{"audit.spool.durability", "process or fsync"}},
		{"audit on_full", minimal + "audit: {spool: {on_full: ignore}}\n", []string{"audit.spool.on_full", "deny or drop"}},
		{"audit tiny segments", minimal + "audit: {spool: {segment_bytes: 1000}}\n", []string{"audit.spool.segment_bytes"}},
		{"audit spool under three segments", minimal + "audit: {spool: {segment_bytes: 1048576, max_bytes: 2097152}}\n", []string{"audit.spool.max_bytes", "three segments"}},
		{"audit batch too large", minimal + "audit: {batch: {max_records: 20000}}\n", []string{"audit.batch.max_records"}},
		{"audit two sinks in one entry", minimal + "audit: {sinks: [{stdout: {}, file: {path: /x}}]}\n", []string{"audit.sinks[0]", "exactly one sink"}},
		{"audit s3 without bucket", minimal + "audit: {sinks: [{s3: {prefix: x/}}]}\n", []string{"audit.sinks[0].s3.bucket"}},
		{"audit cloudwatch without group", minimal + "audit: {sinks: [{cloudwatch: {}}]}\n", []string{"audit.sinks[0].cloudwatch.log_group"}},
		{"audit http auth half", minimal + "audit: {sinks: [{http: {url: \"https://c.example\", auth_header: Authorization}}]}\n", []string{"auth_header and auth_env"}},
		{"audit capture of an unknown app", minimal + "audit: {capture: {apps: [nobody], sinks: [{stdout: {}}]}}\n", []string{"audit.capture.apps", "nobody"}},
		{"audit capture without sinks", minimal + "audit: {capture: {apps: [a]}}\n", []string{"audit.capture", "sinks"}},
		{"audit capture sink", minimal + "audit: {capture: {apps: [a], sinks: [{s3: {}}]}}\n", []string{"audit.capture.sinks[0].s3.bucket"}},
		{"audit http format", minimal + "audit: {sinks: [{http: {url: \"https://c.example\", format: xml}}]}\n", []string{"audit.sinks[0].http.format"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseConfigInterceptModes(t *testing.T) {
	y := strings.Replace(minimal, "listen: {endpoint: 127.0.0.1:8480}", "listen: {proxy: 127.0.0.1:8481, transparent: 127.0.0.1:15001}", 1)
	y = strings.Replace(y, "{region: us-east-1}", "{region: us-east-1, signing: passthrough}", 1)
	y += "egress: {tunnel: [sts.us-east-1.amazonaws.com, \"*.s3.us-east-1.amazonaws.com:443\"]}\nca: {cert_out: /run/warden/ca.pem, bundle_out: /run/warden/bundle.pem, extra_regions: [xx-east-9]}\n"
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Endpoint != "" {
		t.Errorf("an endpoint listener was added by default next to proxy/transparent: %q", cfg.Listen.Endpoint)
	}
	if cfg.Upstream.Signing != "passthrough" || len(cfg.Egress.Tunnel) != 2 || cfg.CA.CertOut == "" || cfg.CA.BundleOut == "" || cfg.CA.ExtraRegions[0] != "xx-east-9" {
		t.Errorf("parsed %+v", cfg)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("version: 1\napps: [{name: x}]\n"))
	f.Add([]byte("{}"))
	f.Add([]byte("version: 1\nlisten: {endpoint: '[::1]:80'}\nidentity: {static: {a: b}}\n"))
	f.Add([]byte(`version: 1
apps:
  - name: p
    mode: dry-run
    match: {tags: {k8s.namespace: p}, in: {k8s.serviceaccount: [a, b]}, exists: [k8s.label.x], glob: {ecs.family: "p-*"}}
    allow: {models: ["*"], operations: ["*"], regions: ["us-*", eu-west-1], profile_scopes: [us, global], async_output_prefixes: ["s3://bkt/out/"]}
  - name: w
    allow_weak_identity: true
    match: {glob: {app: "?"}}
    allow: {operations: [StartAsyncInvoke], async_output_prefixes: ["s3://bkt"]}
`))
	f.Add([]byte("version: 1\napps: [{name: x, match: {in: {k8s.namespace: []}}, allow: {regions: ['us east']}}]\n"))
	f.Add([]byte("version: 1\napps: [{name: x, match: {exists: [aws.tag.team]}, allow: {async_output_prefixes: ['s3://b/../x']}}]\n"))
	// values of the wrong kind beside problems validation finds
	f.Add([]byte("version: 1\nlimits: {max_body_bytes: lots}\nidentity: {sources: [statik]}\napps: [3, {name: y, guards: {a: b}}]\naudit: {sinks: [{s3: {bucket: [b]}}]}\n"))
	f.Add([]byte(bundleFile))
	f.Add([]byte(strings.Replace(bundleFile, "url: https://warden-bundles.warden-system.svc:8443", "url: s3://b/p\n  s3: {endpoint: 'http://127.0.0.1:9000', path_style: true}", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		// A config that validates must compile into a policy.
		if _, err := policy.NewPolicy(cfg.Apps); err != nil {
			t.Fatalf("validated config does not compile: %v", err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("validated config fails validation again: %v", err)
		}
	})
}

func TestValidateServiceURL(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		svc      bedrock.Service
		insecure bool
		ok       bool
	}{
		{"", bedrock.ServiceMantle, false, true},
		{"https://bedrock-mantle.us-east-1.api.aws", bedrock.ServiceMantle, false, true},
		{"https://bedrock.eu-west-1.amazonaws.com", bedrock.ServiceBedrock, false, true},
		{"https://vpce-0123456789abcdef0-abcdefgh.bedrock-runtime.us-east-1.vpce.amazonaws.com", bedrock.ServiceMantle, false, true},
		{"https://bedrock.us-east-1.amazonaws.com", bedrock.ServiceMantle, false, false},
		{"https://bedrock-mantle.us-east-1.api.aws", bedrock.ServiceBedrock, false, false},
		{"https://bedrock-mantle.cn-north-1.api.aws", bedrock.ServiceMantle, false, false},
		{"http://127.0.0.1:9000", bedrock.ServiceMantle, true, true},
		{"http://127.0.0.1:9000", bedrock.ServiceMantle, false, false},
		{"ftp://bedrock-mantle.us-east-1.api.aws", bedrock.ServiceMantle, true, false},
	} {
		err := ValidateServiceURL(tc.raw, tc.insecure, tc.svc)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateServiceURL(%q, %v, %s) = %v, want ok=%v", tc.raw, tc.insecure, tc.svc, err, tc.ok)
		}
	}
}
