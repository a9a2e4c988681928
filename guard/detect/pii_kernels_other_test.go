//go:build !amd64

package detect

func piiKernels() map[string]func(string, []piiBlock) { return nil }

func piiKernelAVX512() bool { return false }

func piiCandsKernels() map[string]func([]piiBlock, int, *candVec, *[trigChunk]uint64, *[trigChunk]uint64) {
	return nil
}
