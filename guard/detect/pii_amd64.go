package detect

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// piiMasks is piiMasksGo, 32 bytes at a time with AVX2 where the CPU has it
// (pii_amd64.s). TestPIIMasks and FuzzPIIMasks hold the two to the same
// result.
func piiMasks(s string, m []piiBlock) {
	if len(m) == 0 {
		return
	}
	_ = s[64*len(m)-1]
	if cpu.X86.HasAVX2 {
		piiMasksAVX2(unsafe.StringData(s), len(m), &m[0])
		return
	}
	piiMasksGo(s, m)
}

// piiMasksAVX2 is piiMasksGo for the nb 64-byte blocks at p. It needs AVX2.
//
//go:noescape
func piiMasksAVX2(p *byte, nb int, m *piiBlock)
