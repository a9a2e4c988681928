// Command testsummary reads `go test -json` on stdin and writes a readable log on stdout: the package
// lines (ok, FAIL, no test files), build errors, the full output of every failed test, the reason of
// every skipped one, and then a closing count line:
//
//	tests: 118 passed, 0 failed, 3 skipped
//
// Subtests count as tests. A package that fails without a failing test (build error, panic in TestMain,
// timeout) counts as one failure. It exits 1 when anything failed (and warns when nothing passed), so
// the count line can be trusted by whoever reads the log. Lines that are not JSON are copied through unchanged.
//
// CI only: `go test ... -json ./... | go run ./.ci/testsummary`. Directories starting with a dot are
// outside ./..., so this is never built by the project's own commands.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	FailedBuild string
}

type key struct{ pkg, test string }

type summary struct {
	out                     io.Writer
	passed, failed, skipped int
	buf                     map[key][]string // output of tests still running
	pkgFailedTests          map[string]int
	failures                []string
}

func main() {
	countsFile := flag.String("counts", "", "also write the closing count line to this file")
	flag.Parse()

	s := &summary{out: os.Stdout, buf: map[key][]string{}, pkgFailedTests: map[string]int{}}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		s.line(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: reading stdin: %v\n", err)
		os.Exit(1)
	}
	s.flushAll()

	if len(s.failures) > 0 {
		fmt.Fprintf(s.out, "\nFailed:\n")
		for _, f := range s.failures {
			fmt.Fprintf(s.out, "  %s\n", f)
		}
	}
	counts := fmt.Sprintf("%d passed, %d failed, %d skipped", s.passed, s.failed, s.skipped)
	fmt.Fprintf(s.out, "tests: %s\n", counts)
	if *countsFile != "" {
		if err := os.WriteFile(*countsFile, []byte(counts+"\n"), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
			os.Exit(1)
		}
	}
	if s.passed == 0 {
		fmt.Fprintln(os.Stderr, "testsummary: warning: no test passed")
	}
	if s.failed > 0 {
		os.Exit(1)
	}
}

func (s *summary) line(b []byte) {
	var e event
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &e) != nil || e.Action == "" {
		fmt.Fprintf(s.out, "%s\n", b)
		return
	}
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "build-fail":
		// Reported again as a package "fail" with FailedBuild set; counted there.
	case "output":
		if e.Test == "" {
			if e.Output == "PASS\n" {
				return // -json implies -v; plain go test does not print it either
			}
			if strings.HasPrefix(e.Output, "FAIL\t") {
				s.flushPackage(e.Package) // a panic or timeout: its story before the verdict
			}
			fmt.Fprint(s.out, e.Output)
			return
		}
		s.buf[k] = append(s.buf[k], e.Output)
	case "pass":
		if e.Test != "" {
			s.passed++
			delete(s.buf, k)
		}
	case "skip":
		if e.Test != "" {
			s.skipped++
			s.print(k, false)
		}
	case "fail":
		if e.Test != "" {
			s.failed++
			s.pkgFailedTests[e.Package]++
			s.failures = append(s.failures, e.Package+" "+e.Test)
			s.print(k, true)
			return
		}
		// The package failed: show tests that never finished (panic, timeout), then count the package
		// itself if no test in it was counted as failing.
		s.flushPackage(e.Package)
		if s.pkgFailedTests[e.Package] == 0 {
			s.failed++
			why := "package"
			if e.FailedBuild != "" {
				why = "build failed"
			}
			s.failures = append(s.failures, fmt.Sprintf("%s (%s)", e.Package, why))
		}
	}
}

// print writes a finished test's output; for a skip only the reason, not the run/pause chatter.
func (s *summary) print(k key, all bool) {
	for _, l := range s.buf[k] {
		if !all {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "=== ") {
				continue
			}
		}
		fmt.Fprint(s.out, l)
	}
	delete(s.buf, k)
}

func (s *summary) flushPackage(pkg string) {
	var ks []key
	for k := range s.buf {
		if k.pkg == pkg {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].test < ks[j].test })
	for _, k := range ks {
		fmt.Fprintf(s.out, "--- unfinished: %s %s\n", k.pkg, k.test)
		s.print(k, true)
	}
}

func (s *summary) flushAll() {
	pkgs := map[string]bool{}
	for k := range s.buf {
		pkgs[k.pkg] = true
	}
	for p := range pkgs {
		s.flushPackage(p)
	}
}
