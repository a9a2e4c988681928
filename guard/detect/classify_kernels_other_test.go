//go:build !amd64

package detect

// classifyKernels returns the classifyWords kernels the CPU runs: none but
// classifyWordsGo here.
func classifyKernels() []func(s string, word, odd, digit, join []uint64) { return nil }
