package detect

import (
	"encoding/base64"
	"encoding/binary"
	"unicode"
	"unicode/utf8"
)

// runeTables answers, a bit per rune of the Basic Multilingual Plane, the
// questions the scan asks of every non-ASCII rune, which unicode's range
// tables (a binary search each) and x/text's trie answer at 20-60 ns a
// rune: text in other scripts is all such runes (Russian prose scanned at
// ~19 MB/s with them).
type runeTables struct {
	word    bmpBits // isWordRune
	plain   bmpBits // foldRune leaves r as it is (neither drops nor maps it)
	inert   bmpBits // NFKC leaves r alone and r composes with no rune before it
	toASCII bmpBits // foldWordRune(r) is ASCII (the Kelvin sign, 'İ', '’')
	same    bmpBits // inert and plain: normalisation leaves r alone (derived)
}

// derive fills the tables computed from the others.
func (t *runeTables) derive() {
	for j := range t.same {
		t.same[j] = t.inert[j] & t.plain[j]
	}
}

// bmpBits is a bit per rune below U+10000.
type bmpBits [1 << 16 / 64]uint64

func (b *bmpBits) has(r rune) bool { return b[r>>6]>>(r&63)&1 != 0 }
func (b *bmpBits) set(r rune)      { b[r>>6] |= 1 << (r & 63) }

// runeTab is runeTables as of the Unicode version of the unicode package
// and x/text (runes_data.go, written by TestRuneTables -update from
// buildRuneTables, which it holds it to).
var runeTab = func() *runeTables {
	t := new(runeTables)
	b, err := base64.StdEncoding.DecodeString(runeTablesData)
	if err != nil || len(b) != 4*len(t.word)*8 {
		panic("detect: runes_data.go is damaged: run go test ./guard/detect -run TestRuneTables -update")
	}
	for i, tb := range []*bmpBits{&t.word, &t.plain, &t.inert, &t.toASCII} {
		for j := range tb {
			tb[j] = binary.LittleEndian.Uint64(b[(i*len(tb)+j)*8:])
		}
	}
	t.derive()
	return t
}()

// isWordRuneSlow is isWordRune from the unicode tables.
func isWordRuneSlow(r rune) bool {
	if r < utf8.RuneSelf {
		return class[r]&cWord != 0
	}
	if r >= 0x2000 && r <= 0x206f {
		return false // General Punctuation (quotes, dashes, spaces): no letter, digit or mark
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}

// inertSpan returns the offset of the first rune at or after i that
// normalisation may change: one foldRune drops or maps, or one that is not
// NFKC-inert (a combining mark, a compatibility character, a rune past the
// BMP), or an invalid byte. ASCII is inert: it composes only with a
// following combining mark, which is not. So s is its own normal form when
// inertSpan(s, 0) == len(s).
func inertSpan(s string, i int) int {
	t := runeTab
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= 0xC2 && c <= 0xDF && i+1 < len(s) && s[i+1]&0xC0 == 0x80 {
			// Two bytes (Cyrillic, Greek, Arabic, Hebrew): decoded here.
			if r := rune(c&0x1F)<<6 | rune(s[i+1]&0x3F); !t.same.has(r) {
				return i
			}
			i += 2
			continue
		}
		r, n := decodeRune(s, i)
		if r >= 1<<16 || n == 1 || !t.same.has(r) {
			return i
		}
		i += n
	}
	return len(s)
}

// decodeRune is utf8.DecodeRuneInString(s[i:]) with the two- and three-byte
// forms (every script of the BMP) decoded inline: the utf8 package decodes
// only ASCII without a call.
func decodeRune(s string, i int) (rune, int) {
	c0 := s[i]
	switch {
	case c0 < utf8.RuneSelf:
		return rune(c0), 1
	case c0 >= 0xC2 && c0 <= 0xDF && i+1 < len(s):
		if c1 := s[i+1]; c1&0xC0 == 0x80 {
			return rune(c0&0x1F)<<6 | rune(c1&0x3F), 2
		}
	case c0 >= 0xE0 && c0 <= 0xEF && i+2 < len(s):
		c1, c2 := s[i+1], s[i+2]
		if c1&0xC0 == 0x80 && c2&0xC0 == 0x80 {
			// Not overlong (below U+0800), not a surrogate.
			if r := rune(c0&0x0F)<<12 | rune(c1&0x3F)<<6 | rune(c2&0x3F); r >= 0x800 && (r < 0xD800 || r > 0xDFFF) {
				return r, 3
			}
		}
	}
	return utf8.DecodeRuneInString(s[i:])
}
