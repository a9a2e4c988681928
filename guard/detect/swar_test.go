package detect

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
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
				if x&msb == 0 {
					for _, r := range ranges {
						if got, want := asciiRange(x, r[0], r[1]), inRange(x, r[0], r[1]); got != want {
							t.Fatalf("asciiRange(% x, %#x, %#x) = %#x, want %#x", b, r[0], r[1], got, want)
						}
					}
					for _, c := range []byte{'@', '_', 0, '\'', 0x7f} {
						if got, want := asciiEq(x, c), eqByte(x, c); got != want {
							t.Fatalf("asciiEq(% x, %#x) = %#x, want %#x", b, c, got, want)
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

// TestASCIIPrefixLong: the AVX2 path (texts of 512 bytes or more) against
// asciiPrefixGo, a non-ASCII byte at every offset of long texts.
func TestASCIIPrefixLong(t *testing.T) {
	for _, n := range []int{511, 512, 513, 640, 1000, 1151, 1152, 1153, 2047} {
		for at := 0; at <= n; at++ {
			b := []byte(strings.Repeat("x", n))
			if at < n {
				b[at] = 0x80 | byte(at)
			}
			if got, want := asciiPrefix(string(b)), asciiPrefixGo(string(b)); got != want || got != at {
				t.Fatalf("len %d, non-ASCII at %d: asciiPrefix = %d, asciiPrefixGo %d", n, at, got, want)
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

// detectWordsPlain is PII.detectWords without the jumps: the reference
// FuzzDetectWordsSkip holds it to.
func (p *PII) detectWordsPlain(s string, dst []Finding) []Finding {
	for i := 0; i < len(s); {
		dst, i = p.wordStep(s, i, dst)
	}
	return dst
}

func FuzzDetectWordsSkip(f *testing.F) {
	for _, s := range []string{
		"", "4111 1111 1111 1111", "SSN 123-45-6789", "DE89 3704 0044 0532 0130 00", "+44 20 7946 0958", "GB 82 WEST",
		"ab-cd-ef-ab-cd-ef dead.beef.cafe fe80::1 abcd:abcd:abcd:1", "cardnumber_4111111111111111", "AB 12 34 56 C",
		"routing 021000021", "123\t45\t6789\n124\t46\t6790", "SSN:123/45/6789", "4111-1111 1111.1111", "über123 x—4111111111111111",
		"tel:+1 (415) 555-2671 x89", "version 1.2.3.4 and 10.0.0.1/8", benchPrompt[:600], benchNumbers[:800],
		"2024-06-01T08:01:07.001Z ip=10.0.1.13 ::ffff:1.2.3.4 1:2:3:4:5:6:1.2.3.4 00-1A-2B-3C-4D-5E",
	} {
		f.Add(s)
	}
	p, err := NewPII(PIIConfig{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := p.detectWords(s, nil)
		want := p.detectWordsPlain(s, nil)
		if len(got) != len(want) {
			t.Fatalf("%q: skipping walk found %v, plain walk %v", s, got, want)
		}
		for k := range got {
			if got[k] != want[k] {
				t.Fatalf("%q: skipping walk found %v, plain walk %v", s, got, want)
			}
		}
	})
}

// appendWordsPlain is appendWords by repeated nextWord calls: the reference
// FuzzAppendWords holds it to.
func appendWordsPlain(s string, dst []wordSpan) []wordSpan {
	for p := 0; ; {
		ws, we := nextWord(s, p)
		if ws < 0 {
			return dst
		}
		key := uint32(noKey)
		if k, ok := prefixKey(s[ws:we]); ok {
			key = uint32(k)
		}
		dst = append(dst, wordSpan{int32(ws), int32(we), key})
		p = we
	}
}

func FuzzAppendWords(f *testing.F) {
	for _, s := range []string{
		"", "a", "don't stop", "it’s", "a''b 'x' y'", "_x_ 12ab", "café über naïve", "\xff\xfeab\xc3", "é", "aé",
		strings.Repeat("x", 63) + "é" + "b", strings.Repeat("x", 62) + "’s", strings.Repeat("y ", 40) + "don’t",
		strings.Repeat("z", 64) + "'s", benchPrompt[:700], "日本語のテキスト word", "a\u0301b c\u200bd",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendWords(s, nil)
		want := appendWordsPlain(s, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("%q: appendWords = %v, nextWord gives %v", s, got, want)
		}
	})
}

// randomText builds n pieces of text from an alphabet that mixes word and
// non-word bytes, apostrophes, runes of 2 to 4 bytes and invalid bytes, so
// that runes and joins fall on every offset of the 8- and 64-byte blocks.
func randomText(r *rand.Rand, n int) string {
	alphabet := []string{"a", "Z", "0", "_", " ", "'", "’", "é", "\u0301", "\xff", "日", "\u200b", ".", "-", ":", "@",
		"4", "1", "AB", "x", "\n", "\t", "𝟘", "ab", "12", "00-1A-2B-3C-4D-5E", "2024-03-04", "+44", "(415)", "ssn_", "GB82",
		"AB 12 34 56 C", "10.0.0.1", "fe80::1", "dead.beef.cafe", "555-2671", "4111", "123-45-6789", "021000021", "0958", "/8", "08:01:07", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "2001:db8::1", "aa:bb:cc:dd:ee:ff", "a:b:c:d:e:f:1:2"}
	return joinRandom(r, alphabet, n)
}

// joinRandom joins n pieces picked at random: the random texts the tests
// hold fast paths to plain code on.
func joinRandom(r *rand.Rand, pieces []string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func TestAppendWordsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// Long ASCII stretches take the whole-block path.
	ascii := []string{"word", " ", "A1_", "don't", "'", "x", ".", "\n", "12", "é", "zz"}
	for range rounds(5000) {
		var b strings.Builder
		for range r.IntN(200) {
			if k := r.IntN(len(ascii)); k != len(ascii)-2 || r.IntN(20) == 0 {
				b.WriteString(ascii[k])
			}
		}
		s := b.String()
		if got, want := appendWords(s, nil), appendWordsPlain(s, nil); !slices.Equal(got, want) {
			t.Fatalf("%q: appendWords = %v, nextWord gives %v", s, got, want)
		}
	}
	for range rounds(20000) {
		s := randomText(r, r.IntN(200))
		if got, want := appendWords(s, nil), appendWordsPlain(s, nil); !slices.Equal(got, want) {
			t.Fatalf("%q: appendWords = %v, nextWord gives %v", s, got, want)
		}
	}
}

func TestDetectWordsSkipRandom(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range rounds(50000) {
		s := randomText(r, r.IntN(120))
		if got, want := p.detectWords(s, nil), p.detectWordsPlain(s, nil); !slices.Equal(got, want) {
			t.Fatalf("%q: skipping walk found %v, plain walk %v", s, got, want)
		}
	}
}

func BenchmarkAppendWords(b *testing.B) {
	var buf []wordSpan
	b.SetBytes(int64(len(benchPrompt)))
	cpuRate(b, len(benchPrompt), func() {
		for b.Loop() {
			buf = appendWords(benchPrompt, buf[:0])
		}
	})
}

func BenchmarkAppendWordsPlain(b *testing.B) {
	var buf []wordSpan
	b.SetBytes(int64(len(benchPrompt)))
	cpuRate(b, len(benchPrompt), func() {
		for b.Loop() {
			buf = appendWordsPlain(benchPrompt, buf[:0])
		}
	})
}

func TestFoldWordsRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	sets := []*foldWords{ssnContext, routingContext, phoneContext, ninoContext, secretContext, versionWords}
	alphabet := []string{"ssn", "SSN", "Tel", "phone", "x", " ", "_", "é", "itin", "aba", "ni no", "Secret", "v", "1", "#", "ss#", "Social Security"}
	for range rounds(20000) {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		for _, f := range sets {
			for _, whole := range []bool{true, false} {
				if got, want := f.contains(s, whole), containsFold(s, f.words, whole); got != want {
					t.Fatalf("%q in %q (whole %v): %v, containsFold %v", f.words, s, whole, got, want)
				}
			}
		}
	}
}

// containsFold is foldWords.contains without the first-byte table: the
// reference TestFoldWordsRandom holds it to. It reports whether s contains one of the lower-case ASCII words,
// without case; with whole set, only at word boundaries on both sides.
func containsFold(s string, words []string, whole bool) bool {
	for i := 0; i < len(s); i++ {
		c := lower(s[i])
		for _, w := range words {
			if w[0] != c || !hasPrefixFoldASCII(s[i:], w) {
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

// digitTokenPlain is digitToken without the shape checks that pass numbers
// no check can match: the reference TestDigitTokenRandom holds it to.
func (p *PII) digitTokenPlain(s string, i int, dst []Finding, lbl piiKind) ([]Finding, int) {
	k := p.kinds
	next := i + 1
	if lbl == 0 && !numLeftOK(s, i) {
		return dst, next
	}
	found := func(typ string, end int) {
		dst = p.emit(dst, typ, i, end)
		next = max(next, end)
	}
	if k&kIP != 0 {
		if end := ipv4At(s, i); end > 0 {
			found(IPAddress, end)
			return dst, next
		}
	}
	if k&kSSN != 0 {
		if end := ssnAt(s, i, lbl); end > 0 {
			found(USSocialSecurityNumber, end)
			return dst, next
		}
	}
	if k&kCard != 0 {
		if end := cardAt(s, i); end > 0 {
			found(CreditDebitCardNumber, end)
			return dst, next
		}
	}
	if k&kRouting != 0 {
		if end := routingAt(s, i, lbl); end > 0 {
			found(USBankRoutingNumber, end)
			return dst, next
		}
	}
	if k&kPhone != 0 {
		if end := phoneAt(s, i, lbl); end > 0 {
			found(Phone, end)
		}
	}
	return dst, next
}

func TestDigitTokenRandom(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"1", "4111", "23", "123", "45", "6789", "021000021", "0", "00", "44", "-", ".", " ", "  ", "\t", "/", "_", "(", ")",
		"+", "x", "x89", "ssn", "routing ", "call ", "a", "\n", "10.0.0.1", "4111111111111111", "2015550123", "12/26", "version ",
		"020", "7946", "555", "07700", "900123", "1 "}
	for range rounds(40000) {
		s := joinRandom(r, pieces, r.IntN(14))
		for i := 0; i < len(s); i++ {
			if !isDigit(s[i]) {
				continue
			}
			for _, lbl := range []piiKind{0, kSSN, kCard, kPhone, kRouting, kLabel} {
				got, gn := p.digitToken(s, i, nil, lbl)
				want, wn := p.digitTokenPlain(s, i, nil, lbl)
				if gn != wn || !slices.Equal(got, want) {
					t.Fatalf("%q at %d (label %d): %v %d, plain %v %d", s, i, lbl, got, gn, want, wn)
				}
			}
		}
	}
}

func TestKeyRunAtLeast(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	pieces := []string{"a", "Z", "0", "+", "/", "_", " ", "-", "=", "é", "AKIA", "xxxxxxxxxx", "\xff", "@", "AKIAIOSFODNN7EXAMPLE"}
	for range rounds(40000) {
		s := joinRandom(r, pieces, r.IntN(80))
		longest, run := 0, 0
		for i := 0; i < len(s); i++ {
			if isKeyChar(s[i]) {
				run++
				longest = max(longest, run)
			} else {
				run = 0
			}
		}
		for _, n := range []int{1, 16, 20, 40, 63, 64, 65, 130} {
			if got, want := keyRunAtLeast(s, n), longest >= n; got != want {
				t.Fatalf("keyRunAtLeast(%q, %d) = %v, longest run %d", s, n, got, longest)
			}
		}
	}
}

// rounds is n, or a tenth of it under the race detector.
func rounds(n int) int {
	if raceEnabled {
		return n / 10
	}
	return n
}

// scanPlain is wordMatcher.scan without the prefix-key filters and the id
// cache: every word is hashed and looked up, and match looks words up each
// time it tries them. TestWordMatchRandom holds scan to it.
func (m *wordMatcher) scanPlain(s string, words []wordSpan, detector string, dst []Finding, hook blobHook) []Finding {
	lookup := func(w string) uint16 {
		h := uint64(fnvInit)
		for _, r := range w {
			h = (h ^ uint64(foldWordRune(r))) * fnvPrime
		}
		return m.lookupHash(h, w)
	}
	var match func(ph *wphrase, si, cnt, k int) int
	match = func(ph *wphrase, si, cnt, k int) int {
		pe := int(words[k-1].end)
		if si == len(ph.slots) {
			return pe
		}
		sl := &ph.slots[si]
		if cnt < sl.max && k < len(words) {
			ws, we := int(words[k].start), int(words[k].end)
			if m.sepOK(s[pe:ws]) {
				if id := lookup(s[ws:we]); id != 0 && sl.accepts(id, s[ws:we]) {
					if r := match(ph, si, cnt+1, k+1); r >= 0 {
						return r
					}
				}
			}
		}
		if cnt >= sl.min {
			return match(ph, si+1, 0, k)
		}
		return -1
	}
	for k := 0; k < len(words); k++ {
		ws, we := int(words[k].start), int(words[k].end)
		if hook != nil && (we-ws >= 12 || we < len(s) && (s[we] == '+' || s[we] == '/' || s[we] == '=' || s[we] == '-')) {
			var next int
			if dst, next = hook(dst, ws, we); next > 0 {
				for k+1 < len(words) && int(words[k+1].start) < next {
					k++
				}
				continue
			}
		}
		id := lookup(s[ws:we])
		if id == 0 || int(id) >= len(m.byFirst) || len(m.byFirst[id]) == 0 {
			continue
		}
		best, bestPh := -1, int32(-1)
		for _, pi := range m.byFirst[id] {
			ph := &m.phrases[pi]
			if !ph.slots[0].accepts(id, s[ws:we]) {
				continue
			}
			if e := match(ph, 0, 1, k+1); e > best {
				best, bestPh = e, pi
			}
		}
		if best > 0 {
			dst = append(dst, Finding{Type: m.phrases[bestPh].typ, Detector: detector, Start: ws, End: best})
			for k+1 < len(words) && int(words[k+1].start) < best {
				k++
			}
		}
	}
	return dst
}

// TestWordMatchRandom runs the deny list and the injection patterns over
// random sequences of their own words, common words, case changes and
// separators, and compares scan with scanPlain.
func TestWordMatchRandom(t *testing.T) {
	w, err := NewWords("DENIED_WORDS", benchWords)
	if err != nil {
		t.Fatal(err)
	}
	inj := NewInjection()
	vocab := []string{"for", "with", "within", "the", "a", "I", "x", "é", "Über", "don't", "you’re", "DAN", "Dan", "éa"}
	for _, mm := range []*wordMatcher{&w.wm, &inj.wm} {
		for _, word := range mm.words[1:] {
			vocab = append(vocab, word, strings.ToUpper(word[:1])+word[1:])
		}
	}
	seps := []string{" ", "  ", "\n", ", ", ". ", " -- ", "\t", "’", "'", "\u00a0", "/", "+"}
	r := rand.New(rand.NewPCG(11, 12))
	found := 0
	for range rounds(30000) {
		var b strings.Builder
		for range r.IntN(16) {
			b.WriteString(vocab[r.IntN(len(vocab))])
			b.WriteString(seps[r.IntN(len(seps))])
		}
		s := b.String()
		words := appendWords(s, nil)
		got, want := w.wm.scan(s, words, "words", nil, nil), w.wm.scanPlain(s, words, "words", nil, nil)
		found += len(want)
		if !slices.Equal(got, want) {
			t.Fatalf("deny list on %q: scan %v, plain %v", s, got, want)
		}
		hook := func(dst []Finding, ws, we int) ([]Finding, int) { return dst, 0 }
		got, want = inj.wm.scan(s, words, "injection", nil, hook), inj.wm.scanPlain(s, words, "injection", nil, hook)
		found += len(want)
		if !slices.Equal(got, want) {
			t.Fatalf("injection on %q: scan %v, plain %v", s, got, want)
		}
	}
	if found < rounds(30000)/20 {
		t.Errorf("only %d findings in the random texts: the test exercises too little", found)
	}
	t.Logf("%d findings", found)
}

// TestGeneralPunctuationNotWord backs isWordRune's shortcut for
// U+2000..U+206F.
func TestGeneralPunctuationNotWord(t *testing.T) {
	for r := rune(0x2000); r <= 0x206f; r++ {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r) {
			t.Errorf("%U is a word rune", r)
		}
	}
}
