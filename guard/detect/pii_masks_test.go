package detect

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// onesBlock is a piiBlock with every bit of every field set.
var onesBlock = func() (b piiBlock) {
	f := unsafe.Slice((*uint64)(unsafe.Pointer(&b)), unsafe.Sizeof(b)/8)
	for i := range f {
		f[i] = ^uint64(0)
	}
	return b
}()

// checkPIIMasks compares piiMasks (AVX2 where the CPU has it) with
// piiMasksGo and with a byte-by-byte classification on the whole 64-byte
// blocks of s.
func checkPIIMasks(t *testing.T, s string) {
	t.Helper()
	nb := len(s) / 64
	got, want := make([]piiBlock, nb), make([]piiBlock, nb)
	for b := range got {
		// Every field is written, the zero ones too: the blocks are
		// reused from chunk to chunk.
		got[b] = onesBlock
		want[b] = got[b]
	}
	piiMasks(s[:64*nb], got)
	piiMasksGo(s[:64*nb], want)
	if !slices.Equal(got, want) {
		t.Fatalf("%q: piiMasks %+v, piiMasksGo %+v", s, got, want)
	}
	for name, kernel := range piiKernels() {
		k := slices.Clone(got)
		for b := range k {
			k[b] = onesBlock
		}
		kernel(s[:64*nb], k)
		if !slices.Equal(k, want) {
			t.Fatalf("%q: the %s kernel %+v, piiMasksGo %+v", s, name, k, want)
		}
	}
	for b := range nb {
		var w piiBlock
		for k := range 64 {
			c := s[64*b+k]
			set := func(f *uint64, ok bool) {
				if ok {
					*f |= 1 << k
				}
			}
			set(&w.digit, isDigit(c))
			set(&w.alnum, isAlnum(c))
			set(&w.under, c == '_')
			set(&w.slash, c == '/')
			set(&w.wfold, c|0x20 == 'w')
			set(&w.dot, c == '.')
			set(&w.dash, c == '-')
			set(&w.colon, c == ':')
			set(&w.plus, c == '+')
			set(&w.space, c == ' ')
			set(&w.gx, groupSep[c] && c != ' ' && c != '-' && c != '.')
			set(&w.at, c == '@')
		}
		var grp uint64
		for k := range 64 {
			if groupSep[s[64*b+k]] {
				grp |= 1 << k
			}
		}
		if want[b] != w || w.grp() != grp {
			t.Fatalf("%q block %d: piiMasksGo %+v, bytes %+v", s[64*b:64*b+64], b, want[b], w)
		}
	}
}

// TestPIIMasks holds the vector classifier to the Go one and both to the
// byte classes on every byte value at every offset and on random text.
func TestPIIMasks(t *testing.T) {
	t.Logf("AVX2 path: %v, AVX-512 kernel: %v", hasAVX2(), len(piiKernels()) > 1)
	eachKernelText(21, func(s string) { checkPIIMasks(t, s) })
}

func FuzzPIIMasks(f *testing.F) {
	f.Add(benchPrompt[:640])
	f.Add(benchNumbers[:640])
	f.Add(strings.Repeat("\x80\xff_-.:+ \t/()09afAFgzGZ@`[{", 8))
	f.Fuzz(func(t *testing.T, s string) { checkPIIMasks(t, s) })
}

// checkTriggerScan holds triggerScan.next to nextTrigger: from every start
// on its own, and along a walk as detectWords makes it.
func checkTriggerScan(t *testing.T, s string) {
	t.Helper()
	reused := newTriggerScan(s) // its buffers left by the last start, as PII.scans leaves them
	for i := 0; i <= len(s); i++ {
		ts := reused
		ts.trigState = trigState{s: s}
		gt, gb := ts.next(i)
		wt, wb := nextTrigger(s, i)
		if gt != wt || gb != wb {
			t.Fatalf("%q from %d: triggerScan %d back %d, nextTrigger %d back %d", s, i, gt, gb, wt, wb)
		}
	}
	checkScanSide(t, s)
	ts := newTriggerScan(s)
	for i := 0; i < len(s); {
		gt, gb := ts.next(i)
		wt, wb := nextTrigger(s, i)
		if gt != wt || gb != wb {
			t.Fatalf("%q walk from %d: triggerScan %d back %d, nextTrigger %d back %d", s, i, gt, gb, wt, wb)
		}
		if gt == len(s) {
			break
		}
		i = gt + 1 + int(uint(gt*7)%5) // on a little past it, as a value would take
	}
}

// TestTriggerScan holds triggerScan to nextTrigger on random text of value
// pieces, with blocks and chunks of every alignment.
func TestTriggerScan(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for range rounds(4000) {
		checkTriggerScan(t, randomText(r, r.IntN(150)))
	}
	for range rounds(20) {
		checkTriggerScan(t, randomText(r, 400+r.IntN(400)))
	}
	for _, s := range []string{benchPrompt, benchNumbers, benchMix[:3000]} {
		checkTriggerScan(t, s)
	}
}

