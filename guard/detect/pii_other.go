//go:build !amd64

package detect

func piiMasks(s string, m []piiBlock) { piiMasksGo(s, m) }
