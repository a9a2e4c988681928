package detect

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns the form of s that detectors scan, so that trivial
// obfuscation does not hide a value from them:
//
//   - invisible characters are removed: zero-width space, non-joiner and joiner
//     (U+200B..U+200D), word joiner and invisible operators (U+2060..U+2064),
//     the byte-order mark U+FEFF, the soft hyphen U+00AD, bidi marks, embeddings
//     and isolates, the Mongolian vowel separator, variation selectors, tag
//     characters and the other format (Cf) characters;
//   - the text is put in Unicode NFKC form, which folds full-width digits and
//     letters, ligatures, superscripts and the like to their plain forms and
//     odd spaces (no-break, thin, ideographic) to U+0020;
//   - decimal digits of every script (Arabic-Indic, Devanagari, ...) become
//     ASCII digits, and Unicode hyphens, figure and en dashes and minus signs
//     become '-' (em dashes stay: they separate words, not digits).
//
// Offsets in a Finding always refer to the normalised text, never to the
// input: callers that rewrite text (masking) rewrite the normalised text.
//
// Pure ASCII input is returned unchanged without allocating (ASCII holds none
// of the characters above). Letters from other scripts that merely look like
// Latin ones (Cyrillic 'а' for 'a') are not folded: NFKC does not treat them
// as equivalent and guessing would damage legitimate text.
func Normalize(s string) string {
	i := asciiPrefix(s)
	if i == len(s) {
		return s
	}
	if t, _, _, ok := normalizeSimple(s, i, nil); ok {
		return t
	}
	return normalizeSlow(s, i)
}

// normalizeInto is Normalize that builds the text in buf's spare capacity
// when its fast path copies: then inBuf is true, t aliases the returned
// buffer and is valid only until the buffer is written again.
func normalizeInto(s string, buf []byte) (t string, out []byte, inBuf bool) {
	i := asciiPrefix(s)
	if i == len(s) {
		return s, buf, false
	}
	if t, out, copied, ok := normalizeSimple(s, i, buf); ok {
		return t, out, copied
	}
	return normalizeSlow(s, i), buf, false
}

// normalizeSlow is the general path of Normalize for s whose first non-ASCII
// byte is at i.
func normalizeSlow(s string, i int) string {
	// Non-ASCII: is any work needed at all? Most text with a few curly quotes
	// or accents, and most text in other scripts, is already NFKC and holds
	// no invisible characters: inertSpan says so by table for most of it.
	i = inertSpan(s, i)
	if i == len(s) {
		return s
	}
	j := firstFold(s, i)
	if j == len(s) && norm.NFKC.QuickSpanString(s) == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:j])
	stripInvisible(&b, s[j:])
	t := b.String()
	// NFKC output may hold digits of other scripts or dashes it does not
	// fold, and dropping a character may let neighbours compose: repeat
	// until both steps leave the text alone (once or twice in practice).
	// (stripInvisible's output never needs folding itself.)
	for range 4 {
		if norm.NFKC.QuickSpanString(t) == len(t) {
			return t
		}
		t = norm.NFKC.String(t)
		if !needsFold(t) {
			return t
		}
		var b2 strings.Builder
		b2.Grow(len(t))
		stripInvisible(&b2, t)
		t = b2.String()
	}
	return t
}

// needsFold reports whether s holds a rune that stripInvisible drops or maps.
func needsFold(s string) bool { return firstFold(s, 0) < len(s) }

// firstFold returns the offset of the first rune at or after i that
// stripInvisible drops or maps, or len(s).
func firstFold(s string, i int) int {
	for i < len(s) {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := decodeRune(s, i)
		if r < 1<<16 && runeTab.plain.has(r) {
			i += n
			continue
		}
		if m, keep := foldRune(r); !keep || m != r {
			return i
		}
		i += n
	}
	return len(s)
}

// stripInvisible writes s to b without invisible characters and with digits
// and dashes folded to ASCII.
func stripInvisible(b *strings.Builder, s string) {
	for len(s) > 0 {
		j := 0
		for j < len(s) && s[j] < utf8.RuneSelf {
			j++
		}
		b.WriteString(s[:j])
		if j == len(s) {
			return
		}
		r, n := utf8.DecodeRuneInString(s[j:])
		if m, keep := foldRune(r); keep {
			if m == r {
				b.WriteString(s[j : j+n]) // keeps invalid bytes as they are
			} else {
				b.WriteRune(m)
			}
		}
		s = s[j+n:]
	}
}

// foldRune maps one non-ASCII rune: keep=false drops it.
func foldRune(r rune) (m rune, keep bool) {
	switch {
	case r == 0x00AD, // soft hyphen
		r == 0x034F,              // combining grapheme joiner
		r == 0x061C,              // Arabic letter mark
		r == 0x115F, r == 0x1160, // Hangul fillers
		r == 0x17B4, r == 0x17B5, // Khmer inherent vowels
		r >= 0x180B && r <= 0x180F, // Mongolian selectors and vowel separator
		r >= 0x200B && r <= 0x200F, // zero-width space/non-joiner/joiner, LRM, RLM
		r >= 0x202A && r <= 0x202E, // bidi embeddings and overrides
		r >= 0x2060 && r <= 0x206F, // word joiner, invisible operators, isolates
		r == 0x3164, r == 0xFFA0,   // Hangul fillers
		r >= 0xFE00 && r <= 0xFE0F,   // variation selectors
		r == 0xFEFF,                  // byte-order mark / zero-width no-break space
		r >= 0xFFF0 && r <= 0xFFF8,   // unassigned specials
		r >= 0xE0000 && r <= 0xE0FFF, // tags and variation selectors supplement
		r >= 0x1BCA0 && r <= 0x1BCA3: // shorthand format controls
		return 0, false
	case r >= 0x2010 && r <= 0x2013, r == 0x2212, r == 0xFE58, r == 0xFE63, r == 0xFF0D:
		return '-', true
	}
	if unicode.Is(unicode.Cf, r) {
		return 0, false
	}
	if d, ok := digitValue(r); ok {
		return '0' + d, true
	}
	return r, true
}

// digitValue returns the value of a decimal digit (general category Nd) of
// any script. Unicode encodes each script's decimal digits as a contiguous run
// 0..9, so a rune's value is its distance from the start of its range, mod 10.
func digitValue(r rune) (rune, bool) {
	if !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return (r - rune(rg.Lo)) / rune(rg.Stride) % 10, true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return (r - rune(rg.Lo)) / rune(rg.Stride) % 10, true
		}
	}
	return 0, false
}
