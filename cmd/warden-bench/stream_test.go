package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var tinyBenchStream = []string{"--runs", "1", "--calls", "2", "--blocks", "2", "--warmup", "1", "--token-gap", "200us"}

// TestBenchStreamSmoke runs bench-stream with tiny numbers and checks the
// shape of the output, never the timings. Every call also checks that the
// guard passed each token whole (the texts hold nothing it masks).
func TestBenchStreamSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := cmdBenchStream(ctx, tinyBenchStream, &stdout, &stderr); err != nil {
		t.Fatalf("cmdBenchStream: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"### prose (", "### number-dense (", bsModeTitle[bsNoGuard], bsModeTitle[bsGuard],
		"time to first text byte p50", "time to first text byte p99", "delay per token p50", "delay per token p99",
		"tokens held p50 / p99 / max", "time between tokens sent p50", "guard / no guard",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchStreamJSON checks every number is there and plausible.
func TestBenchStreamJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := cmdBenchStream(ctx, append([]string{"--json"}, tinyBenchStream...), &stdout, &stderr); err != nil {
		t.Fatalf("cmdBenchStream --json: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep bsReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if rep.Baseline != bsNoGuard || rep.GapUs != 200 || len(rep.Texts) != 2 {
		t.Fatalf("baseline %q, gap %v µs, %d texts", rep.Baseline, rep.GapUs, len(rep.Texts))
	}
	for _, r := range rep.Texts {
		if r.Bytes <= 0 || r.Tokens <= 0 || len(r.Ratios.Runs) != 1 {
			t.Errorf("%s: %d bytes, %d tokens, %d ratio runs", r.Name, r.Bytes, r.Tokens, len(r.Ratios.Runs))
		}
		for _, m := range bsModes {
			s := r.Modes[m]
			if s == nil || len(s.Runs) != 1 {
				t.Fatalf("%s, mode %s: missing or wrong number of runs: %+v", r.Name, m, s)
			}
			if md := s.Median; md.TTFTp50us <= 0 || md.TTFTp99us < md.TTFTp50us || md.Delayp99us < md.Delayp50us ||
				md.Heldp99 < md.Heldp50 || md.HeldMax < md.Heldp99 || md.GapP50us <= 0 {
				t.Errorf("%s, mode %s: implausible numbers %+v", r.Name, m, md)
			}
		}
		if r.Ratios.TTFTp50 <= 0 || r.Ratios.Delayp99 <= 0 {
			t.Errorf("%s: ratios %+v", r.Name, r.Ratios)
		}
	}
}

// TestBenchStreamRecordHoldsNothing: with a record-only output guard the
// emulator has sent no later token by the time one reaches the SDK (the
// median; a mask guard holds a word's tokens until it ends). Counted in
// tokens, not time: robust to a loaded machine.
func TestBenchStreamRecordHoldsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(action string) *bsReport {
		var stdout, stderr bytes.Buffer
		args := []string{"--json", "--action", action, "--runs", "1", "--calls", "4", "--blocks", "2", "--warmup", "1", "--token-gap", "2ms"}
		if err := cmdBenchStream(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("cmdBenchStream --action %s: %v\nstderr:\n%s", action, err, stderr.String())
		}
		var rep bsReport
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		return &rep
	}
	rec, mask := run("record"), run("mask")
	for i, r := range rec.Texts {
		if rec.Action != "record" || r.Modes[bsGuard].Median.Heldp50 != 0 {
			t.Errorf("%s under record: %d tokens held at the median, want 0", r.Name, r.Modes[bsGuard].Median.Heldp50)
		}
		if m := mask.Texts[i]; m.Modes[bsGuard].Median.Heldp50 < 1 {
			t.Errorf("%s under mask: %d tokens held at the median, want ≥ 1 (a word waits for its end)", m.Name, m.Modes[bsGuard].Median.Heldp50)
		}
	}
}

func TestBenchStreamFlags(t *testing.T) {
	for _, args := range [][]string{{"--action", "allow"}, {"--runs", "0"}, {"--calls", "0"}, {"--token-gap", "0s"}, {"--calls", "2", "--blocks", "3"}, {"--warmup", "-1"}, {"extra"}} {
		var stdout, stderr bytes.Buffer
		if err := cmdBenchStream(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestModelTokens(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"", nil},
		{"The quarterly review", []string{"The", " quar", "terl", "y", " revi", "ew"}},
		{"on 2024-03-15, 1,249.50 EUR", []string{"on", " 202", "4", "-", "03", "-", "15", ",", " 1", ",", "249", ".", "50", " EUR"}},
		{"a  b\n| x |", []string{"a", " ", " b", "\n", "|", " x", " ", "|"}},
	} {
		got := modelTokens(c.text)
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("modelTokens(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	for _, tx := range bsTexts() {
		if strings.Join(tx.tokens, "") != tx.text || len(tx.tokens) != tx.Tokens {
			t.Errorf("%s: tokens do not join to the text", tx.Name)
		}
	}
}
