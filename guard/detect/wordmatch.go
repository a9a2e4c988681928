package detect

import (
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// wordMatcher matches phrases made of whole words. Text is tokenised once
// into words (runs of letters, digits, combining marks and '_' of any
// script, with an apostrophe between letters kept, as in "don't"); each word
// is hashed (FNV-1a over its lower-cased runes) while it is scanned and looked
// up in a small open-addressing table of the words the phrases use. Only a
// word that can start a phrase starts a match attempt, so the cost is about
// one pass over the bytes whatever the number of phrases.
type wordMatcher struct {
	punct   bool // words may be separated by punctuation within a sentence, not only whitespace
	phrases []wphrase
	words   []string  // id -> lower-case word (id 0: none)
	table   []vEntry  // open addressing by hash
	short   []sEntry  // the ASCII words of up to 8 bytes, by shortKey
	byFirst [][]int32 // id -> phrases whose first slot accepts it
	// pairs holds a bit per prefixKey of every word, so most words of the
	// text are rejected before they are hashed.
	pairs  [1 << 16 / 64]uint64
	starts [1 << 14 / 64]uint64 // the same (folded to 14 bits) for words that start a phrase
	maxLen int
	// firsts has a bit for the first rune of each word that starts with
	// a non-ASCII one below U+10000 (nil: no word does), firstsHi those
	// above: a set, as a list of a CJK or Hangul deny list's first runes
	// runs to thousands, searched for every word of such text.
	firsts   *bmpBits
	firstsHi map[rune]bool
	// keys holds the filterKeys of the words a wordFilter keeps for m:
	// the words of each phrase's anchor slot (its first, unless
	// anchored); keyDigit: one of those starts with an ASCII digit.
	keys     [1 << 14 / 64]uint64
	keyDigit bool
	// anchored: scan finds phrases from their anchor words (see
	// scanAnchored); before[id] is then how many words a match may have
	// before anchor word id (-1: id anchors none), and step how many
	// bytes each of them with its separator takes at most.
	anchored bool
	before   []int32
	step     int
	// anchorKeys: the startKeys of the anchor words' prefixKeys, which
	// scanAnchored rejects most of the list's other words by.
	anchorKeys [1 << 14 / 64]uint64
	// pred[id] holds a bit per word id that may come right before anchor
	// word id in a match that has words before it (nil: id anchors no
	// phrase with a slot before its anchor slot). An anchor word whose
	// text predecessor is none of them starts every match it is the
	// first anchor-slot word of, and scanAnchored does not walk back.
	pred [][]uint64
	// anchors pools scanAnchored's lists of anchor words (*[]anchorAt):
	// a text dense in them ("rules rules …") has one every few bytes.
	anchors sync.Pool
}

// prefixKey hashes the first three bytes of a word (all of a shorter one),
// ASCII letters folded to lower case; ok is false when one of them is not
// ASCII. A text word and a vocabulary word that fold to each other have the
// same key when both have one: ASCII folds only to ASCII, byte for byte.
func prefixKey(w string) (key uint16, ok bool) {
	var x uint32
	switch {
	case len(w) >= 3:
		x = uint32(w[0]) | uint32(w[1])<<8 | uint32(w[2])<<16
	case len(w) == 2:
		x = uint32(w[0]) | uint32(w[1])<<8
	case len(w) == 1:
		x = uint32(w[0])
	default:
		return 0, false
	}
	if x&0x808080 != 0 {
		return 0, false
	}
	return uint16((x | 0x202020) * 0x9E3779B1 >> 16), true
}

func hasKey(set *[1 << 16 / 64]uint64, k uint16) bool { return set[k>>6]&(1<<(k&63)) != 0 }

// filterKey hashes the first eight bytes of an ASCII word (all of a
// shorter one: x as asciiWord returns it) to the 14 bits a wordFilter
// keeps words by. A text word whose first eight bytes (or fewer, all of
// it) are ASCII folds to a word with the same ones, folded byte by byte,
// and so the same filterKey; a word of eight bytes or fewer has its own,
// but for collisions of the hash.
//
// Letters are folded to upper case by clearing 0x20 in every byte (no word
// byte becomes 0, so the zero bytes past a shorter word's end still end
// it): the assembly folds with the same AND that keeps the word's bytes
// (runBytes), where setting 0x20 would take one more operation a word.
func filterKey(x uint64) uint32 { return uint32((x &^ (lsb * 0x20)) * 0x9E3779B97F4A7C15 >> 50) }

// startKey folds a prefixKey to the 14 bits of wordMatcher.starts, small
// enough to stay in the L1 cache next to the text.
func startKey(k uint16) uint16 { return k >> 2 }

func (m *wordMatcher) mayStart(k uint16) bool {
	k = startKey(k)
	return m.starts[k>>6]&(1<<(k&63)) != 0
}

// mayHold reports whether the text word w may be in the vocabulary. A word
// that starts with a non-ASCII rune may hold only when that rune folds to
// ASCII or to the first rune of a vocabulary word (firsts); words with a
// non-ASCII byte among their first three are then hashed.
func (m *wordMatcher) mayHold(w string) bool {
	if len(w) > m.maxLen {
		return false
	}
	if w[0] >= utf8.RuneSelf && !m.mayLead(w) {
		return false
	}
	k, ok := prefixKey(w)
	return !ok || hasKey(&m.pairs, k)
}

// mayLead reports whether the first rune of w (not ASCII) folds to ASCII or
// to one of firsts: a text word folds to a vocabulary word rune by rune
// (foldEqual).
func (m *wordMatcher) mayLead(w string) bool {
	r, _ := decodeRune(w, 0)
	if r < 1<<16 && !runeTab.toASCII.has(r) && m.firsts == nil && m.firstsHi == nil {
		return false // the common case: an all-ASCII vocabulary
	}
	switch f := foldWordRune(r); {
	case f < utf8.RuneSelf:
		return true
	case f < 1<<16:
		return m.firsts != nil && m.firsts.has(f)
	default:
		return m.firstsHi[f]
	}
}

type vEntry struct {
	hash uint64
	id   uint16
}

type sEntry struct {
	key uint64
	id  uint16
}

// shortKey is the bytes of an ASCII word of up to 8 bytes (x, little-endian,
// zero past its end) with 0x20 set in each: letters folded to lower case,
// and the word's end marked by spaces, which no word holds; so two such
// words fold to each other exactly when their keys are equal ('_' becomes
// 0x7f, and digits and apostrophes have 0x20 set already).
func shortKey(x uint64) uint64 { return x | lsb*0x20 }

// asciiWord returns the first eight bytes of the word s[ws:we], the bytes
// past its end zero.
func asciiWord(s string, ws, we int) uint64 {
	l := min(we-ws, 8)
	if ws+8 <= len(s) {
		return load64(s, ws) & (^uint64(0) >> (64 - 8*l))
	}
	var x uint64
	for j := range l {
		x |= uint64(s[ws+j]) << (8 * j)
	}
	return x
}

func shortSlot(key uint64, mask int) int { return int(key*0x9E3779B97F4A7C15>>40) & mask }

type wphrase struct {
	typ    string
	slots  []wslot
	anchor int // the required slot whose words the filter keeps (0 unless anchored)
}

type wslot struct {
	alts     []walt
	min, max int
}

type walt struct {
	id    uint16
	exact string // non-empty: the word must be exactly this (case-sensitive)
}

const (
	fnvInit  = 14695981039346656037
	fnvPrime = 1099511628211
)

// wordHash hashes a lower-case word the way nextWord hashes text.
func wordHash(w string) uint64 {
	h := uint64(fnvInit)
	for _, r := range w {
		h = (h ^ uint64(foldWordRune(r))) * fnvPrime
	}
	return h
}

// foldWord folds a deny-list word rune by rune as text is folded.
func foldWord(w string) string {
	return strings.Map(foldWordRune, w)
}

func foldWordRune(r rune) rune {
	if r < utf8.RuneSelf {
		return rune(lower(byte(r)))
	}
	switch r {
	case '\u2019':
		return '\''
	case 'ς': // final sigma: "ΟΔΥΣΣΕΥΣ" lower-cases to σ throughout
		return 'σ'
	}
	return unicode.ToLower(r)
}

// isPlainWord reports whether w is a single word for the tokeniser.
func isPlainWord(w string) bool {
	if w == "" {
		return false
	}
	ws, we := nextWord(w, 0)
	return ws == 0 && we == len(w)
}

// id returns the id of a lower-case word, adding it.
func (m *wordMatcher) id(w string) uint16 {
	if len(m.words) == 0 {
		m.words = append(m.words, "")
	}
	if id := m.lookupHash(wordHash(w), w); id != 0 {
		return id
	}
	id := uint16(len(m.words))
	m.words = append(m.words, w)
	if len(m.table) < 4*len(m.words) {
		m.rebuild() // doubles the tables: amortised, not once per word
	} else {
		m.insert(int(id))
	}
	// Folding can change a word's byte length: leave slack. A text rune
	// is at most twice the bytes of the rune it folds to, but for the
	// Kelvin sign and ’ (3 bytes), which fold to 'k' and '.
	m.maxLen = max(m.maxLen, 2*len(w)+4+strings.Count(w, "k")+strings.Count(w, "'"))
	if k, ok := prefixKey(w); ok {
		m.pairs[k>>6] |= 1 << (k & 63)
	}
	switch r, _ := utf8.DecodeRuneInString(w); {
	case r < utf8.RuneSelf:
	case r < 1<<16:
		if m.firsts == nil {
			m.firsts = new(bmpBits)
		}
		m.firsts.set(r)
	default:
		if m.firstsHi == nil {
			m.firstsHi = make(map[rune]bool)
		}
		m.firstsHi[r] = true
	}
	return id
}

func (m *wordMatcher) rebuild() {
	size := 16
	for size < 4*len(m.words) {
		size *= 2
	}
	m.table = make([]vEntry, size)
	m.short = make([]sEntry, size)
	for id := 1; id < len(m.words); id++ {
		m.insert(id)
	}
}

// insert puts word id into the tables, which have room for it.
func (m *wordMatcher) insert(id int) {
	w := m.words[id]
	size := len(m.table)
	if len(w) <= 8 && asciiPrefix(w) == len(w) {
		key := shortKey(asciiWord(w, 0, len(w)))
		for k := shortSlot(key, size-1); ; k = (k + 1) & (size - 1) {
			if m.short[k].id == 0 {
				m.short[k] = sEntry{key, uint16(id)}
				break
			}
		}
	}
	h := wordHash(w)
	for k := h & uint64(size-1); ; k = (k + 1) & uint64(size-1) {
		if m.table[k].id == 0 {
			m.table[k] = vEntry{h, uint16(id)}
			break
		}
	}
}

// lookupHash returns the id of the word with hash h whose text folds to w
// (w is compared only on a hash hit).
func (m *wordMatcher) lookupHash(h uint64, w string) uint16 {
	if len(m.table) == 0 {
		return 0
	}
	mask := uint64(len(m.table) - 1)
	for k := h & mask; ; k = (k + 1) & mask {
		e := m.table[k]
		if e.id == 0 {
			return 0
		}
		if e.hash == h && foldEqual(w, m.words[e.id]) {
			return e.id
		}
	}
}

// foldEqual reports whether text folds to the lower-case word w.
func foldEqual(text, w string) bool {
	if len(text) == len(w) {
		i := 0
		for i < len(w) && text[i] < utf8.RuneSelf && lower(text[i]) == w[i] {
			i++
		}
		if i == len(w) {
			return true
		}
	}
	j := 0
	for _, r := range text {
		if j >= len(w) {
			return false
		}
		wr, n := utf8.DecodeRuneInString(w[j:])
		if foldWordRune(r) != wr {
			return false
		}
		j += n
	}
	return j == len(w)
}

// add adds a phrase: slots of alternatives (plain words, lower case, or
// "=Word" for a case-sensitive one). anchor is the slot (required: min >= 1)
// whose words the filter keeps; 0 unless m is anchored.
func (m *wordMatcher) add(typ string, slots []slot, anchor int) {
	ph := wphrase{typ: typ, anchor: anchor}
	for _, sl := range slots {
		ws := wslot{min: sl.min, max: sl.max}
		for _, a := range sl.alts {
			w := walt{}
			if a.exact {
				w.exact = a.text
				w.id = m.id(string(foldString(a.text)))
			} else {
				w.id = m.id(a.text)
			}
			ws.alts = append(ws.alts, w)
		}
		ph.slots = append(ph.slots, ws)
	}
	idx := int32(len(m.phrases))
	m.phrases = append(m.phrases, ph)
	for len(m.byFirst) < len(m.words) {
		m.byFirst = append(m.byFirst, nil)
	}
	for _, a := range ph.slots[0].alts {
		if k, ok := prefixKey(m.words[a.id]); ok {
			k = startKey(k)
			m.starts[k>>6] |= 1 << (k & 63)
		}
		if l := m.byFirst[a.id]; len(l) == 0 || l[len(l)-1] != idx {
			m.byFirst[a.id] = append(m.byFirst[a.id], idx)
		}
	}
	for _, a := range ph.slots[anchor].alts {
		w := m.words[a.id]
		if x := asciiWord(w, 0, len(w)); x&msb == 0 {
			k := filterKey(x)
			m.keys[k>>6] |= 1 << (k & 63)
		}
		m.keyDigit = m.keyDigit || isDigit(w[0])
	}
}

// anchor makes m find its phrases from their anchor slots' words (see
// scanAnchored); it is called once all phrases are added. A word of a
// match is at most max(maxLen, 8) bytes long (lookupAt finds no longer
// one) and the separator after it at most 64 (sepOK): so a match starts at
// most (words before the anchor slot) * (that + 64) bytes before the first
// word of its anchor slot.
func (m *wordMatcher) anchor() {
	m.anchored = true
	m.before = make([]int32, len(m.words))
	for i := range m.before {
		m.before[i] = -1
	}
	m.step = max(m.maxLen, 8) + 64
	m.pred = make([][]uint64, len(m.words))
	for _, ph := range m.phrases {
		n := 0
		for _, sl := range ph.slots[:ph.anchor] {
			n += sl.max
		}
		for _, a := range ph.slots[ph.anchor].alts {
			m.before[a.id] = max(m.before[a.id], int32(n))
			// The word right before the anchor slot's first word is
			// one of slot k's when the slots between k and the
			// anchor slot may all be empty.
			for k := ph.anchor - 1; k >= 0; k-- {
				if m.pred[a.id] == nil {
					m.pred[a.id] = make([]uint64, (len(m.words)+63)/64)
				}
				for _, b := range ph.slots[k].alts {
					m.pred[a.id][b.id>>6] |= 1 << (b.id & 63)
				}
				if ph.slots[k].min > 0 {
					break
				}
			}
			if k, ok := prefixKey(m.words[a.id]); ok {
				k = startKey(k)
				m.anchorKeys[k>>6] |= 1 << (k & 63)
			}
		}
	}
}

// wordsBack returns a position at or before a, the start of a word of s,
// at or after which every match that holds that word and has at most n
// words before it starts; not before floor. It walks back over the n words
// before a, as the tokeniser finds them (a byte is a word's when its rune
// is a word rune, or an apostrophe or ’ between two word runes: nextWord's
// rule, decided from its neighbours alone), and stops at a sentence end,
// which no separator within a match holds (see sepOK; for a matcher with
// punct). Each word costs its own bytes: a text dense in anchor words
// costs a few words each, not a walk back to floor.
func wordsBack(s string, a, n, floor int) int {
	p := a
	for n > 0 && p > floor {
		if sz := wordByteBefore(s, p); sz > 0 {
			for p > floor {
				sz := wordByteBefore(s, p)
				if sz == 0 {
					break
				}
				p -= sz
			}
			n--
			continue
		}
		c := s[p-1]
		if c == '.' || c == '!' || c == '?' {
			return p
		}
		if c < utf8.RuneSelf {
			p--
		} else {
			_, sz := utf8.DecodeLastRuneInString(s[:p])
			p -= sz
		}
	}
	return max(p, floor)
}

// backMax is how many words back a backWalker remembers.
const backMax = 16

// backWalker is wordsBack (with floor 0) for the anchor words of a text in
// order: it remembers the starts of the words behind the last anchor, so
// that the text between anchors is walked about once however dense the
// anchors ("rules、rules、rules…" would otherwise walk back over the same
// words for each), and no further back than the anchors need.
type backWalker struct {
	// rec holds the starts of the n words behind the last anchor,
	// nearest first; closed: no word lies behind them before stop (the
	// byte after a sentence end, or, when stop < 0, the text's start);
	// otherwise the words behind rec[n-1] have not been walked yet.
	rec    [backMax]int32
	n      int
	stop   int32
	closed bool
	last   int32 // the last anchor word's start (-1: none yet)
	end    int32 // and its end
}

// next moves bw to the anchor word s[a:e], after the last one, knowing at
// least need (<= backMax) words behind it.
func (bw *backWalker) next(s string, a, e, need int) {
	var cur [backMax]int32
	cn := 0
	limit := 0
	if bw.last >= 0 {
		limit = int(bw.end)
	}
	stop := walkWords(s, a, limit, &cur, &cn, need)
	closed := stop >= 0
	if !closed && cn < need {
		if bw.last < 0 {
			closed = true // at the text's start
		} else {
			// At the last anchor: it, then the words behind it.
			cur[cn] = bw.last
			cn++
			k := copy(cur[cn:], bw.rec[:bw.n])
			cn += k
			if k == bw.n && bw.closed {
				stop, closed = bw.stop, true
			} else if cn < need {
				stop = walkWords(s, int(cur[cn-1]), 0, &cur, &cn, need)
				closed = stop >= 0 || cn < need
			}
		}
	}
	bw.rec, bw.n, bw.stop, bw.closed, bw.last, bw.end = cur, cn, stop, closed, int32(a), int32(e)
}

// walkWords walks back from p, not below limit, appending to cur (holding
// *cn) the start of each word it passes until *cn is want; it returns, when
// it stopped at a sentence end, the byte after it (else -1).
func walkWords(s string, p, limit int, cur *[backMax]int32, cn *int, want int) int32 {
	for p > limit && *cn < want {
		c := s[p-1]
		if c < utf8.RuneSelf && class[c]&cWord != 0 || wordByteBefore(s, p) > 0 {
			p = wordStart(s, p, limit)
			cur[*cn] = int32(p)
			*cn++
			continue
		}
		switch {
		case c == '.' || c == '!' || c == '?':
			return int32(p)
		case c < utf8.RuneSelf:
			p--
		default:
			_, sz := utf8.DecodeLastRuneInString(s[:p])
			p -= sz
		}
	}
	return -1
}

// wordStart returns the start of the word of s that ends at p, as the
// tokeniser finds it (see wordByteBefore), not before limit.
func wordStart(s string, p, limit int) int {
	for p > limit {
		if c := s[p-1]; c < utf8.RuneSelf && class[c]&cWord != 0 {
			p-- // ASCII letters, digits and '_', inline
			continue
		}
		sz := wordByteBefore(s, p)
		if sz == 0 {
			break
		}
		p -= sz
	}
	return p
}

// lo returns wordsBack(s, a, n, 0) for the anchor bw last moved to (at a),
// for n no more than the need it was moved with.
func (bw *backWalker) lo(a, n int) int {
	switch {
	case n == 0:
		return a
	case n <= bw.n:
		return int(bw.rec[n-1])
	case bw.stop >= 0:
		return int(bw.stop)
	}
	return 0
}

// wordByteBefore returns the size of the rune that ends at p when it is
// part of a word, else 0.
func wordByteBefore(s string, p int) int {
	c := s[p-1]
	if c < utf8.RuneSelf {
		if class[c]&cWord != 0 {
			return 1
		}
		if c == '\'' && p >= 2 && wordRuneBefore(s, p-1) && wordRuneAt(s, p) {
			return 1
		}
		return 0
	}
	r, sz := utf8.DecodeLastRuneInString(s[:p])
	if isWordRune(r) || r == '\u2019' && p-sz >= 1 && wordRuneBefore(s, p-sz) && wordRuneAt(s, p) {
		return sz
	}
	return 0
}

func foldString(s string) []byte {
	var b []byte
	for _, r := range s {
		b = utf8.AppendRune(b, foldWordRune(r))
	}
	return b
}

// nextWord returns the next word at or after p (ws = -1 when there is none).
func nextWord(s string, p int) (ws, we int) {
	n := len(s)
	// Skip to a word start.
	for p < n {
		c := s[p]
		if c < utf8.RuneSelf {
			if class[c]&cWord != 0 {
				break
			}
			p++
			continue
		}
		r, sz := decodeRune(s, p)
		if isWordRune(r) {
			break
		}
		p += sz
	}
	if p >= n {
		return -1, -1
	}
	ws = p
	for p < n {
		c := s[p]
		if c < utf8.RuneSelf {
			if class[c]&cWord != 0 {
				p++
				continue
			}
			if c == '\'' && p+1 < n && wordRuneAt(s, p+1) {
				p++
				continue
			}
			break
		}
		r, sz := decodeRune(s, p)
		if isWordRune(r) || r == '\u2019' && wordRuneAt(s, p+sz) {
			p += sz
			continue
		}
		break
	}
	return ws, p
}

// lookupAt returns the id of the text word s[ws:we] (a word as the tokeniser
// finds it: shortKey relies on it holding no space), or 0: as lookup, but
// an ASCII word of up to 8 bytes is found by one probe of the short table
// (only an ASCII vocabulary word of the same bytes, folded, can match it).
func (m *wordMatcher) lookupAt(s string, ws, we int) uint16 {
	if we-ws <= 8 && len(m.short) > 0 {
		if x := asciiWord(s, ws, we); x&msb == 0 {
			key := shortKey(x)
			mask := len(m.short) - 1
			for k := shortSlot(key, mask); ; k = (k + 1) & mask {
				e := m.short[k]
				if e.id == 0 || e.key == key {
					return e.id
				}
			}
		}
	}
	return m.lookup(s[ws:we])
}

// lookup returns the id of the text word w, or 0.
func (m *wordMatcher) lookup(w string) uint16 {
	if !m.mayHold(w) {
		return 0
	}
	h := uint64(fnvInit)
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf {
			h = uint64(fnvInit)
			for _, r := range w {
				h = (h ^ uint64(foldWordRune(r))) * fnvPrime
			}
			break
		}
		h = (h ^ uint64(lower(c))) * fnvPrime
	}
	return m.lookupHash(h, w)
}

