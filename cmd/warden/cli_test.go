package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

// The overview names every command and subcommand, wherever help is asked.
func TestHelpListsEveryCommand(t *testing.T) {
	want := []string{"warden serve", "warden policy validate", "warden policy test", "warden policy explain",
		"warden policy vpce-policy", "warden policy identity-roles", "warden policy schema", "warden audit verify", "warden audit report",
		"warden keys issue", "warden keys genmaster", "warden keys inspect", "warden ca bundle", "warden ca cert",
		"warden iptables", "warden healthcheck", "warden version"}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 0 || errOut.Len() > 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut.String())
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w+" ") && !strings.Contains(out.String(), w+"\n") {
				t.Errorf("%q: overview lacks %q:\n%s", args, w, out.String())
			}
		}
	}
	// Without arguments the overview is an error: stderr, exit 2.
	var out, errOut bytes.Buffer
	if code := run(context.Background(), nil, &out, &errOut); code != 2 || out.Len() > 0 || !strings.Contains(errOut.String(), "warden policy validate") {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

// --help and -h on every command and subcommand print its usage (and its
// flags, for those that have some) to stdout and exit 0, touching nothing.
func TestHelpOnEveryCommand(t *testing.T) {
	type ask struct {
		args []string
		want []string
	}
	var asks []ask
	for _, c := range commands() {
		if len(c.subs) == 0 {
			want := []string{"warden " + c.name}
			if c.flags {
				want = append(want, "flags:\n  -")
			}
			for _, a := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
				asks = append(asks, ask{a, want})
			}
			continue
		}
		var subs []string
		for _, s := range c.subs {
			subs = append(subs, "warden "+c.name+" "+s.name)
			want := []string{"warden " + c.name + " " + s.name}
			if s.flags {
				want = append(want, "flags:\n  -")
			}
			for _, a := range [][]string{{c.name, s.name, "--help"}, {c.name, s.name, "-h"}, {"help", c.name, s.name},
				// a flag before --help still asks for help, not a run
				{c.name, s.name, "--config", "/nonexistent", "--help"}} {
				asks = append(asks, ask{a, want})
			}
		}
		for _, a := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {c.name, "help"}, {"help", c.name}} {
			asks = append(asks, ask{a, subs})
		}
	}
	for _, a := range asks {
		t.Run(strings.Join(a.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), a.args, &out, &errOut); code != 0 || errOut.Len() > 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut.String())
			}
			for _, w := range a.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("usage lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	for _, args := range [][]string{{"help", "nope"}, {"policy", "nope", "--help"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `"nope"`) {
			t.Errorf("%q: exit %d, stderr %q; want 2 naming the unknown command", args, code, errOut.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var a, b, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &a, &errOut); code != 0 || !strings.HasPrefix(a.String(), "warden ") {
		t.Errorf("--version: exit %d, %q %q", code, a.String(), errOut.String())
	}
	if code := run(context.Background(), []string{"version"}, &b, &errOut); code != 0 || a.String() != b.String() {
		t.Errorf("version: exit %d, %q; --version said %q", code, b.String(), a.String())
	}
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		ldflags string
		info    *debug.BuildInfo
		want    string
	}{
		{"", info, "warden v0.4.0 0123456789ab-dirty go1.26.0"},
		{"v1.2.3", info, "warden v1.2.3 0123456789ab-dirty go1.26.0"},
		{"", &debug.BuildInfo{GoVersion: "go1.26.0"}, "warden (devel) go1.26.0"},
		{"v1.2.3", nil, "warden v1.2.3"},
	} {
		if got := formatVersion(tc.ldflags, tc.info); got != tc.want {
			t.Errorf("formatVersion(%q, …) = %q, want %q", tc.ldflags, got, tc.want)
		}
	}
}

// noAWSRegion clears every place the AWS SDK finds a region.
func noAWSRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

