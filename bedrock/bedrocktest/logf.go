package bedrocktest

import (
	"sync"
	"testing"
)

// TestLogf returns a Logf for the emulators' configs that logs through
// t.Logf until the test's cleanup starts, and drops lines after that: a
// request that reaches an emulator after its test ended (a background
// refresh, say) must not call t.Logf, which races with the test's end.
func TestLogf(t testing.TB) func(format string, args ...any) {
	var mu sync.RWMutex
	done := false
	t.Cleanup(func() {
		mu.Lock()
		done = true
		mu.Unlock()
	})
	return func(format string, args ...any) {
		mu.RLock()
		defer mu.RUnlock()
		if !done {
			t.Logf(format, args...)
		}
	}
}
