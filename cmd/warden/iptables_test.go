package main

import (
	"github.com/warden-egress/warden/internal/testenv"

	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The output of `warden iptables` is compared with testdata/iptables/*.golden;
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
		{"cidrs_excludes", []string{
			"--cidr", "10.0.0.0/8", "--cidr", "172.16.0.0/12,fd00::/8", "--cidr", "2600:1f00::/24",
			"--exclude-cidr", "10.96.0.0/12", "--exclude-cidr", "169.254.169.254/32",
			"--exclude-cidr", "fd00:ec2::254/128"}},
		{"restore", []string{"--format", "restore", "--exclude-cidr", "169.254.169.254/32"}},
		{"restore6", []string{"--format", "restore6", "--exclude-cidr", "fd00:ec2::254/128"}},
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
		{"port_zero", []string{"--port", "0"}, "--port 0: want 1-65535"},
		{"port_high", []string{"--port", "65536"}, "--port 65536: want 1-65535"},
		{"port_negative", []string{"--port", "-1"}, "--port -1: want 1-65535"},
		{"uid_negative", []string{"--uid", "-1"}, "--uid -1: want 0-4294967294"},
		{"gid_negative", []string{"--gid", "-5"}, "--gid -5: want 0-4294967294"},
		{"uid_too_big", []string{"--uid", "4294967295"}, "--uid 4294967295: want 0-4294967294"},
		{"cidr_garbage", []string{"--cidr", "bedrock"}, `--cidr "bedrock": not a CIDR`},
		{"cidr_bare_ip", []string{"--cidr", "10.0.0.1"}, `--cidr "10.0.0.1": not a CIDR`},
		{"cidr_host_bits", []string{"--cidr", "10.0.0.1/8"}, `--cidr "10.0.0.1/8": host bits set (did you mean 10.0.0.0/8?)`},
		{"cidr_shell", []string{"--cidr", "10.0.0.0/8;reboot"}, `--cidr "10.0.0.0/8;reboot": not a CIDR`},
		{"cidr_empty_item", []string{"--cidr", "10.0.0.0/8,"}, `--cidr "": not a CIDR`},
		{"cidr_mapped", []string{"--cidr", "::ffff:10.0.0.0/104"}, "IPv4-mapped IPv6 prefixes are ambiguous"},
		{"cidr_v6_without_ipv6", []string{"--ipv6=false", "--cidr", "fd00::/8"}, `--cidr "fd00::/8": IPv6 CIDR with --ipv6=false`},
		{"exclude_v6_without_ipv6", []string{"--ipv6=false", "--exclude-cidr", "::1/128"}, `--exclude-cidr "::1/128": IPv6 CIDR with --ipv6=false`},
		{"exclude_garbage", []string{"--exclude-cidr", "x/33"}, `--exclude-cidr "x/33": not a CIDR`},
		{"exclude_prefix_too_long", []string{"--exclude-cidr", "10.0.0.0/33"}, `--exclude-cidr "10.0.0.0/33": not a CIDR`},
		{"format_unknown", []string{"--format", "nft"}, `--format "nft": want commands, restore or restore6`},
		{"restore_apply", []string{"--format", "restore", "--apply"}, "--apply runs commands; --format restore is for printing only"},
		{"restore6_no_ipv6", []string{"--format", "restore6", "--ipv6=false"}, "--format restore6 needs --ipv6=true"},
		{"restore6_no_v6_cidr", []string{"--format", "restore6", "--cidr", "10.0.0.0/8"}, "--format restore6: no --cidr of that address family"},
		{"restore_no_v4_cidr", []string{"--format", "restore", "--cidr", "fd00::/8"}, "--format restore: no --cidr of that address family"},
		{"positional", []string{"extra"}, `unexpected argument "extra"`},
		{"port_not_int", []string{"--port", "http"}, `invalid value "http" for flag -port`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"iptables"}, tc.args...), &out, &errOut)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
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

// fakeIptables puts iptables and ip6tables on PATH that append their argv to
// a log and fail when their arguments contain $FAKE_IPTABLES_FAIL.
func fakeIptables(t *testing.T) (logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "argv.log")
	script := `#!/bin/sh
echo "${0##*/} $*" >> "$FAKE_IPTABLES_LOG"
if [ -n "$FAKE_IPTABLES_FAIL" ]; then
  case " $* " in *" $FAKE_IPTABLES_FAIL "*) echo "fake: refused" >&2; exit 1;; esac