func writeConfig(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Config errors name config keys and carry file:line:column, all at once.
func TestValidateReportsKeysAndPositions(t *testing.T) {
	noAWSRegion(t)
	p := writeConfig(t, `version: 1
listen:
  endpoint: 127.0.0.1:8480
  admn: 127.0.0.1:9480
upstream: {region: us-east-1}
identity: {sources: [statik]}
audit:
  sinks:
    - s3: {prefix: warden/}
`)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"policy", "validate", p}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	want := []string{
		p + ":4:3: listen.admn: unknown key (known: admin, endpoint, proxy, proxy_protocol, tls, transparent)\n",
		p + `:6:22: identity.sources: "statik": unknown source`,
		p + ":9:7: audit.sinks[0].s3.bucket is required\n",
		"invalid (3 errors)",
	}
	for _, w := range want {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "config.") || strings.Contains(errOut.String(), "not found in type") {
		t.Errorf("an error names a Go type:\n%s", errOut.String())
	}
}

// A cases file's unknown keys are named by their path too.
func TestPolicyCasesUnknownKey(t *testing.T) {
	p := writeConfig(t, "cases:\n  - name: x\n    operation: Converse\n    expect: allow\n    colour: red\n")
	var out bytes.Buffer
	if code := run(context.Background(), []string{"policy", "test", "--config", policyFile, "--cases", p}, &out, &out); code != 1 ||
		!strings.Contains(out.String(), p+":5:5: cases[0].colour: unknown key (known: app, body, expect, ") || strings.Contains(out.String(), "main.") {
		t.Errorf("exit %d:\n%s", code, out.String())
	}
}

// policy validate rejects what serve rejects: a config without a region
// fails both unless the environment names one; a region that makes no
// upstream host fails both.
func TestValidateRejectsWhatServeRejects(t *testing.T) {
	base := "version: 1\nlisten: {endpoint: 127.0.0.1:8480}\n%sidentity: {static: {app: a}}\napps:\n  - name: a\n    allow_weak_identity: true\n    match: {tags: {app: a}}\n    allow: {models: [\"*\"], operations: [Converse]}\n"
	cases := []struct {
		name, upstream, envRegion string
		valid                     bool
		want                      string
	}{
		{"no region anywhere", "", "", false, ":1:1: upstream.region: not set, and the AWS configuration names no region; set upstream.region or AWS_REGION\nwarden policy: " + "%s: invalid (1 error)"},
		{"region from AWS_REGION", "", "eu-west-1", true, ""},
		{"region in the file", "upstream: {region: us-east-1}\n", "", true, ""},
		{"no region, a section without one", "upstream: {signing: resign}\n", "", false, ":3:1: upstream.region: not set"},
		{"a region that makes no host", "upstream: {region: \"us east 1\"}\n", "", false, ":3:12: upstream.region: \"us east 1\" is not an AWS region name"},
		// China has no bedrock-mantle or bedrock host: both used to pass
		// validate and fail serve on the made-up mantle name.
		{"a China region", "upstream: {region: cn-north-1}\n", "", true, ""},
		{"a GovCloud region", "upstream: {region: us-gov-west-1}\n", "", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noAWSRegion(t)
			t.Setenv("AWS_REGION", tc.envRegion)
			cfgText := strings.Replace(base, "%s", tc.upstream, 1)
			p := writeConfig(t, cfgText)
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"policy", "validate", p}, &out, &errOut)
			want := strings.ReplaceAll(tc.want, "%s", p)
			if (code == 0) != tc.valid || (want != "" && !strings.Contains(errOut.String(), p+want)) {
				t.Errorf("validate: exit %d, want valid=%v and %q:\n%s%s", code, tc.valid, want, out.String(), errOut.String())
			}
			// serve's own constructor agrees.
			cfg, err := config.ParseConfig([]byte(cfgText))
			if err != nil {
				if tc.valid {
					t.Fatal(err)
				}
				return // serve parses the file the same way, and stops there
			}
			_, err = proxy.New(context.Background(), proxy.Options{Config: cfg, Audit: nopAudit{},
				Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
			if (err == nil) != tc.valid {
				t.Errorf("proxy.New: %v, want valid=%v (validate and serve disagree)", err, tc.valid)
			}
		})
	}
}

