package detect

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// Hold-back for streamed text. A streamed answer arrives in tokens of a few
// bytes; a guard that scanned and released each token as it came would let
// the first digits of a card number out before the last ones arrive. A
// Holder says, for the text seen so far, from which offset a value it could
// report may still be incomplete: the caller releases only the text before
// that offset, and at most MaxMatch bytes (the longest value the detector
// can report) are ever held for it.

// Holder is implemented by detectors that know where a value they could
// still report may begin at the end of a text.
type Holder interface {
	// Hold returns the smallest offset in the normalised text s from which
	// the end of s may be the unfinished beginning of a value the detector
	// reports (len(s) when none can be): text before it can be released.
	Hold(s string) int
	// MaxMatch returns the longest value, in bytes of normalised text, that
	// the detector can report, or 0 when it has no bound (custom
	// expressions): then the caller's own bound applies.
	MaxMatch() int
}

// Hold returns the smallest Hold of the scanner's detectors; a detector that
// is not a Holder holds everything (0).
func (s *Scanner) Hold(text string) int {
	h := len(text)
	for _, d := range s.detectors {
		hd, ok := d.(Holder)
		if !ok {
			return 0
		}
		h = min(h, hd.Hold(text))
	}
	return h
}

// MaxHold returns the longest value any of the scanner's detectors can
// report; unbounded detectors (and detectors that are not Holders) count as
// unbounded bytes.
func (s *Scanner) MaxHold(unbounded int) int {
	m := 0
	for _, d := range s.detectors {
		n := 0
		if hd, ok := d.(Holder); ok {
			n = hd.MaxMatch()
		}
		if n <= 0 {
			n = unbounded
		}
		m = max(m, n)
	}
	return m
}

// Bounds of the built-in PII values, in bytes of normalised text, with room
// for a glued or spaced label ("SSN: ", "card:"), doubled spaces and
// " - " separators between groups.
const (
	maxFixedValue = 128      // card, SSN, IBAN, phone, routing, IP, MAC, NINO, AWS keys
	maxEmailValue = 64 + 256 // local part (64) '@' domain (255)
)

// Hold implements Holder. Every built-in value is either one run of
// non-space characters (emails, URLs, keys, glued labels) or groups of
// digits and short upper-case codes separated by up to three spaces, '-'
// or a lone separator token (card 4111 1111 …, SSN 123 - 45 - 6789, IBAN
// DE89 3704 …, phone (555) 123-4567, NINO AB 12 34 56 C). So the held tail
// is the last non-space token, extended backwards over such groups; when s
// ends in whitespace the last token is still held if it may continue a
// spaced number. Custom expressions are held the same way: one that can
// match whitespace (MatchesSpace) needs the caller to hold more.
func (p *PII) Hold(s string) int { return tokenHold(s) }

// MaxMatch implements Holder.
func (p *PII) MaxMatch() int {
	if len(p.regexes) > 0 || p.kinds&kURL != 0 {
		return 0
	}
	if p.kinds&kEmail != 0 {
		return maxEmailValue
	}
	return maxFixedValue
}

// tokenHold returns where the trailing, possibly unfinished value of s
// starts (see PII.Hold).
func tokenHold(s string) int {
	end := len(s)
	start := tokenStart(s, end)
	right := s[start:end] // "" when s ends in whitespace
	for start > 0 {
		gapEnd := start
		gap := gapEnd
		spaces := 0
		for gap > 0 {
			r, n := utf8.DecodeLastRuneInString(s[:gap])
			if r == '\n' || !unicode.IsSpace(r) {
				break
			}
			gap -= n
			spaces++
		}
		if spaces == 0 || spaces > 3 || gap == 0 {
			break
		}
		if r, _ := utf8.DecodeLastRuneInString(s[:gap]); r == '\n' {
			break
		}
		ls := tokenStart(s, gap)
		left := s[ls:gap]
		if !joinsRight(right) {
			break
		}
		if !joinsLeft(left) {
			break
		}
		start, right = ls, left
	}
	return start
}

// tokenStart returns the start of the run of non-space runes ending at end.
func tokenStart(s string, end int) int {
	i := end
	for i > 0 {
		c := s[i-1]
		if c < utf8.RuneSelf {
			if isSpace(c) {
				break
			}
			i--
			continue
		}
		r, n := utf8.DecodeLastRuneInString(s[:i])
		if unicode.IsSpace(r) {
			break
		}
		i -= n
	}
	return i
}