// sepOK reports whether sep (the bytes between two words) joins them.
func (m *wordMatcher) sepOK(sep string) bool {
	if sep == "" || len(sep) > 64 {
		return false
	}
	for i := 0; i < len(sep); i++ {
		c := sep[i]
		if isSpace(c) {
			continue
		}
		if !m.punct {
			if c < utf8.RuneSelf {
				return false
			}
			r, sz := utf8.DecodeRuneInString(sep[i:])
			if !unicode.IsSpace(r) {
				return false
			}
			i += sz - 1
			continue
		}
		if c == '.' || c == '!' || c == '?' || c == '\n' {
			return false
		}
	}
	return true
}

func (sl *wslot) accepts(id uint16, word string) bool {
	for _, a := range sl.alts {
		if a.id == id && (a.exact == "" || a.exact == word) {
			return true
		}
	}
	return false
}

// wordSpan is one word of the text, as nextWord finds it, with its
// prefixKey (noKey when it has none), so that each matcher rejects most
// words with one bit test.
type wordSpan struct {
	start, end int32
	key        uint32
}

const noKey = 1 << 31

func mkSpan(s string, ws, we int32) wordSpan {
	if int(ws)+4 <= len(s) {
		return spanAt(s, int(ws), int(we))
	}
	k, ok := prefixKey(s[ws:we])
	if !ok {
		return wordSpan{ws, we, noKey}
	}
	return wordSpan{ws, we, uint32(k)}
}

