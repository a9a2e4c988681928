package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/warden-egress/warden/internal/testenv"
)

// The dry-run output of `warden iptables` (the nft rule set --apply would
// install) is compared with testdata/iptables/*.golden;
// run `go test ./cmd/warden -run TestIptablesGolden -update` after an intended
// change and review the diff.
func TestIptablesGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"ipv4_only", []string{"--ipv6=false"}},
		{"custom_port_uid_gid", []string{"--port", "15001", "--uid", "1337", "--gid", "0"}},
		// IPv4 ranges alone: IPv6 is still redirected, everywhere.
		{"v4_cidr_only", []string{"--cidr", "52.94.0.0/16", "--exclude-cidr", "169.254.169.254/32"}},
		{"cidrs_excludes", []string{
			"--cidr", "10.0.0.0/8", "--cidr", "172.16.0.0/12,fd00::/8", "--cidr", "2600:1f00::/24",
			"--exclude-cidr", "10.96.0.0/12", "--exclude-cidr", "169.254.169.254/32",
			"--exclude-cidr", "fd00:ec2::254/128"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), append([]string{"iptables"}, tc.args...), &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			golden := filepath.Join("testdata", "iptables", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("output differs from %s (run with -update and review the diff):\n--- got\n%s\n--- want\n%s", golden, out.String(), want)
			}
		})
	}
}

func TestIptablesValidation(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"port_zero", []string{"--port", "0"}, "--port 0: port out of range: want 1-65535"},
		{"port_high", []string{"--port", "65536"}, "--port 65536: port out of range: want 1-65535"},
		{"port_negative", []string{"--port", "-1"}, "--port -1: port out of range: want 1-65535"},
		{"uid_negative", []string{"--uid", "-1"}, "--uid -1: uid or gid out of range: want 0-4294967294"},
		{"gid_negative", []string{"--gid", "-5"}, "--gid -5: uid or gid out of range: want 0-4294967294, or -1 for none"},
		{"uid_too_big", []string{"--uid", "4294967295"}, "--uid 4294967295: uid or gid out of range: want 0-4294967294"},
		{"cidr_garbage", []string{"--cidr", "bedrock"}, `--cidr "bedrock": invalid CIDR: not a CIDR`},
		{"cidr_bare_ip", []string{"--cidr", "10.0.0.1"}, `--cidr "10.0.0.1": invalid CIDR: not a CIDR`},
		{"cidr_host_bits", []string{"--cidr", "10.0.0.1/8"}, `--cidr "10.0.0.1/8": invalid CIDR: host bits set (did you mean 10.0.0.0/8?)`},
		{"cidr_shell", []string{"--cidr", "10.0.0.0/8;reboot"}, `--cidr "10.0.0.0/8;reboot": invalid CIDR: not a CIDR`},
		{"cidr_empty_item", []string{"--cidr", "10.0.0.0/8,"}, `--cidr "": invalid CIDR: not a CIDR`},
		{"cidr_mapped", []string{"--cidr", "::ffff:10.0.0.0/104"}, "IPv4-mapped IPv6 prefixes are ambiguous"},
		{"cidr_v6_without_ipv6", []string{"--ipv6=false", "--cidr", "fd00::/8"}, `--cidr "fd00::/8": invalid CIDR: IPv6 CIDR with --ipv6=false`},
		{"exclude_v6_without_ipv6", []string{"--ipv6=false", "--exclude-cidr", "::1/128"}, `--exclude-cidr "::1/128": invalid CIDR: IPv6 CIDR with --ipv6=false`},
		{"exclude_garbage", []string{"--exclude-cidr", "x/33"}, `--exclude-cidr "x/33": invalid CIDR: not a CIDR`},
		{"exclude_prefix_too_long", []string{"--exclude-cidr", "10.0.0.0/33"}, `--exclude-cidr "10.0.0.0/33": invalid CIDR: not a CIDR`},
		{"format_removed", []string{"--format", "restore"}, "flag provided but not defined: -format"},
		{"delete_with_apply", []string{"--delete", "--apply"}, "--delete goes alone, without --apply or --print"},
		{"delete_with_print", []string{"--delete", "--print"}, "--delete goes alone"},
		{"bad_cidr_before_apply", []string{"--apply", "--cidr", "10.0.0.1/8"}, "did you mean 10.0.0.0/8?"},
		{"positional", []string{"extra"}, `unexpected argument "extra"`},
		{"port_not_int", []string{"--port", "http"}, `invalid value "http" for flag -port`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"iptables"}, tc.args...), &out, &errOut)
			want := 1
			if strings.Contains(tc.want, "flag provided but not defined") || strings.Contains(tc.want, "invalid value") {
				want = 2 // the flag package refused the command line: a usage error
			}
			if code != want {
				t.Errorf("exit %d, want %d", code, want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout not empty on error:\n%s", out.String())
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tc.want)
			}
		})
	}
}

