package detect

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/warden-egress/warden/internal/benchtext"
	"unicode/utf8"
)

// A benchmark that scans one text over and over measures a text the CPU's
// branch predictor has learnt: scanning the same 64 KiB again runs ~1.5x
// faster than scanning 64 KiB it has not seen (BenchmarkScanFresh against
// BenchmarkScanRAG), and a guard scans each prompt once. The fresh
// benchmarks rotate over texts that share no long stretch: words drawn at
// random, values of random digits.

// freshWords are common words of prose and of support chats.
var freshWords = strings.Fields(`the a an and or but of to in on for with at by from as is are was were be been
has have had do does did will would can could should may might must not no yes this that these those it its they
them their we our you your he she his her i me my customer order orders shipping delivery refund payment card
account address team support agent ticket issue problem update review quarter report service release version
latency error errors rate cost spend budget plan roadmap meeting summary notes follow-up owner due date week month
year today tomorrow yesterday morning evening please thanks thank hello hi sorry again still already just also
only very more most less few many some any every each other new old first last next previous same different
large small high low fast slow late early good bad better worse best worst open closed pending shipped arrived
warehouse parcel item items product products price prices invoice bill billing charge charged twice once
email phone call message chat app mobile web page site tab button screen crash crashes crashed bug build test
tests deploy deployed server servers region cluster cache database query queries customers users user data
file files document documents policy policies contract vendor storage network traffic incident incidents outage
capacity engineers engineer group groups project projects customer's team's isn’t don’t can’t won’t it’s we’re
they’re you’ll I’ve“quoted” “label” “pending” “urgent” — – (see) [note] {draft} etc. e.g. i.e. FYI ASAP`)

var freshNames = strings.Fields(`Maria John Aisha Wei Olga Pedro Fatima Lars Priya Kenji Amara Tomasz Chloe Diego Ines Omar`)

// freshText returns about n bytes of chat-like prose (chat) or of a
// long document (rag: fewer values, longer sentences), from rng.
func freshText(rng *rand.Rand, n int, chat bool) string {
	var b strings.Builder
	digits := func(k int) string {
		d := make([]byte, k)
		for i := range d {
			d[i] = byte('0' + rng.IntN(10))
		}
		return string(d)
	}
	for b.Len() < n {
		if chat {
			fmt.Fprintf(&b, "%s: ", []string{"Customer", "Agent"}[rng.IntN(2)])
		}
		for range 2 + rng.IntN(4) { // sentences
			words := 5 + rng.IntN(16)
			for w := range words {
				word := freshWords[rng.IntN(len(freshWords))]
				if w == 0 && word[0] < 0x80 {
					word = strings.ToUpper(word[:1]) + word[1:]
				}
				b.WriteString(word)
				switch v := rng.IntN(100); {
				case chat && v < 3:
					fmt.Fprintf(&b, " #%s", digits(6+rng.IntN(3)))
				case v < 5:
					fmt.Fprintf(&b, " %s-%s-%s", "20"+digits(2), digits(2), digits(2))
				case v < 7:
					fmt.Fprintf(&b, " $%d.%s", rng.IntN(2000), digits(2))
				case v < 9:
					fmt.Fprintf(&b, " %s", digits(1+rng.IntN(4)))
				case chat && v < 10:
					fmt.Fprintf(&b, " %s", freshNames[rng.IntN(len(freshNames))])
				case chat && v == 10:
					fmt.Fprintf(&b, " %s.%s@example.com", strings.ToLower(freshNames[rng.IntN(len(freshNames))]), strings.ToLower(freshNames[rng.IntN(len(freshNames))]))
				case chat && v == 11:
					fmt.Fprintf(&b, " (%s) 555-%s", digits(3), digits(4))
				case v < 13:
					fmt.Fprintf(&b, " %d.%d.%d", rng.IntN(20), rng.IntN(30), rng.IntN(10))
				}
				if w < words-1 {
					if rng.IntN(9) == 0 {
						b.WriteByte(',')
					}
					b.WriteByte(' ')
				}
			}
			b.WriteString([]string{". ", ". ", "? ", "! "}[rng.IntN(4)])
		}
		b.WriteString("\n\n")
	}
	s := b.String()
	for len(s) > n && s[n-1] >= 0x80 { // do not cut a rune
		n--
	}
	return s[:n]
}

