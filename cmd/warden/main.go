// Command warden is the Warden egress proxy for Amazon Bedrock.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// command is one `warden` command or subcommand: its line in the overview,
// the usage --help prints, and what runs it.
type command struct {
	name     string
	synopsis string // arguments and a short description, for the overview
	usage    string // printed by --help, before the flags
	// flags: the command parses flags before doing anything, so running
	// it with -h prints its flag defaults, which --help appends.
	flags bool
	subs  []command
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every command; with subcommands, run dispatches on args[0].
func commands() []command {
	return []command{
		{name: "serve", synopsis: "--config FILE  run the proxy (SIGHUP or a changed file reloads the policy)", flags: true, run: cmdServe,
			usage: "usage: warden serve --config FILE [--watch-interval 1s]\n       warden serve --config-env NAME\n" +
				"        run the proxy; SIGHUP, or a change to the file or its directory, reloads the policy;\n" +
				"        --config-env reads the configuration from an environment variable (the injected sidecar's WARDEN_CONFIG)\n"},
		{name: "policy", run: cmdPolicy, usage: policyUsage, subs: []command{
			{name: "validate", synopsis: "--config FILE  check a configuration as serve would, and exit", usage: policyValidateUsage, flags: true},
			{name: "test", synopsis: "--config FILE --cases CASES.yaml  run policy test cases", usage: policyTestUsage, flags: true},
			{name: "explain", synopsis: "--config FILE --tag K=V … --op OP [--model ID]  why a call is allowed or denied", usage: policyExplainUsage, flags: true},
			{name: "vpce-policy", synopsis: "--config FILE --principal ARN …  the VPC endpoint, SCP and role policies", usage: vpceUsage, flags: true},
			{name: "identity-roles", synopsis: "--config FILE --principal ARN …  a central Warden's hub and spoke identity roles", usage: identityRolesUsage, flags: true},
			{name: "schema", synopsis: "print the configuration's JSON Schema", usage: policySchemaUsage},
			{name: "sign", synopsis: "--policy FILE --key FILE --key-id ID --out FILE  sign a policy bundle", usage: policySignUsage, flags: true},
			{name: "verify", synopsis: "--bundle FILE --trust ID=KEY …  check a signed policy bundle", usage: policyVerifyUsage, flags: true},
			{name: "publish", synopsis: "--bundle FILE --to DIR|https://…|s3://…  publish a signed policy bundle", usage: policyPublishUsage, flags: true},
		}},
		{name: "bundle", run: cmdBundle, usage: bundleUsage, subs: []command{
			{name: "serve", synopsis: "--dir DIR --trust ID=KEY --tls-cert F --tls-key F  the policy bundle service (TLS, ETag, long-poll)", usage: bundleUsage, flags: true},
		}},
		{name: "audit", run: cmdAudit, subs: []command{
			{name: "verify", synopsis: "[--key KEY|@FILE]… SRC…  check audit records' hash chains and signed checkpoints", flags: true,
				usage: "usage: warden audit verify [--key KEY|@FILE]… [--min-seq INSTANCE=SEQ]… [--allow-open] [--s3-endpoint URL --s3-region R --s3-path-style] SRC…\n" +
					"        check every instance's hash chain and signed checkpoints; SRC: a file, a directory or s3://bucket/prefix\n"},
			{name: "report", synopsis: "[--html FILE] SRC…  summarise audit records per account, app, model and decision", usage: auditReportUsage, flags: true},
		}},
		{name: "keys", run: cmdKeys, usage: keysUsage, subs: []command{
			{name: "issue", synopsis: "--app APP --ttl 30d --master-key FILE  print a Warden-issued SigV4 key", usage: keysUsage, flags: true},
			{name: "genmaster", synopsis: "--out FILE  create a master key file", usage: keysUsage, flags: true},
			{name: "inspect", synopsis: "ACCESS_KEY_ID  print the app and expiry a key id names", usage: keysUsage},
			{name: "bundle-key", synopsis: "--id ID --out DIR  create an Ed25519 policy-bundle signing key", usage: keysUsage, flags: true},
		}},
		{name: "ca", run: cmdCA, usage: caUsage, subs: []command{
			{name: "bundle", synopsis: "--ca-cert FILE --out FILE  AWS_CA_BUNDLE: system roots plus Warden's CA", usage: caUsage},
			{name: "cert", synopsis: "--ca-cert FILE --out FILE  Warden's CA certificate alone (NODE_EXTRA_CA_CERTS)", usage: caUsage},
		}},
		{name: "iptables", synopsis: "[--port 8482] [--cidr CIDR]… [--apply]  print (or install, over netlink) the transparent-mode redirect", usage: iptablesUsage, flags: true, run: cmdIptables},
		{name: "inject", synopsis: "--config FILE --tls-cert FILE --tls-key FILE  the Kubernetes sidecar injector (mutating webhook; --audit lists stale pods)",
			usage: injectUsage, flags: true, run: cmdInject},
		{name: "healthcheck", synopsis: "[--url URL]  probe the admin /healthz (container health checks)", flags: true, run: cmdHealthcheck,
			usage: "usage: warden healthcheck [--url URL] [--timeout 2s]\n        probe the admin /healthz; exit 0 when it answers 200\n"},
		{name: "version", synopsis: "print the version (also --version)", usage: "usage: warden version\n        print the version, the VCS revision and the Go version the binary was built with\n",
			run: func(_ context.Context, _ []string, stdout, _ io.Writer) error {
				_, err := fmt.Fprintln(stdout, versionString())
				return err
			}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeOverview(stderr)
		return 2
	}
	if args[0] == "--version" || args[0] == "-version" {
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	if path, ok := helpRequest(args); ok {
		if err := writeHelp(ctx, stdout, path); err != nil {
			fmt.Fprintf(stderr, "warden: %v\n\n", err)
			writeOverview(stderr)
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "warden %s: %v\n", args[0], err)
			if errors.As(err, new(usageError)) {
				return 2 // the command line is wrong, as for an unknown command
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "warden: unknown command %q\n\n", args[0])
	writeOverview(stderr)
	return 2
}

// helpRequest says whether args ask for help, and about which command path:
// `warden help [CMD [SUB]]`, `warden CMD help`, or -h/--help anywhere
// before a "--".
func helpRequest(args []string) ([]string, bool) {
	isHelp := func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }
	if args[0] == "help" || isHelp(args[0]) {
		return leadingWords(args[1:]), true
	}
	if len(args) > 1 && args[1] == "help" {
		return append([]string{args[0]}, leadingWords(args[2:])...), true
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) {
			return leadingWords(args), true
		}
	}
	return nil, false
}

// leadingWords are the command and subcommand names: the arguments before
// the first flag, at most two.
func leadingWords(args []string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(out) == 2 {
			break
		}
		out = append(out, a)
	}
	return out
}

// writeOverview lists every command and subcommand.
func writeOverview(w io.Writer) {
	var b strings.Builder
	b.WriteString("warden — per-application control over Amazon Bedrock\n\nusage: warden COMMAND [SUBCOMMAND] [flags]\n\ncommands:\n")
	line := func(name, synopsis string) {
		args, desc, ok := strings.Cut(synopsis, "  ")
		if !ok {
			args, desc = "", synopsis
		}
		head := strings.TrimSpace("warden " + name + " " + args)
		fmt.Fprintf(&b, "  %s\n        %s\n", head, desc)
	}
	for _, c := range commands() {
		if len(c.subs) == 0 {
			line(c.name, c.synopsis)
			continue
		}
		for _, s := range c.subs {
			line(c.name+" "+s.name, s.synopsis)
		}
	}
	b.WriteString("\n`warden help COMMAND [SUBCOMMAND]`, or -h/--help after any command, prints its usage and flags.\n")
	fmt.Fprint(w, b.String())
}

// writeHelp prints the usage of the command path names (the overview for
// none) and, for a command that parses flags, its flags.
func writeHelp(ctx context.Context, w io.Writer, path []string) error {
	if len(path) == 0 || path[0] == "help" { // `warden help help`: the overview says how help works
		writeOverview(w)
		return nil
	}
	for _, c := range commands() {
		if c.name != path[0] {
			continue
		}
		if len(c.subs) == 0 {
			fmt.Fprint(w, c.usage)
			if c.flags {
				writeFlags(ctx, w, c.run, []string{"-h"})
			}
			return nil
		}
		if len(path) == 1 && c.usage != "" {
			fmt.Fprint(w, c.usage)
			fmt.Fprintf(w, "\n`warden %s SUBCOMMAND --help` prints a subcommand's usage and flags.\n", c.name)
			return nil
		}
		if len(path) == 1 {
			fmt.Fprintf(w, "usage: warden %s SUBCOMMAND [flags]\n\n", c.name)
			for _, s := range c.subs {
				fmt.Fprintf(w, "  warden %s %s %s\n", c.name, s.name, s.synopsis)
			}
			fmt.Fprintf(w, "\n`warden %s SUBCOMMAND --help` prints a subcommand's usage and flags.\n", c.name)
			return nil
		}
		for _, s := range c.subs {
			if s.name == path[1] {
				if !strings.HasPrefix(s.usage, "usage") {
					fmt.Fprint(w, "usage:\n")
				}
				fmt.Fprint(w, s.usage)
				if s.flags {
					writeFlags(ctx, w, c.run, []string{s.name, "-h"})
				}
				return nil
			}
		}
		return fmt.Errorf("%s: unknown subcommand %q", c.name, path[1])
	}
	return fmt.Errorf("unknown command %q", path[0])
}

// writeFlags runs a command with -h, which makes its flag set print its
// defaults and stop, and keeps just the flag lines ("  -name …" and their
// "    \t…" continuations).
func writeFlags(ctx context.Context, w io.Writer, run func(context.Context, []string, io.Writer, io.Writer) error, args []string) {
	var out bytes.Buffer
	_ = run(ctx, args, io.Discard, &out) // flag.ErrHelp, by design
	var flags []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "  -") || strings.HasPrefix(l, "    \t") {
			flags = append(flags, l)
		}
	}
	if len(flags) > 0 {
		fmt.Fprintf(w, "\nflags:\n%s\n", strings.Join(flags, "\n"))
	}
}

