package audit

import (
	"strings"
	"testing"
)

// ParseTrailer returns an error, never panics, on a trailer whose sig string
// is unterminated.
func TestParseTrailerMalformedSigNoPanic(t *testing.T) {
	line := `{"a":1,"seq":1,"prev":"` + strings.Repeat("0", 64) + `","hash":"` + strings.Repeat("0", 64) + `","sig":"}`
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("PANIC: %v", r)
		}
	}()
	_, err := ParseTrailer([]byte(line))
	t.Log(err)
}

// A batch delivered twice to the same source (at-least-once after a partial
// failure) counts as duplicates, not as reordering.
func TestVerifyRedeliveredBatchIsNotReordered(t *testing.T) {
	lines, _ := sealedLinesForFuzz()
	// at-least-once: a batch written again to the same file after a partial failure
	all := append(append([]string{}, lines...), lines...)
	res := verifyLines(all, VerifyOptions{})
	t.Logf("lines=%d dups=%d problems=%v", len(all), res.Duplicates, res.Problems)
	for _, p := range res.Problems {
		if p.Kind == ProblemReordered {
			t.Errorf("false positive: %v", p)
			break
		}
	}
}

// A sink that wrote half a batch, failed and wrote the whole batch again
// yields duplicates, not a reordering problem.
func TestVerifyPartialWriteRetryIsNotReordered(t *testing.T) {
	sink := newMemSink()
	p, err := Open(t.Context(), testOptions("", sink))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		r := callRecord(i)
		p.Begin(r)
		p.Write(r)
	}
	p.Close()
	lines, _ := sink.snapshot()
	// file sink partial write: lines[0..5] written, error, retry writes the whole batch again
	all := append(append([]string{}, lines[:5]...), lines...)
	res := verifyLines(all, VerifyOptions{})
	t.Logf("dups=%d problems=%v", res.Duplicates, res.Problems)
	for _, p := range res.Problems {
		if p.Kind == ProblemReordered {
			t.Errorf("false positive on at-least-once re-delivery: %v", p)
			break
		}
	}
}
