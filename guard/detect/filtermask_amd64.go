package detect

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// filterMask is filterMaskGo in assembly with BMI1 and BMI2 where the CPU has
// them (and AVX2: GODEBUG=cpu.avx2=off, which TestPureGoPath sets, then
// runs the Go loop). TestFilterMask and FuzzFilterMask hold the two to the
// same result.
// ascii: the block's 64 bytes are ASCII (then no word lacks a key).
func filterMask(blk *[72]byte, w, cand uint64, starts *[1 << 14 / 64]uint64, ascii bool) uint64 {
	if cpu.X86.HasAVX2 && cpu.X86.HasBMI1 && cpu.X86.HasBMI2 {
		if ascii {
			return filterMaskASCIIBMI2((*byte)(unsafe.Pointer(blk)), w, cand, &starts[0])
		}
		return filterMaskBMI2((*byte)(unsafe.Pointer(blk)), w, cand, &starts[0])
	}
	return filterMaskGo(blk, w, cand, starts)
}

// filterMaskBMI2 is filterMaskGo for the block at blk (72 bytes readable). It
// needs BMI1 and BMI2.
//
//go:noescape
func filterMaskBMI2(blk *byte, w, cand uint64, starts *uint64) uint64

// filterMaskASCIIBMI2 is filterMaskBMI2 for a block of ASCII.
//
//go:noescape
func filterMaskASCIIBMI2(blk *byte, w, cand uint64, starts *uint64) uint64

func hasBMI2() bool { return cpu.X86.HasAVX2 && cpu.X86.HasBMI1 && cpu.X86.HasBMI2 }