fi
exit 0
`
	for _, name := range []string{"iptables", "ip6tables"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	t.Setenv("FAKE_IPTABLES_LOG", logPath)
	t.Setenv("FAKE_IPTABLES_FAIL", "")
	return logPath
}

func readLog(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func TestIptablesApply(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		testenv.Missing(t, "no /bin/sh for the fake iptables")
	}
	args := []string{"iptables", "--apply", "--port", "15001", "--uid", "1337", "--gid", "1338",
		"--cidr", "10.0.0.0/8", "--cidr", "fd00::/8", "--exclude-cidr", "10.96.0.0/12"}

	t.Run("fresh", func(t *testing.T) {
		log := fakeIptables(t)
		// A fresh namespace: OUTPUT does not jump to the chain yet, so -C fails and -A runs.
		t.Setenv("FAKE_IPTABLES_FAIL", "-C OUTPUT")
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		want := []string{
			"iptables -t nat -N WARDEN_OUTPUT",
			"iptables -t nat -F WARDEN_OUTPUT",
			"iptables -t nat -A WARDEN_OUTPUT -m owner --uid-owner 1337 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -m owner --gid-owner 1338 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -d 127.0.0.0/8 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -d 10.96.0.0/12 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -p tcp -d 10.0.0.0/8 --dport 443 -j REDIRECT --to-ports 15001",
			"iptables -t nat -C OUTPUT -p tcp -j WARDEN_OUTPUT",
			"iptables -t nat -A OUTPUT -p tcp -j WARDEN_OUTPUT",
			"ip6tables -t nat -N WARDEN_OUTPUT",
			"ip6tables -t nat -F WARDEN_OUTPUT",
			"ip6tables -t nat -A WARDEN_OUTPUT -m owner --uid-owner 1337 -j RETURN",
			"ip6tables -t nat -A WARDEN_OUTPUT -m owner --gid-owner 1338 -j RETURN",
			"ip6tables -t nat -A WARDEN_OUTPUT -d ::1/128 -j RETURN",
			"ip6tables -t nat -A WARDEN_OUTPUT -p tcp -d fd00::/8 --dport 443 -j REDIRECT --to-ports 15001",
			"ip6tables -t nat -C OUTPUT -p tcp -j WARDEN_OUTPUT",
			"ip6tables -t nat -A OUTPUT -p tcp -j WARDEN_OUTPUT",
		}
		if got := readLog(t, log); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("argv sequence:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// What it ran is echoed, one "+ " line per command.
		if got := strings.Count(out.String(), "\n+ "); got != len(want)-1 || !strings.HasPrefix(out.String(), "+ iptables -t nat -N WARDEN_OUTPUT\n") {
			t.Errorf("echoed commands:\n%s", out.String())
		}
	})

	t.Run("rerun", func(t *testing.T) {
		log := fakeIptables(t)
		// A re-run: -N fails (chain exists) and is tolerated; -C succeeds, so OUTPUT is not hooked twice.
		t.Setenv("FAKE_IPTABLES_FAIL", "-N WARDEN_OUTPUT")
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"iptables", "--apply", "--ipv6=false"}, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		want := []string{
			"iptables -t nat -N WARDEN_OUTPUT",
			"iptables -t nat -F WARDEN_OUTPUT",
			"iptables -t nat -A WARDEN_OUTPUT -m owner --uid-owner 65532 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -m owner --gid-owner 65532 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -d 127.0.0.0/8 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -p tcp -d 0.0.0.0/0 --dport 443 -j REDIRECT --to-ports 8482",
			"iptables -t nat -C OUTPUT -p tcp -j WARDEN_OUTPUT",
		}
		if got := readLog(t, log); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("argv sequence:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("stops_at_first_failure", func(t *testing.T) {
		log := fakeIptables(t)
		t.Setenv("FAKE_IPTABLES_FAIL", "--gid-owner")
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		want := []string{
			"iptables -t nat -N WARDEN_OUTPUT",
			"iptables -t nat -F WARDEN_OUTPUT",
			"iptables -t nat -A WARDEN_OUTPUT -m owner --uid-owner 1337 -j RETURN",
			"iptables -t nat -A WARDEN_OUTPUT -m owner --gid-owner 1338 -j RETURN",
		}
		if got := readLog(t, log); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("argv sequence:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		wantErr := "warden iptables: iptables -t nat -A WARDEN_OUTPUT -m owner --gid-owner 1338 -j RETURN: exit status 1: fake: refused\n"
		if errOut.String() != wantErr {
			t.Errorf("stderr %q, want %q", errOut.String(), wantErr)
		}
	})

	t.Run("hook_failure", func(t *testing.T) {
		log := fakeIptables(t)
		// -C fails, then the -A that follows it fails too: that is the error reported.
		t.Setenv("FAKE_IPTABLES_FAIL", "OUTPUT")
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"iptables", "--apply", "--ipv6=false"}, &out, &errOut); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		got := readLog(t, log)
		if last := got[len(got)-1]; last != "iptables -t nat -A OUTPUT -p tcp -j WARDEN_OUTPUT" {
			t.Errorf("last command %q", last)
		}
		if !strings.Contains(errOut.String(), "iptables -t nat -A OUTPUT -p tcp -j WARDEN_OUTPUT: exit status 1") {
			t.Errorf("stderr %q", errOut.String())
		}
	})

	t.Run("missing_binary", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"iptables", "--apply"}, &out, &errOut); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		// -N is tolerated; -F names the command and why.
		if !strings.Contains(errOut.String(), "iptables -t nat -F WARDEN_OUTPUT: exec: \"iptables\": executable file not found") {
			t.Errorf("stderr %q", errOut.String())
		}
	})
}
