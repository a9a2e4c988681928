package config

import (
	"reflect"
	"strings"
	"testing"
)

const reloadBase = `
version: 1
identity: {sources: [static], static: {app: a}}
apps:
  - name: a
    allow_weak_identity: true
    match: {tags: {app: a, env: prod}}
    allow: {models: ["amazon.nova-*"], operations: [Converse]}
`

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPolicyHash(t *testing.T) {
	a := mustParse(t, reloadBase)
	// Same apps, different layout, comments, key order and other sections.
	b := mustParse(t, `
version: 1 # comment
listen: {endpoint: "127.0.0.1:9999"}
identity: {sources: [static], static: {app: b}}
apps:
- allow: {operations: [Converse], models: ["amazon.nova-*"]}
  match:
    tags: {env: prod, app: a}
  allow_weak_identity: true
  name: a
`)
	if PolicyHash(a) != PolicyHash(b) {
		t.Errorf("layout changed the hash: %s vs %s", PolicyHash(a), PolicyHash(b))
	}
	if h := PolicyHash(a); len(h) != 12 {
		t.Errorf("hash %q: want 12 hex digits", h)
	}
	c := mustParse(t, strings.Replace(reloadBase, "amazon.nova-*", "amazon.titan-*", 1))
	if PolicyHash(a) == PolicyHash(c) {
		t.Error("a different allow list has the same hash")
	}
}

func TestRestartKeys(t *testing.T) {
	a := mustParse(t, reloadBase)
	if k := RestartKeys(a, mustParse(t, strings.Replace(reloadBase, "nova", "titan", 1))); len(k) != 0 {
		t.Errorf("apps-only change: %v need a restart", k)
	}
	b := mustParse(t, strings.Replace(reloadBase, "static: {app: a}}", "static: {app: b}}\nlisten: {endpoint: \"127.0.0.1:1\"}\nlimits: {max_body_bytes: 10}", 1))
	want := []string{"listen.endpoint", "identity.static", "limits.max_body_bytes"}
	if k := RestartKeys(a, b); !reflect.DeepEqual(k, want) {
		t.Errorf("RestartKeys = %v, want %v", k, want)
	}
}

func TestDiagnosticsPositions(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"unknown key", strings.Replace(reloadBase, "    allow_weak_identity: true", "    allow_weak_identity: true\n    colour: blue", 1), "w.yaml:7:5: apps[0].colour: unknown key (known: allow, allow_weak_identity, "},
		{"bad type", strings.Replace(reloadBase, "version: 1", "version: one", 1), "w.yaml:2:10: version: `one` is not an integer"},
		{"validation", strings.Replace(reloadBase, "operations: [Converse]", "operations: [Conversation]", 1), "w.yaml:5:5: apps[0] (a): allow.operations: unknown operation \"Conversation\""},
		{"syntax", reloadBase + "  - name: [\n", "w.yaml:9: "},
		{"deny rule", reloadBase + "deny:\n  - name: x\n", "w.yaml:10:5: deny[0] (x): "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.file))
			if err == nil {
				t.Fatal("no error")
			}
			d := Diagnostics("w.yaml", []byte(tc.file), err)
			if len(d) == 0 || !strings.HasPrefix(d[0], tc.want) {
				t.Errorf("Diagnostics = %q, want first to start with %q", d, tc.want)
			}
		})
	}
}
