package detect

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPureGoPath runs the tests that hold the fast paths to the plain code
// again in a child process with AVX2 turned off (GODEBUG=cpu.avx2=off,
// which golang.org/x/sys/cpu honours), so that the pure-Go versions of the
// vector kernels are held to the same references on a machine with AVX2.
func TestPureGoPath(t *testing.T) {
	if os.Getenv("WARDEN_DETECT_PURE_GO") == "1" {
		if hasAVX2() {
			t.Fatal("GODEBUG=cpu.avx2=off did not turn the AVX2 path off")
		}
		return
	}
	run := strings.Join([]string{
		"TestPureGoPath",
		"Reference",
		"Corpus",
		"WordsFiltered",
		"AppendWords",
		"ClassifyWords",
		"IndexLit",
		"KeyRun",
		"WordMatch",
		"LookupAt",
		"DetectWordsSkip",
		"B64Run",
		"WordsListRandom",
		"KernelsAtPageEdges",
		"PIIMasks",
		"TriggerScan",
		"DetectWordsNumbers",
		"ScanSide",
		"ContextIn",
		"FilterMask",
		"ASCIIPrefix",
		"WalkEndsAtTextEnd",
		"LongTextsRandom",
		"KeepRun",
	}, "|") // one a line: branches that add tests merge cleanly
	cmd := exec.Command(os.Args[0], "-test.run", run, "-test.count", "1")
	cmd.Env = append(os.Environ(), "WARDEN_DETECT_PURE_GO=1", "GODEBUG=cpu.avx2=off")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the tests with AVX2 off: %v\n%s", err, out)
	}
}
