package detect

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Words finds the entries of a word or phrase list: case-insensitively
// (Unicode simple case folding to lower case), at word boundaries (letters,
// digits, combining marks and '_' of any script are word characters), with the
// words of a phrase matching across any run of whitespace ("acme  corp" and
// "Acme\ncorp" match "acme corp"). An entry that starts or ends with a
// non-word character ("c++", "#internal") has no boundary on that side.
//
// Entries made of plain words are matched by hashing each word of the text
// once and looking it up in a table of the words the entries use (see
// wordMatcher): one pass whatever the list's size, so an Aho-Corasick
// automaton would not pay for a dependency. Entries with punctuation inside
// a word go to a byte-level matcher indexed by their first two bytes.
type Words struct {
	typ    string
	wm     wordMatcher // entries made of plain words
	set    phraseSet   // entries with punctuation in a word ("c++", "#internal")
	spans  sync.Pool   // *[]wordSpan
	filter wordFilter  // the words wm looks at on its own
}

// NewWords returns a detector whose findings have type typ (a guard or list
// name, such as "DENIED_WORDS") for the given entries.
func NewWords(typ string, entries []string) (*Words, error) {
	if typ == "" {
		return nil, fmt.Errorf("words: empty finding type")
	}
	w := &Words{typ: typ}
	for _, e := range entries {
		fields := strings.Fields(e)
		if len(fields) == 0 {
			return nil, fmt.Errorf("words %s: empty entry", typ)
		}
		ph := phrase{typ: typ}
		plain := true
		for _, f := range fields {
			// Folded as the tokeniser folds text (foldWordRune: ’ is ',
			// İ is i), so that every entry can match what it names.
			a := alt{text: foldWord(f)}
			first, _ := utf8.DecodeRuneInString(a.text)
			last, _ := utf8.DecodeLastRuneInString(a.text)
			a.startsWord, a.endsWord = isWordRune(first), isWordRune(last)
			plain = plain && isPlainWord(a.text)
			ph.slots = append(ph.slots, slot{alts: []alt{a}, min: 1, max: 1})
		}
		if plain {
			// Word ids are 16 bits (0: none).
			if len(w.wm.words)+len(ph.slots) > 1<<16 {
				return nil, fmt.Errorf("words %s: more than %d distinct words in the list", typ, 1<<16-1)
			}
			w.wm.add(typ, ph.slots, 0)
		} else {
			w.set.add(ph)
		}
	}
	w.addFilter(&w.filter)
	return w, nil
}

// Name implements Detector.
func (w *Words) Name() string { return "words" }

// Detect implements Detector.
func (w *Words) Detect(s string, dst []Finding) []Finding {
	withWords(&w.spans, s, &w.filter, func(words []wordSpan) { dst = w.detectSpans(s, words, dst) })
	return dst
}

func (w *Words) addFilter(f *wordFilter) { f.add(&w.wm) }

func (w *Words) detectSpans(s string, words []wordSpan, dst []Finding) []Finding {
	dst = w.wm.scan(s, words, "words", dst, nil)
	return w.set.scan(s, "words", dst)
}

// alt is one spelling a slot accepts.
type alt struct {
	text       string // lower case unless exact
	exact      bool   // compare bytes, not folded
	startsWord bool   // needs a word boundary before
	endsWord   bool   // needs a word boundary after
}

func newAlt(t string) alt {
	a := alt{text: strings.ToLower(t)}
	if strings.HasPrefix(t, "=") && len(t) > 1 { // "=DAN": case-sensitive
		a = alt{text: t[1:], exact: true}
	}
	first, _ := utf8.DecodeRuneInString(a.text)
	last, _ := utf8.DecodeLastRuneInString(a.text)
	a.startsWord, a.endsWord = isWordRune(first), isWordRune(last)
	return a
}

// slot is one position of a phrase: between min and max words, each one of
// alts.
type slot struct {
	alts     []alt
	min, max int
}

type phrase struct {
	typ    string
	slots  []slot
	anchor int // the slot marked '^' in an injection pattern (0: none marked)
}

// phraseSet matches phrases word by word. With punct set, words may also be
// separated by punctuation other than sentence ends (for the injection
// heuristic: "ignore -- all previous, instructions").
type phraseSet struct {
	phrases []phrase
	first   [256][]int32   // phrase indexes by the first byte of a first-slot alternative (folded)
	pair    [256][4]uint64 // second bytes seen after each first byte (folded)
	punct   bool
}

func (ps *phraseSet) add(ph phrase) {
	idx := int32(len(ps.phrases))
	ps.phrases = append(ps.phrases, ph)
	for _, a := range ph.slots[0].alts {
		b0 := a.text[0]
		if a.exact {
			b0 = lower(b0)
		}
		if l := ps.first[b0]; len(l) == 0 || l[len(l)-1] != idx {
			ps.first[b0] = append(ps.first[b0], idx)
		}
		if len(a.text) < 2 || a.text[1] >= utf8.RuneSelf || a.text[0] >= utf8.RuneSelf || a.exact {
			ps.pair[b0] = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
		} else {
			b1 := a.text[1]
			ps.pair[b0][b1>>6] |= 1 << (b1 & 63)
		}
	}
}

