package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/audit/audittest"
)

// sealedAuditFile writes n calls' sealed lines to a file and returns its
// lines and the chain's key.
func sealedAuditFile(t *testing.T, n int) ([]string, string) {
	t.Helper()
	sink := &audittest.Sink{}
	p, err := audit.Open(t.Context(), audit.Options{Dir: t.TempDir(), Instance: "cli-test", Sinks: []audit.Sink{sink},
		BatchWait: time.Millisecond, CheckpointEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p.Write(&audit.Record{Time: time.Now(), RequestID: fmt.Sprintf("r%d", i), App: "a", Decision: "allow", Status: 200})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.Lines(), p.PublicKey()
}

func TestAuditVerifyCommand(t *testing.T) {
	lines, key := sealedAuditFile(t, 10)
	dir := t.TempDir()
	write := func(name string, ls []string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(ls, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("signing.pub", []string{key})
	for _, tc := range []struct {
		name  string
		lines []string
		args  []string
		code  int
		want  string
	}{
		{"intact", lines, []string{"--key", "@" + keyFile}, 0, "OK: every chain is complete"},
		{"intact, key trusted on first use", lines, nil, 0, "no --key given"},
		{"deleted", append(append([]string{}, lines[:3]...), lines[4:]...), nil, 1, "FAIL deleted"},
		{"edited", append(append(append([]string{}, lines[:3]...), strings.Replace(lines[3], `"status":200`, `"status":500`, 1)), lines[4:]...), nil, 1, "FAIL edited"},
		{"reordered", append(append(append([]string{}, lines[:3]...), lines[4], lines[3]), lines[5:]...), nil, 1, "FAIL reordered"},
		{"truncated", lines[:len(lines)-2], nil, 1, "FAIL unanchored-tail"},
		{"anchored", lines, []string{"--min-seq", fmt.Sprintf("cli-test=%d", len(lines))}, 0, "OK: every chain"},
		{"truncated below the anchor", lines[:len(lines)-2], []string{"--allow-open", "--min-seq", fmt.Sprintf("cli-test=%d", len(lines))}, 1, "FAIL truncated"},
		{"wrong key", lines, []string{"--key", "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}, 1, "FAIL untrusted-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := write(strings.ReplaceAll(tc.name, " ", "_")+".jsonl", tc.lines)
			var out, errb bytes.Buffer
			code := run(t.Context(), append(append([]string{"audit", "verify"}, tc.args...), f), &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, want %d; want %q in:\n%s%s", code, tc.code, tc.want, out.String(), errb.String())
			}
		})
	}
}
