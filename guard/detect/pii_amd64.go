package detect

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// piiMasks is piiMasksGo, a block at a time with AVX-512 (VBMI and GFNI)
// or 32 bytes at a time with AVX2 where the CPU has them (pii_amd64.s).
// TestPIIMasks and FuzzPIIMasks hold the three to the same result.
func piiMasks(s string, m []piiBlock) {
	if len(m) == 0 {
		return
	}
	_ = s[64*len(m)-1]
	switch {
	case hasPIIAVX512:
		piiMasksAVX512(unsafe.StringData(s), len(m), &m[0], &piiTables512)
	case cpu.X86.HasAVX2:
		piiMasksAVX2(unsafe.StringData(s), len(m), &m[0])
	default:
		piiMasksGo(s, m)
	}
}

// hasPIIAVX512 reports whether piiMasksAVX512 can run (and AVX2 is on:
// GODEBUG=cpu.avx2=off turns every kernel off).
var hasPIIAVX512 = cpu.X86.HasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VBMI &&
	cpu.X86.HasAVX512GFNI

// piiMasksAVX2 is piiMasksGo for the nb 64-byte blocks at p. It needs AVX2.
//
//go:noescape
func piiMasksAVX2(p *byte, nb int, m *piiBlock)

// piiMasksAVX512 is piiMasksGo for the nb 64-byte blocks at p, with the
// tables c (piiTables512). It needs AVX-512 F, BW, VBMI and GFNI.
//
//go:noescape
func piiMasksAVX512(p *byte, nb int, m *piiBlock, c *piiConsts512)

// piiConsts512 are the tables piiMasksAVX512 reads.
type piiConsts512 struct {
	lut [2][128]byte // per ASCII byte, bit k: in the class of field k (8+k)
	rev [64]byte     // VPSHUFB indexes: each qword's bytes reversed
	tr  [64]byte     // VPERMB indexes: byte 8k+j from byte 8j+k
	sel uint64       // byte k: 1<<k
}

var piiTables512 = func() (t piiConsts512) {
	for c := range 128 {
		b := byte(c)
		for k, in := range [...]bool{
			isDigit(b), isAlnum(b), b == '.', b == '-', b == ' ', b|0x20 == 'w', b == ':', b == '+',
			b == '_', b == '/', groupSep[b] && b != ' ' && b != '-' && b != '.', b == '@',
		} {
			if in {
				t.lut[k/8][c] |= 1 << (k % 8)
			}
		}
	}
	for i := range 64 {
		t.rev[i] = byte(i&^7+(7-i&7)) & 15 // in the 16-byte lane
		t.tr[i] = byte(i%8*8 + i/8)
	}
	t.sel = 0x8040201008040201
	return t
}()

// hasPIICands512 reports whether piiCands runs piiCands512: AVX-512 with
// DQ (byte masks), VBMI2 (the double shifts), CD (VPLZCNTQ) and
// VPOPCNTDQ, beside what piiMasksAVX512 needs.
var hasPIICands512 = hasPIIAVX512 && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VBMI2 && cpu.X86.HasAVX512CD && cpu.X86.HasAVX512VPOPCNTDQ

// hasPIICandsAVX2 reports whether piiCands runs piiCandsAVX2 (where it
// cannot run piiCands512): AVX2, BMI1 (TZCNT) and BMI2 (SHLX, BZHI).
var hasPIICandsAVX2 = !hasPIICands512 && cpu.X86.HasAVX2 && cpu.X86.HasBMI1 && cpu.X86.HasBMI2

// hasPIICands reports whether piiCands has a vector kernel (load uses it
// then).
var hasPIICands = hasPIICands512 || hasPIICandsAVX2

// minCandsVec is the fewest blocks load gives piiCands: the kernels
// compute eight at a time, and below this the scalar loop is faster
// (piiCandsAVX2, four at a time, computes two groups for a short chunk:
// BenchmarkScanTurns on the AVX2 path, texts of three or four blocks,
// was 2.5 % slower with 3 than with 5).
var minCandsVec = func() int {
	if hasPIICandsAVX2 {
		return 5
	}
	return 3
}()

// piiCands computes v, starts and sep (see piiCandsGo) for the nb blocks
// m[1:nb+1] of a chunk (m[0] the block before, m[nb+1] the one after; m
// holds trigChunk+2 blocks). The kernels OR into v's few, work, marked,
// any and keys, which the caller zeroes.
func piiCands(m []piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64) {
	_ = m[trigChunk+1]
	if nb > trigChunk {
		panic("piiCands: chunk too long")
	}
	switch {
	case nb <= 0:
	case hasPIICands512:
		piiCands512(&m[0], nb, v, starts, sep)
	case hasPIICandsAVX2:
		piiCandsAVX2(&m[0], nb, v, starts, sep)
	default:
		piiCandsGo(m, nb, v, starts, sep)
	}
}

// piiCands512 is piiCandsGo with AVX-512, eight blocks at a time (one in
// each qword lane); it reads m up to the end of the last group of eight
// and the block after it.
//
//go:noescape
func piiCands512(m *piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64)

// piiCandsAVX2 is piiCandsGo with AVX2, BMI1 and BMI2, four blocks at a
// time, to the end of the last group of eight as piiCands512; it reads m
// up to the end of that group and the block after it.
//
//go:noescape
func piiCandsAVX2(m *piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64)
