package detect

import (
	"unicode/utf8"
)

// ASCII byte classes, one table lookup per byte in the hot loops.
const (
	cDigit = 1 << iota
	cUpper
	cLower
	cHexLetter
	cWord  // letters, digits, '_': the ASCII part of a word for boundary purposes
	cB64   // standard and URL-safe base64 alphabet, without padding
	cSpace // ASCII whitespace
	cLocal // email local-part punctuation . _ % + -
)

// class is computed once and never written afterwards.
var class = func() (class [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		class[c] |= cDigit | cWord | cB64
	}
	for c := 'A'; c <= 'Z'; c++ {
		class[c] |= cUpper | cWord | cB64
		class[c+'a'-'A'] |= cLower | cWord | cB64
	}
	for c := 'A'; c <= 'F'; c++ {
		class[c] |= cHexLetter
		class[c+'a'-'A'] |= cHexLetter
	}
	class['_'] |= cWord | cB64 | cLocal
	for _, c := range "+/-" {
		class[c] |= cB64
	}
	for _, c := range ".%+-" {
		class[c] |= cLocal
	}
	for _, c := range " \t\n\r\v\f" {
		class[c] |= cSpace
	}
	return class
}()

func isDigit(c byte) bool { return class[c]&cDigit != 0 }
func isAlpha(c byte) bool { return class[c]&(cUpper|cLower) != 0 }
func isUpper(c byte) bool { return class[c]&cUpper != 0 }
func isAlnum(c byte) bool { return class[c]&(cDigit|cUpper|cLower) != 0 }
func isHex(c byte) bool   { return class[c]&(cDigit|cHexLetter) != 0 }
func isSpace(c byte) bool { return class[c]&cSpace != 0 }
func lower(c byte) byte {
	if class[c]&cUpper != 0 {
		return c + 'a' - 'A'
	}
	return c
}

// wordRuneBefore reports whether the rune ending at s[:i] is a word character
// (a letter, digit, combining mark or '_').
func wordRuneBefore(s string, i int) bool {
	if i <= 0 {
		return false
	}
	c := s[i-1]
	if c < utf8.RuneSelf {
		return class[c]&cWord != 0
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return isWordRune(r)
}

// wordRuneAt reports whether the rune starting at s[i] is a word character.
func wordRuneAt(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	if c < utf8.RuneSelf {
		return class[c]&cWord != 0
	}
	r, _ := decodeRune(s, i)
	return isWordRune(r)
}

// isWordRune reports whether r is a letter, digit, combining mark or '_'
// (a table lookup below U+10000: see runeTables).
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return class[r]&cWord != 0
	}
	if r < 1<<16 {
		return runeTab.word.has(r)
	}
	return isWordRuneSlow(r)
}

// hasPrefixFoldASCII reports whether s starts with needle, ASCII letters
// compared without case. needle must be lower case.
func hasPrefixFoldASCII(s, needle string) bool {
	if len(s) < len(needle) {
		return false
	}
	for i := 0; i < len(needle); i++ {
		if lower(s[i]) != needle[i] {
			return false
		}
	}
	return true
}

// foldWords is a list of lower-case ASCII words for containsFold, with the
// bytes they may start with (either case), so that most bytes of the text
// are passed with one table lookup.
type foldWords struct {
	words []string
	first [256]bool
}

func newFoldWords(words ...string) *foldWords {
	f := &foldWords{words: words}
	for _, w := range words {
		f.first[w[0]] = true
		if c := w[0]; c >= 'a' && c <= 'z' {
			f.first[c-'a'+'A'] = true
		}
	}
	return f
}

// contains is containsFold(s, f.words, whole).
func (f *foldWords) contains(s string, whole bool) bool {
	for i := 0; i < len(s); i++ {
		if !f.first[s[i]] {
			continue
		}
		for _, w := range f.words {
			if !hasPrefixFoldASCII(s[i:], w) {
				continue
			}
			if whole && (wordRuneBefore(s, i) || wordRuneAt(s, i+len(w))) {
				continue
			}
			return true
		}
	}
	return false
}

// window returns up to before bytes before [start,end) and after bytes after it.
func window(s string, start, end, before, after int) (string, string) {
	return s[max(0, start-before):start], s[end:min(len(s), end+after)]
}