// version is the release name, set at build time with
// -ldflags "-X main.version=v1.2.3". Left empty, versionString uses the
// module version and VCS revision Go records in the binary.
var version = ""

func versionString() string {
	info, _ := debug.ReadBuildInfo() // nil when the binary carries none
	return formatVersion(version, info)
}

// versionLabel is the version and revision alone, for warden_build_info
// (which carries the Go version in a label of its own).
func versionLabel() string {
	info, _ := debug.ReadBuildInfo()
	v := strings.TrimPrefix(formatVersion(version, info), "warden ")
	if info != nil && info.GoVersion != "" {
		v = strings.TrimSuffix(v, " "+info.GoVersion)
	}
	return v
}

// formatVersion is "warden VERSION [REVISION[-dirty]] GOVERSION".
func formatVersion(ldflagsVersion string, info *debug.BuildInfo) string {
	v := ldflagsVersion
	if v == "" {
		v = "(devel)"
		if info != nil && info.Main.Version != "" {
			v = info.Main.Version
		}
	}
	parts := []string{"warden", v}
	if info != nil {
		rev, dirty := "", false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "-dirty"
		}
		if rev != "" {
			parts = append(parts, rev)
		}
		if info.GoVersion != "" {
			parts = append(parts, info.GoVersion)
		}
	}
	return strings.Join(parts, " ")
}

// usageError is a command line the command cannot run: an unknown flag or
// subcommand, a flag's bad value, stray arguments. warden exits 2 for it
// (as for an unknown command), 1 when the command ran and failed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error {
	return usageError{fmt.Errorf(format, a...)}
}

// parseFlags parses a command's flags; a parse failure other than -h is a
// usageError (the flag package has already printed the flags to stderr).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}
