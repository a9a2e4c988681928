package deptest

import (
	"fmt"
	"strings"
	"testing"
)

// recordingTB collects what Check reports instead of failing the test.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Logf(format string, args ...any) {}

// A rule the package breaks is reported, naming the dependency and the reason;
// a rule it keeps is silent. deptest itself links os/exec, so it is the subject.
func TestCheckReportsBadDeps(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    DepChecker
		want []string
	}{
		{"exact", DepChecker{BadDeps: map[string]string{"os/exec": "no processes"}}, []string{"depends on os/exec", "no processes"}},
		{"subtree", DepChecker{BadDeps: map[string]string{"os/...": "no os"}}, []string{"depends on os/exec", "no os"}},
		{"func", DepChecker{BadDep: func(dep string) string {
			if dep == "strings" {
				return "no strings"
			}
			return ""
		}}, []string{"depends on strings", "no strings"}},
		{"want", DepChecker{WantDeps: []string{"net/http"}}, []string{"does not depend on net/http"}},
		{"stale rule", DepChecker{BadDeps: map[string]string{Module + "/nosuchpkg": "gone"}}, []string{"no longer exists"}},
		{"clean", DepChecker{BadDeps: map[string]string{"net/http": "no http"}, WantDeps: []string{"os/exec"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			tc.c.Check(rec)
			got := strings.Join(rec.errors, "\n")
			if tc.want == nil && got != "" {
				t.Fatalf("Check reported errors for a rule the package keeps:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Check's report lacks %q; got:\n%s", w, got)
				}
			}
		})
	}
}

func TestOutsideWardenAndTestPackage(t *testing.T) {
	outside := OutsideWarden(Module + "/bedrock")
	for dep, bad := range map[string]bool{
		Module + "/bedrock":          false,
		Module + "/bedrock/sigv4":    false,
		Module + "/bedrockx":         true,
		Module + "/guard":            true,
		"net/http":                   false,
		"github.com/elazarl/goproxy": false,
	} {
		if got := outside(dep) != ""; got != bad {
			t.Errorf("OutsideWarden(bedrock)(%q) forbids = %v, want %v", dep, got, bad)
		}
	}
	for dep, bad := range map[string]bool{
		Module + "/bedrock/bedrocktest":               true,
		Module + "/internal/testenv":                  true,
		Module + "/internal/miniotest":                true,
		"testing":                                     true,
		"testing/fstest":                              true,
		"go.uber.org/zap/zaptest":                     true,
		"internal/testlog":                            false,
		"net/http/httptest":                           true,
		"internal/synctest":                           false,
		"k8s.io/client-go/testing":                    false,
		"github.com/mdlayher/netlink/nltest":          false,
		"github.com/mdlayher/netlink/nlenctest":       true,
		"k8s.io/client-go/tools/clientcmd/api/latest": false,
		Module + "/proxy":                             false,
	} {
		if got := TestPackage(dep) != ""; got != bad {
			t.Errorf("TestPackage(%q) forbids = %v, want %v", dep, got, bad)
		}
	}
}
