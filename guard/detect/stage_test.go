package detect

import (
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
