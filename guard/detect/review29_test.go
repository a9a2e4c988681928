package detect

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// Review tests of the fourth round's fast paths (runeTables, mayLead,
// mayFollow): each holds a fast path to the plain code on the shapes a
// hostile or unusual text or deny list takes.

// leadVariants are runes that fold to one another, or look as if they
// should and do not (foldWordRune: unicode.ToLower, ’ to ', ς to σ):
// title-case digraphs, Cherokee (whose lower case is the later block),
// Georgian Mtavruli, the Kelvin, Ohm and Angstrom signs, capital sharp s,
// dotted and dotless i, final sigma, Deseret (past the BMP) and a
// mathematical letter ToLower leaves alone.
var leadVariants = [][]string{
	{"ǅ", "Ǆ", "ǆ"}, {"Ꭰ", "ꭰ"}, {"Ა", "ა"}, {"\u212a", "K", "k"}, {"\u2126", "Ω", "ω"}, {"\u212b", "Å", "å"},
	{"ẞ", "ß"}, {"İ", "i", "I", "ı"}, {"ς", "Σ", "σ"}, {"𐐀", "𐐨"}, {"𝐀", "A"}, {"Д", "д"}, {"’", "'"},
}

// TestMayLeadVariants holds lookup (which rejects a word by its first rune:
// mayLead) to the hash lookup of every word, for vocabularies whose words
// start with each of leadVariants' runes and texts whose words start with
// any of them; and for a vocabulary of thousands of first runes.
func TestMayLeadVariants(t *testing.T) {
	var firsts []string
	for _, vs := range leadVariants {
		firsts = append(firsts, vs...)
	}
	r := rand.New(rand.NewPCG(71, 72))
	var many []string
	for i := range 4000 {
		many = append(many, string(rune(0xAC00+i*2))+"다", string(rune(0x10400+i%80))+"x")
	}
	vocabs := [][]string{many}
	for range 40 {
		var v []string
		for range 1 + r.IntN(6) {
			v = append(v, firsts[r.IntN(len(firsts))]+[]string{"x", "ab", "", "дом"}[r.IntN(4)])
		}
		vocabs = append(vocabs, v)
	}
	hits := 0
	for _, vocab := range vocabs {
		w, err := NewWords("DENIED_WORDS", vocab)
		if err != nil {
			continue // not plain words ("’x")
		}
		m := &w.wm
		var texts []string
		for _, e := range vocab {
			first, sz := utf8.DecodeRuneInString(e)
			for _, vs := range leadVariants {
				for _, v := range vs {
					if strings.ContainsRune(strings.Join(vs, ""), first) || r.IntN(8) == 0 {
						texts = append(texts, v+e[sz:], strings.ToUpper(v+e[sz:]))
					}
				}
			}
			texts = append(texts, e, strings.ToUpper(e), strings.ToLower(e), strings.ToTitle(e))
		}
		for _, s := range texts {
			if !isPlainWord(s) {
				continue
			}
			h := uint64(fnvInit)
			for _, r := range s {
				h = (h ^ uint64(foldWordRune(r))) * fnvPrime
			}
			want := m.lookupHash(h, s)
			if len(s) > m.maxLen {
				want = 0
			}
			if got := m.lookup(s); got != want {
				t.Fatalf("vocabulary %q: lookup(%q) = %d, want %d", vocab, s, got, want)
			}
			if want != 0 {
				hits++
			}
		}
	}
	if hits < 500 {
		t.Errorf("%d words found: the test exercises too little", hits)
	}
	t.Logf("%d words found", hits)
}

// BenchmarkWordsManyFirsts is a deny list of 3,000 Hangul words (as many
// first runes) over Hangul text: every word of the text that starts with a
// non-ASCII rune asks mayLead whether its first rune starts a list word.
func BenchmarkWordsManyFirsts(b *testing.B) {
	var list []string
	for i := range 3000 {
		list = append(list, string(rune(0xAC00+i*3))+string(rune(0xAC00+i*7%11172))+"다")
	}
	w, err := NewWords("DENIED_WORDS", list)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("하늘 바다 냐 ", 2000)
	b.SetBytes(int64(len(text)))
	cpuRate(b, len(text), func() {
		for b.Loop() {
			w.Detect(text, nil)
		}
	})
}

// TestWordsFoldApostrophes: ’ (3 bytes) folds to ' (1), more than the
// twice its bytes mayHold's length bound allowed a folded rune: an entry
// of i's (İ: twice) or k's (the Kelvin sign: three times) and five
// apostrophes, written with ’, was longer than the bound and missed by
// the Scanner too (NFKC keeps İ and ’).
func TestWordsFoldApostrophes(t *testing.T) {
	inj := NewInjection()
	for _, c := range []struct{ entry, text string }{
		{"i'i'i'i'i'i", "İ’İ’İ’İ’İ’İ"},
		{"k'k'k'k'k'k", "\u212a’\u212a’\u212a’\u212a’\u212a’\u212a"},
		{"i'i'i'i'i'i'i'i'i'i", "İ’İ’İ’İ’İ’İ’İ’İ’İ’İ"},
		{"don't", "DON’T"},
	} {
		w, err := NewWords("DENIED_WORDS", []string{c.entry})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Detect(c.text, nil); len(got) != 1 || got[0].Start != 0 || got[0].End != len(c.text) {
			t.Errorf("entry %q, text %q: Words.Detect found %v, want the whole text", c.entry, c.text, got)
		}
		norm, got := NewScanner(w).ScanAppend(nil, c.text)
		if len(got) != 1 || got[0].Start != 0 || got[0].End != len(norm) {
			t.Errorf("entry %q, text %q: the Scanner found %v in %q, want the whole text", c.entry, c.text, got, norm)
		}
		checkWordsList(t, []string{c.entry}, inj, c.text+" and "+c.text)
	}
}
