package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPropagationBoundStated: the time README.md and docs/bundles.md say a
// published change reaches every Warden within is the bound
// TestBundleFleetProcesses enforces (propagationBound), so the stated time
// cannot drift from the test that proves it.
func TestPropagationBoundStated(t *testing.T) {
	bound := fmt.Sprintf("%d s", int(propagationBound.Seconds()))
	for file, want := range map[string][]string{
		"README.md":       {"TestBundleFleetProcesses", "within " + bound},
		"docs/bundles.md": {"TestBundleFleetProcesses", "within **" + bound + "**"},
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", file))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(data)), " ")
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s does not say %q (propagationBound is %v)", file, w, propagationBound)
			}
		}
	}
}
