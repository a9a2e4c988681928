package testenv

import (
	"testing"
)

// recordingTB notes whether Missing failed or skipped.
type recordingTB struct {
	testing.TB
	failed, skipped string
}

func (r *recordingTB) Helper()                           {}
func (r *recordingTB) Fatalf(format string, args ...any) { r.failed = format }
func (r *recordingTB) Skip(args ...any)                  { r.skipped = "skip" }

func TestMissing(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recordingTB{TB: t}
	Missing(r, "no %s", "iptables")
	if r.failed == "" || r.skipped != "" {
		t.Errorf("under CI: failed %q skipped %q, want a failure", r.failed, r.skipped)
	}
	t.Setenv("CI", "")
	r = &recordingTB{TB: t}
	Missing(r, "no %s", "iptables")
	if r.failed != "" || r.skipped == "" {
		t.Errorf("outside CI: failed %q skipped %q, want a skip", r.failed, r.skipped)
	}
}
