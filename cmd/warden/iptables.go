package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
)

// wardenChain is the nat chain `warden iptables` creates and hooks from OUTPUT.
const wardenChain = "WARDEN_OUTPUT"

const iptablesUsage = `usage: warden iptables [flags]

Prints the NAT rules an init container installs so that outbound TCP 443 from
the pod is redirected to Warden's transparent listener (Istio-style, no eBPF).
The init container needs NET_ADMIN and NET_RAW; Warden itself does not.

Rules, in the chain WARDEN_OUTPUT of the nat table, hooked from OUTPUT:
  RETURN for Warden's own --uid and --gid (its upstream connections are never
  looped back), RETURN for loopback (127.0.0.0/8, ::1/128) and each
  --exclude-cidr, then REDIRECT of TCP 443 to --port for each --cidr.

Output formats:
  --format commands   (default) one iptables/ip6tables command a line, for
                      "sh -e"; re-running it is safe (the chain is created if
                      missing, flushed and refilled; OUTPUT is hooked once)
  --format restore    the IPv4 rules for iptables-restore
  --format restore6   the IPv6 rules for ip6tables-restore
  (iptables-restore without --noflush replaces the whole nat table: right for
  a pod's own network namespace, wrong on a shared host.)

--apply runs the commands itself (iptables/ip6tables from PATH, no shell),
stopping at the first failure.

flags:
`

// iptablesConfig is the validated input of `warden iptables`.
type iptablesConfig struct {
	port     int
	uid, gid int64
	cidrs    []netip.Prefix // redirected destinations
	excludes []netip.Prefix // destinations left alone
	ipv6     bool
}

// iptablesStep is one command; tolerate means a failure is not an error,
// orElse runs only when this step fails (a -C check followed by its -A).
type iptablesStep struct {
	bin      string
	args     []string
	tolerate bool
	orElse   *iptablesStep
}

func (s iptablesStep) String() string { return s.bin + " " + strings.Join(s.args, " ") }

// shell renders the step as a line for `sh -e`. Every argument comes from a
// constant, an integer or a canonical CIDR, so none needs quoting.
func (s iptablesStep) shell() string {
	switch {
	case s.orElse != nil:
		return s.String() + " 2>/dev/null || " + s.orElse.String()
	case s.tolerate:
		return s.String() + " 2>/dev/null || true"
	}
	return s.String()
}

func cmdIptables(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iptables", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, iptablesUsage); fs.PrintDefaults() }
	port := fs.Int("port", 8482, "Warden's transparent listener port (1-65535)")
	uid := fs.Int64("uid", 65532, "UID Warden runs as; its connections are not redirected")
	gid := fs.Int64("gid", 65532, "GID Warden runs as; its connections are not redirected")
	ipv6 := fs.Bool("ipv6", true, "also emit ip6tables rules")
	format := fs.String("format", "commands", "output format: commands, restore or restore6")
	apply := fs.Bool("apply", false, "run the commands instead of printing them")
	var cidrs, excludes listFlag
	fs.Var(&cidrs, "cidr", "redirect TCP 443 to this destination CIDR (repeatable; default 0.0.0.0/0 and, with --ipv6, ::/0)")
	fs.Var(&excludes, "exclude-cidr", "never redirect this destination CIDR (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := parseIptablesConfig(*port, *uid, *gid, *ipv6, cidrs, excludes)
	if err != nil {
		return err
	}
	switch *format {
	case "commands":
	case "restore", "restore6":
		if *apply {
			return fmt.Errorf("--apply runs commands; --format %s is for printing only", *format)
		}
		if *format == "restore6" && !cfg.ipv6 {
			return errors.New("--format restore6 needs --ipv6=true")
		}
	default:
		return fmt.Errorf("--format %q: want commands, restore or restore6", *format)
	}
	steps := cfg.steps()
	if *apply {
		return applyIptables(ctx, steps, stdout)
	}
	switch *format {
	case "restore", "restore6":
		v6 := *format == "restore6"
		if cfg.chainRules(v6) == nil {
			return fmt.Errorf("--format %s: no --cidr of that address family to redirect", *format)
		}
		_, err = io.WriteString(stdout, cfg.restore(v6))
	default:
		var b strings.Builder
		b.WriteString("# warden iptables: run with sh -e in an init container with NET_ADMIN and NET_RAW\n")
		for _, s := range steps {
			b.WriteString(s.shell())
			b.WriteByte('\n')
		}
		_, err = io.WriteString(stdout, b.String())
	}
	return err
}

// parseIptablesConfig validates the flags.
func parseIptablesConfig(port int, uid, gid int64, ipv6 bool, cidrs, excludes []string) (iptablesConfig, error) {
	cfg := iptablesConfig{port: port, uid: uid, gid: gid, ipv6: ipv6}
	if port < 1 || port > 65535 {
		return cfg, fmt.Errorf("--port %d: want 1-65535", port)
	}
	// 4294967295 is (uid_t)-1, "no user"; owner matches take 0..2^32-2.
	const maxID = 1<<32 - 2
	if uid < 0 || uid > maxID {
		return cfg, fmt.Errorf("--uid %d: want 0-%d", uid, int64(maxID))
	}
	if gid < 0 || gid > maxID {
		return cfg, fmt.Errorf("--gid %d: want 0-%d", gid, int64(maxID))
	}
	var err error
	if cfg.cidrs, err = parseCIDRs("--cidr", cidrs, ipv6); err != nil {
		return cfg, err
	}
	if cfg.excludes, err = parseCIDRs("--exclude-cidr", excludes, ipv6); err != nil {
		return cfg, err
	}
	if len(cidrs) == 0 {
		cfg.cidrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
		if ipv6 {
			cfg.cidrs = append(cfg.cidrs, netip.MustParsePrefix("::/0"))
		}
	}
	return cfg, nil
}

func parseCIDRs(name string, in []string, ipv6 bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, s := range in {
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%s %q: not a CIDR (want e.g. 10.0.0.0/8 or fd00::/8)", name, f)
			}
			if p.Addr().Zone() != "" {
				return nil, fmt.Errorf("%s %q: zones are not allowed", name, f)
			}
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("%s %q: IPv4-mapped IPv6 prefixes are ambiguous; write the IPv4 CIDR", name, f)
			}
			if p.Masked() != p {
				return nil, fmt.Errorf("%s %q: host bits set (did you mean %s?)", name, f, p.Masked())
			}
			if p.Addr().Is6() && !ipv6 {
				return nil, fmt.Errorf("%s %q: IPv6 CIDR with --ipv6=false", name, f)
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// family returns the prefixes of one address family.
func family(ps []netip.Prefix, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			out = append(out, p)
		}
	}
	return out
}