// inNetns runs fn on a thread of its own in a new network namespace, with
// that thread's effective capabilities set by caps when it is not nil; the
// thread is thrown away afterwards, so nothing else runs in the namespace or
// with those capabilities. `warden iptables` opens its netlink socket on the
// calling thread, so it programs that namespace with those capabilities.
func inNetns(t *testing.T, caps func(effective [2]uint32) [2]uint32, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "warden iptables --apply tests need root to create a network namespace")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		if caps != nil {
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				errc <- err
				return
			}
			eff := caps([2]uint32{data[0].Effective, data[1].Effective})
			data[0].Effective, data[1].Effective = eff[0], eff[1]
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		testenv.Missing(t, "cannot create a network namespace: %v", err)
	}
	<-errc
}

// --apply installs the dry run's table, twice is still one table, --print
// reads it back, --delete removes it; all over netlink, no binary involved.
func TestIptablesApply(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no iptables, nft or anything else to run
	args := []string{"--port", "15001", "--uid", "1337", "--gid", "1338",
		"--cidr", "10.0.0.0/8", "--cidr", "fd00::/8", "--exclude-cidr", "10.96.0.0/12"}
	type step struct {
		args           []string
		code           int
		stdout, stderr string
	}
	var dry bytes.Buffer
	if code := run(context.Background(), append([]string{"iptables"}, args...), &dry, &dry); code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, dry.String())
	}
	table := strings.TrimPrefix(dry.String(), "# warden iptables: dry run, nothing applied; --apply installs this table over netlink\n")
	installed := "warden iptables: table inet warden installed, 7 rules, read back and verified\n"
	readBack := "# warden iptables: read back from the kernel\n" + table
	steps := []step{
		{args: []string{"--print"}, code: 1, stderr: "warden iptables: nftables table inet warden: no such table (nothing applied in this network namespace)\n"},
		{args: append([]string{"--apply"}, args...), stdout: installed},
		{args: append([]string{"--apply", "--print"}, args...), stdout: installed + readBack},
		{args: []string{"--print"}, stdout: readBack},
		{args: []string{"--delete"}, stdout: "warden iptables: table inet warden removed\n"},
		{args: []string{"--delete"}, stdout: "warden iptables: table inet warden removed\n"},
		{args: []string{"--print"}, code: 1, stderr: "no such table"},
	}
	inNetns(t, nil, func() {
		for _, s := range steps {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"iptables"}, s.args...), &out, &errOut)
			if code != s.code || out.String() != s.stdout || !strings.Contains(errOut.String(), s.stderr) || (s.stderr == "" && errOut.Len() > 0) {
				t.Errorf("warden iptables %s: exit %d\n--- stdout\n%s--- stderr\n%s\nwant exit %d\n--- stdout\n%s--- stderr containing\n%s",
					strings.Join(s.args, " "), code, out.String(), errOut.String(), s.code, s.stdout, s.stderr)
			}
		}
	})
	if !strings.Contains(table, "ip6 daddr fd00::/8 meta l4proto tcp tcp dport 443 counter packets 0 bytes 0 redirect to :15001") {
		t.Errorf("dry run lacks the IPv6 redirect:\n%s", table)
	}
}

// NET_ADMIN alone is enough (no NET_RAW: netlink needs no raw socket, unlike
// the iptables binary), and without it the error says what is missing.
func TestIptablesApplyCapabilities(t *testing.T) {
	const netAdmin = 1 << unix.CAP_NET_ADMIN
	inNetns(t, func([2]uint32) [2]uint32 { return [2]uint32{netAdmin, 0} }, func() {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"iptables", "--apply"}, &out, &errOut); code != 0 {
			t.Errorf("with CAP_NET_ADMIN only: exit %d, stderr %q", code, errOut.String())
		}
	})
	inNetns(t, func(eff [2]uint32) [2]uint32 { return [2]uint32{eff[0] &^ netAdmin, eff[1]} }, func() {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"iptables", "--apply"}, &out, &errOut)
		want := "needs CAP_NET_ADMIN in the pod's network namespace"
		if code != 1 || out.Len() != 0 || !strings.Contains(errOut.String(), "installing nftables table inet warden") || !strings.Contains(errOut.String(), want) {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and an error naming the table and %q", code, out.String(), errOut.String(), want)
		}
	})
}

// The table docs/deployment.md shows is the dry run of the defaults.
func TestIptablesDocsExample(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "iptables", "defaults.golden"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deployment.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(golden), "\n")
	if !strings.Contains(string(doc), "```\n"+table+"```\n") {
		t.Errorf("docs/deployment.md does not show the default table; paste it from %s:\n%s", "testdata/iptables/defaults.golden", table)
	}
}