// serve refuses a file with exactly the lines policy validate --files
// prints for it (file:line:column: key: message), before it opens the audit
// (nothing on stdout, where the default sink writes).
func TestServeReportsWhatValidateReports(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	app := "apps:\n  - name: a\n    allow_weak_identity: true\n    match: {tags: {app: a}}\n    allow: {models: [\"*\"], operations: [Converse]}\n"
	for _, tc := range []struct{ name, cfg string }{
		{"no region", "version: 1\nlisten: {endpoint: 127.0.0.1:0}\nidentity: {static: {app: a}}\n" + app},
		{"no master key", "version: 1\nlisten: {endpoint: 127.0.0.1:0}\nupstream: {region: us-east-1}\n" +
			"identity: {sources: [keys], keys: {master_key_file: " + missing + "}}\n" + app},
		{"no TLS certificate", "version: 1\nlisten: {endpoint: 127.0.0.1:0, tls: {cert_file: " + missing + ", key_file: " + missing + "}}\n" +
			"upstream: {region: us-east-1}\nidentity: {static: {app: a}}\n" + app},
		{"parse errors", "version: 1\nlisten: {endpoint: 127.0.0.1:0, admn: x}\nupstream: {region: us-east-1}\nidentity: {sources: [statik]}\n" + app},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noAWSRegion(t)
			p := writeConfig(t, tc.cfg)
			var vOut, vErr bytes.Buffer
			if code := run(context.Background(), []string{"policy", "validate", "--files", p}, &vOut, &vErr); code == 0 {
				t.Fatalf("validate --files: exit 0\n%s", vOut.String())
			}
			lines := strings.Split(strings.TrimSpace(vErr.String()), "\n")
			want := "warden serve: " + strings.Join(lines[:len(lines)-1], "\n") // less the "invalid (N errors)" summary
			var sOut, sErr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if code := run(ctx, []string{"serve", "--config", p}, &sOut, &sErr); code == 0 {
				t.Fatalf("serve: exit 0\n%s", sErr.String())
			}
			if got := strings.TrimSpace(sErr.String()); got != want {
				t.Errorf("serve said:\n%s\nvalidate said:\n%s", got, want)
			}
			if sOut.Len() != 0 {
				t.Errorf("serve wrote to stdout (the audit opened) before refusing the file:\n%s", sOut.String())
			}
		})
	}
}

// What only serve's own checks find (no region anywhere, a missing file)
// comes in the same pass as the file's other problems, not after they are
// fixed.
func TestValidateOnePassWithServeChecks(t *testing.T) {
	noAWSRegion(t)
	missing := filepath.Join(t.TempDir(), "missing")
	app := "apps:\n  - name: a\n    allow_weak_identity: true\n    match: {tags: {app: a}}\n    allow: {models: [\"*\"], operations: [Converse]}\n"
	for _, tc := range []struct {
		name, cfg string
		args      []string
		want      []string
	}{
		{"unknown key, no region", "version: 1\nlisten: {endpoint: 127.0.0.1:0, admn: x}\nidentity: {static: {app: a}}\n" + app, nil,
			[]string{":2:33: listen.admn: unknown key", ":1:1: upstream.region: not set"}},
		{"invalid values, no region", "version: 1\nidentity: {sources: [statik]}\naudit: {sinks: [{s3: {region: us-east-1}}]}\n" + app, nil,
			[]string{":2:22: identity.sources: \"statik\": unknown source", ":3:18: audit.sinks[0].s3.bucket is required", ":1:1: upstream.region: not set"}},
		{"unknown key, missing file", "version: 1\nlisten: {endpoint: 127.0.0.1:0, admn: x}\nupstream: {region: us-east-1}\n" +
			"identity: {sources: [keys], keys: {master_key_file: " + missing + "}}\n" + app, []string{"--files"},
			[]string{":2:33: listen.admn: unknown key", ":4:29: identity.keys: master key: stat " + missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.cfg)
			var out, errOut bytes.Buffer
			code := run(context.Background(), append(append([]string{"policy", "validate"}, tc.args...), p), &out, &errOut)
			if code == 0 {
				t.Fatalf("exit 0\n%s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut.String(), p+w) {
					t.Errorf("lacks %q:\n%s", p+w, errOut.String())
				}
			}
			if n := strings.Count(errOut.String(), "\n"); n != len(tc.want)+1 {
				t.Errorf("%d lines, want %d problems and the summary:\n%s", n, len(tc.want), errOut.String())
			}
		})
	}
}

// nopAudit takes records and keeps none: proxy.New needs a writer.
type nopAudit struct{}

