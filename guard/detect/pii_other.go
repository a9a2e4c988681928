//go:build !amd64

package detect

func piiMasks(s string, m []piiBlock) { piiMasksGo(s, m) }

// hasPIICands reports whether piiCands has a vector kernel (load uses it).
const hasPIICands = false

// minCandsVec is the fewest blocks load gives piiCands (none here).
const minCandsVec = 3

// hasPIICands512 and hasPIICandsAVX2 name the amd64 kernels (tests).
const hasPIICands512, hasPIICandsAVX2 = false, false

func piiCands(m []piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64) {
	piiCandsGo(m, nb, v, starts, sep)
}
