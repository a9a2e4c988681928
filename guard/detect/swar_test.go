package detect

import (
	"testing"
	"unicode/utf8"
)

// TestSWAR checks the eight-bytes-at-once byte tests against the obvious
// per-byte ones for every byte value in every lane.
func TestSWAR(t *testing.T) {
	ranges := [][2]byte{{'0', '9'}, {'a', 'z'}, {'-', ':'}, {0, 0x7f}, {0x20, 0x20}, {0x7f, 0x7f}}
	for lane := 0; lane < 8; lane++ {
		for v := 0; v < 256; v++ {
			for _, fill := range []byte{0, 'a', '0', 0x80, 0xff} {
				var b [8]byte
				for k := range b {
					b[k] = fill
				}
				b[lane] = byte(v)
				x := load64(string(b[:]), 0)
				for _, r := range ranges {
					m := inRange(x, r[0], r[1])
					for k := 0; k < 8; k++ {
						want := b[k] >= r[0] && b[k] <= r[1] && b[k] < 0x80
						if got := m>>(8*k+7)&1 == 1; got != want {
							t.Fatalf("inRange(% x, %#x, %#x) byte %d = %v, want %v", b, r[0], r[1], k, got, want)
						}
						if m>>(8*k)&0x7f != 0 {
							t.Fatalf("inRange sets low bits: %#x", m)
						}
					}
				}
				for _, c := range []byte{'@', '_', 0, 0x80, 0xff, byte(v)} {
					m := eqByte(x, c)
					for k := 0; k < 8; k++ {
						if got, want := m>>(8*k+7)&1 == 1, b[k] == c; got != want || m>>(8*k)&0x7f != 0 {
							t.Fatalf("eqByte(% x, %#x) byte %d = %v, want %v", b, c, k, got, want)
						}
					}
				}
			}
		}
	}
}

func TestASCIIPrefix(t *testing.T) {
	for n := 0; n < 80; n++ {
		for at := 0; at <= n; at++ {
			b := make([]byte, n)
			for k := range b {
				b[k] = 'x'
			}
			if at < n {
				b[at] = 0xc3
			}
			if got := asciiPrefix(string(b)); got != at {
				t.Fatalf("asciiPrefix(len %d, non-ASCII at %d) = %d", n, at, got)
			}
		}
	}
}

// TestSimpleRunes: every rune Normalize's fast path keeps, alone and between
// letters, is left as it is by the general path, and every dash it maps is
// mapped the same way there.
func TestSimpleRunes(t *testing.T) {
	kept := 0
	for _, r := range []rune{'’', '‘', '“', '”', '—', 'é', 'ü', 'ß', 'ñ', '€', '•', '–'} {
		if simpleRune(r) == 0 {
			t.Errorf("%q (%U) is not on the fast path", r, r)
		}
	}
	for r := rune(0x80); r < 0x2100; r++ {
		k := simpleRune(r)
		if k == 0 {
			continue
		}
		kept++
		for _, s := range []string{string(r), "a" + string(r) + "b", "1" + string(r) + string(r) + "e\u0301"} {
			i := 0
			for i < len(s) && s[i] < utf8.RuneSelf {
				i++
			}
			if got, want := Normalize(s), normalizeSlow(s, i); got != want {
				t.Errorf("%U in %q: Normalize = %q, general path %q", r, s, got, want)
			}
		}
	}
	if kept < 200 {
		t.Errorf("only %d runes on the fast path", kept)
	}
}

// FuzzNormalizeFast compares Normalize with its general path.
func FuzzNormalizeFast(f *testing.F) {
	for _, s := range []string{"", "abc", "’quoted’ 3–5 — ok", "caf\u0065\u0301", "a\u200bb", "é\u0301", "\xff\xfe", "x–\u0338", "ﬁ’–"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i := 0
		for i < len(s) && s[i] < utf8.RuneSelf {
			i++
		}
		want := s
		if i < len(s) {
			want = normalizeSlow(s, i)
		}
		if got := Normalize(s); got != want {
			t.Fatalf("Normalize(%q) = %q, general path %q", s, got, want)
		}
	})
}
