//go:build !amd64

package detect

func classifyWords(s string, word, odd []uint64) { classifyWordsGo(s, word, odd) }

func hasAVX2() bool { return false }
