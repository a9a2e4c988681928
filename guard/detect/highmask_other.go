//go:build !amd64

package detect

func highMasks(s string, m []uint64) { highMasksGo(s, m) }
