//go:build unix

package guard

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the process has used, so a
// benchmark can report its cost on a machine other work shares, where wall
// time per operation follows the load.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
