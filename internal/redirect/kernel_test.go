package redirect

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/warden-egress/warden/internal/testenv"
)

// netns creates a network namespace of its own for the test and returns a
// netlink connection into it. The namespace is entered on a thread that is
// then thrown away (its goroutine ends locked), so nothing else in the test
// binary runs in it; it disappears when the returned descriptor is closed.
func netns(t *testing.T) *nftables.Conn {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "nftables tests need root to create a network namespace")
	}
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		testenv.Missing(t, "cannot create a network namespace: %v", r.err)
	}
	t.Cleanup(func() { _ = unix.Close(r.fd) })
	c, err := nftables.New(nftables.WithNetNSFd(r.fd))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func countTables(t *testing.T, c *nftables.Conn) map[string]int {
	t.Helper()
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, x := range tables {
		n[familyName(x.Family)+" "+x.Name]++
	}
	return n
}

// What Apply writes is what Read finds, byte for byte in nft syntax, for
// every shape of configuration.
func TestApplyReadsBackThePlan(t *testing.T) {
	cfgs := []struct {
		name           string
		ipv6           bool
		cidrs, exclude []string
	}{
		{"defaults", true, nil, nil},
		{"ipv4_only", false, nil, nil},
		{"cidrs_excludes", true, []string{"10.0.0.0/8,172.16.0.0/12", "fd00::/8", "2600:1f00::/24"},
			[]string{"10.96.0.0/12", "169.254.169.254/32", "fd00:ec2::254/128"}},
		{"v4_cidrs_with_ipv6", true, []string{"52.94.0.0/16"}, nil},
	}
	for _, tc := range cfgs {
		t.Run(tc.name, func(t *testing.T) {
			c := netns(t)
			cfg, err := NewConfig(15001, 1337, 1338, tc.ipv6, tc.cidrs, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			plan := Build(cfg)
			if err := Apply(c, plan); err != nil {
				t.Fatal(err)
			}
			got, err := Read(c, TableFamily, TableName)
			if err != nil {
				t.Fatal(err)
			}
			if got.Text(true) != plan.Text(true) {
				t.Errorf("read back:\n%s\nplan:\n%s", got.Text(true), plan.Text(true))
			}
		})
	}
}

// Applying twice, or over a table someone changed, leaves exactly the plan
// in one table; other tables are untouched; Delete removes only Warden's
// table and is idempotent.
func TestApplyIdempotentAndDelete(t *testing.T) {
	c := netns(t)
	other := c.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyIPv4})
	c.AddChain(&nftables.Chain{Name: "keep", Table: other})
	// A table named like Warden's with a chain and a rule of someone else's.
	stale := c.AddTable(&nftables.Table{Name: TableName, Family: TableFamily})
	sc := c.AddChain(&nftables.Chain{Name: "stale", Table: stale})
	c.AddRule(&nftables.Rule{Table: stale, Chain: sc, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	cfg, err := NewConfig(8482, 65532, 65532, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan := Build(cfg)
	for i := range 2 {
		if err := Apply(c, plan); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
		got, err := Read(c, TableFamily, TableName)
		if err != nil {
			t.Fatal(err)
		}
		if got.Text(true) != plan.Text(true) {
			t.Errorf("apply %d: read back:\n%s\nplan:\n%s", i+1, got.Text(true), plan.Text(true))
		}
		if n := countTables(t, c); n["inet warden"] != 1 || n["ip other"] != 1 || len(n) != 2 {
			t.Errorf("apply %d: tables %v, want one inet warden and ip other", i+1, n)
		}
	}
	for i := range 2 {
		if err := Delete(c, TableFamily, TableName); err != nil {
			t.Fatalf("delete %d: %v", i+1, err)
		}
	}
	if n := countTables(t, c); n["inet warden"] != 0 || n["ip other"] != 1 {
		t.Errorf("after delete: tables %v, want ip other only", n)
	}
	if _, err := Read(c, TableFamily, TableName); !errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), "nftables table inet warden") {
		t.Errorf("read after delete: %v, want ErrNoTable naming the table", err)
	}
}

// A batch the kernel refuses changes nothing: the earlier table stays whole.
func TestApplyFailureKeepsEarlierTable(t *testing.T) {
	c := netns(t)
	cfg, err := NewConfig(8482, 65532, 65532, true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan := Build(cfg)
	if err := Apply(c, plan); err != nil {
		t.Fatal(err)
	}
	bad := Build(cfg)
	// A jump to a chain that does not exist fails the whole batch.
	bad.Chains[0].Rules = append(bad.Chains[0].Rules, []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "missing"}})
	if err := Apply(c, bad); err == nil || !strings.Contains(err.Error(), "installing nftables table inet warden") {
		t.Fatalf("apply of a broken rule set: %v, want an error naming the table", err)
	}
	got, err := Read(c, TableFamily, TableName)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text(true) != plan.Text(true) {
		t.Errorf("after a failed apply:\n%s\nwant the earlier table:\n%s", got.Text(true), plan.Text(true))
	}
}
