//go:build !amd64

package detect

func piiKernels() map[string]func(string, []piiBlock) { return nil }

func piiKernelAVX512() bool { return false }
