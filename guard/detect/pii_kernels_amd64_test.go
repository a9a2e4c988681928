package detect

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// piiKernels returns the vector kernels for piiMasks the CPU can run, by
// name, each with piiMasks' signature: checkPIIMasks holds every one to
// piiMasksGo, not only the one piiMasks picks.
func piiKernels() map[string]func(string, []piiBlock) {
	k := map[string]func(string, []piiBlock){}
	if cpu.X86.HasAVX2 {
		k["AVX2"] = func(s string, m []piiBlock) {
			if len(m) > 0 {
				piiMasksAVX2(unsafe.StringData(s), len(m), &m[0])
			}
		}
	}
	if hasPIIAVX512 {
		k["AVX512"] = func(s string, m []piiBlock) {
			if len(m) > 0 {
				piiMasksAVX512(unsafe.StringData(s), len(m), &m[0], &piiTables512)
			}
		}
	}
	return k
}

// piiKernelAVX512 reports whether piiMasks uses the AVX-512 kernel.
func piiKernelAVX512() bool { return hasPIIAVX512 }

// piiCandsKernels returns the vector kernels for piiCands the CPU can run,
// by name: checkPIICands holds every one to piiCandsGo, not only the one
// piiCands picks.
func piiCandsKernels() map[string]func([]piiBlock, int, *candVec, *[trigChunk]uint64, *[trigChunk]uint64) {
	k := map[string]func([]piiBlock, int, *candVec, *[trigChunk]uint64, *[trigChunk]uint64){}
	if cpu.X86.HasAVX2 && cpu.X86.HasBMI1 && cpu.X86.HasBMI2 {
		k["AVX2"] = func(m []piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64) {
			_ = m[trigChunk+1]
			piiCandsAVX2(&m[0], nb, v, starts, sep)
		}
	}
	if hasPIICands512 {
		k["AVX512"] = func(m []piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64) {
			_ = m[trigChunk+1]
			piiCands512(&m[0], nb, v, starts, sep)
		}
	}
	return k
}
