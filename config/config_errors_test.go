package config

import (
	"strings"
	"testing"
)

// Config problems name config keys, never Go types, come all in one pass,
// and each carries the position of the key it is about.
func TestConfigErrorDiagnostics(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // Diagnostics, in order
	}{
		{"unknown key names the path and the known keys",
			"version: 1\nlisten:\n  endpoint: 127.0.0.1:8480\n  admn: 127.0.0.1:9\n",
			[]string{"c.yaml:4:3: listen.admn: unknown key (known: admin, endpoint, proxy, proxy_protocol, tls, transparent)"}},
		{"unknown key inside a list item",
			minimal + "audit:\n  sinks:\n    - file: {path: /a, colour: red}\n",
			[]string{"c.yaml:13:24: audit.sinks[0].file.colour: unknown key (known: max_bytes, max_files, path)"}},
		{"wrong kind of value names the key and the wanted kind",
			strings.Replace(minimal, "version: 1", "version: one", 1) + "limits: {header_timeout: soon, max_connections: [1]}\n",
			[]string{"c.yaml:2:10: version: `one` is not an integer",
				"c.yaml:11:26: limits.header_timeout: `soon` is not a duration (e.g. 30s, 5m, 1h30m)",
				"c.yaml:11:49: limits.max_connections: want an integer, got a list"}},
		{"unknown keys and validation problems in one pass",
			strings.Replace(minimal, "sources: [static]", `sources: [statik]`, 1) + "audit:\n  sinks:\n    - s3: {prefix: x}\n  colour: red\n",
			[]string{"c.yaml:14:3: audit.colour: unknown key",
				`c.yaml:5:22: identity.sources: "statik": unknown source`,
				"c.yaml:13:7: audit.sinks[0].s3.bucket is required"}},
		{"a value of the wrong kind does not hide the other problems",
			strings.Replace(minimal, "sources: [static]", `sources: [statik]`, 1) + "limits: {max_body_bytes: lots}\naudit:\n  sinks:\n    - s3: {prefix: x}\n",
			[]string{"c.yaml:11:26: limits.max_body_bytes: `lots` is not an integer",
				`c.yaml:5:22: identity.sources: "statik": unknown source`,
				"c.yaml:14:7: audit.sinks[0].s3.bucket is required"}},
		{"an app's problem that follows from its key that did not decode is dropped",
			strings.Replace(minimal, "allow_weak_identity: true", "allow_weak_identity: yes-please", 1),
			[]string{"c.yaml:8:26: apps[0].allow_weak_identity: `yes-please` is not true or false"}},
		{"a second document is pointed at",
			minimal + "---\nversion: 1\n",
			[]string{"c.yaml:12:1: configuration must be a single YAML document; a second one starts here"}},
		{"what did not decode is reported once, not again by validation",
			strings.Replace(minimal, "listen: {endpoint: 127.0.0.1:8480}", "listen: {endpoint: [127.0.0.1:8480]}", 1) +
				"audit:\n  sinks:\n    - s3: {bucket: [b]}\n",
			[]string{"c.yaml:3:20: listen.endpoint: want a string, got a list",
				"c.yaml:13:20: audit.sinks[0].s3.bucket: want a string, got a list"}},
		{"nor is what the hole it left makes a key above it look like",
			strings.Replace(minimal, "match: {tags: {app: a}}", "match: {tags: {app: [a]}}", 1),
			[]string{"c.yaml:9:25: apps[0].match.tags.app: want a string, got a list"}},
		{"an app that did not decode is not validated again",
			strings.Replace(minimal, `allow: {models: ["*"], operations: [Converse]}`, `allow: {models: "*", operations: [Converse]}`, 1),
			[]string{"c.yaml:10:21: apps[0].allow.models: want a list, got `*`"}},
		{"a missing key points at its section",
			"version: 1\nlisten: {endpoint: 127.0.0.1:8480, tls: {cert_file: /c}}\n",
			[]string{"c.yaml:2:36: listen.tls: cert_file and key_file are both required"}},
		{"a quoted value after the key path points at that list item",
			strings.Replace(minimal, "sources: [static]", "sources: [static, statik]", 1),
			[]string{`c.yaml:5:30: identity.sources: "statik": unknown source`}},
		{"a source's problems name and point at its own section's keys",
			strings.Replace(minimal, "sources: [static]", "sources: [static, token], token: {header: x-tok, cache_ttl: -1s}", 1),
			[]string{`c.yaml:5:38: identity.token.audience is required`, `c.yaml:5:61: identity.token.cache_ttl must not be negative`}},
		{"a missing top-level key points at the file's start",
			"listen: {endpoint: 127.0.0.1:8480}\n",
			[]string{"c.yaml:1:1: version: must be 1, got 0"}},
		{"per-app problems keep the app's position",
			strings.Replace(minimal, "[Converse]", "[Converze]", 1),
			[]string{`c.yaml:7:5: apps[0] (a): allow.operations: unknown operation "Converze"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			got := Diagnostics("c.yaml", []byte(tc.yaml), err)
			if len(got) != len(tc.want) {
				t.Fatalf("Diagnostics =\n%s\nwant %d problems:\n%s", strings.Join(got, "\n"), len(tc.want), strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got[i], tc.want[i])
				}
				if strings.Contains(got[i], "authz.") || strings.Contains(got[i], "not found in type") {
					t.Errorf("problem %d names a Go type: %q", i, got[i])
				}
			}
		})
	}
}

// Anchors, aliases and merge keys decode as yaml does, with no false
// unknown keys; an unknown key inside a merged mapping is still found.
func TestConfigShapeFollowsAliases(t *testing.T) {
	base := `version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: a}}
x-allow: &allow {models: ["*"], operations: [Converse]}
apps:
  - name: a
    allow_weak_identity: true
    match: {tags: {app: a}}
    allow:
      <<: *allow
      regions: [us-east-1]
  - name: b
    allow_weak_identity: true
    match: {tags: {app: b}}
    allow: *allow
`
	_, err := ParseConfig([]byte(base))
	if err == nil || !strings.Contains(err.Error(), "x-allow: unknown key") || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("err = %v, want only x-allow named as unknown", err)
	}
	ok := strings.Replace(base, "x-allow: &allow {models: [\"*\"], operations: [Converse]}\n", "", 1)
	ok = strings.Replace(ok, "    allow:\n      <<: *allow\n", "    allow: &allow\n      models: [\"*\"]\n      operations: [Converse]\n", 1)
	ok = strings.Replace(ok, "    allow: *allow\n", "    allow:\n      <<: *allow\n      colour: red\n", 1)
	_, err = ParseConfig([]byte(ok))
	if err == nil || !strings.Contains(err.Error(), "apps[1].allow.colour: unknown key") || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("err = %v, want only apps[1].allow.colour", err)
	}
	if _, err := ParseConfig([]byte(strings.Replace(ok, "      colour: red\n", "", 1))); err != nil {
		t.Fatalf("aliases and merge keys: %v", err)
	}
}

func TestAboveBadPath(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"apps[0].match must select at least one tag", true},
		{"apps[0]: something", true},
		{"apps[0].match.tags.app: itself", false}, // mentionsPath's case
		{"apps[0].allow.operations: unknown operation", false},
		{"apps[1].match must select at least one tag", false},
		{"apps[0].matchx: another key", false},
		{"listen: set listen.endpoint", false},
	} {
		if got := aboveBadPath(tc.msg, []string{"apps[0].match.tags.app"}); got != tc.want {
			t.Errorf("aboveBadPath(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

func TestNamesAppBadKey(t *testing.T) {
	bad := []string{"apps[0].allow_weak_identity", "apps[2].mode"}
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"apps[0] (a): selects only on weak tags (app), …; select on a platform-set tag or set allow_weak_identity: true", true},
		{"apps[0] (a): selects nothing", false},
		{"apps[1] (b): … or set allow_weak_identity: true", false},                 // another app
		{"apps[0] (a): … or set allow_weak_identity_x: true", false},               // another key
		{"apps[2] (c): mode, if set, must be enforce or dry-run", true},            // at the start
		{"apps[2] (c): dry-run mode apps are not modest", false},                   // inside a word
		{"listen: set allow_weak_identity: true", false},                           // not an app's problem
		{"apps[0].match must select at least one tag, allow_weak_identity", false}, // not the app-where form
	} {
		if got := namesAppBadKey(tc.msg, bad); got != tc.want {
			t.Errorf("namesAppBadKey(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

func TestMentionsPath(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"listen.endpoint: want a string", true},
		{"listen: set listen.endpoint, listen.proxy or listen.transparent", true},
		{"listen.endpoint.x: deeper", true},
		{"audit.sinks[0].s3.bucket is required", true},
		{"listen.endpoints: another key", false},
		{"xlisten.endpoint: another key", false},
		{"listen: a key above it", false},
		{"apps[0].allow.models: want a list", false}, // a different path
	} {
		if got := mentionsPath(tc.msg, []string{"listen.endpoint", "audit.sinks[0].s3.bucket"}); got != tc.want {
			t.Errorf("mentionsPath(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

// A YAML syntax error names the line it is on: yaml.v3 prints its parser's
// problems a line early (0-based) and a first-line problem with no line.
func TestSyntaxErrorLines(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"version: 1\nupstream: {region: us-east-1}\nlisten: {endpoint: [}\n", "c.yaml:3: did not find expected node content"},
		{"version: 1\nlisten:\n  endpoint: [a\n  admin: x\n", "c.yaml:3: did not find expected ',' or ']'"},
		{"version: 1\nlisten:\n  endpoint: a\n admin: b\n", "c.yaml:4: did not find expected key"},
		{"a: b\n- c\n", "c.yaml:2: did not find expected key"},
		{"version: 1\n\tlisten: x\n", "c.yaml:2: found a tab character that violates indentation"}, // the scanner's: already 1-based
		{"version: 1\nlisten: @x\n", "c.yaml:2: found character that cannot start any token"},
		{"version: 1\nlisten:\n  endpoint: \"a\n", "c.yaml:3: found unexpected end of stream"},
		{"{a: [}\n", "c.yaml:1: did not find expected node content"}, // yaml.v3 gives no line
		{"a: b: c\n", "c.yaml:1: mapping values are not allowed in this context"},
		{"a: 1\nb:\n  - name: [\n", "c.yaml:3: did not find expected node content"}, // the end of the file: its last line
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		got := Diagnostics("c.yaml", []byte(tc.yaml), err)
		if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
			t.Errorf("%q: %q, want one starting %q", tc.yaml, got, tc.want)
		}
	}
}

// A file of the wrong shape at its top is "the file", whichever file
// (the config, a policy test's cases) it is.
func TestDecodeStrictRootNamesTheFile(t *testing.T) {
	var v struct {
		Cases []string `yaml:"cases"`
	}
	err := DecodeStrict([]byte("- a\n- b\n"), &v)
	got := Diagnostics("cases.yaml", nil, err)
	if len(got) != 1 || got[0] != "cases.yaml:1:1: the file: want a mapping, got a list" {
		t.Errorf("Diagnostics = %q", got)
	}
}
