// Package testenv holds what Warden's tests share about their environment.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Missing reports a piece of the environment a test needs (root, iptables,
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
