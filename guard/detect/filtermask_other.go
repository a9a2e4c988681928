//go:build !amd64

package detect

func filterMask(blk *[72]byte, w, cand uint64, starts *[1 << 14 / 64]uint64, _ bool) uint64 {
	return filterMaskGo(blk, w, cand, starts)
}

func hasBMI2() bool { return false }