func FuzzTriggerScan(f *testing.F) {
	for _, s := range []string{
		"", "4111 1111 1111 1111", "SSN 123-45-6789", "ab-cd-ef-ab-cd-ef dead.beef.cafe fe80::1", "+44 20 7946 0958",
		"AB 12 34 56 C", "version 1.2.3.4", "08:01:07 ::ffff:1.2.3.4", benchPrompt[:700], benchNumbers[:900],
		strings.Repeat("x", 60) + "12345 6789", strings.Repeat("1 ", 40),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkTriggerScan(t, s) })
}

// numberText builds text of digit runs of every length, group separators
// and the bytes that start or glue numbers, so that clusters of 9 to 20
// digits with first runs of every length (the ones isTrigger passes over
// as starting no value) fall on every offset of the blocks.
func numberText(r *rand.Rand, n int) string {
	pieces := []string{"0", "1", "4", "9", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "0800", "4111",
		"1000", " ", "  ", "\t", "-", ".", "/", "_", "(", ")", "+", ":", "|", "\n", "ab", "A", "ssn ", "phone ", "é", "f",
		"dead.", "beef:", "021000021", "123-45-6789", "4111 1111 1111 1111", "10.0.0.1"}
	return joinRandom(r, pieces, n)
}

// TestDetectWordsNumbersRandom holds the skipping walk to the plain one,
// and triggerScan to nextTrigger, on number-dense random text.
func TestDetectWordsNumbersRandom(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(25, 26))
	for range rounds(30000) {
		s := numberText(r, r.IntN(60))
		if got, want := p.detectWords(s, nil), p.detectWordsPlain(s, nil); !slices.Equal(got, want) {
			t.Fatalf("%q: skipping walk found %v, plain walk %v", s, got, want)
		}
	}
	for range rounds(3000) {
		checkTriggerScan(t, numberText(r, r.IntN(80)))
	}
}

// checkScanSide holds what a triggerScan gathers for the other searches
// to the plain searches: the key runs to keyRunAtLeast, the URL markers
// to strings.Index (all of them, in order, or more than maxMarks).
func checkScanSide(t *testing.T, s string) {
	t.Helper()
	ts := newTriggerScan(s)
	for i := 0; i < len(s); {
		t, _ := ts.next(i)
		i = t + 1
	}
	if ts.key20 != keyRunAtLeast(s, 20) || ts.key40 != keyRunAtLeast(s, 40) {
		t.Fatalf("%q: triggerScan key runs of 20 %v, 40 %v; keyRunAtLeast %v, %v", s, ts.key20, ts.key40,
			keyRunAtLeast(s, 20), keyRunAtLeast(s, 40))
	}
	var ats []int32
	for i := range s {
		if s[i] == '@' {
			ats = append(ats, int32(i))
		}
	}
	if len(ats) > maxAts && !ts.atsOver || len(ats) <= maxAts && (ts.atsOver || !slices.Equal(ats, ts.ats[:ts.nAts])) {
		t.Fatalf("%q: '@' at %v, triggerScan %v (over %v)", s, ats, ts.ats[:ts.nAts], ts.atsOver)
	}
	var pos []int32
	var kind []uint8
	for i := range s {
		for k, lit := range markLits {
			if strings.HasPrefix(s[i:], lit) {
				pos, kind = append(pos, int32(i)), append(kind, uint8(k))
			}
		}
	}
	if len(pos) > maxMarks {
		if !ts.marksOver {
			t.Fatalf("%q: %d URL markers, triggerScan kept %d and no overflow", s, len(pos), ts.marks.n)
		}
		return
	}
	m := &ts.marks
	if ts.marksOver || !slices.Equal(pos, m.pos[:m.n]) || !slices.Equal(kind, m.kind[:m.n]) {
		t.Fatalf("%q: URL markers at %v kinds %v, triggerScan %v %v (over %v)", s, pos, kind, m.pos[:m.n], m.kind[:m.n], ts.marksOver)
	}
	for k, lit := range markLits {
		for off := 0; off <= len(s); off += 1 + off%7 {
			want := strings.Index(s[off:], lit)
			if want >= 0 {
				want += off
			}
			if got := m.index(off, lit); got != want {
				t.Fatalf("%q: markIndex.index(%d, %q) = %d, strings.Index %d", s, off, lit, got, want)
			}
		}
		_ = k
	}
}

// urlText builds text of URL markers (and near misses) and key-character
// runs of lengths around 20 and 40, so that both fall on every offset of
// the blocks.
func urlText(r *rand.Rand, n int) string {
	pieces := []string{"://", "www.", "WWW.", "wWw.", "ww.", "www", ":/", "http", "://x.io", "www.x.io", " ", ".", "-", "=",
		"AKIAIOSFODNN7EXAMPLE", "aB3+/", "abcdefghij", "0123456789", "é", "\n", "secret", "ab", "@", "a@b.io", "x@"}
	return joinRandom(r, pieces, n)
}