// shuffled returns about n bytes of units (paragraphs or sentences) in
// random order, every ASCII digit replaced by a random one: the benchmark
// texts' words and shapes, but no stretch the predictor has seen in the
// same place before.
func shuffled(rng *rand.Rand, units []string, n int) string {
	var b strings.Builder
	for b.Len() < n {
		for _, c := range []byte(units[rng.IntN(len(units))]) {
			if c >= '0' && c <= '9' {
				c = byte('0' + rng.IntN(10))
			}
			b.WriteByte(c)
		}
	}
	s := b.String()
	for len(s) > n && s[n-1] >= 0x80 { // do not cut a rune
		n--
	}
	return s[:n]
}

// BenchmarkScanFresh is the default scanner over texts it has not just
// scanned, taken in turn: chat, 32 texts of benchPrompt's paragraphs
// shuffled (4 KB each: BenchmarkScanDefault's text made fresh); rag, 16
// texts of benchtext's sentences shuffled (64 KiB each: BenchmarkScanRAG's
// made fresh); numbers, 128 texts of benchNumbers' lines shuffled (8 KB
// each: BenchmarkScanNumbers's made fresh); words, 32 texts of random words with values after one word
// in eight and a curly quote or dash in one in twenty (freshText: harder
// than either). The -same cases scan the first text over and over, as the
// other benchmarks do.
func BenchmarkScanFresh(b *testing.B) {
	rng := rand.New(rand.NewPCG(19, 30))
	paras := strings.SplitAfter(strings.TrimSpace(benchPrompt), "\n\n")[:8]
	sents := strings.SplitAfter(benchtext.Prose(2048), ". ")
	lines := strings.SplitAfter(benchNumbers, "\n")
	for _, tc := range []struct {
		name string
		n    int
		make func() string
	}{
		{"chat", 256, func() string { return shuffled(rng, paras, 4096) }},
		{"rag", 32, func() string { return shuffled(rng, sents, 64<<10) }},
		{"numbers", 128, func() string { return shuffled(rng, lines, len(benchNumbers)) }},
		{"words", 256, func() string { return freshText(rng, 4096, true) }},
	} {
		texts := make([]string, tc.n)
		for k := range texts {
			texts[k] = tc.make()
		}
		size := len(texts[0])
		b.Run(tc.name, func(b *testing.B) {
			sc := defaultScanner(b)
			buf := make([]Finding, 0, 256)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			cpuRate(b, size, func() {
				k := 0
				for b.Loop() {
					buf = sc.ScanFindings(buf[:0], texts[k%len(texts)])
					k++
				}
			})
		})
		b.Run(tc.name+"-same", func(b *testing.B) {
			sc := defaultScanner(b)
			buf := make([]Finding, 0, 256)
			b.SetBytes(int64(size))
			cpuRate(b, size, func() {
				for b.Loop() {
					buf = sc.ScanFindings(buf[:0], texts[0])
				}
			})
		})
	}
}

func TestFreshText(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, c := freshText(rng, 4096, true), freshText(rng, 4096, true)
	if len(a) < 4090 || a == c || !strings.Contains(a, "@example.com") && !strings.Contains(c, "@example.com") {
		t.Fatalf("freshText: %d bytes, distinct %v", len(a), a != c)
	}
	for _, s := range []string{a, c, freshText(rng, 64<<10, false)} {
		if !utf8.ValidString(s) {
			t.Fatal("freshText made invalid UTF-8")
		}
		if _, _, _, ok := normalizeSimple(s, asciiPrefix(s), nil); !ok {
			t.Fatal("freshText made a text off normalisation's fast path, unlike prose")
		}
	}
}
