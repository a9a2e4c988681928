//go:build !amd64

package detect

func piiMasks(s string, m []piiBlock) { piiMasksGo(s, m) }

// hasPIICands reports whether piiCands has a vector kernel (load uses it).
const hasPIICands = false

func piiCands(m []piiBlock, nb int, v *candVec, starts, sep *[trigChunk]uint64) {
	piiCandsGo(m, nb, v, starts, sep)
}
