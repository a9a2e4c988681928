package detect

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// classifyWords is classifyWordsGo, 32 bytes at a time with AVX2 where the
// CPU has it (classify_amd64.s). TestClassifyWordsAVX2 and
// FuzzClassifyWords hold the two to the same result.
func classifyWords(s string, word, odd []uint64) {
	if len(word) == 0 {
		return
	}
	_, _ = s[64*len(word)-1], odd[len(word)-1]
	if cpu.X86.HasAVX2 {
		classifyWordsAVX2(unsafe.StringData(s), len(word), &word[0], &odd[0])
		return
	}
	classifyWordsGo(s, word, odd)
}

// classifyWordsAVX2 classifies the nb 64-byte blocks at p into word and odd
// as classifyWordsGo does. It needs AVX2.
//
//go:noescape
func classifyWordsAVX2(p *byte, nb int, word, odd *uint64)

func hasAVX2() bool { return cpu.X86.HasAVX2 }
