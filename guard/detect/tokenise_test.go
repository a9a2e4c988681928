package detect

import (
	"testing"

	"github.com/warden-egress/warden/internal/benchtext"
)

// BenchmarkTokeniseKept times the Scanner's tokeniser with its word filter
// (appendWordsFiltered, what BenchmarkScanStages calls tokenise-kept) on
// the 4 KB chat, 64 KiB of long-context prose and the number-dense text.
func BenchmarkTokeniseKept(b *testing.B) {
	sc := defaultScanner(b)
	for _, tc := range []struct{ name, text string }{
		{"prose", benchPrompt}, {"rag", benchtext.Prose(64 << 10)}, {"numbers", benchNumbers},
	} {
		text := Normalize(tc.text)
		kept := appendWordsFiltered(text, nil, &sc.filter)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			cpuRate(b, len(text), func() {
				for b.Loop() {
					kept = appendWordsFiltered(text, kept[:0], &sc.filter)
				}
			})
		})
	}
}
