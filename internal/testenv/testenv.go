// Package testenv holds what Warden's tests share about their environment.
package testenv

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Missing reports a piece of the environment a test needs (root, ip,
// node, a system root bundle, IPv6 loopback). Under CI (CI set, where
// .ci/run installs everything) it fails the test; elsewhere it skips, so a
// developer machine without the piece still runs the rest. A test that
// skips in CI would prove nothing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI must provide it; .ci/run installs what the tests need)", msg)
		return
	}
	t.Skip(msg)
}

// Buffer is a bytes.Buffer safe for one writer goroutine (a child
// process's output copier, a logger) and a reading test at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