// spanAt is mkSpan for a word with 4 readable bytes at its start (small
// enough to be inlined where keepRunBMI2's kept words are made).
func spanAt(s string, ws, we int) wordSpan {
	t := s[ws : ws+4]
	x := (uint32(t[0]) | uint32(t[1])<<8 | uint32(t[2])<<16) & uint32(lenMask8[min(we-ws, 3)])
	key := uint32(noKey)
	if x&0x808080 == 0 {
		key = uint32(uint16((x | 0x202020) * 0x9E3779B1 >> 16))
	}
	return wordSpan{int32(ws), int32(we), key}
}

// appendWords tokenises s as repeated nextWord calls would. Offsets are
// int32: texts past 2 GiB are cut short (the proxy's body limits are far
// below that). It classifies 64 bytes at a time into a bitmap of word bytes
// (eight ASCII bytes at once with SWAR; runes, and apostrophes, which join
// two words' letters, one at a time) and reads word starts and ends off it.
func appendWords(s string, dst []wordSpan) []wordSpan { return appendWordsFiltered(s, dst, nil) }

// wordFilter says which words of a text the phrase matchers may look at on
// their own: a word whose prefixKey starts a phrase of some matcher (or
// that has none), and, with hook, a word the injection heuristic's blob hook
// looks at (see blobWord). The other words can only be looked at as the
// continuation of a phrase, which the matchers tokenise from the phrase's
// first word on (see wordWin); so the Scanner keeps just these spans.
type wordFilter struct {
	starts [1 << 14 / 64]uint64 // union of the matchers' starts
	// keyBytes is starts a byte a key (1: kept), which filterMask's
	// assembly reads with one load instead of a load, two shifts and a
	// mask.
	keyBytes [1 << 14]uint8
	// keepRunBMI2's AVX-512 key test gathers a dword at a key: 3 bytes
	// past keyBytes at the last.
	_    [3]uint8
	bmi2 bool // filterMask runs its assembly (hasBMI2, asked once)
	// avx512: keepRunBMI2 tests keys eight at a time (hasKeyAVX512).
	avx512 bool
	hook   bool
	// digits: some first word starts with an ASCII digit. Without one,
	// a word that starts with a digit starts no phrase (a text word that
	// folds to a vocabulary word starts with the same ASCII byte), and
	// number-dense text's words are passed by a bitmap, not one by one.
	digits bool
}

