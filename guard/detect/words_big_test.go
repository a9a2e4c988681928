package detect

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestWordsLargeListLinear: a deny list of thousands of entries (customer
// or project names) compiles in memory proportional to its size. The word
// tables used to be rebuilt whole for every new word: 5,000 words
// allocated ~5 GB and 20,000 took 40 s of CPU at every policy load. Bytes
// allocated are counted, not time.
func TestWordsLargeListLinear(t *testing.T) {
	const n = 5000
	entries := make([]string, n)
	for i := range entries {
		entries[i] = fmt.Sprintf("name%dx corp%d", i, i%7)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w, err := NewWords("DENIED_WORDS", entries)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("compiling %d entries allocated %d MB, want under 64", n, got>>20)
	}
	// Every entry is still found, with the words of the others around it.
	for _, i := range []int{0, 1, n / 2, n - 1} {
		text := "x name1x corp0 " + strings.ToUpper(entries[i]) + " name7x"
		fs := w.Detect(text, nil)
		found := false
		for _, f := range fs {
			if text[f.Start:f.End] == strings.ToUpper(entries[i]) {
				found = true
			}
		}
		if !found {
			t.Errorf("entry %q not found in %q: %v", entries[i], text, fs)
		}
	}
}

// TestWordsTooManyWords: word ids are 16 bits; a list with more distinct
// words than that is refused, not wrapped (a wrapped id 0 is "no word").
func TestWordsTooManyWords(t *testing.T) {
	entries := make([]string, 1<<16)
	for i := range entries {
		entries[i] = fmt.Sprintf("w%d", i)
	}
	if _, err := NewWords("DENIED_WORDS", entries); err == nil || !strings.Contains(err.Error(), "distinct words") {
		t.Fatalf("a list of %d distinct words: %v, want a refusal", len(entries), err)
	}
}
