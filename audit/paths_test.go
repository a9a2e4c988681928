package audit

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const pathsFixture = "testdata/report/paths.jsonl"

// TestExposureGolden renders the exposure view of the paths fixture for
// each filter the command line offers and compares the text report with
// its golden file (-update rewrites them).
func TestExposureGolden(t *testing.T) {
	day := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		filter ExposureFilter
	}{
		{"model", ExposureFilter{Model: "anthropic.claude-3-5-haiku-20241022-v1:0"}},
		{"app-range", ExposureFilter{App: "search-dev", From: day("2026-12-01T00:00:00Z"), To: day("2026-12-02T00:00:00Z")}},
		{"subnet", ExposureFilter{Subnet: "subnet-0b1"}},
		{"finding-type", ExposureFilter{FindingType: "EMAIL"}},
		{"guard-type-account", ExposureFilter{FindingType: "pii-block/US_SOCIAL_SECURITY_NUMBER", Account: "111111111111"}},
		{"none", ExposureFilter{Model: "no-such-model"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.filter
			r, err := BuildReport(context.Background(), []string{pathsFixture}, SourceOptions{}, ReportOptions{Exposure: &f})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := r.Exposure.writeTextTo(&out); err != nil {
				t.Fatal(err)
			}
			golden := "testdata/report/paths.exposure-" + tc.name + ".golden"
			if *updateReport {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("exposure view differs from %s (run with -update after checking):\n%s", golden, out.String())
			}
			// The full text report ends with the same view.
			var full bytes.Buffer
			if err := r.WriteText(&full); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(full.String(), out.String()) {
				t.Errorf("the text report does not end with the exposure view:\n%s", full.String())
			}
		})
	}
}

// TestExposureRecordIDs pins, independently of the golden layout, which
// records each filter selects: the ids must be exactly the matching
// records', de-duplicated, on the right paths.
func TestExposureRecordIDs(t *testing.T) {
	for _, tc := range []struct {
		filter ExposureFilter
		want   map[string][]string // network -> ids
	}{
		{ExposureFilter{Subnet: "subnet-0b1"}, map[string][]string{"vpc-0b1/subnet-0b1": {"p2", "p3"}}},
		{ExposureFilter{Model: "amazon.nova-lite-v1:0"}, map[string][]string{"vpc-0b1/subnet-0b1": {"p2"}, "vpc-0b1/subnet-0b2": {"p7"}, "vpce-0ddd": {"p8"}}},
		{ExposureFilter{FindingType: "EMAIL"}, map[string][]string{"vpc-0a1/subnet-0a1": {"p1"}, "vpc-0b1/subnet-0b2": {"p7"}}},
		{ExposureFilter{Account: "111111111111", App: "payments-prod"}, map[string][]string{"vpc-0a1/subnet-0a1": {"p1"}, "vpc-0a1/subnet-0a2": {"p4"}, "": {"p6"}}},
		{ExposureFilter{VPC: "vpc-0c1"}, map[string][]string{"vpc-0c1/subnet-0c1": {"p5"}}},
		{ExposureFilter{From: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}, map[string][]string{"vpc-0b1/subnet-0b2": {"p7"}, "vpce-0ddd": {"p8"}}},
		{ExposureFilter{To: time.Date(2026, 12, 1, 8, 5, 0, 0, time.UTC)}, map[string][]string{"vpc-0a1/subnet-0a1": {"p1"}}},
	} {
		t.Run(tc.filter.String(), func(t *testing.T) {
			f := tc.filter
			r, err := BuildReport(context.Background(), []string{pathsFixture}, SourceOptions{}, ReportOptions{Exposure: &f})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, p := range r.Exposure.Paths {
				got[p.Network] = append(got[p.Network], p.RecordIDs...)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("paths %v, want %v", got, tc.want)
			}
			for k, ids := range tc.want {
				if !slices.Equal(got[k], ids) {
					t.Errorf("network %q: ids %v, want %v", k, got[k], ids)
				}
			}
		})
	}
}

// TestPathEdgesAddUp: each layer's edges carry every call once, and an
// edge's figures are the sums of the paths through it.
func TestPathEdgesAddUp(t *testing.T) {
	for _, fx := range []string{pathsFixture, mixedFixture} {
		r := buildFixture(t, fx)
		for layer := 0; layer < 3; layer++ {
			calls := 0
			for _, e := range r.Edges {
				if e.Layer != layer {
					continue
				}
				calls += e.Calls
				var sum PathCounts
				for _, p := range r.Paths {
					if p.Node(layer) == e.From && p.Node(layer+1) == e.To {
						sum.Calls += p.Calls
						sum.Denied += p.Denied
						sum.DryRunDeny += p.DryRunDeny
						sum.Findings += p.Findings
					}
				}
				if sum != e.PathCounts {
					t.Errorf("%s: edge %+v, paths through it add up to %+v", fx, e, sum)
				}
			}
			if calls != r.Calls {
				t.Errorf("%s: layer %d edges carry %d calls, the report has %d", fx, layer, calls, r.Calls)
			}
		}
	}
}

func TestNetwork(t *testing.T) {
	for _, tc := range []struct {
		p    Path
		want string
	}{
		{Path{VPC: "vpc-1", Subnet: "subnet-1", VPCEndpoint: "vpce-1"}, "vpc-1/subnet-1"},
		{Path{VPC: "vpc-1", VPCEndpoint: "vpce-1"}, "vpc-1"},
		{Path{Subnet: "subnet-1"}, "subnet-1"},
		{Path{VPCEndpoint: "vpce-1"}, "vpce-1"},
		{Path{}, ""},
	} {
		if got := Network(tc.p); got != tc.want {
			t.Errorf("Network(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
