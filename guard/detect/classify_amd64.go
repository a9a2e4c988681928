package detect

import (
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// classifyWords is classifyWordsGo, 32 bytes at a time with AVX2 where the
// CPU has it (classify_amd64.s). TestClassifyWordsAVX2 and
// FuzzClassifyWords hold the two to the same result.
func classifyWords(s string, word, odd, digit, join []uint64) {
	if len(word) == 0 {
		return
	}
	_, _, _, _ = s[64*len(word)-1], odd[len(word)-1], digit[len(word)-1], join[len(word)-1]
	switch {
	case hasClassifyAVX512:
		classifyWordsAVX512(unsafe.StringData(s), len(word), &word[0], &odd[0], &digit[0], &join[0], &classTab512)
	case cpu.X86.HasAVX2:
		classifyWordsAVX2(unsafe.StringData(s), len(word), &word[0], &odd[0], &digit[0], &join[0])
	default:
		classifyWordsGo(s, word, odd, digit, join)
	}
}

// hasClassifyAVX512 reports whether classifyWordsAVX512 can run (and AVX2
// is on: GODEBUG=cpu.avx2=off turns every kernel off).
var hasClassifyAVX512 = cpu.X86.HasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VBMI

// classTab512 is classifyWordsAVX512's table of the ASCII bytes' classes:
// bit 7 a letter, digit or '_' (a word byte), 6 a digit, 0 '+', '/', '='
// or '-' (a join byte), 1 the apostrophe.
var classTab512 = func() (t [128]byte) {
	for c := range t {
		b := byte(c)
		if 'a' <= b|0x20 && b|0x20 <= 'z' || '0' <= b && b <= '9' || b == '_' {
			t[c] |= 0x80
		}
		if '0' <= b && b <= '9' {
			t[c] |= 0x40
		}
		if b == '+' || b == '/' || b == '=' || b == '-' {
			t[c] |= 0x01
		}
		if b == '\'' {
			t[c] |= 0x02
		}
	}
	return t
}()

// classifyWordsAVX512 is classifyWordsAVX2 with AVX-512 F, BW and VBMI,
// tab classTab512.
//
//go:noescape
func classifyWordsAVX512(p *byte, nb int, word, odd, digit, join *uint64, tab *[128]byte)

// classifyWordsAVX2 classifies the nb 64-byte blocks at p as classifyWordsGo
// does. It needs AVX2.
//
//go:noescape
func classifyWordsAVX2(p *byte, nb int, word, odd, digit, join *uint64)

func hasAVX2() bool { return cpu.X86.HasAVX2 }

// asciiPrefix returns the length of the ASCII prefix of s. A long text (a
// RAG prompt is mostly ASCII) is tested 128 bytes per AVX2 step after a
// first 128 bytes in Go, where the short ASCII stretches between the curly
// quotes of prose end. TestASCIIPrefix holds it to asciiPrefixGo.
func asciiPrefix(s string) int {
	if len(s) < 512 || !cpu.X86.HasAVX2 {
		return asciiPrefixGo(s)
	}
	if i := asciiPrefixGo(s[:128]); i < 128 {
		return i
	}
	n := 128 + asciiBlocksAVX2(unsafe.StringData(s[128:]), (len(s)-128)/128)
	return n + asciiPrefixGo(s[n:])
}

// asciiBlocksAVX2 returns 128 times the number of the nb 128-byte blocks at
// p, from the first, that hold only ASCII. It needs AVX2.
//
//go:noescape
func asciiBlocksAVX2(p *byte, nb int) int

// indexLit is strings.Index(s, lit) for a literal of 2 to 4 bytes, looking
// at 32 positions at a time with AVX2 where the CPU has it: the standard
// library's Index looks for the literal's first byte with IndexByte and
// stays with it while that byte is common (the 'w' of "www." in prose).
// TestIndexLit and FuzzIndexLit hold it to strings.Index.
func indexLit(s, lit string) int {
	if !cpu.X86.HasAVX2 || len(lit) < 2 || len(lit) > 4 || len(s) < 32+3 {
		return strings.Index(s, lit)
	}
	blocks := (len(s) - 3) / 32
	var l [4]byte
	copy(l[:], lit)
	if i := indexLitAVX2(unsafe.StringData(s), blocks, &l, len(lit)); i >= 0 {
		return i
	}
	if j := strings.Index(s[32*blocks:], lit); j >= 0 {
		return 32*blocks + j
	}
	return -1
}

// indexLitAVX2 returns the first position i < 32*blocks at which the first
// m bytes of lit (2 <= m <= 4) start at p, or -1. p must hold 32*blocks+3
// bytes. It needs AVX2.
//
//go:noescape
func indexLitAVX2(p *byte, blocks int, lit *[4]byte, m int) int

// keyMasks is keyMasksGo, 32 bytes at a time with AVX2 where the CPU has
// it. TestKeyMasks and FuzzClassifyWords hold the two to the same result.
func keyMasks(s string, m []uint64) {
	if len(m) == 0 {
		return
	}
	_ = s[64*len(m)-1]
	if cpu.X86.HasAVX2 {
		keyMasksAVX2(unsafe.StringData(s), len(m), &m[0])
		return
	}
	keyMasksGo(s, m)
}

// keyMasksAVX2 is keyMasksGo for the nb 64-byte blocks at p. It needs AVX2.
//
//go:noescape
func keyMasksAVX2(p *byte, nb int, m *uint64)