func (nopAudit) Begin(*audit.Record) error { return nil }
func (nopAudit) Write(*audit.Record)       {}
func (nopAudit) Close() error              { return nil }

// explain names the app that selects the caller even when the decision
// comes before the app's rules.
func TestExplainNamesSelectedApp(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"policy", "explain", "--config", policyFile,
		"--tag", "k8s.namespace=payments:strong", "--tag", "k8s.serviceaccount=api:strong",
		"--op", "InvokeModelWithBidirectionalStream", "--model", "amazon.nova-sonic-v1:0"}, &out, &out); code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, w := range []string{"apps[0] payments-prod (line 7, enforce): SELECTED", "\napp       payments-prod\n", "rule      unsupported-operation"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("explain lacks %q:\n%s", w, out.String())
		}
	}
}

// policy validate --files loads what serve loads from files at start, with
// the same loaders, so it refuses what serve refuses there too; without
// --files (checking a config away from where it runs) they are not read.
func TestValidateFilesRejectsWhatServeRejects(t *testing.T) {
	dir := t.TempDir()
	master := filepath.Join(dir, "master.key")
	if _, _, err := runKeys(t, "genmaster", "--out", master); err != nil {
		t.Fatal(err)
	}
	base := "version: 1\nupstream: {region: us-east-1}\naudit: {spool: {dir: " + filepath.Join(dir, "spool") + "}}\n" +
		"apps:\n  - name: a\n    allow_weak_identity: true\n    match: {tags: {app: a}}\n    allow: {models: [\"*\"], operations: [Converse]}\n"
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name, section string
		want          string // "" = valid with --files
	}{
		{"the master key", "listen: {endpoint: 127.0.0.1:0}\nidentity: {sources: [keys], keys: {master_key_file: " + master + "}}\n", ""},
		{"no master key", "listen: {endpoint: 127.0.0.1:0}\nidentity: {sources: [keys], keys: {master_key_file: " + missing + "}}\n", ":2:29: identity.keys: master key: stat " + missing},
		{"no revocation file", "listen: {endpoint: 127.0.0.1:0}\nidentity: {sources: [keys], keys: {master_key_file: " + master + ", revocation_file: " + missing + "}}\n", ":2:29: identity.keys: revocation file: open " + missing},
		{"no TLS certificate", "listen: {endpoint: 127.0.0.1:0, tls: {cert_file: " + missing + ", key_file: " + missing + "}}\nidentity: {static: {app: a}}\n", ":1:33: listen.tls: open " + missing},
		{"no CA key", "listen: {proxy: 127.0.0.1:0}\nidentity: {static: {app: a}}\nca: {cert_file: " + missing + ", key_file: " + missing + "}\n", ":3:1: ca: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noAWSRegion(t)
			cfgText := tc.section + base
			p := writeConfig(t, cfgText)
			var out, errOut bytes.Buffer
			if code := run(context.Background(), []string{"policy", "validate", p}, &out, &errOut); code != 0 {
				t.Errorf("without --files: exit %d\n%s", code, errOut.String())
			}
			errOut.Reset()
			code := run(context.Background(), []string{"policy", "validate", "--files", p}, &out, &errOut)
			if (code == 0) != (tc.want == "") || (tc.want != "" && !strings.Contains(errOut.String(), p+tc.want)) {
				t.Errorf("--files: exit %d, want %q:\n%s", code, tc.want, errOut.String())
			}
			// serve agrees: proxy.New loads the keys and the CA, runServer
			// the listener's certificate before it binds anything.
			cfg, err := config.ParseConfig([]byte(cfgText))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := proxy.New(context.Background(), proxy.Options{Config: cfg, Audit: nopAudit{},
				Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
			if err == nil && cfg.Listen.TLS != nil {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				err = runServer(ctx, srv, cfg, zap.NewNop())
			}
			if (err == nil) != (tc.want == "") {
				t.Errorf("serve: %v, want valid=%v (validate --files and serve disagree)", err, tc.want == "")
			}
		})
	}
}