func (f *wordFilter) add(m *wordMatcher) {
	for i := range f.starts {
		f.starts[i] |= m.keys[i]
	}
	for k := range f.keyBytes {
		f.keyBytes[k] = uint8(f.starts[k>>6] >> (k & 63) & 1)
	}
	f.bmi2 = hasBMI2()
	f.avx512 = f.bmi2 && hasKeyAVX512()
	f.digits = f.digits || m.keyDigit
}

// startBit is 1 when the word s[ws:we] may be one the filter keeps by its
// filterKey: it has that key, or has none (a byte of its first eight is
// not ASCII).
func (f *wordFilter) startBit(s string, ws, we int) int {
	if !f.digits && isDigit(s[ws]) {
		return 0
	}
	x := asciiWord(s, ws, we)
	if x&msb != 0 {
		return 1
	}
	k := filterKey(x)
	return int(f.starts[k>>6] >> (k & 63) & 1)
}

// keep returns 1 when the filter keeps sp (all words for a nil filter),
// else 0, without a branch on the word: the tokeniser stores every span and
// advances by keep, as most words of prose are dropped at random.
func (f *wordFilter) keep(s string, sp wordSpan) int {
	if f == nil {
		return 1
	}
	return f.keepWord(s, int(sp.start), int(sp.end))
}

// keepWord is keep for the word s[ws:we] of a non-nil filter.
func (f *wordFilter) keepWord(s string, ws, we int) int {
	b := f.startBit(s, ws, we)
	if f.hook {
		j := 0
		if we < len(s) {
			j = int(blobJoin[s[we]])
		}
		if we-ws >= 12 {
			j = 1
		}
		b |= j
	}
	return b
}

// blobJoin marks the bytes after which blobWord holds.
var blobJoin = [256]uint8{'+': 1, '/': 1, '=': 1, '-': 1}

// blobWord reports whether the matchers' blob hook looks at the word
// s[ws:we]: a long one, or one joined to the next by base64 punctuation.
func blobWord(s string, ws, we int) bool {
	return we-ws >= 12 || we < len(s) && (s[we] == '+' || s[we] == '/' || s[we] == '=' || s[we] == '-')
}

// appendWordsFiltered is appendWords keeping only the words f keeps.
func appendWordsFiltered(s string, dst []wordSpan, f *wordFilter) []wordSpan {
	if len(s) > math.MaxInt32 {
		s = s[:math.MaxInt32]
	}
	n := len(s)
	next := 0        // s[:next] is classified (a rune may run past a chunk)
	var prev bool    // the byte before the block is a word byte
	start := 0       // the start of a word that runs into the block
	var spill uint64 // word bytes of a rune that runs into the next block
	var run asciiRun
	wb, ob, db, jb := &run.w, &run.odd, &run.digit, &run.join
	asm := haveFilterAsm && f != nil && f.bmi2
	if asm {
		run.hook, run.digits, run.avx = b2u(f.hook), b2u(f.digits), b2u(f.avx512)
	}
	// A block holds at most 33 word ends (32 starts and one carried in):
	// spans are stored into buf's spare capacity and kept by advancing nd.
	nd := len(dst)
	buf := dst[:cap(dst)]
	for gbase := 0; gbase < n; gbase += 64 * wordGroup {
		// Classify the group's whole blocks at once (classifyWords).
		nb := min(wordGroup, (n-gbase)/64)
		classifyWords(s[gbase:gbase+64*nb], wb[:nb], ob[:nb], db[:nb], jb[:nb])
		// The blocks keepRunBMI2 may do: whole, with 8 bytes after them.
		nr := 0
		if asm && n-gbase >= 72 {
			nr = min(nb, (n-gbase-72)/64+1)
		}
		for bi := 0; bi < wordGroup && gbase+64*bi < n; bi++ {
			base := gbase + 64*bi
			if bi < nr && base >= next && spill == 0 && ob[bi] != 0 {
				// A block whose only odd bytes are apostrophes
				// ("vendor's") and General Punctuation (curly quotes,
				// dashes) joins the run; the words a U+2019 leaves
				// without a key are kept by force.
				if w, force, ok := punctWords(s, base, wb[bi], ob[bi], db[bi], prev, f.digits); ok {
					wb[bi], ob[bi], run.force[bi] = w, 0, force
				}
			}
			if bi < nr && base >= next && spill == 0 && ob[bi] == 0 {
				// A run of whole ASCII blocks: keepBlock for each in
				// assembly, then the kept spans made here.
				if len(buf)-nd < 33*(nr-bi)+1 {
					buf = slices.Grow(buf[:nd], 33*(nr-bi)+1+len(buf)/4)
					buf = buf[:cap(buf)]
				}
				run.prev, run.start = b2u(prev), int64(start)
				done := keepRunBMI2(unsafe.StringData(s), gbase, &run, &f.keyBytes[0], bi, nr)
				prev, start = run.prev == 1, int(run.start)
				for ; bi < done; bi++ {
					km, en, ck := run.km[bi]|run.force[bi], run.en[bi], run.carry[bi]
					run.force[bi] = 0
					if km == 0 && ck < 0 {
						continue
					}
					base := gbase + 64*bi
					if ck >= 0 {
						buf[nd] = spanAt(s, int(ck), base+bits.TrailingZeros64(en))
						nd++
					}
					for ; km != 0; km &= km - 1 {
						i := bits.TrailingZeros64(km)
						we := base + bits.TrailingZeros64(en&^(1<<(i+1)-1))
						buf[nd] = spanAt(s, base+i, we)
						nd++
					}
				}
				next = gbase + 64*done
				bi--
				continue
			}
			if f != nil && base+72 > n && base >= next && spill == 0 && (!prev || base-start <= 64) {
				// The last block or two, without 8 bytes after them:
				// from a zero-padded copy, as whole blocks.
				if len(buf)-nd < 67 {
					buf = slices.Grow(buf[:nd], 67+len(buf)/4)
					buf = buf[:cap(buf)]
				}
				if nd2, ok := tailFiltered(s, base, prev, start, f, &run, buf, nd); ok {
					return buf[:nd2]
				}
			}
			w := spill
			spill = 0
			whole := bi < nb
			var odd uint64
			if whole {
				// The ASCII letters, digits and '_' of a whole block are
				// word bytes wherever they are: only the chunks with a
				// byte of 0x80 or above or an apostrophe are looked at
				// rune by rune.
				w |= wb[bi]
				odd = ob[bi]
			}
			if whole && base >= next && odd == 0 {
				// A whole block of ASCII without apostrophes, the
				// common case.
				next = base + 64
			}
			if whole && next < base+64 {
				w, spill = wordBitsOdd(s, base, &next, w, odd, prev)
			}
			for c := base; c < base+64 && c < n && next < base+64; c += 8 {
				if !whole && c >= next && c+8 <= n {
					x := load64(s, c)
					if x&msb == 0 && asciiEq(x, '\'') == 0 {
						m := asciiRange(x|lsb*0x20, 'a', 'z') | asciiRange(x, '0', '9') | asciiEq(x, '_')
						w |= ((m >> 7) * 0x0102040810204080 >> 56) << (c - base)
						next = c + 8
						continue
					}
				}
				w, spill = wordBitsSlow(s, base, min(c+8, n), &next, w, prev)
			}
			// Word starts are 0->1 transitions, ends 1->0 ones; they
			// alternate. A last, partial block's word ends at n.
			before := w << 1
			if prev {
				before |= 1
			}
			st, en := w&^before, before&^w
			if len(buf)-nd < 34 {
				buf = slices.Grow(buf[:nd], 64+len(buf)/4)
				buf = buf[:cap(buf)]
			}
			carry := prev
			prev = w>>63&1 == 1 && n-base >= 64
			if bi < nb && f != nil && base+72 <= n {
				nd = keepBlock(s, base, w, st, en, db[bi], jb[bi], odd == 0, carry, prev, &start, f, buf, nd)
				continue
			}
			if prev {
				// The block's last word runs on: emitted at its end.
				en |= 1 << 63
			}
			for ; en != 0; en &= en - 1 {
				ws := start
				if !carry {
					ws = base + bits.TrailingZeros64(st)
					st &= st - 1
				}
				carry = false
				if en == 1<<63 && prev {
					start = ws
					break
				}
				we := base + bits.TrailingZeros64(en)
				if ws+4 <= n {
					buf[nd] = spanAt(s, ws, we) // mkSpan, inlined
				} else {
					buf[nd] = mkSpan(s, int32(ws), int32(we))
				}
				if f == nil {
					nd++
					continue
				}
				b := f.startBit(s, ws, we)
				if f.hook {
					j := 0
					if we < n {
						j = int(blobJoin[s[we]])
					}
					if we-ws >= 12 {
						j = 1
					}
					b |= j
				}
				nd += b
			}
		}
	}
	if prev {
		sp := mkSpan(s, int32(start), int32(n))
		if len(buf) == nd {
			buf = append(buf[:nd], sp)[:nd+1]
		}
		buf[nd] = sp
		nd += f.keep(s, sp)
	}
	return buf[:nd]
}

