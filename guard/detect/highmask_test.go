package detect

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// highMasksByte is highMasks one byte at a time: the reference.
func highMasksByte(s string, m []uint64) {
	for k := range m {
		m[k] = highTail(s[64*k : 64*k+64])
	}
}

// TestHighMasks holds highMasks (AVX2 where the CPU has it) and highMasksGo
// to the byte-wise reference: every byte value at every position, and
// random blocks dense and sparse in high bytes.
func TestHighMasks(t *testing.T) {
	check := func(s string) {
		t.Helper()
		n := len(s) / 64
		want, got, goGot := make([]uint64, n), make([]uint64, n), make([]uint64, n)
		highMasksByte(s, want)
		highMasks(s, got)
		highMasksGo(s, goGot)
		for k := range want {
			if got[k] != want[k] || goGot[k] != want[k] {
				t.Fatalf("block %d of %q: highMasks %#x, highMasksGo %#x, want %#x", k, s[64*k:64*k+64], got[k], goGot[k], want[k])
			}
		}
	}
	for c := range 256 {
		for at := range 128 {
			b := []byte(strings.Repeat("a", 192))
			b[at] = byte(c)
			check(string(b))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, 64*(1+rng.IntN(40)))
		density := rng.IntN(64)
		for k := range b {
			if rng.IntN(64) < density {
				b[k] = byte(0x80 + rng.IntN(128))
			} else {
				b[k] = byte(rng.IntN(128))
			}
		}
		check(string(b))
	}
}

// TestNormalizeSimpleRandom holds Normalize to its general path on random
// prose-like texts of ASCII and the runes the bitmap walk of
// normalizeSimple meets: curly quotes, dashes it folds, accents, runes that
// send it to the general path, invalid bytes, at every distance from a
// 64-byte block's edge (a rune straddling two blocks, or a chunk of 32).
func TestNormalizeSimpleRandom(t *testing.T) {
	pieces := []string{"’", "“", "”", "–", "‐", "−", "é", "ß", "—", "…", "\u00a0", "\u200b", "ﬁ", "e\u0301", "٤", "\xff", "\xe2\x80", "\U0001F600", "’–", "a"}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(s string) {
		t.Helper()
		want := s
		if i := asciiPrefixGo(s); i < len(s) {
			want = normalizeSlow(s, i)
		}
		if got := Normalize(s); got != want {
			t.Fatalf("Normalize(%+q) = %+q, general path %+q", s, got, want)
		}
		buf := []byte("stale")
		got, _, _ := normalizeInto(s, buf[:0])
		if got != want {
			t.Fatalf("normalizeInto(%+q) = %+q, general path %+q", s, got, want)
		}
	}
	for n := 0; n < 200; n++ {
		for _, p := range pieces[:8] {
			check(strings.Repeat("x", n) + p + strings.Repeat("y", 70) + p)
		}
	}
	for range 3000 {
		var b strings.Builder
		n := rng.IntN(5000)
		gap := 1 + rng.IntN(300)
		for b.Len() < n {
			b.WriteString(strings.Repeat("w ", rng.IntN(gap)/2))
			k := rng.IntN(len(pieces))
			if rng.IntN(20) != 0 {
				k %= 8 // mostly the runes the fast path keeps or folds
			}
			b.WriteString(pieces[k])
		}
		check(b.String())
	}
}

// TestInertSpanBytes holds inertSpan's inline two-byte decoding to the
// utf8 package's: every two-byte sequence (valid, overlong, truncated,
// followed by ASCII), at the start, middle and end of a text.
func TestInertSpanBytes(t *testing.T) {
	ref := func(s string) int {
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r >= utf8.RuneSelf && (r >= 1<<16 || n == 1 || !runeTab.inert.has(r) || !runeTab.plain.has(r)) {
				return i
			}
			i += n
		}
		return len(s)
	}
	for c0 := 0x80; c0 < 0x100; c0++ {
		for c1 := range 0x100 {
			seq := string([]byte{byte(c0), byte(c1)})
			for _, s := range []string{seq, "ab" + seq, "я" + seq + "я", seq[:1], "я" + seq[:1]} {
				if got, want := inertSpan(s, 0), ref(s); got != want {
					t.Fatalf("inertSpan(%+q) = %d, want %d", s, got, want)
				}
			}
		}
	}
}
