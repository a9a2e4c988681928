package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/warden-egress/warden/audit"
)

// The demo runs end to end offline and shows every kind of decision, each
// with its record as the audit pipeline seals it.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), nil, &out, &errOut); code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, errOut.String(), out.String())
	}
	s := out.String()
	if got := strings.Count(s, "\nALLOW "); got != 4 {
		t.Errorf("%d ALLOW lines, want 4:\n%s", got, s)
	}
	if got := strings.Count(s, "\nDENY "); got != 3 {
		t.Errorf("%d DENY lines, want 3:\n%s", got, s)
	}
	if got := strings.Count(s, `audit {"v":2`); got != 7 {
		t.Errorf("%d audit lines, want 7", got)
	}
	for _, want := range []string{"no app matches", "model not in allow.models", "operation not in allow.operations",
		"via HTTPS_PROXY (intercepted, re-signed)", `"protocol":"HTTP/2.0"`, "REFUSE CONNECT sts.us-east-1.amazonaws.com:443",
		"received 4 calls, 4 of them signed by Warden's key"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// Every audit line is a call record sealed into the demo instance's
	// hash chain, as a sink receives it in production.
	for _, line := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "audit ")
		if !ok {
			continue
		}
		r, err := audit.DecodeRecord([]byte(rest))
		if err != nil || r.Instance != "demo" {
			t.Errorf("audit line is not a demo call record (instance %q, %v): %s", r.Instance, err, rest)
		}
		if tr, err := audit.ParseTrailer([]byte(rest)); err != nil || !tr.Valid() {
			t.Errorf("audit line is not sealed (%v): %s", err, rest)
		}
	}
}

func TestDemoPolicyFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--policy"}, &out, &errOut); code != 0 {
		t.Fatalf("--policy exited %d: %s", code, errOut.String())
	}
	if out.String() != demoPolicy {
		t.Errorf("--policy printed %q, want demo.yaml", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"-h"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "-policy") {
		t.Errorf("-h: exit %d, usage %q", code, errOut.String())
	}
	if code := run(context.Background(), []string{"--nope"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "warden-demo: flag provided but not defined: -nope") {
		t.Errorf("--nope: exit %d, want 1; stderr %q", code, errOut.String())
	}
}
