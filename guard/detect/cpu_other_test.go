//go:build !linux

package detect

import "testing"

// cpuRate runs loop; without RUSAGE_THREAD (Linux only) it reports no
// cpu-MB/s, and the benchmarks' MB/s is wall time.
func cpuRate(b *testing.B, bytes int, loop func()) {
	_ = bytes
	loop()
}