// chainRules are the -A rules of WARDEN_OUTPUT for one family, without the
// leading "-A WARDEN_OUTPUT"; nil when that family has nothing to redirect.
func (c iptablesConfig) chainRules(v6 bool) [][]string {
	targets := family(c.cidrs, v6)
	if len(targets) == 0 || (v6 && !c.ipv6) {
		return nil
	}
	loopback := "127.0.0.0/8"
	if v6 {
		loopback = "::1/128"
	}
	rules := [][]string{
		{"-m", "owner", "--uid-owner", strconv.FormatInt(c.uid, 10), "-j", "RETURN"},
		{"-m", "owner", "--gid-owner", strconv.FormatInt(c.gid, 10), "-j", "RETURN"},
		{"-d", loopback, "-j", "RETURN"},
	}
	for _, p := range family(c.excludes, v6) {
		rules = append(rules, []string{"-d", p.String(), "-j", "RETURN"})
	}
	for _, p := range targets {
		rules = append(rules, []string{"-p", "tcp", "-d", p.String(), "--dport", "443",
			"-j", "REDIRECT", "--to-ports", strconv.Itoa(c.port)})
	}
	return rules
}

// hookRule is how OUTPUT jumps to the chain.
var hookRule = []string{"OUTPUT", "-p", "tcp", "-j", wardenChain}

// steps are the commands, IPv4 first. The chain is filled before OUTPUT jumps
// to it, so there is no moment with a partial rule set in the path.
func (c iptablesConfig) steps() []iptablesStep {
	var steps []iptablesStep
	for _, v6 := range []bool{false, true} {
		rules := c.chainRules(v6)
		if rules == nil {
			continue
		}
		bin := "iptables"
		if v6 {
			bin = "ip6tables"
		}
		nat := func(args ...string) []string { return append([]string{"-t", "nat"}, args...) }
		// -N fails when the chain exists (a re-run); a real failure (no
		// permission, no nat table) makes the -F right after it fail too.
		steps = append(steps,
			iptablesStep{bin: bin, args: nat("-N", wardenChain), tolerate: true},
			iptablesStep{bin: bin, args: nat("-F", wardenChain)})
		for _, r := range rules {
			steps = append(steps, iptablesStep{bin: bin, args: nat(append([]string{"-A", wardenChain}, r...)...)})
		}
		steps = append(steps, iptablesStep{bin: bin, args: nat(append([]string{"-C"}, hookRule...)...),
			orElse: &iptablesStep{bin: bin, args: nat(append([]string{"-A"}, hookRule...)...)}})
	}
	return steps
}

// restore renders one family for iptables-restore / ip6tables-restore.
func (c iptablesConfig) restore(v6 bool) string {
	var b strings.Builder
	tool := "iptables-restore"
	if v6 {
		tool = "ip6tables-restore"
	}
	fmt.Fprintf(&b, "# warden iptables: load with %s in an init container with NET_ADMIN and NET_RAW\n", tool)
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n", wardenChain)
	for _, r := range c.chainRules(v6) {
		fmt.Fprintf(&b, "-A %s %s\n", wardenChain, strings.Join(r, " "))
	}
	fmt.Fprintf(&b, "-A %s\n", strings.Join(hookRule, " "))
	b.WriteString("COMMIT\n")
	return b.String()
}

// applyIptables runs the steps without a shell, stopping at the first failure.
func applyIptables(ctx context.Context, steps []iptablesStep, stdout io.Writer) error {
	run := func(s iptablesStep) error {
		out, err := exec.CommandContext(ctx, s.bin, s.args...).CombinedOutput()
		if err != nil {
			msg := strings.TrimSpace(string(out))
			if msg != "" {
				return fmt.Errorf("%s: %w: %s", s, err, msg)
			}
			return fmt.Errorf("%s: %w", s, err)
		}
		return nil
	}
	for _, s := range steps {
		fmt.Fprintln(stdout, "+", s)
		err := run(s)
		switch {
		case err == nil || s.tolerate:
		case s.orElse != nil:
			fmt.Fprintln(stdout, "+", *s.orElse)
			if err := run(*s.orElse); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return nil
}