// tailFiltered is appendWordsFiltered's loop for the blocks of s from base
// on (one or two: the text ends less than 72 bytes after base, prev and
// start as the loop has them, a word that runs in starting at most 64 bytes
// before base), done on a zero-padded copy of s[start or base:] as whole
// blocks with 8 bytes after them: keepRunBMI2 where the filter runs it,
// else keepBlock. The zeros end the text's last word at its end, as the
// word-by-word loop does; the kept spans are the same as keepBlock's on
// whole blocks. It stores the spans kept into buf from nd on (room for 67)
// and returns the new nd; ok is false, and nothing is stored, when a block
// holds a rune other than General Punctuation (punctWords).
func tailFiltered(s string, base int, prev bool, start int, f *wordFilter, run *asciiRun, buf []wordSpan, nd int) (int, bool) {
	n := len(s)
	ps := base // the copy starts here
	if prev {
		ps = start
	}
	var pad [64 + 2*64 + 8]byte
	off := base - ps
	copy(pad[:], s[ps:n])
	t := unsafe.String(&pad[0], len(pad))
	k := (n-base)/64 + 1 // the padding ends the last word in the last block
	var w, odd, digit, join [2]uint64
	classifyWords(t[off:off+64*k], w[:k], odd[:k], digit[:k], join[:k])
	var force [2]uint64
	p := prev
	for j := range k {
		if odd[j] != 0 {
			var ok bool
			w[j], force[j], ok = punctWords(t, off+64*j, w[j], odd[j], digit[j], p, f.digits)
			if !ok {
				return nd, false
			}
		}
		p = w[j]>>63 == 1
	}
	if haveFilterAsm && f.bmi2 {
		copy(run.w[:k], w[:k])
		clear(run.odd[:k])
		copy(run.digit[:k], digit[:k])
		copy(run.join[:k], join[:k])
		run.prev, run.start = b2u(prev), int64(start-ps)
		keepRunBMI2(&pad[0], off, run, &f.keyBytes[0], 0, k)
		for j := range k {
			km, en, ck := run.km[j]|force[j], run.en[j], run.carry[j]
			b := base + 64*j
			if ck >= 0 {
				buf[nd] = mkSpan(s, int32(ps+int(ck)), int32(b+bits.TrailingZeros64(en)))
				nd++
			}
			for ; km != 0; km &= km - 1 {
				i := bits.TrailingZeros64(km)
				buf[nd] = mkSpan(s, int32(b+i), int32(b+bits.TrailingZeros64(en&^(1<<(i+1)-1))))
				nd++
			}
		}
		return nd, true
	}
	// keepBlock on the copy, its spans moved back to s.
	first := nd
	st := start - ps
	for j := range k {
		before := w[j]<<1 | b2u(prev)
		nx := w[j]>>63 == 1
		nd = keepBlock(t, off+64*j, w[j], w[j]&^before, before&^w[j], digit[j], join[j], true, prev, nx, &st, f, buf, nd)
		prev = nx
	}
	for i := first; i < nd; i++ {
		buf[i] = mkSpan(s, buf[i].start+int32(ps), buf[i].end+int32(ps))
	}
	return nd, true
}

// punctWords returns the word bytes of the whole block at base (w: its
// ASCII letters, digits and '_'; odd: its bytes of 0x80 and above and its
// apostrophes; prev: the byte before it is a word byte), with 8 readable
// bytes after it, as wordBitsSlow finds them, when its only bytes of 0x80
// and above are whole runes of General Punctuation (U+2000-U+203F: E2 80
// xx, curly quotes, dashes, spaces; no word rune) within the block and the
// byte after the block is ASCII (ok). An apostrophe or U+2019 between a
// word byte and an ASCII word byte is one (the byte before it cannot be an
// apostrophe or U+2019 that is one: that needs a word rune after it). It
// also returns the starts of the words (force) that a U+2019 makes have
// no filterKey (a byte of 0x80 or above among their first eight) and that
// end in the block: the word filter keeps those, unless digits is false
// and they start with a digit (digit: the block's digits).
func punctWords(s string, base int, w, odd, digit uint64, prev, digits bool) (uint64, uint64, bool) {
	var a, q uint64 // apostrophes, U+2019
	for o := odd; o != 0; {
		i := bits.TrailingZeros64(o)
		c := s[base+i]
		if c == '\'' {
			a |= 1 << i
			o &= o - 1
			continue
		}
		if c != 0xe2 || i > 61 || s[base+i+1] != 0x80 || s[base+i+2]&0xc0 != 0x80 {
			return 0, 0, false
		}
		if s[base+i+2] == 0x99 {
			q |= 1 << i
		}
		o &^= 7 << i
	}
	nx := s[base+64]
	if nx >= utf8.RuneSelf {
		return 0, 0, false
	}
	before := w<<1 | b2u(prev)
	nw := uint64(class[nx]&cWord) / cWord
	w |= a & before & (w>>1 | nw<<63)
	if q == 0 {
		return w, 0, true
	}
	q &= before & (w>>3 | nw<<61)
	w |= q | q<<1 | q<<2
	st := w &^ (w<<1 | b2u(prev))
	var force uint64
	for ; q != 0; q &= q - 1 {
		i := bits.TrailingZeros64(q)
		// The start of its word, if in the block; the word has no key
		// when U+2019 is among its first eight bytes.
		if below := st & (1<<i - 1); below != 0 {
			if j := 63 - bits.LeadingZeros64(below); i-j < 8 {
				force |= 1 << j
			}
		}
	}
	if w>>63 != 0 && st != 0 {
		force &^= 1 << (63 - bits.LeadingZeros64(st)) // runs on: kept from the next block
	}
	if !digits {
		force &^= digit
	}
	return w, force, true
}

