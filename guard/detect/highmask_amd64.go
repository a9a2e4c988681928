package detect

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// highMasks sets m[k] to the bitmap of the bytes of 0x80 or above in the
// k-th 64-byte block of s (len(s) >= 64*len(m)), with AVX2 where the CPU has
// it. TestHighMasks holds it to highMasksGo.
func highMasks(s string, m []uint64) {
	if len(m) == 0 {
		return
	}
	_ = s[64*len(m)-1]
	if cpu.X86.HasAVX2 {
		highMasksAVX2(unsafe.StringData(s), len(m), &m[0])
		return
	}
	highMasksGo(s, m)
}

// highMasksAVX2 is highMasks for the nb 64-byte blocks at p. It needs AVX2.
//
//go:noescape
func highMasksAVX2(p *byte, nb int, out *uint64)
