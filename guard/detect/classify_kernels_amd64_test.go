package detect

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// classifyKernels returns the classifyWords kernels the CPU runs, for the
// tests to hold each to classifyWordsGo.
func classifyKernels() []func(s string, word, odd, digit, join []uint64) {
	var ks []func(s string, word, odd, digit, join []uint64)
	if cpu.X86.HasAVX2 {
		ks = append(ks, func(s string, word, odd, digit, join []uint64) {
			classifyWordsAVX2(unsafe.StringData(s), len(word), &word[0], &odd[0], &digit[0], &join[0])
		})
	}
	if hasClassifyAVX512 {
		ks = append(ks, func(s string, word, odd, digit, join []uint64) {
			classifyWordsAVX512(unsafe.StringData(s), len(word), &word[0], &odd[0], &digit[0], &join[0], &classTab512)
		})
	}
	return ks
}
