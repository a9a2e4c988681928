package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// The Go runtime's soft memory limit (GOMEMLIMIT) from the container's
// memory limit, as production Go services set it: without one the heap may
// grow to twice its live size before a collection (GOGC=100), so a Warden
// holding many open streams can be killed by its cgroup with half its heap
// garbage. With it, the collector works harder as the heap nears the limit
// instead (docs/performance.md: 10,000 open streams, with and without).

// cgroupLimitFiles are where a container's memory limit is read: cgroup v2,
// then v1 (relative to the root, "/" outside tests).
var cgroupLimitFiles = []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"}

// parseCgroupLimit reads a cgroup memory limit file's content: a byte count,
// or "max" (v2) or a value near 2^63 (v1) for none.
func parseCgroupLimit(b []byte) (int64, bool, error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("cgroup memory limit %q is not a positive byte count", s)
	}
	if n >= 1<<62 { // v1's "unlimited" is 2^63 rounded down to a page
		return 0, false, nil
	}
	return n, true, nil
}

// memoryLimitFor is the soft limit to set: ratio of the first cgroup limit
// found under root; 0 when GOMEMLIMIT is set (the operator's word wins;
// the runtime reads an empty one as unset, and so does this), ratio is 0,
// or there is no limit. It says where the limit came from.
func memoryLimitFor(root string, ratio float64, env func(string) (string, bool)) (int64, string, error) {
	if v, _ := env("GOMEMLIMIT"); v != "" || !(ratio > 0) {
		return 0, "", nil
	}
	for _, f := range cgroupLimitFiles {
		p := filepath.Join(root, f)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, "", err
		}
		n, ok, err := parseCgroupLimit(b)
		if err != nil {
			return 0, "", fmt.Errorf("%s: %w", p, err)
		}
		if !ok {
			return 0, "", nil
		}
		return int64(float64(n) * ratio), p, nil
	}
	return 0, "", nil
}

// applyMemoryLimit sets the soft memory limit from the container's limit.
func applyMemoryLimit(ratio float64, log *zap.Logger) {
	limit, from, err := memoryLimitFor("/", ratio, os.LookupEnv)
	if err != nil {
		log.Warn("reading the container's memory limit failed; Go's soft memory limit is not set", zap.Error(err))
		return
	}
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	log.Info("Go soft memory limit set from the container's memory limit",
		zap.Int64("gomemlimit_bytes", limit), zap.String("cgroup_file", from), zap.Float64("ratio", ratio))
}
