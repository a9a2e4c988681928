package detect

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/warden-egress/warden/internal/benchtext"
)

// BenchmarkScanStages times each stage of ScanDefault on its own.
func BenchmarkScanStages(b *testing.B) {
	p, _ := NewPII(PIIConfig{})
	w, _ := NewWords("DENIED_WORDS", benchWords)
	inj := NewInjection()
	sc := NewScanner(p, w, inj)
	for _, tc := range []struct{ name, text string }{
		{"prose", benchPrompt}, {"numbers", benchNumbers}, {"rag", benchtext.Prose(64 << 10)},
	} {
		text := Normalize(tc.text)
		words := appendWords(text, nil)
		kept := appendWordsFiltered(text, nil, &sc.filter)
		var dst []Finding
		var nbuf []byte
		stages := []struct {
			name string
			f    func()
		}{
			{"normalize", func() { _ = Normalize(tc.text) }},
			// normalize-into is normalisation as a scan does it: into a
			// reused buffer (Normalize allocates when a dash folds).
			{"normalize-into", func() { _, nbuf, _ = normalizeInto(tc.text, nbuf[:0]) }},
			{"tokenise", func() { words = appendWords(text, words[:0]) }},
			{"pii", func() { dst = p.Detect(text, dst[:0]) }},
			{"pii-words", func() { dst = p.detectWords(text, dst[:0]) }},
			{"tokenise-kept", func() { kept = appendWordsFiltered(text, kept[:0], &sc.filter) }},
			{"words", func() { dst = w.detectSpans(text, kept, dst[:0]) }},
			{"injection", func() { dst = inj.detectSpans(text, kept, dst[:0]) }},
		}
		for _, st := range stages {
			b.Run(tc.name+"/"+st.name, func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				cpuRate(b, len(text), func() {
					for b.Loop() {
						st.f()
					}
				})
			})
		}
	}
}

// BenchmarkScanStagesFresh times each stage, and the whole scan, on 256
// distinct 4 KB chats taken in turn (BenchmarkScanFresh/chat's texts):
// BenchmarkScanStages repeats one text, which the branch predictor learns.
func BenchmarkScanStagesFresh(b *testing.B) {
	p, _ := NewPII(PIIConfig{})
	w, _ := NewWords("DENIED_WORDS", benchWords)
	inj := NewInjection()
	sc := NewScanner(p, w, inj)
	rng := rand.New(rand.NewPCG(19, 30))
	paras := strings.SplitAfter(strings.TrimSpace(benchPrompt), "\n\n")[:8]
	const n, size = 256, 4096
	texts := make([]string, n)
	kept := make([][]wordSpan, n)
	for i := range texts {
		texts[i] = Normalize(shuffled(rng, paras, size))
		kept[i] = appendWordsFiltered(texts[i], nil, &sc.filter)
	}
	var (
		dst   []Finding
		nbuf  []byte
		spans []wordSpan
	)
	stages := []struct {
		name string
		f    func(text string, kept []wordSpan)
	}{
		{"normalize-into", func(t string, _ []wordSpan) { _, nbuf, _ = normalizeInto(t, nbuf[:0]) }},
		{"tokenise", func(t string, _ []wordSpan) { spans = appendWords(t, spans[:0]) }},
		{"tokenise-kept", func(t string, _ []wordSpan) { spans = appendWordsFiltered(t, spans[:0], &sc.filter) }},
		{"pii", func(t string, _ []wordSpan) { dst = p.Detect(t, dst[:0]) }},
		{"words", func(t string, k []wordSpan) { dst = w.detectSpans(t, k, dst[:0]) }},
		{"injection", func(t string, k []wordSpan) { dst = inj.detectSpans(t, k, dst[:0]) }},
		{"scan", func(t string, _ []wordSpan) { dst = sc.ScanFindings(dst[:0], t) }},
	}
	for _, st := range stages {
		b.Run(st.name, func(b *testing.B) {
			b.SetBytes(size)
			k := 0
			cpuRate(b, size, func() {
				for b.Loop() {
					st.f(texts[k%n], kept[k%n])
					k++
				}
			})
		})
	}
}