// scan appends a finding for the longest phrase match at each position,
// leftmost first, without overlaps.
func (ps *phraseSet) scan(s, detector string, dst []Finding) []Finding {
	if len(ps.phrases) == 0 {
		return dst
	}
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		size := 1
		var b0 byte
		wordStart := false
		if c < utf8.RuneSelf {
			if class[c]&cWord != 0 {
				if i > 0 && wordRuneBefore(s, i) {
					i = skipWord(s, i)
					continue
				}
				wordStart = true
			}
			b0 = lower(c)
			if ps.first[b0] == nil {
				if wordStart {
					i = skipWord(s, i)
				} else {
					i++
				}
				continue
			}
			if i+1 < n {
				b1 := lower(s[i+1])
				if ps.pair[b0][b1>>6]&(1<<(b1&63)) == 0 {
					if wordStart {
						i = skipWord(s, i)
					} else {
						i++
					}
					continue
				}
			}
		} else {
			r, sz := utf8.DecodeRuneInString(s[i:])
			size = sz
			if isWordRune(r) {
				if wordRuneBefore(s, i) {
					i += size
					continue
				}
				wordStart = true
			}
			var buf [4]byte
			utf8.EncodeRune(buf[:], foldWordRune(r))
			b0 = buf[0]
			if ps.first[b0] == nil {
				i += size
				continue
			}
		}
		best, bestPh := -1, -1
		for _, pi := range ps.first[b0] {
			ph := &ps.phrases[pi]
			if e := ps.match(s, ph, 0, 0, i, true, wordStart); e > best {
				best, bestPh = e, int(pi)
			}
		}
		if best > i {
			dst = append(dst, Finding{Type: ps.phrases[bestPh].typ, Detector: detector, Start: i, End: best})
			i = best
			continue
		}
		i += size
	}
	return dst
}

// match matches slots[si:] of ph at pos (cnt words already taken for slot
// si), returning the end of the match or -1. atStart: no separator is needed
// before the next word.
func (ps *phraseSet) match(s string, ph *phrase, si, cnt, pos int, atStart, wordStart bool) int {
	if si == len(ph.slots) {
		return pos
	}
	sl := &ph.slots[si]
	if cnt < sl.max {
		q := pos
		if !atStart {
			q = ps.skipSep(s, pos)
		}
		if q > 0 || atStart {
			for k := range sl.alts {
				a := &sl.alts[k]
				if atStart && a.startsWord && !wordStart {
					continue
				}
				if e := matchAlt(s, q, a); e > 0 {
					if r := ps.match(s, ph, si, cnt+1, e, false, false); r >= 0 {
						return r
					}
				}
			}
		}
	}
	if cnt >= sl.min {
		return ps.match(s, ph, si+1, 0, pos, atStart, wordStart)
	}
	return -1
}

// skipSep skips the separator after a word: at least one whitespace
// character (or, with punct, punctuation within a sentence). It returns the
// position of the next word or -1.
func (ps *phraseSet) skipSep(s string, p int) int {
	start := p
	for p < len(s) && p-start < 64 {
		c := s[p]
		if c < utf8.RuneSelf {
			if isSpace(c) || ps.punct && class[c]&cWord == 0 && c != '.' && c != '!' && c != '?' && c != '\n' {
				p++
				continue
			}
			break
		}
		r, n := utf8.DecodeRuneInString(s[p:])
		if !unicode.IsSpace(r) {
			break
		}
		p += n
	}
	if p == start || p == len(s) {
		return -1
	}
	return p
}

// matchAlt matches a at s[p], folding case unless a is exact, and returns the
// end of the match or 0.
func matchAlt(s string, p int, a *alt) int {
	t := a.text
	j := 0
	if a.exact {
		if !strings.HasPrefix(s[p:], t) {
			return 0
		}
		p += len(t)
		j = len(t)
	}
	for j < len(t) {
		if p >= len(s) {
			return 0
		}
		tc, sc := t[j], s[p]
		if tc < utf8.RuneSelf && sc < utf8.RuneSelf {
			if lower(sc) != tc {
				return 0
			}
			j++
			p++
			continue
		}
		tr, tn := utf8.DecodeRuneInString(t[j:])
		sr, sn := utf8.DecodeRuneInString(s[p:])
		if tr != sr && foldWordRune(sr) != tr {
			return 0
		}
		j += tn
		p += sn
	}
	if a.endsWord && wordRuneAt(s, p) {
		return 0
	}
	return p
}
