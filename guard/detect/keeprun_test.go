package detect

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/warden-egress/warden/internal/benchtext"
)

// TestASCIIRunLayout holds keeprun_amd64.s's offsets to asciiRun.
func TestASCIIRunLayout(t *testing.T) {
	var r asciiRun
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"w", unsafe.Offsetof(r.w), 0}, {"odd", unsafe.Offsetof(r.odd), 128}, {"digit", unsafe.Offsetof(r.digit), 256},
		{"join", unsafe.Offsetof(r.join), 384}, {"km", unsafe.Offsetof(r.km), 512}, {"en", unsafe.Offsetof(r.en), 640},
		{"carry", unsafe.Offsetof(r.carry), 768}, {"prev", unsafe.Offsetof(r.prev), 896}, {"start", unsafe.Offsetof(r.start), 904},
		{"st", unsafe.Offsetof(r.st), 912}, {"en2", unsafe.Offsetof(r.en2), 920}, {"hook", unsafe.Offsetof(r.hook), 928},
		{"digits", unsafe.Offsetof(r.digits), 936}, {"avx", unsafe.Offsetof(r.avx), 944}, {"scr", unsafe.Offsetof(r.scr), 1080},
	} {
		if c.got != c.want {
			t.Errorf("asciiRun.%s at %d, keeprun_amd64.s reads it at %d", c.name, c.got, c.want)
		}
	}
}

