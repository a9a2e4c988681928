package detect

import (
	"math/bits"

	"golang.org/x/sys/cpu"
)

// haveFilterAsm: this architecture has the key test in assembly (keepBlock
// calls it when wordFilter.bmi2 says the CPU runs it).
const haveFilterAsm = true

// filterMaskBMI2 is filterMaskGo for the block at blk (72 bytes readable),
// keys a wordFilter's keyBytes. It needs BMI1 and BMI2.
//
//go:noescape
func filterMaskBMI2(blk *byte, w, cand uint64, keys *byte) uint64

// filterMaskASCIIBMI2 is filterMaskBMI2 for a block of ASCII.
//
//go:noescape
func filterMaskASCIIBMI2(blk *byte, w, cand uint64, keys *byte) uint64

func hasBMI2() bool { return cpu.X86.HasAVX2 && cpu.X86.HasBMI1 && cpu.X86.HasBMI2 }

// hasKeyAVX512 reports whether keepRunBMI2 can test keys with AVX-512
// (r.avx): F, BW, DQ, VL, VBMI and VBMI2.
func hasKeyAVX512() bool {
	x := &cpu.X86
	return x.HasAVX512F && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL && x.HasAVX512VBMI && x.HasAVX512VBMI2
}

// runBytes[b] keeps the bytes of a word whose word bits, from its first
// byte on, are b (bit j: byte j): those of the run of 1 bits b starts
// with, min(length, 8), with 0x20 cleared (filterKey's fold).
// filterMaskBMI2 and keepRunBMI2 read it.
var runBytes = func() (t [256]uint64) {
	for b := range t {
		t[b] = lenMask8[bits.TrailingZeros64(^uint64(b))] &^ (lsb * 0x20)
	}
	return t
}()

// keepRunBMI2 is keepBlock for the blocks bi, bi+1, … (up to end) of the
// group at s[gbase:] while they are ASCII without apostrophes (r.odd 0),
// r and keys (wordFilter.keyBytes) as appendWordsFiltered sets them; it
// returns the first block it did not do. It needs BMI1 and BMI2
// (keeprun_amd64.s). TestKeepRun and FuzzKeepRun hold it to keepBlock.
//
//go:noescape
func keepRunBMI2(s *byte, gbase int, r *asciiRun, keys *byte, bi, end int) int