// TestScanSide holds the key runs and URL markers a triggerScan gathers
// to the plain searches, and the PII detector that uses them to the
// reference one.
func TestScanSide(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range rounds(5000) {
		n := r.IntN(120)
		if k%50 == 0 {
			n = 400 + r.IntN(800) // past a chunk (trigChunk blocks), mostly past maxMarks
		}
		s := urlText(r, n)
		checkScanSide(t, s)
		if k < len(markLits)*40 {
			// One marker on every offset around the first chunk's end,
			// in text that is otherwise a key run or spaces.
			fill := strings.Repeat([]string{"ab", "  "}[k%2], 32*trigChunk+100)
			o := 64*trigChunk - 20 + k/len(markLits)
			checkScanSide(t, fill[:o]+markLits[k%len(markLits)]+fill[o:])
		}
		got, want := p.Detect(s, nil), p.detectPlain(s, nil)
		sortFindings(got)
		sortFindings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%q: Detect found %v, the plain path %v", s, got, want)
		}
	}
}

// TestContextIn holds contextIn to foldWords.contains on random text of
// context words, digits, separators and non-ASCII bytes.
func TestContextIn(t *testing.T) {
	pieces := []string{"ssn", "SSN", "Social Security", "itin", "ss#", "aba", "Routing", "rtn", "phone", "Tel", "nino", "ni no",
		"1", "12", " ", "|", "-", ".", "\n", "é", "\xff", "x", "Z", "_", "2024-01-01 "}
	r := rand.New(rand.NewPCG(31, 32))
	for _, f := range []*foldWords{ssnContext, routingContext, phoneContext, ninoContext} {
		for range rounds(20000) {
			var b strings.Builder
			for range r.IntN(25) {
				if r.IntN(3) == 0 {
					b.WriteString(pieces[r.IntN(len(pieces))])
				} else {
					b.WriteString(pieces[12+r.IntN(len(pieces)-12)])
				}
			}
			s := b.String()
			if got, want := contextIn(f, s), f.contains(s, true); got != want {
				t.Fatalf("%q in %q: contextIn %v, contains %v", f.words, s, got, want)
			}
		}
	}
}

// TestIPv4Octets holds ipv4Octets to netip.ParseAddr on every shape of
// four groups of one to three digits ipv4At hands it.
func TestIPv4Octets(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	group := func() string {
		switch r.IntN(4) {
		case 0:
			return strings.Repeat("0", 1+r.IntN(3))
		case 1:
			return fmt.Sprint(r.IntN(10))
		case 2:
			return fmt.Sprint(250 + r.IntN(10))
		}
		return fmt.Sprintf("%0*d", 1+r.IntN(3), r.IntN(1000))
	}
	for range rounds(50000) {
		a := group() + "." + group() + "." + group() + "." + group()
		_, err := netip.ParseAddr(a)
		if got, want := ipv4Octets(a), err == nil; got != want {
			t.Fatalf("%q: ipv4Octets %v, netip.ParseAddr error %v", a, got, err)
		}
	}
}

// TestTriggerScanLongClusters: a digit run starting anywhere in a block
// whose cluster runs on, over group separators, past the block after it
// (the bits at hand) before it has nine digits: triggerCands leaves those
// to isTrigger, and the early exits for blocks with few digits must not
// drop them.
func TestTriggerScanLongClusters(t *testing.T) {
	for k := range 64 {
		for _, gap := range []string{strings.Repeat(" ", 130), strings.Repeat(" -", 70), strings.Repeat("\t", 64-k+64)} {
			checkTriggerScan(t, strings.Repeat("x", k)+" 1"+gap+"2345678 9 0 ok")
			checkTriggerScan(t, strings.Repeat("x", k)+" 12"+gap+"34.5.6.7 ok")
		}
	}
}

// TestTriggerScanThirteenDigits: a start whose cluster runs past the bits
// at hand with 12, 13 or 14 digits in them (startCands decides on 13 or
// more, as isTrigger counts up to 13: a run of 4 to 8 digits is a trigger
// only with 13), from every offset, each run length.
func TestTriggerScanThirteenDigits(t *testing.T) {
	for k := range 64 {
		for run := 1; run <= 9; run++ {
			for _, n := range []int{12, 13, 14} {
				digits := strings.Repeat("1", run) + " " + strings.Repeat("2", n-run)
				text := strings.Repeat("x", k) + " " + digits + strings.Repeat(" ", 64-len(digits)) + "3 4 ok" + strings.Repeat(" y", 40)
				checkTriggerScan(t, text)
				checkTriggerScan(t, strings.Replace(text, " ", "-", 1))
			}
		}
	}
}

// TestScanSideKeyRunAtTextEnd: a key run that ends the text at a block's
// end (no later block's head counts it) is found, in every length around
// 20 and 40 and at the end of a chunk or inside one.
func TestScanSideKeyRunAtTextEnd(t *testing.T) {
	for _, n := range []int{64, 128, 64 * trigChunk, 64*trigChunk + 64, 64*trigChunk + 1, 200} {
		for _, r := range []int{19, 20, 21, 39, 40, 41, 63, 64, 65, 90} {
			if r > n {
				continue
			}
			checkScanSide(t, strings.Repeat("word ", n/5+1)[:n-r]+strings.Repeat("aB3", r/3+1)[:r])
		}
	}
}
