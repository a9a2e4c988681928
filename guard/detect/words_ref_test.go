package detect

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The deny list is the operator's: the Scanner's fast paths (the word
// filter, the short-word table, the ASCII block walk) must find what the
// plain path finds whatever its entries are, not only for benchWords.
// These hold the Scanner to the plain path (normalizePlain, nextWord,
// scanPlain) for deny lists with entries that start with a digit or
// punctuation, hold non-ASCII letters (long s, the Kelvin sign, dotted I),
// typographic apostrophes, and words longer than 8 bytes sharing their
// first 8 bytes with a short entry.

// checkWordsList compares a Scanner of the deny list entries (with the
// injection heuristic, whose filter joins the list's) with the plain path
// on s. It reports false when the list is not a valid one.
func checkWordsList(t *testing.T, entries []string, inj *Injection, s string) bool {
	t.Helper()
	w, err := NewWords("DENIED_WORDS", entries)
	if err != nil {
		return false
	}
	sc := NewScanner(w, inj)
	norm, got := sc.ScanAppend(nil, s)
	wantNorm := normalizePlain(s)
	if norm != wantNorm {
		t.Fatalf("list %q, text %q: normalised to %q, the plain path to %q", entries, s, norm, wantNorm)
	}
	words := appendWordsPlain(wantNorm, nil)
	want := w.wm.scanPlain(wantNorm, words, "words", nil, nil)
	want = w.set.scan(wantNorm, "words", want)
	want = inj.detectPlain(wantNorm, words, want, 0)
	sortFindings(want)
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	if !slices.Equal(got, want) {
		t.Fatalf("list %q, text %q: found %v, the plain path %v", entries, s, got, want)
	}
	// The detector on its own (its own filter, no normalising).
	got = w.Detect(s, nil)
	words = appendWordsPlain(s, nil)
	want = w.wm.scanPlain(s, words, "words", nil, nil)
	want = w.set.scan(s, "words", want)
	if !slices.Equal(got, want) {
		t.Fatalf("list %q, text %q: Words.Detect found %v, the plain path %v", entries, s, got, want)
	}
	return true
}

// awkwardEntries are deny-list entries the fast paths have special cases for.
var awkwardEntries = []string{
	"911 call", "4chan", "2024 roadmap", "06", "0xdeadbeef", "1st", "_internal", "x_y",
	"#internal", "c++", ".net", "-rf", "@here", "'quoted'",
	"über alles", "ſecret", "\u212aelvin", "İstanbul", "日本語", "naïve", "straße", "σίγμα",
	"don't", "don’t", "you’re fired",
	"abcdefgh", "abcdefghij", "abcdefghijk lmn", "password", "passwords", "passwordless login", "pass", "passw0rd",
	"q4", "Q4 guidance", "a", "i", "x1y2z3w4", "x1y2z3w4v5",
	// Non-ASCII first runes (mayLead): title-case digraphs, Cherokee,
	// Georgian Mtavruli, the Ohm and Angstrom signs, capital sharp s,
	// dotless i, final sigma, Deseret (past the BMP); and ’ five times.
	"ǅemal", "Ꭰꭱx", "Ანა", "ıslak", "ẞig", "\u2126mega", "\u212bström", "ςx", "𐐀x", "i'i'i'i'i'i",
}

// TestWordsListRandom: random deny lists drawn from awkwardEntries and
// texts built of their words in every case, their prefixes, extensions and
// look-alikes, across 64-byte block boundaries.
func TestWordsListRandom(t *testing.T) {
	inj := NewInjection()
	r := rand.New(rand.NewPCG(19, 27))
	var vocab []string
	for _, e := range awkwardEntries {
		for _, f := range strings.Fields(e) {
			r, n := utf8.DecodeRuneInString(f)
			title := string(unicode.ToTitle(r)) + f[n:]
			vocab = append(vocab, f, strings.ToUpper(f), strings.ToLower(f), title, f+"s", f+"x9", "x"+f)
			if len(f) > 2 {
				vocab = append(vocab, f[:len(f)-1], f[:len(f)/2])
			}
		}
	}
	vocab = append(vocab, "secret", "ſECRET", "kelvin", "KELVIN", "istanbul", "İSTANBUL", "ISTANBUL", "strasse", "STRASSE",
		"ΣΊΓΜΑ", "σίγμας", "dont", "don'T", "DON’T", "abcdefgh_", "ABCDEFGHI", "abcdefgH", "passwordlesS", "\xff", "é", "’",
		"Ǆemal", "ǆEMAL", "ꭰꭱx", "ᎠᎡX", "ანა", "ısLAK", "Islak", "ßig", "Ωmega", "ωMEGA", "Åström", "åSTRÖM", "σx", "Σx", "𐐨x",
		"İ’İ’İ’İ’İ’İ", "\u212a’\u212a")
	seps := []string{" ", "  ", "\n", ", ", ". ", "-", "+", "/", "=", "’", "'", "\u00a0", "_", "#", "\t", "é", "0"}
	found := 0
	for i := range rounds(20000) {
		var entries []string
		for range 1 + r.IntN(6) {
			entries = append(entries, awkwardEntries[r.IntN(len(awkwardEntries))])
		}
		var b strings.Builder
		// A random lead-in moves the words across 64-byte block boundaries.
		b.WriteString(strings.Repeat("z ", r.IntN(40)))
		for range r.IntN(50) {
			if r.IntN(4) == 0 {
				b.WriteString(entries[r.IntN(len(entries))])
			} else {
				b.WriteString(vocab[r.IntN(len(vocab))])
			}
			b.WriteString(seps[r.IntN(len(seps))])
		}
		s := b.String()
		if i%3 == 0 {
			s = s[:r.IntN(len(s)+1)] // cut anywhere, mid-rune too
		}
		if !checkWordsList(t, entries, inj, s) {
			t.Fatalf("deny list %q refused", entries)
		}
		w, _ := NewWords("DENIED_WORDS", entries)
		found += len(w.Detect(s, nil))
	}
	if found < rounds(20000) {
		t.Errorf("only %d findings: the texts exercise too little", found)
	}
	t.Logf("%d findings", found)
}

// FuzzWordsListReference fuzzes the deny list ('|' separates entries) and
// the text.
func FuzzWordsListReference(f *testing.F) {
	for _, c := range [][2]string{
		{"911 call|4chan|2024 roadmap", "dial 911 call now, 4CHAN and 2024  Roadmap"},
		{"#internal|c++|.net|-rf", "see #internal, C++ and .NET; rm -rf /"},
		{"ſecret|\u212aelvin|İstanbul|über alles", "the ſecret SECRET secret \u212aELVIN kelvin istanbul İSTANBUL ÜBER alles"},
		{"abcdefgh|abcdefghij|abcdefghijk lmn", "abcdefghi abcdefghij ABCDEFGHIJK LMN abcdefgh"},
		{"don't|don’t|you’re fired", "don't don’t DON'T you're fired you’re  FIRED"},
		{"a|i|q4", strings.Repeat("a i Q4 ", 30)},
	} {
		f.Add(c[0], c[1])
	}
	inj := NewInjection()
	f.Fuzz(func(t *testing.T, list, s string) {
		entries := strings.Split(list, "|")
		if len(entries) > 64 {
			entries = entries[:64]
		}
		checkWordsList(t, entries, inj, s)
	})
}

// TestWordsFoldLongerText: a text word may be longer in bytes than the
// entry it folds to (the Kelvin sign, 3 bytes, folds to 'k'; 'İ', 2 bytes,
// to 'i'); mayHold's length bound must allow for it, or Words.Detect (which
// does not normalise) misses what the plain path finds.
func TestWordsFoldLongerText(t *testing.T) {
	inj := NewInjection()
	for _, c := range []struct{ entry, text string }{
		{"kkkkk", "\u212a\u212a\u212a\u212a\u212a"},
		{"kkkkkkkk", "\u212a\u212a\u212a\u212a\u212a\u212a\u212a\u212a"},
		{"kiosk", "\u212a\u0130os\u212a"},
		{"kkkkk kkkkk", "\u212a\u212a\u212a\u212a\u212a \u212a\u212a\u212a\u212a\u212a"},
		{"iiiiiiii", "\u0130\u0130\u0130\u0130\u0130\u0130\u0130\u0130"},
	} {
		w, err := NewWords("DENIED_WORDS", []string{c.entry})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Detect(c.text, nil); len(got) != 1 || got[0].Start != 0 || got[0].End != len(c.text) {
			t.Errorf("entry %q, text %q: Words.Detect found %v, want the whole text", c.entry, c.text, got)
		}
		checkWordsList(t, []string{c.entry}, inj, c.text+" and "+c.text)
	}
}
