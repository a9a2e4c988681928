package detect

import (
	"slices"
	"strings"
	"testing"
)

// checkDetectPlain holds PII.Detect to the plain path and the Scanner to
// the plain scanner on s.
func checkDetectPlain(t *testing.T, p *PII, sc *Scanner, ps *plainScanner, s string) {
	t.Helper()
	got, want := p.Detect(s, nil), p.detectPlain(s, nil)
	sortFindings(got)
	sortFindings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%q: Detect found %v, the plain path %v", s, got, want)
	}
	checkScanReference(t, sc, ps, s)
}

// TestDetectKeysWalkEndsAtTextEnd: when the word walk ends inside a word
// (or value) that runs to the end of the text, the trigger scan had
// classified only the chunks up to its trigger, and an AWS key whose run
// went on past that chunk was missed ("... AKIA1234567890123456" ending a
// text of just over 1 KiB). Keys are checked at every offset around the
// first two chunk ends.
func TestDetectKeysWalkEndsAtTextEnd(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sc, ps := defaultScanner(t), newPlainScanner(t)
	tails := []string{
		" AKIA1234567890123456",                            // a digit run in the key: a trigger
		" ASIAZ9876543210ABCDE",                            // likewise, temporary key
		" secret DE12aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ", // two letters, two digits: a trigger
		" secret=wJalrXUtnFEMIK7MDENG123456789CYEXAMPLEKY", // nine digits in the key
		" key AKIA1234567890123456 card 4111111111111111",
	}
	filler := strings.Repeat("word ", 900)
	found := 0
	for _, tail := range tails {
		for _, end := range []int{64 * trigChunk, 2 * 64 * trigChunk} {
			for o := end - len(tail) - 2; o < end+4; o++ {
				s := filler[:o] + tail
				checkDetectPlain(t, p, sc, ps, s)
				found += len(p.detectPlain(s, nil))
			}
		}
	}
	if found == 0 {
		t.Fatal("no keys found at all: the texts test nothing")
	}
}

// TestScanSideNextFromDigitRun: triggerScan.next called inside a digit run
// whose cluster runs to the end of the text returned len(s) with the
// blocks after the current chunk never classified, so the key runs it
// reports were short of keyRunAtLeast's ("+12" and 30 slashes, a run of 33
// key characters, across the first chunk's end).
func TestScanSideNextFromDigitRun(t *testing.T) {
	for _, end := range []int{64 * trigChunk, 3 * 64 * trigChunk} {
		for o := end - 40; o < end+4; o++ {
			for _, tail := range []string{"+12" + strings.Repeat("/", 30), "+1234" + strings.Repeat("/", 45)} {
				checkScanSide(t, strings.Repeat("word ", 40*trigChunk)[:o]+tail)
			}
		}
	}
}
