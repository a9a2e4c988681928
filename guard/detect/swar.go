package detect

import (
	"math/bits"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// SWAR ("SIMD within a register") helpers: eight bytes of text tested at
// once in a uint64, so the scanners skip text in which nothing can start at
// about a cycle per byte or less, without per-byte branches.

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// load64 reads s[i:i+8] little-endian (the compiler merges the loads).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// inRange returns, for each byte of x below 0x80, its high bit set when the
// byte is in [lo, hi] (bytes of 0x80 and above never match).
func inRange(x uint64, lo, hi byte) uint64 {
	t := x &^ msb
	ge := t + lsb*uint64(0x80-lo)
	gt := t + lsb*uint64(0x7f-hi)
	return ge &^ gt &^ x & msb
}

// eqByte returns each byte of x equal to c with its high bit set.
func eqByte(x uint64, c byte) uint64 {
	y := x ^ lsb*uint64(c)
	return ^((y&^msb + ^uint64(msb)) | y) & msb
}

// asciiRange is inRange for x without bytes of 0x80 and above.
func asciiRange(x uint64, lo, hi byte) uint64 {
	return (x + lsb*uint64(0x80-lo)) &^ (x + lsb*uint64(0x7f-hi)) & msb
}

// asciiEq is eqByte for x without bytes of 0x80 and above and c < 0x80.
func asciiEq(x uint64, c byte) uint64 {
	y := x ^ lsb*uint64(c)
	return ^(y + lsb*0x7f) & msb
}

// firstByte returns the index in its word of the lowest byte flagged in m (a
// non-zero mask with high bits set).
func firstByte(m uint64) int { return bits.TrailingZeros64(m) >> 3 }

// asciiPrefixGo returns the length of the ASCII prefix of s (asciiPrefix
// without AVX2).
func asciiPrefixGo(s string) int {
	i := 0
	for ; i+32 <= len(s); i += 32 {
		if (load64(s, i)|load64(s, i+8)|load64(s, i+16)|load64(s, i+24))&msb != 0 {
			break
		}
	}
	for ; i+8 <= len(s); i += 8 {
		if m := load64(s, i) & msb; m != 0 {
			return i + firstByte(m)
		}
	}
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	return i
}

// Runes Normalize handles without its general path: the ones it keeps as
// they are in any text of ASCII and such runes (NFKC quick-check yes, a
// starter that composes with nothing before it, not a rune foldRune drops or
// maps), and the dashes it maps to '-'. They cover the punctuation and
// Latin letters of most prose.
const (
	simpleKeep = 1
	simpleDash = 2
)

// simpleRunes covers U+0080..U+02FF and U+2000..U+20FF (index r-0x2000+0x300).
var simpleRunes = func() (t [0x300 + 0x100]uint8) {
	set := func(r rune, idx int) {
		if m, keep := foldRune(r); keep && m == '-' && r != '-' {
			t[idx] = simpleDash
			return
		} else if !keep || m != r {
			return
		}
		p := norm.NFKC.PropertiesString(string(r))
		str := string(r)
		if p.CCC() == 0 && p.BoundaryBefore() && norm.NFKC.QuickSpanString(str) == len(str) {
			t[idx] = simpleKeep
		}
	}
	for r := rune(0x80); r < 0x300; r++ {
		set(r, int(r))
	}
	for r := rune(0x2000); r < 0x2100; r++ {
		set(r, int(r-0x2000+0x300))
	}
	return t
}()

func simpleRune(r rune) uint8 {
	switch {
	case r < 0x300:
		return simpleRunes[r]
	case r >= 0x2000 && r < 0x2100:
		return simpleRunes[r-0x2000+0x300]
	}
	return 0
}

// normalizeSimple normalises s (first non-ASCII byte at i) when it holds only
// ASCII and simple runes; ok is false when it needs the general path. When a
// dash maps, the text is built in out's spare capacity (grown when short):
// copied reports it, and t then aliases the returned buffer.
func normalizeSimple(s string, i int, out []byte) (t string, buf []byte, copied, ok bool) {
	done := 0 // s[:done] is in out (when copied)
	// The non-ASCII bytes come off bitmaps, 64 bytes a word (highMasks):
	// prose has a curly quote every few hundred bytes, and looking for the
	// next one byte-wise cost more than the runes themselves.
	var m [32]uint64
	for base := i &^ 63; base < len(s); {
		nb := min(len(m), (len(s)-base)/64)
		if nb == 0 {
			m[0], nb = highTail(s[base:]), 1
		} else {
			highMasks(s[base:base+64*nb], m[:nb])
		}
		for k, x := range m[:nb] {
			if x == 0 {
				continue
			}
			blk := base + 64*k
			if d := i - blk; d >= 64 {
				continue // a rune from the block before covers this one
			} else if d > 0 {
				x &= ^uint64(0) << d
			}
			for x != 0 {
				j := blk + bits.TrailingZeros64(x)
				r, n := decodeRune(s, j)
				switch simpleRune(r) {
				case simpleKeep:
				case simpleDash:
					if !copied {
						if cap(out) < len(s) {
							out = make([]byte, 0, len(s))
						}
						out, copied = out[:0], true
					}
					out = append(out, s[done:j]...)
					out = append(out, '-')
					done = j + n
				default:
					return "", out, false, false
				}
				i = j + n
				if i-blk >= 64 {
					break
				}
				x &= ^uint64(0) << (i - blk)
			}
		}
		base += 64 * nb
	}
	if !copied {
		return s, out, false, true
	}
	out = append(out, s[done:]...)
	return unsafe.String(unsafe.SliceData(out), len(out)), out, true, true
}

// keyRunAtLeast reports whether s holds a run of n (1 or more) key
// characters: letters, digits, '+' and '/'. It reads runs off bitmaps of
// key characters, 64 bytes at a time (keyMasks): a run that ends in a block
// is the ones at the bottom of its bitmap added to the run carried in, one
// inside a block is found by and-ing the bitmap with itself shifted.
func keyRunAtLeast(s string, n int) bool {
	run := 0
	var m [wordGroup]uint64
	full := len(s) &^ 63
	for gbase := 0; gbase < full; gbase += 64 * wordGroup {
		nb := min(wordGroup, (full-gbase)/64)
		keyMasks(s[gbase:gbase+64*nb], m[:nb])
		for _, x := range m[:nb] {
			if x == ^uint64(0) {
				if run += 64; run >= n {
					return true
				}
				continue
			}
			if run+bits.TrailingZeros64(^x) >= n || hasRun(x, n) {
				return true
			}
			run = bits.LeadingZeros64(^x)
		}
	}
	for i := full; i < len(s); i++ {
		if !isKeyChar(s[i]) {
			run = 0
		} else if run++; run >= n {
			return true
		}
	}
	return false
}

// hasRun reports whether x has n (1 to 64) consecutive bits set.
func hasRun(x uint64, n int) bool {
	for k := 1; k < n && x != 0; {
		sh := min(k, n-k)
		x &= x >> sh
		k += sh
	}
	return x != 0
}

// keyMasksGo sets in m[b] a bit for each key character of the 64-byte
// block b of s, eight bytes at a time.
func keyMasksGo(s string, m []uint64) {
	for b := range m {
		var bm uint64
		for c := 0; c < 64; c += 8 {
			x := load64(s, 64*b+c)
			k := inRange(x|lsb*0x20, 'a', 'z') | inRange(x, '0', '9') | eqByte(x, '+') | eqByte(x, '/')
			bm |= ((k >> 7) * 0x0102040810204080 >> 56) << c
		}
		m[b] = bm
	}
}

func isKeyChar(c byte) bool { return isAlnum(c) || c == '+' || c == '/' }
