package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/google/nftables"

	"github.com/warden-egress/warden/internal/redirect"
)

const iptablesUsage = `usage: warden iptables [flags]

The transparent-mode redirect: outbound TCP 443 from the pod goes to Warden's
transparent listener (Istio-style, no eBPF). An init container with NET_ADMIN
installs it with --apply; Warden itself needs no capability.

The rules are programmed over netlink (nftables), so no iptables or nft binary
is needed: the init container runs this same static image. They live in their
own table, inet warden, chain output (type nat hook output priority -100):
  return for sockets owned by Warden's --uid (and --gid if set; no group by
  default, since an app image may share Warden's group) (its upstream
  connections are never looped back); return for loopback (127.0.0.0/8, ::1)
  and each --exclude-cidr; then redirect TCP 443 to --port for each --cidr
  (an address family with no --cidr of its own is redirected everywhere).
One inet table covers IPv4 and IPv6. IPv6 connections are redirected like
IPv4 ones, to [::1]:PORT: served when Warden's transparent listener is on
[::1], refused by the kernel otherwise, so IPv6 never goes around Warden.

  (no flag)         print the table --apply would install (nft syntax), change nothing
  --apply           install the table in one atomic netlink batch (replacing an
                    earlier one: applying twice leaves one table), read it back
                    and check it is exactly the plan
  --apply --print   the same, then print the table read back from the kernel
  --print           print the table the kernel holds now, with counters
  --delete          remove the table (no error when it is absent)
The command name is historical: it no longer runs iptables.

flags:
`

func cmdIptables(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iptables", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, iptablesUsage); fs.PrintDefaults() }
	port := fs.Int("port", 8482, "Warden's transparent listener port (1-65535)")
	uid := fs.Int64("uid", 65532, "UID Warden runs as; its connections are not redirected")
	gid := fs.Int64("gid", -1, "also exempt sockets of this group (default -1: none; a group is not Warden's alone)")
	ipv6 := fs.Bool("ipv6", true, "also redirect IPv6 (to [::1]:PORT); false leaves IPv6 egress alone")
	apply := fs.Bool("apply", false, "install the table (needs NET_ADMIN in the network namespace)")
	printTable := fs.Bool("print", false, "print the table as the kernel holds it (after --apply, or alone: now)")
	del := fs.Bool("delete", false, "remove the table")
	var cidrs, excludes listFlag
	fs.Var(&cidrs, "cidr", "redirect TCP 443 to this destination CIDR (repeatable); a family with none is redirected everywhere (0.0.0.0/0; ::/0 with --ipv6)")
	fs.Var(&excludes, "exclude-cidr", "never redirect this destination CIDR (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *del && (*apply || *printTable) {
		return errors.New("--delete goes alone, without --apply or --print")
	}
	cfg, err := redirect.NewConfig(*port, *uid, *gid, *ipv6, cidrs, excludes)
	if err != nil {
		return err
	}
	plan := redirect.Build(cfg)
	if !*apply && !*printTable && !*del {
		_, err := io.WriteString(stdout, "# warden iptables: dry run, nothing applied; --apply installs this table over netlink\n"+plan.Text(true))
		return err
	}

	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening netlink: %w", err)
	}
	switch {
	case *del:
		if err := redirect.Delete(conn, plan.Family, plan.Table); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "warden iptables: table inet %s removed\n", plan.Table)
		return err
	case *apply:
		if err := redirect.Apply(conn, plan); err != nil {
			return err
		}
	}
	got, err := redirect.Read(conn, plan.Family, plan.Table)
	if err != nil {
		return err
	}
	if *apply {
		// Counters aside (traffic may already flow), the kernel must hold
		// exactly the plan; anything else is an error, not a warning.
		if want, have := plan.Text(false), got.Text(false); have != want {
			return fmt.Errorf("the kernel holds a different table than the one applied:\n--- kernel\n%s--- applied\n%s", have, want)
		}
		n := 0
		for _, c := range got.Chains {
			n += len(c.Rules)
		}
		if _, err := fmt.Fprintf(stdout, "warden iptables: table inet %s installed, %d rules, read back and verified\n", plan.Table, n); err != nil {
			return err
		}
	}
	if *printTable {
		_, err := io.WriteString(stdout, "# warden iptables: read back from the kernel\n"+got.Text(true))
		return err
	}
	return nil
}
