package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/warden-egress/warden/audit"
)

// keyList is a repeatable --key flag: a base64 Ed25519 public key or
// @FILE holding one per line (a spool's signing.pub).
type keyList []string

func (k *keyList) String() string { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error {
	if path, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, l := range strings.Fields(string(b)) {
			*k = append(*k, l)
		}
		return nil
	}
	*k = append(*k, v)
	return nil
}

// seqFlags is the repeatable --min-seq INSTANCE=SEQ.
type seqFlags map[string]uint64

func (m seqFlags) String() string { return fmt.Sprint(map[string]uint64(m)) }
func (m seqFlags) Set(v string) error {
	in, n, ok := strings.Cut(v, "=")
	seq, err := strconv.ParseUint(n, 10, 64)
	if !ok || in == "" || err != nil {
		return fmt.Errorf("want INSTANCE=SEQ, got %q", v)
	}
	m[in] = seq
	return nil
}

func cmdAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keys keyList
	fs.Var(&keys, "key", "trusted checkpoint key: base64 Ed25519 public key, or @FILE (a spool's signing.pub); repeatable. Without it, each instance's first checkpoint key is trusted and reported")
	minSeq := seqFlags{}
	fs.Var(minSeq, "min-seq", "INSTANCE=SEQ: the chain of INSTANCE is known to have reached SEQ (warden_audit_chain_seq); a chain ending earlier, or missing, fails; repeatable")
	allowOpen := fs.Bool("allow-open", false, "accept chains that do not end with a shutdown checkpoint (instances still running); their unchecked tail is reported as a warning")
	s3o := addS3SourceFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: warden audit verify [--key KEY|@FILE]... [--allow-open] [--s3-endpoint URL --s3-region R --s3-path-style] SRC... (file, directory or s3://bucket/prefix)")
	}
	v := audit.NewVerifier(audit.VerifyOptions{Keys: keys, AllowOpen: *allowOpen, MinSeq: minSeq})
	for _, src := range fs.Args() {
		if err := audit.ReadSourceWith(ctx, src, s3o.options(), func(name string, line []byte) error {
			v.Add(name, line)
			return nil
		}); err != nil {
			return err
		}
	}
	res := v.Finish()
	fmt.Fprintf(stdout, "%d lines, %d re-deliveries (duplicates by id, not a problem)\n", res.Lines, res.Duplicates)
	for _, c := range res.Chains {
		end := "open (no shutdown checkpoint)"
		if c.Final {
			end = "closed by a shutdown checkpoint"
		}
		records := fmt.Sprintf("%d records", c.Records)
		if c.Calls != c.Records {
			records += fmt.Sprintf(" (%d calls: aggregated denials count each)", c.Calls)
		}
		fmt.Fprintf(stdout, "instance %s: seq %d–%d, %s, %d checkpoints (last at seq %d), %s; key %s\n",
			c.Instance, c.FirstSeq, c.LastSeq, records, c.Checkpoints, c.LastCheckpoint, end, c.Key)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stdout, "WARNING %s\n", w)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(stdout, "FAIL %s\n", p)
	}
	if len(res.Problems) > 0 {
		return fmt.Errorf("%d problems: the audit trail was altered, is incomplete or is not signed by a trusted key", len(res.Problems))
	}
	if len(keys) == 0 && len(res.Chains) > 0 {
		fmt.Fprintln(stdout, "note: no --key given; each chain's own first checkpoint key was trusted (pin keys with --key @signing.pub)")
	}
	if len(res.Warnings) > 0 {
		fmt.Fprintln(stdout, "OK up to each chain's last checkpoint; the lines after it (warnings above) are not covered by a signature")
		return nil
	}
	fmt.Fprintln(stdout, "OK: every chain is complete, in order, unedited and covered by signed checkpoints")
	return nil
}