// A command group without its subcommand fails and lists the subcommands,
// every group alike; `warden help help` is the overview.
func TestGroupWithoutSubcommandPrintsUsage(t *testing.T) {
	for _, c := range commands() {
		if len(c.subs) == 0 {
			continue
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{c.name}, &out, &errOut)
		if code == 0 {
			t.Errorf("warden %s: exit 0 without a subcommand", c.name)
		}
		for _, s := range c.subs {
			if !strings.Contains(errOut.String(), "warden "+c.name+" "+s.name) {
				t.Errorf("warden %s: stderr does not list %q:\n%s", c.name, s.name, errOut.String())
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"help", "help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "warden policy validate") {
		t.Errorf("warden help help: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

// TestUsageErrorsExitTwo: a command line the command cannot run (an unknown
// flag, a flag's bad value, an unknown subcommand, stray arguments) exits 2
// with a message naming what was wrong, as an unknown command does; 1 is
// kept for a command that ran and failed.
func TestUsageErrorsExitTwo(t *testing.T) {
	type usage struct {
		args []string
		want string
	}
	var cases []usage
	for _, c := range commands() {
		if len(c.subs) == 0 {
			if c.flags {
				cases = append(cases, usage{[]string{c.name, "--no-such-flag"}, "flag provided but not defined: -no-such-flag"})
			}
			continue
		}
		cases = append(cases, usage{[]string{c.name, "no-such-sub"}, `"no-such-sub"`})
		for _, s := range c.subs {
			if s.flags {
				cases = append(cases, usage{[]string{c.name, s.name, "--no-such-flag"}, "flag provided but not defined: -no-such-flag"})
			}
		}
	}
	cases = append(cases,
		usage{[]string{"serve", "--watch-interval", "soon"}, `invalid value "soon"`},
		usage{[]string{"serve", "--config", "a.yaml", "--memory-limit-ratio", "1.5"}, "--memory-limit-ratio"},
		usage{[]string{"serve", "--config", "a.yaml", "--memory-limit-ratio", "-0.1"}, "--memory-limit-ratio"},
		usage{[]string{"serve", "--config", "a.yaml", "--memory-limit-ratio", "NaN"}, "--memory-limit-ratio"},
		usage{[]string{"serve", "--config", "a.yaml", "--memory-limit-ratio", "+Inf"}, "--memory-limit-ratio"},
		usage{[]string{"policy", "validate", "--config", "a.yaml", "stray"}, `unexpected arguments ["stray"]`},
		usage{[]string{"policy", "schema", "stray"}, `unexpected arguments ["stray"]`},
	)
	for _, u := range cases {
		t.Run(strings.Join(u.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), u.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), u.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errOut.String(), u.want)
			}
		})
	}
	// A command that ran and failed still exits 1.
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"policy", "validate", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errOut); code != 1 {
		t.Errorf("validate of a missing file: exit %d, want 1; stderr %q", code, errOut.String())
	}
}

// Every bad item of a CIDR list is its own problem, with the item's key and
// position: before, the second and later items of a list came out as a bare
// `file: "bogus" is not a CIDR or an IP address` line (an errors.Join split
// by the loader), with neither.
func TestValidateCIDRListItemsHavePositions(t *testing.T) {
	noAWSRegion(t)
	p := writeConfig(t, `version: 1
listen:
  endpoint: 127.0.0.1:8480
  admin: 127.0.0.1:9480
  proxy_protocol: {trusted: [10.9.0.0/16, nope]}
upstream: {region: us-east-1}
identity:
  sources: [kubernetes]
  trusted_cidrs: [10.0.0.1/8, bogus]
apps:
  - name: a
    match: {tags: {k8s.namespace: a}}
    allow: {models: ["anthropic.*"]}
`)
	want := []string{
		p + `:9:19: identity.trusted_cidrs[0]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)` + "\n",
		p + `:9:31: identity.trusted_cidrs[1]: "bogus" is not a CIDR or an IP address` + "\n",
		p + `:5:43: listen.proxy_protocol.trusted[1]: "nope" is not a CIDR or an IP address` + "\n",
	}
	for _, args := range [][]string{{"policy", "validate", p}, {"serve", "--config", p}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 1 {
			t.Fatalf("%q: exit %d\n%s%s", args, code, out.String(), errOut.String())
		}
		for _, w := range want {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("%q: stderr lacks %q:\n%s", args, w, errOut.String())
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
			if strings.HasPrefix(line, p+": ") {
				t.Errorf("%q: a problem without a position: %q", args, line)
			}
		}
	}
}
