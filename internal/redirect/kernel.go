package redirect

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/nftables"
)

// ErrNoTable is Read's answer when the network namespace has no table of
// that name and family.
var ErrNoTable = errors.New("no such table (nothing applied in this network namespace)")

// Apply installs rs in the network namespace of c in one netlink batch,
// which the kernel commits atomically: the table is declared (a no-op when
// it exists), deleted with everything in it, and created again with its
// chains and rules. Applying twice leaves one table; no moment has a partial
// rule set; a failure leaves the namespace as it was. Nothing outside the
// table is touched.
func Apply(c *nftables.Conn, rs Ruleset) error {
	t := &nftables.Table{Name: rs.Table, Family: rs.Family}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	for _, ch := range rs.Chains {
		nch := c.AddChain(&nftables.Chain{
			Name:     ch.Name,
			Table:    t,
			Type:     ch.Type,
			Hooknum:  ch.Hook,
			Priority: ch.Priority,
			Policy:   ch.Policy,
		})
		for _, r := range ch.Rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: nch, Exprs: r})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing nftables table %s %s: %w%s", familyName(rs.Family), rs.Table, err, hint(err))
	}
	return nil
}

// Delete removes the table (and its chains and rules); a missing table is
// not an error.
func Delete(c *nftables.Conn, family nftables.TableFamily, table string) error {
	t := &nftables.Table{Name: table, Family: family}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("deleting nftables table %s %s: %w%s", familyName(family), table, err, hint(err))
	}
	return nil
}

// Read returns the table as the kernel holds it, chains in the kernel's
// order, rules with their counters. A missing table is ErrNoTable.
func Read(c *nftables.Conn, family nftables.TableFamily, table string) (Ruleset, error) {
	rs := Ruleset{Family: family, Table: table}
	where := fmt.Sprintf("nftables table %s %s", familyName(family), table)
	tables, err := c.ListTablesOfFamily(family)
	if err != nil {
		return rs, fmt.Errorf("listing %s tables: %w%s", familyName(family), err, hint(err))
	}
	var t *nftables.Table
	for _, x := range tables {
		if x.Name == table {
			t = x
		}
	}
	if t == nil {
		return rs, fmt.Errorf("%s: %w", where, ErrNoTable)
	}
	chains, err := c.ListChainsOfTableFamily(family)
	if err != nil {
		return rs, fmt.Errorf("listing the chains of %s: %w", where, err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != table {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return rs, fmt.Errorf("listing the rules of chain %s in %s: %w", ch.Name, where, err)
		}
		out := Chain{Name: ch.Name, Type: ch.Type, Hook: ch.Hooknum, Priority: ch.Priority, Policy: ch.Policy}
		for _, r := range rules {
			out.Rules = append(out.Rules, r.Exprs)
		}
		rs.Chains = append(rs.Chains, out)
	}
	return rs, nil
}

// hint explains the usual netlink failures of an init container.
func hint(err error) string {
	switch {
	case errors.Is(err, os.ErrPermission):
		return " (needs CAP_NET_ADMIN in the pod's network namespace: the init container adds NET_ADMIN)"
	case errors.Is(err, os.ErrNotExist):
		// For Warden's own rule set (no jumps, no sets) this is the kernel
		// refusing the chain type or the redirect.
		return " (usually: the kernel lacks nf_tables nat support for the inet family: Linux 5.2 or later with nft_chain_nat and nft_redir)"
	}
	return ""
}
