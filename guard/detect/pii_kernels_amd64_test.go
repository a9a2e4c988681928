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
