//go:build !amd64

package detect

func hasBMI2() bool { return false }

func hasKeyAVX512() bool { return false }

const haveFilterAsm = false

func filterMaskBMI2(*byte, uint64, uint64, *byte) uint64      { panic("no assembly") }
func filterMaskASCIIBMI2(*byte, uint64, uint64, *byte) uint64 { panic("no assembly") }
func keepRunBMI2(*byte, int, *asciiRun, *byte, int, int) int  { panic("no assembly") }
