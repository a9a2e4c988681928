package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
)

// usage is the process's resources at one moment.
type usage struct {
	RSS        int64 // bytes (VmRSS)
	Heap       int64 // bytes live after a full GC (HeapAlloc)
	Goroutines int
	FDs        int
}

// measure collects garbage (twice, so sync.Pool's victim caches are gone
// too) and reads the heap, goroutines, open fds and RSS.
func measure() usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{RSS: rss(), Heap: int64(ms.HeapAlloc), Goroutines: runtime.NumGoroutine(), FDs: openFDs()}
}

// openFDs counts /proc/self/fd (minus the one reading it); -1 if unknown.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents) - 1
}

// rss reads VmRSS from /proc/self/status; -1 if unknown.
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// limits are how far above baseline the settled process may stay: room
// for a pooled connection or a spool segment opened or closed since, never
// for something per call (a soak makes thousands).
type limits struct {
	Goroutines, FDs int
	HeapBytes       int64
}

func limitsFor(base usage) limits {
	return limits{Goroutines: base.Goroutines + 10, FDs: base.FDs + 8, HeapBytes: base.Heap + max(8<<20, base.Heap/4)}
}

func (l limits) hold(u usage) bool {
	return u.Goroutines <= l.Goroutines && (u.FDs < 0 || u.FDs <= l.FDs) && u.Heap <= l.HeapBytes
}