// joinsRight reports whether token t (what follows a gap) may continue a
// spaced value begun before the gap.
func joinsRight(t string) bool {
	if t == "" || sepToken(t) {
		return true
	}
	switch c := t[0]; {
	case isDigit(c), c == '(', c == '+', c == '-':
		return true
	}
	return upperCode(t)
}

// joinsLeft reports whether token t (before a gap) may be part of a spaced
// value: it holds a digit, is a separator or a short upper-case code. A
// spaced label ("card: 4111 …") is not part of the value: the detectors
// read it as context from the released text.
func joinsLeft(t string) bool {
	if sepToken(t) || upperCode(t) {
		return true
	}
	for i := 0; i < len(t); i++ {
		if isDigit(t[i]) {
			return true
		}
	}
	return false
}

// sepToken: a token made only of separators ("-", "/", "–" folded to '-').
func sepToken(t string) bool {
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '-', '.', '/', '_', ':':
		default:
			return false
		}
	}
	return true
}

// upperCode: up to four upper-case letters and digits (an IBAN group such
// as "WEST", a NINO prefix "AB" or suffix "C").
func upperCode(t string) bool {
	if len(t) > 4 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !isUpper(t[i]) && !isDigit(t[i]) {
			return false
		}
	}
	return true
}

// MatchesSpace reports whether the RE2 expression expr can match a
// whitespace character (so its values may span tokens); an expression that
// does not parse counts as one that can.
func MatchesSpace(expr string) bool {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return true
	}
	return reSpace(re.Simplify())
}

func reSpace(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if unicode.IsSpace(r) || re.Flags&syntax.FoldCase != 0 && unicode.IsSpace(unicode.SimpleFold(r)) {
				return true
			}
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			for _, sp := range spaceRunes {
				if sp >= lo && sp <= hi {
					return true
				}
			}
		}
	}
	for _, sub := range re.Sub {
		if reSpace(sub) {
			return true
		}
	}
	return false
}

// spaceRunes are the runes unicode.IsSpace accepts (U+2000..U+200A listed
// by its ends and middle: a class holding any of them holds one of these or
// lies inside that range, checked below).
var spaceRunes = [...]rune{'\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xA0, 0x1680,
	0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
	0x2028, 0x2029, 0x202F, 0x205F, 0x3000}

// Hold implements Holder: a phrase of up to n words may have begun at any
// of the last n words.
func (w *Words) Hold(s string) int { return wordsHold(s, w.maxWords()) }

// MaxMatch implements Holder.
func (w *Words) MaxMatch() int { return wordsMax(w.maxWords(), max(w.wm.maxLen, 64)) }

func (w *Words) maxWords() int {
	n := maxSlots(w.wm.phrases)
	for _, ph := range w.set.phrases {
		k := 0
		for _, sl := range ph.slots {
			k += sl.max
		}
		n = max(n, k)
	}
	return n
}

// Hold implements Holder (see Words.Hold); a base64 blob the heuristic
// decodes is one token, which the last word always covers.
func (d *Injection) Hold(s string) int { return wordsHold(s, maxSlots(d.wm.phrases)) }

// MaxMatch implements Holder: the longest phrase, or an encoded blob.
func (d *Injection) MaxMatch() int { return 0 }

func maxSlots(phs []wphrase) int {
	n := 1
	for _, ph := range phs {
		k := 0
		for _, sl := range ph.slots {
			k += sl.max
		}
		n = max(n, k)
	}
	return n
}

// wordsMax bounds a phrase of n words of at most wordLen bytes separated by
// up to 64 bytes (phraseSet.skipSep's limit).
func wordsMax(n, wordLen int) int { return n * (wordLen*4 + 64) }

// wordsHold returns the start of the n-th last word of s (a word: a run of
// non-space runes), or of the last token when s does not end in whitespace
// and n is 1.
func wordsHold(s string, n int) int {
	i := len(s)
	start := i
	for k := 0; k < n && i > 0; k++ {
		// skip whitespace, then one token
		for i > 0 {
			r, sz := utf8.DecodeLastRuneInString(s[:i])
			if !unicode.IsSpace(r) {
				break
			}
			i -= sz
		}
		i = tokenStart(s, i)
		start = i
	}
	return start
}