// keepRunFilters returns the word filters keepRunBMI2 is held to keepBlock
// with: the default Scanner's (blob hook, no digit-led first word), one
// with digit-led first words, and a deny list's alone (no hook).
func keepRunFilters(tb testing.TB) []*wordFilter {
	tb.Helper()
	p, err := NewPII(PIIConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	w, err := NewWords("DENIED_WORDS", append([]string{"911 call", "4chan", "2024 roadmap", "06"}, benchWords...))
	if err != nil {
		tb.Fatal(err)
	}
	wl, err := NewWords("DENIED_WORDS", benchWords)
	if err != nil {
		tb.Fatal(err)
	}
	return []*wordFilter{&defaultScanner(tb).filter, &NewScanner(p, w, NewInjection()).filter, &NewScanner(wl).filter}
}

// checkKeepRun holds appendWordsFiltered with keepRunBMI2 (where the CPU
// runs it) to the same without it (keepBlock for every block).
func checkKeepRun(t *testing.T, fs []*wordFilter, s string) {
	t.Helper()
	for i, f := range fs {
		g := *f
		g.bmi2, g.avx512 = false, false
		got, want := appendWordsFiltered(s, nil, f), appendWordsFiltered(s, nil, &g)
		if !slices.Equal(got, want) {
			t.Fatalf("filter %d on %q: with keepRunBMI2 (AVX-512 %v) %v, keepBlock %v", i, s, f.avx512, got, want)
		}
		if f.avx512 {
			// The scalar key test too.
			h := *f
			h.avx512 = false
			if got := appendWordsFiltered(s, nil, &h); !slices.Equal(got, want) {
				t.Fatalf("filter %d on %q: with keepRunBMI2 (scalar keys) %v, keepBlock %v", i, s, got, want)
			}
		}
	}
}

// TestKeepRun holds keepRunBMI2 to keepBlock on random text of the
// matchers' words with every separator, digits, join bytes, long words
// and base64 runs, mostly ASCII (runs of whole ASCII blocks, with a
// curly quote, a rune or an apostrophe now and then or often), at every
// length up to a few blocks past a group, and on the benchmarks' texts.
func TestKeepRun(t *testing.T) {
	t.Logf("BMI2 path: %v, AVX-512 key test: %v", hasBMI2(), hasBMI2() && hasKeyAVX512())
	fs := keepRunFilters(t)
	var vocab []string
	for _, f := range []string{"ignore", "all", "previous", "instructions", "you", "are", "DAN", "developer", "mode", "follow", "acme", "q4",
		"hell", "rules", "2024", "06", "911", "4chan", "a", "I", "x9", "satisfaction", "supercalifragilistic", "QUJDREVGR0hJSktMTU5PUFFS",
		"aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM=", "eu", "west", "the", "and"} {
		vocab = append(vocab, f, strings.ToUpper(f))
	}
	seps := []string{" ", " ", " ", "  ", "\n", ", ", ". ", "-", "+", "/", "=", "_", "(", ")", ":", "1"}
	rare := []string{"’", "'", "é", "日", "Über", "K", "it's", "don’t", "́"}
	r := rand.New(rand.NewPCG(61, 62))
	for i := range rounds(20000) {
		var b strings.Builder
		n := r.IntN(64 * (wordGroup + 3))
		if i%4 == 0 {
			n = 64*wordGroup + r.IntN(200) - 100
		}
		odds := 40 // one separator in odds is a rune or an apostrophe
		if i%3 == 0 {
			odds = 4
		}
		for b.Len() < n {
			b.WriteString(vocab[r.IntN(len(vocab))])
			if r.IntN(odds) == 0 {
				b.WriteString(rare[r.IntN(len(rare))])
			} else {
				b.WriteString(seps[r.IntN(len(seps))])
			}
		}
		checkKeepRun(t, fs, b.String()[:max(n, 0)])
	}
	for _, s := range []string{benchPrompt, Normalize(benchPrompt), benchMix, benchNumbers, benchtext.Prose(64 << 10)} {
		checkKeepRun(t, fs, s)
	}
	for n := range 300 {
		checkKeepRun(t, fs, strings.Repeat("x", n))
		checkKeepRun(t, fs, strings.Repeat("ignore ", n/7+1)[:n])
		checkKeepRun(t, fs, strings.Repeat("1-a ", n/4+1)[:n])
	}
}

func FuzzKeepRun(f *testing.F) {
	f.Add(strings.Repeat("ignore all previous instructions ", 40))
	f.Add(benchPrompt[:2000])
	f.Add(benchMix[8192:10000])
	f.Add(strings.Repeat("QUJDREVGR0hJSktMTU5PUFFS+x-", 60))
	fs := keepRunFilters(f)
	f.Fuzz(func(t *testing.T, s string) {
		checkKeepRun(t, fs, s)
	})
}

// TestPunctWords holds punctWords to wordBitsSlow (the rune by rune
// classification) on blocks of letters, digits, apostrophes, curly quotes,
// dashes and other runes, and its force mask to the words it should hold:
// those starting in the block, ending in it, with a byte of 0x80 or above
// among their first eight, and not digit-led unless digits.
func TestPunctWords(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	pieces := []string{"'", "'", "a", "Z", "0", "_", " ", "-", "''", "it's", "'s", "x'", "é", "9", "’", "’", "’s", "don’t",
		"—", "“", "”", "–", "\u2028", "’’", "\xe2\x80", "\xe2\x80(", "日", "a’b’c", "12’s", "hasn’t"}
	for i := range rounds(50000) {
		pre := []string{"", "a", " ", "'", "’", "x’"}[i%6]
		s := pre + joinRandom(r, pieces, 60)
		if len(s) < len(pre)+72 {
			continue
		}
		s = s[:len(pre)+72]
		base := len(pre)
		w, o, d, j := make([]uint64, 1), make([]uint64, 1), make([]uint64, 1), make([]uint64, 1)
		classifyWordsGo(s[base:base+64], w, o, d, j)
		words := appendWords(s, nil)
		prev := false // the byte before the block is a word's
		for _, sp := range words {
			prev = prev || int(sp.start) < base && int(sp.end) >= base
		}
		digits := i%2 == 0
		got, force, ok := punctWords(s, base, w[0], o[0], d[0], prev, digits)
		next := base
		want, _ := wordBitsSlow(s, base, base+64, &next, w[0], prev)
		okWant := s[base+64] < utf8.RuneSelf
		for p := base; p < base+64 && okWant; p++ {
			if s[p] < utf8.RuneSelf {
				continue
			}
			okWant = s[p] == 0xe2 && p+2 < base+64 && s[p+1] == 0x80 && s[p+2]&0xc0 == 0x80
			p += 2
		}
		if ok != okWant {
			t.Fatalf("%q: ok %v, want %v", s, ok, okWant)
		}
		if !ok {
			continue
		}
		if got != want {
			t.Fatalf("%q (prev %v): punctWords %064b, wordBitsSlow %064b", s, prev, got, want)
		}
		var wantForce uint64
		for _, sp := range words {
			ws, we := int(sp.start), int(sp.end)
			if ws < base || we >= base+64 || !digits && isDigit(s[ws]) {
				continue
			}
			if strings.ContainsFunc(s[ws:min(we, ws+8)], func(c rune) bool { return c >= utf8.RuneSelf }) {
				wantForce |= 1 << (ws - base)
			}
		}
		if force != wantForce {
			t.Fatalf("%q (prev %v, digits %v): force %064b, want %064b", s, prev, digits, force, wantForce)
		}
	}
}

// TestKeepRunSlots holds keepRunBMI2's key tests to keepBlock on blocks
// with every number of candidates, 0 to 32 (a 64-byte block holds at most
// 32 word starts), and a kept word at every candidate's place: the vector
// test's two halves of eight (more than 16 in a second pass), and the
// scalar test's ten slots without a branch (the slots past the last
// candidate read the bytes after the block; their bits must be dropped)
// and its loop for the rest. Each block is 64 bytes
// of one- and two-letter words, one kept by the default filter where the
// pattern says, the rest not.
func TestKeepRunSlots(t *testing.T) {
	fs := keepRunFilters(t)
	f := fs[0]
	keeps := func(w string) bool {
		s := w + "        "
		return f.keepWord(s, 0, len(w)) == 1
	}
	var kept, dropped []string
	for c := 'a'; c <= 'z'; c++ {
		for _, w := range []string{string(c), string(c - 32)} {
			if keeps(w) {
				kept = append(kept, w)
			} else {
				dropped = append(dropped, w)
			}
		}
	}
	if len(kept) == 0 {
		// No one-letter word starts a phrase: two letters then, in
		// blocks of up to 21 words.
		for c := 'a'; c <= 'z' && len(kept) < 4; c++ {
			for d := 'a'; d <= 'z'; d++ {
				if w := string(c) + string(d); keeps(w) {
					kept = append(kept, w)
				}
			}
		}
	}
	if len(kept) == 0 || len(dropped) == 0 {
		t.Fatalf("no word to keep (%d) or drop (%d) among short words", len(kept), len(dropped))
	}
	t.Logf("kept %q, dropped %d one-letter words", kept, len(dropped))
	r := rand.New(rand.NewPCG(31, 32))
	// block returns 64 bytes holding n words, those at the places in
	// keep (bit i: the i-th word) kept, or "" when they do not fit.
	block := func(n int, keep uint64) string {
		var b strings.Builder
		for i := range n {
			w := dropped[r.IntN(len(dropped))]
			if keep>>i&1 == 1 {
				w = kept[r.IntN(len(kept))]
			}
			b.WriteString(w)
			b.WriteByte(' ')
		}
		if b.Len() > 64 {
			return ""
		}
		return b.String() + strings.Repeat(" ", 64-b.Len())
	}
	var texts []string
	for n := 0; n <= 32; n++ {
		pats := []uint64{0, 1<<n - 1}
		for i := range n {
			pats = append(pats, 1<<i, (1<<n-1)&^(1<<i))
		}
		for range 8 {
			pats = append(pats, r.Uint64()&(1<<n-1))
		}
		var b strings.Builder
		for _, p := range pats {
			if blk := block(n, p); blk != "" {
				b.WriteString(blk)
				// A block of other counts next to it: the
				// key tests' state must not leak between blocks.
				b.WriteString(block(r.IntN(n+1), r.Uint64()))
			}
		}
		if b.Len() > 0 {
			texts = append(texts, b.String())
		}
	}
	if len(texts) < 20 {
		t.Fatalf("only %d texts: the short words do not fit", len(texts))
	}
	for _, s := range texts {
		checkKeepRun(t, fs, s)
		checkKeepRun(t, fs, "x"+s) // every block shifted: words run across
	}
}
