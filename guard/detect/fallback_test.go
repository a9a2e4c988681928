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
	switch {
	case os.Getenv("WARDEN_DETECT_AVX2") == "1":
		return // TestAVX2Path's child
	case os.Getenv("WARDEN_DETECT_PURE_GO") == "1":
		if hasAVX2() {
			t.Fatal("GODEBUG=cpu.avx2=off did not turn the AVX2 path off")
		}
		return
	}
	runFastPathTests(t, "WARDEN_DETECT_PURE_GO=1", "GODEBUG=cpu.avx2=off")
}

// TestAVX2Path is TestPureGoPath for the AVX2 kernels on a CPU with
// AVX-512, which the PII class kernel would use instead
// (GODEBUG=cpu.avx512f=off turns it off).
func TestAVX2Path(t *testing.T) {
	switch {
	case os.Getenv("WARDEN_DETECT_PURE_GO") == "1":
		return // TestPureGoPath's child
	case os.Getenv("WARDEN_DETECT_AVX2") == "1":
		if piiKernelAVX512() || !hasAVX2() {
			t.Fatal("GODEBUG=cpu.avx512f=off did not leave the AVX2 path alone")
		}
		return
	}
	if !piiKernelAVX512() {
		// The AVX2 kernels are the ones every other test runs here.
		return
	}
	runFastPathTests(t, "WARDEN_DETECT_AVX2=1", "GODEBUG=cpu.avx512f=off")
}

// runFastPathTests runs the tests that hold the fast paths to the plain
// code in a child process with env added.
func runFastPathTests(t *testing.T, env ...string) {
	t.Helper()
	run := strings.Join([]string{
		"TestPureGoPath",
		"TestAVX2Path",
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
		"PIICands",
		"PIIScansReused",
		"TriggerScan",
		"DetectWordsNumbers",
		"ScanSide",
		"ContextIn",
		"FilterMask",
		"ASCIIPrefix",
		"HighMasks",
		"NormalizeSimpleRandom",
		"WalkEndsAtTextEnd",
		"LongTextsRandom",
		"KeepRun",
		"KeepRunSlots",
		"Review31b",
	}, "|") // one a line: branches that add tests merge cleanly
	cmd := exec.Command(os.Args[0], "-test.run", run, "-test.count", "1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("the tests with %s: %v\n%s", env, err, out)
	}
}
