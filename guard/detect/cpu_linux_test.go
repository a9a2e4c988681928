//go:build linux

package detect

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU is the calling thread's user+system CPU time. A benchmark that
// locks its OS thread reads from it the CPU its loop took, which the
// machine's other load does not inflate the way it does wall time.
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuRate runs loop on a locked thread and reports "cpu-MB/s": the bytes
// scanned per second of that thread's CPU time.
func cpuRate(b *testing.B, bytes int, loop func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU(b)
	loop()
	if cpu := threadCPU(b) - start; cpu > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}