// asciiRun is what keepRunBMI2 reads and writes for a group of blocks:
// their classification (classifyWords), and per block the starts of the
// words kept (km), the word ends (en) and the start of the word that runs
// in from the block before if it is kept (carry; else -1); prev and start
// carry appendWordsFiltered's state from block to block, st and en2 are
// the assembly's scratch, hook and digits the wordFilter's flags (0 or 1).
// keeprun_amd64.s has its offsets (TestASCIIRunLayout).
type asciiRun struct {
	w, odd, digit, join [wordGroup]uint64
	km, en              [wordGroup]uint64
	carry               [wordGroup]int64
	prev                uint64
	start               int64
	st, en2             uint64
	hook, digits        uint64
	avx                 uint64 // the key test in AVX-512 (wordFilter.avx512)
	// force: the starts of words kept whatever their key (punctWords),
	// ORed into km in Go; zero for a block that has none.
	force [wordGroup]uint64
	// scr: the scalar key test's key bytes, ten candidates at a time.
	scr [16]uint8
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// keepBlock is appendWordsFiltered's loop over the words of a whole block
// (its word bytes w, starts st, ends en, digits and join bytes; ascii: it
// holds no byte of 0x80 or above nor an apostrophe; carry: a word runs in
// from the last block, at *start; prev: one runs on into the next, whose
// start it stores in *start) with the 8 bytes after the block in s. It stores the
// spans f keeps into buf from nd on and returns the new nd. Which words f
// keeps is worked out first, into a mask of their starts, with no
// dependency from one word to the next; then the kept spans are made.
func keepBlock(s string, base int, w, st, en, digit, join uint64, ascii, carry, prev bool, start *int, f *wordFilter, buf []wordSpan, nd int) int {
	if carry && en != 0 {
		// The word that runs in: keepWord, inline (len(s) >= base+72
		// holds its first 8 bytes and the byte after it); its span made
		// only when kept.
		ws, we := *start, base+bits.TrailingZeros64(en)
		x := load64(s, ws) & lenMask8[min(we-ws, 8)]
		hi := x & msb
		keep := f.keyBytes[filterKey(x)&(1<<14-1)] | uint8((hi|-hi)>>63)
		if !f.digits && uint8(x)-'0' < 10 {
			keep = 0
		}
		if f.hook && (we-ws >= 12 || blobJoin[s[we]] == 1) {
			keep = 1
		}
		if keep != 0 {
			buf[nd] = mkSpan(s, int32(ws), int32(we))
			nd++
		}
		en &= en - 1
	}
	if prev && st != 0 {
		i := 63 - bits.LeadingZeros64(st)
		*start = base + i
		st &^= 1 << i
	}
	// Words the filter keeps by their filterKey, or for having none (a
	// byte of 0x80 or above among the first eight, as in "it’s": the
	// length in bytes, up to 8, read off the bitmap, which marks every
	// byte of a rune; these words end in the block).
	cand := st
	if !f.digits {
		cand &^= digit
	}
	// The key-test kernel (TestFilterMask holds the three to each other),
	// chosen here rather than in a function of its own: its calls made
	// it too big for the compiler to inline.
	blk := (*[72]byte)(unsafe.Pointer(unsafe.StringData(s[base : base+72])))
	var km uint64
	switch {
	case haveFilterAsm && f.bmi2 && ascii:
		km = filterMaskASCIIBMI2(&blk[0], w, cand, &f.keyBytes[0])
	case haveFilterAsm && f.bmi2:
		km = filterMaskBMI2(&blk[0], w, cand, &f.keyBytes[0])
	default:
		km = filterMaskGo(blk, w, cand, &f.starts)
	}
	if f.hook {
		// Words the blob hook reads, off the bitmaps: 12 bytes or
		// longer (a run of 12 word bits from the start), or followed by
		// a join byte (an end bit on one).
		y := w & (w >> 1)
		y &= y >> 2
		y &= y >> 4
		y &= y >> 4
		hk := st & y
		for e := en & join; e != 0; e &= e - 1 {
			if below := st & (1<<bits.TrailingZeros64(e) - 1); below != 0 {
				hk |= 1 << (63 - bits.LeadingZeros64(below))
			}
		}
		if hk != 0 {
			km |= hk & blobRuns(w|join)
		}
	}
	for ; km != 0; km &= km - 1 {
		i := bits.TrailingZeros64(km)
		we := base + bits.TrailingZeros64(en&^(1<<(i+1)-1))
		buf[nd] = mkSpan(s, int32(base+i), int32(we))
		nd++
	}
	return nd
}

// blobRuns returns the bytes of the runs of b (a block's word bytes and
// join bytes: every base64 character and every word byte among them) that
// are minBlob (20) bytes long or more, or that touch either end of the
// block (and may be longer). The blob hook reads only base64 characters
// and the bytes of the word it is called for, so what it does for a word
// stays within the run of b that holds the word; in a run shorter than
// minBlob it finds nothing, and the word need not be kept for it.
func blobRuns(b uint64) uint64 {
	r := b & (b >> 1) // r: the starts of 20 bytes of b
	r &= r >> 2
	r &= r >> 4
	r &= r >> 8
	r &= r >> 4
	r |= r << 1 // and every byte they cover
	r |= r << 2
	r |= r << 4
	r |= r << 8
	r |= r << 4
	low := (b ^ (b + 1)) >> 1                            // the run at bit 0
	high := ^uint64(0) << (64 - bits.LeadingZeros64(^b)) // the run at bit 63
	return r | low | high
}

// filterMaskGo returns the bits of cand (word starts in the block blk, which
// holds the 8 bytes after it too; w: the block's word bytes, in which these
// words end) whose words starts holds by their filterKey, or that have none
// (a byte of 0x80 or above among their first eight, as in "it’s": the
// length in bytes, up to 8, is read off w, which marks every byte of a
// rune).
func filterMaskGo(blk *[72]byte, w, cand uint64, starts *[1 << 14 / 64]uint64) uint64 {
	var km uint64
	for c := cand; c != 0; c &= c - 1 {
		i := bits.TrailingZeros64(c) & 63
		l := bits.TrailingZeros64(^(w >> i) | 1<<8) // min(length, 8), without a branch
		x := load64(unsafe.String(&blk[0], 72), i) & lenMask8[l]
		k := filterKey(x)
		hi := x & msb
		km |= (starts[k>>6]>>(k&63)&1 | (hi|-hi)>>63) << i
	}
	return km
}

// lenMask8 keeps the first min(len, 8) bytes of a word.
var lenMask8 = [9]uint64{0, 0xff, 0xffff, 0xffffff, 0xffffffff, 0xffffffffff, 0xffffffffffff, 0xffffffffffffff, ^uint64(0)}

// wordGroup is how many 64-byte blocks appendWords classifies at once.
const wordGroup = 16

// classifyWordsGo is classifyWords in Go (SWAR, eight bytes at a time): for
// each 64-byte block b of s, odd[b] has a bit set for each byte of 0x80 or
// above and each apostrophe, word[b] for each ASCII letter, digit and '_',
// digit[b] for each ASCII digit and join[b] for each '+', '/', '=' and '-'.
func classifyWordsGo(s string, word, odd, digit, join []uint64) {
	for b := range word {
		var o, bm, dm, jm uint64
		for c := 0; c < 64; c += 8 {
			x := load64(s, 64*b+c)
			od := x&msb | eqByte(x, '\'')
			d := inRange(x, '0', '9')
			m := inRange(x|lsb*0x20, 'a', 'z') | d | eqByte(x, '_')
			j := eqByte(x, '+') | eqByte(x, '/') | eqByte(x, '=') | eqByte(x, '-')
			o |= ((od >> 7) * 0x0102040810204080 >> 56) << c
			bm |= ((m >> 7) * 0x0102040810204080 >> 56) << c
			dm |= ((d >> 7) * 0x0102040810204080 >> 56) << c
			jm |= ((j >> 7) * 0x0102040810204080 >> 56) << c
		}
		word[b], odd[b], digit[b], join[b] = bm, o, dm, jm
	}
}

// wordBitsSlow classifies s[*next:end] rune by rune into the bitmap w of the
// block at base (prev: the byte before base is a word byte), as nextWord
// does, and moves *next past the last rune it looked at.
func wordBitsSlow(s string, base, end int, next *int, w uint64, prev bool) (uint64, uint64) {
	var spill uint64
	p := *next
	for p < end {
		// before: byte p-1 is a word byte.
		before := p == base && prev || p > base && w>>(p-1-base)&1 == 1
		word, sz := runeWord(s, p, before)
		if word {
			w, spill = setRuneBits(w, spill, p-base, sz)
		}
		p += sz
	}
	*next = p
	return w, spill
}

// wordBitsOdd is wordBitsSlow over the rest of the whole block at base,
// whose word bits w already hold its ASCII letters, digits and '_' (from
// classifyWords): only its odd bytes (odd: 0x80 or above, apostrophes) at
// or after *next are looked at, rune by rune. It moves *next past the
// block or past the last rune it looked at, whichever is further.
func wordBitsOdd(s string, base int, next *int, w, odd uint64, prev bool) (uint64, uint64) {
	var spill uint64
	p := *next
	if p-base >= 64 {
		return w, 0
	}
	for o := odd &^ (1<<(p-base) - 1); o != 0; {
		p = base + bits.TrailingZeros64(o)
		before := p == base && prev || p > base && w>>(p-1-base)&1 == 1
		word, sz := runeWord(s, p, before)
		if word {
			w, spill = setRuneBits(w, spill, p-base, sz)
		}
		p += sz
		if p-base >= 64 {
			break
		}
		o &^= 1<<(p-base) - 1
	}
	*next = max(p, base+64)
	return w, spill
}

// runeWord reports whether the rune at p is a word's, as nextWord decides
// (before: the byte at p-1 is a word byte, so that an apostrophe or U+2019
// joins it to a word rune after it), and its size in bytes.
func runeWord(s string, p int, before bool) (word bool, sz int) {
	c := s[p]
	switch {
	case c < utf8.RuneSelf:
		return class[c]&cWord != 0 || c == '\'' && before && wordRuneAt(s, p+1), 1
	case c == 0xe2 && p+2 < len(s) && s[p+1] == 0x80 && s[p+2]&0xc0 == 0x80:
		// U+2000-U+203F, General Punctuation (curly quotes, dashes,
		// spaces): no word rune (isWordRune), decoded by hand; U+2019
		// joins two words as an apostrophe does.
		return s[p+2] == 0x99 && before && wordRuneAt(s, p+3), 3
	}
	r, sz := decodeRune(s, p)
	return isWordRune(r) || r == '\u2019' && before && wordRuneAt(s, p+sz), sz
}

// setRuneBits sets the sz bits of a word rune at offset k of a block in its
// bitmap w, and those past the block's end in spill (the next block's).
func setRuneBits(w, spill uint64, k, sz int) (uint64, uint64) {
	b := uint64(1)<<sz - 1
	w |= b << k
	if k+sz > 64 {
		spill |= b >> (64 - k)
	}
	return w, spill
}

// spanDetector is implemented by detectors that work on words: the Scanner
// tokenises the text once and hands every such detector the same words.
type spanDetector interface {
	detectSpans(s string, words []wordSpan, dst []Finding) []Finding
	// addFilter adds the words the detector looks at on its own to f.
	addFilter(f *wordFilter)
}

// withWords tokenises s into a buffer from pool (of *[]wordSpan, or a new
// one) for f, keeping the words filter keeps (all with a nil filter).
func withWords(pool *sync.Pool, s string, filter *wordFilter, f func([]wordSpan)) {
	bp, _ := pool.Get().(*[]wordSpan)
	if bp == nil {
		bp = new([]wordSpan)
	}
	*bp = appendWordsFiltered(s, (*bp)[:0], filter)
	f(*bp)
	if cap(*bp) <= 1<<16 {
		pool.Put(bp)
	}
}

// blobHook is called for words that may be part of an encoded blob (long,
// or joined by base64 punctuation); it may append findings and returns where
// scanning resumes (0: right after the word).
type blobHook func(dst []Finding, ws, we int) ([]Finding, int)

// scan appends the longest match starting at each word of words, leftmost
// first, without overlaps. words may be all the words of s or only those a
// wordFilter that includes m (and, with hook, has hook set) keeps: a match
// reads the words after its first from s itself (wordWin), and the other
// words start nothing (for an anchored m, see scanAnchored).
func (m *wordMatcher) scan(s string, words []wordSpan, detector string, dst []Finding, hook blobHook) []Finding {
	if len(m.phrases) == 0 && hook == nil {
		return dst
	}
	if m.anchored {
		return m.scanAnchored(s, words, detector, dst, hook)
	}
	var ids wordIDs
	var win wordWin
	for k := 0; k < len(words); k++ {
		ws, we := int(words[k].start), int(words[k].end)
		if hook != nil && blobWord(s, ws, we) {
			var next int
			if dst, next = hook(dst, ws, we); next > 0 {
				for k+1 < len(words) && int(words[k+1].start) < next {
					k++
				}
				continue
			}
		}
		if key := words[k].key; key&noKey == 0 && !m.mayStart(uint16(key)) {
			continue
		}
		if best, ph := m.startAt(s, words[k], &ids, &win); best > 0 {
			dst = append(dst, Finding{Type: m.phrases[ph].typ, Detector: detector, Start: ws, End: best})
			for k+1 < len(words) && int(words[k+1].start) < best {
				k++
			}
		}
	}
	return dst
}

// startAt returns the end of the longest match that starts at the word sp
// of s, and its phrase; or best <= 0.
func (m *wordMatcher) startAt(s string, sp wordSpan, ids *wordIDs, win *wordWin) (best int, bestPh int32) {
	if sp.key&noKey == 0 && !m.mayStart(uint16(sp.key)) {
		return -1, -1
	}
	ws, we := int(sp.start), int(sp.end)
	id := m.lookupAt(s, ws, we)
	if id == 0 || int(id) >= len(m.byFirst) || len(m.byFirst[id]) == 0 {
		return -1, -1
	}
	win.reset(s, sp)
	best, bestPh = -1, -1
	for _, pi := range m.byFirst[id] {
		ph := &m.phrases[pi]
		if !ph.slots[0].accepts(id, s[ws:we]) {
			continue
		}
		if e := m.match(ids, win, ph, 0, 1, 1); e > best {
			best, bestPh = e, pi
		}
	}
	return best, bestPh
}

// maxPooledAnchors bounds the anchor lists a matcher keeps (2 MB).
const maxPooledAnchors = 1 << 18

// anchorAt is an anchor word of the text (at: its start) and the least
// start of a match that may hold it or a later anchor word (lo).
type anchorAt struct{ at, lo int32 }

// scanAnchored is scan for an anchored matcher, whose filter keeps the
// words of its phrases' anchor slots rather than their first words: every
// match holds an anchor word, with at most before[id] words before it,
// which wordsBack bounds (none when the word right before the anchor word
// can be in no match with it: mayFollow). So it visits the words as scan
// does, but only those that start within reach of an anchor word at or
// after them: the words the list holds, and the words between them (which
// it tokenises from s with nextWord) where an anchor word is near. A word
// out of reach starts no match, so the findings are scan's on all the
// words of s (TestInjectionAnchors, TestWordsFiltered and the reference
// tests hold it to that).
func (m *wordMatcher) scanAnchored(s string, words []wordSpan, detector string, dst []Finding, hook blobHook) []Finding {
	var ancs []anchorAt
	var ap *[]anchorAt // ancs's pooled buffer, taken at the first anchor word
	bw := backWalker{last: -1}
	prevEnd := 0 // the end of the last anchor word
	for _, sp := range words {
		// Most words are in the list for another matcher or the blob
		// hook: rejected by their prefixKey before they are looked up.
		if k := startKey(uint16(sp.key)); sp.key&noKey == 0 && m.anchorKeys[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		id := m.lookupAt(s, int(sp.start), int(sp.end))
		if id == 0 || int(id) >= len(m.before) || m.before[id] < 0 {
			continue
		}
		ws, n := int(sp.start), int(m.before[id])
		var lo int
		if n > 0 && !m.mayFollow(s, ws, id, prevEnd) {
			// No match holds words before this one: it starts
			// every match it is the first anchor-slot word of.
			n = 0
		}
		prevEnd = int(sp.end)
		if n == 0 && sp.key&noKey == 0 && !m.mayStart(uint16(sp.key)) {
			// Every match that holds this word starts at it, and
			// none starts with it ("follow" in "any follow-up"): it
			// is in no match, so it reaches back to nothing.
			continue
		}
		if n == 0 {
			lo = ws
		} else if n <= backMax {
			bw.next(s, ws, int(sp.end), n)
			lo = bw.lo(ws, n)
		} else {
			lo = wordsBack(s, ws, n, max(ws-n*m.step, 0))
		}
		if ap == nil {
			if ap, _ = m.anchors.Get().(*[]anchorAt); ap == nil {
				ap = new([]anchorAt)
			}
			ancs = (*ap)[:0]
		}
		ancs = append(ancs, anchorAt{sp.start, int32(lo)})
	}
	if len(ancs) == 0 {
		// No match: only the blob hook, as scan calls it.
		if hook == nil {
			return dst
		}
		resume := 0
		for _, sp := range words {
			ws, we := int(sp.start), int(sp.end)
			if ws >= resume && blobWord(s, ws, we) {
				var next int
				if dst, next = hook(dst, ws, we); next > 0 {
					resume = next
				}
			}
		}
		return dst
	}
	for i := len(ancs) - 2; i >= 0; i-- {
		ancs[i].lo = min(ancs[i].lo, ancs[i+1].lo)
	}
	if len(s) > math.MaxInt32 {
		s = s[:math.MaxInt32]
	}
	v := anchorScan{m: m, s: s, detector: detector, dst: dst}
	ai := 0  // the first anchor word at or after the word visited
	tok := 0 // nextWord from tok finds the words as the tokeniser does
	for _, sp := range words {
		ws := int(sp.start)
		for ai < len(ancs) && int(ancs[ai].at) < ws {
			ai++
		}
		lo := math.MaxInt
		if ai < len(ancs) {
			lo = int(ancs[ai].lo)
		}
		if lo < ws && tok < ws {
			// The words between the last word visited and this one
			// that an anchor word can reach.
			r := tok
			if lo > r {
				r = safeStart(s, lo, tok)
			}
			for {
				gs, ge := nextWord(s, r)
				if gs < 0 || gs >= ws {
					break
				}
				r = ge
				if gs >= v.resume && gs >= lo {
					if e := v.visit(mkSpan(s, int32(gs), int32(ge)), true, hook); e > 0 {
						r = e
					}
				}
			}
		}
		we := int(sp.end)
		tok = we
		if ws < v.resume {
			continue
		}
		// visit, inline: most words are the blob hook's.
		if hook != nil && blobWord(s, ws, we) {
			var next int
			if v.dst, next = hook(v.dst, ws, we); next > 0 {
				v.resume = next
				continue
			}
		}
		if ws < lo || sp.key&noKey == 0 && !m.mayStart(uint16(sp.key)) {
			continue
		}
		if best, ph := m.startAt(s, sp, &v.ids, &v.win); best > 0 {
			v.dst = append(v.dst, Finding{Type: m.phrases[ph].typ, Detector: detector, Start: ws, End: best})
			v.resume, tok = best, best
		}
	}
	if cap(ancs) <= maxPooledAnchors {
		*ap = ancs[:0]
		m.anchors.Put(ap)
	}
	return v.dst
}

// anchorScan is scanAnchored's state: the findings so far, and where the
// next word may start (after the last finding).
type anchorScan struct {
	m        *wordMatcher
	s        string
	detector string
	dst      []Finding
	resume   int
	ids      wordIDs
	win      wordWin
}

// visit does what scan does at the word sp: the blob hook, then (when
// try) a match from sp. It returns the end of the match, or 0.
func (v *anchorScan) visit(sp wordSpan, try bool, hook blobHook) int {
	ws, we := int(sp.start), int(sp.end)
	if hook != nil && blobWord(v.s, ws, we) {
		var next int
		if v.dst, next = hook(v.dst, ws, we); next > 0 {
			v.resume = next
			return 0
		}
	}
	if !try {
		return 0
	}
	best, ph := v.m.startAt(v.s, sp, &v.ids, &v.win)
	if best <= 0 {
		return 0
	}
	v.dst = append(v.dst, Finding{Type: v.m.phrases[ph].typ, Detector: v.detector, Start: ws, End: best})
	v.resume = best
	return best
}

// mayFollow reports whether the word before the anchor word id at a (the
// word the tokeniser finds last before a, after floor: the end of the
// last anchor word, so that each byte is walked back over once) may be in
// a match with it (see pred). There is none at a sentence end or the
// text's start.
func (m *wordMatcher) mayFollow(s string, a int, id uint16, floor int) bool {
	pred := m.pred[id]
	if pred == nil {
		return true
	}
	p := a
	for p > floor && wordByteBefore(s, p) == 0 {
		switch c := s[p-1]; {
		case c == '.' || c == '!' || c == '?':
			return false
		case c < utf8.RuneSelf:
			p--
		default:
			_, sz := utf8.DecodeLastRuneInString(s[:p])
			p -= sz
		}
	}
	if p <= floor && (p == 0 || wordByteBefore(s, p) == 0) {
		return p > 0 && floor > 0 // the walk stopped at floor: no answer, walk back
	}
	pe := p
	p = wordStart(s, p, 0)
	b := m.lookupAt(s, p, pe)
	return b != 0 && pred[b>>6]&(1<<(b&63)) != 0
}

// safeStart returns the last position at or before p, and not before
// floor (a position nextWord may start from), from which nextWord finds the
// words the tokeniser finds: one after an ASCII byte that no word holds.
func safeStart(s string, p, floor int) int {
	for p > floor {
		c := s[p-1]
		if c < utf8.RuneSelf && class[c]&cWord == 0 && c != '\'' {
			break
		}
		p--
	}
	return p
}

// wordWin holds the words of a text from a phrase's first word on,
// tokenised by nextWord as a match asks for them: most attempts end at the
// second word, so the words of prose that start no phrase are never
// tokenised beyond the bitmap that found the candidates.
type wordWin struct {
	s    string
	n    int // words held
	end  bool
	w    [24]wordSpan
	more []wordSpan // words past len(w): a long deny-list phrase
}

func (ww *wordWin) reset(s string, first wordSpan) {
	if len(s) > math.MaxInt32 {
		s = s[:math.MaxInt32]
	}
	ww.s, ww.n, ww.end, ww.more = s, 1, false, ww.more[:0]
	ww.w[0] = first
}

func (ww *wordWin) at(k int) wordSpan {
	if k < len(ww.w) {
		return ww.w[k]
	}
	return ww.more[k-len(ww.w)]
}

// has reports whether the text has a word k, tokenising up to it.
func (ww *wordWin) has(k int) bool {
	for ww.n <= k && !ww.end {
		ws, we := nextWord(ww.s, int(ww.at(ww.n-1).end))
		if ws < 0 {
			ww.end = true
			break
		}
		sp := wordSpan{start: int32(ws), end: int32(we)}
		if ww.n < len(ww.w) {
			ww.w[ww.n] = sp
		} else {
			ww.more = append(ww.more, sp)
		}
		ww.n++
	}
	return k < ww.n
}

// wordIDs caches, for the words a match looks at, whether the separator
// before each joins it to the previous word and the word's id: a phrase's
// optional slots make match try a word in several places, and overlapping
// attempts look at the same words. Entries are keyed by the word's start.
type wordIDs struct {
	k  [32]int32 // start+1 of the cached word; 0: empty
	id [32]int32 // the id, or -1 when the separator does not join
}

func (m *wordMatcher) joined(c *wordIDs, win *wordWin, k int) int32 {
	w := win.at(k)
	slot := w.start & 31
	if c.k[slot] == w.start+1 {
		return c.id[slot]
	}
	id := int32(-1)
	if m.sepOK(win.s[win.at(k-1).end:w.start]) {
		id = int32(m.lookupAt(win.s, int(w.start), int(w.end)))
	}
	c.k[slot], c.id[slot] = w.start+1, id
	return id
}

// match matches ph.slots[si:] from word k of win on (cnt words already
// taken by slot si); it returns the end of the match or -1.
func (m *wordMatcher) match(c *wordIDs, win *wordWin, ph *wphrase, si, cnt, k int) int {
	if si == len(ph.slots) {
		return int(win.at(k - 1).end)
	}
	sl := &ph.slots[si]
	if cnt < sl.max && win.has(k) {
		if id := m.joined(c, win, k); id > 0 {
			w := win.at(k)
			if sl.accepts(uint16(id), win.s[w.start:w.end]) {
				if r := m.match(c, win, ph, si, cnt+1, k+1); r >= 0 {
					return r
				}
			}
		}
	}
	if cnt >= sl.min {
		return m.match(c, win, ph, si+1, 0, k)
	}
	return -1
}
