package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// denial is the record of a call Warden refused before forwarding it.
func denial(i int, client, reason string) *Record {
	return &Record{Time: time.Date(2026, 12, 1, 1, 2, 3, i, time.UTC), RequestID: fmt.Sprintf("deny-%05d", i), Client: client,
		Protocol: "HTTP/1.1", Operation: "Converse", Model: "m", Decision: "deny", Rule: "route", Reason: reason, Status: 403,
		ErrorType: "AccessDeniedException", BytesIn: 10, ResponseSHA256: "ab12"}
}

// delivered adds up, per app, the calls the delivered call records stand
// for (an aggregated record counts its count), and counts the records.
func delivered(t *testing.T, lines []string) (calls map[string]int, records int) {
	t.Helper()
	calls = map[string]int{}
	for _, l := range lines {
		var j struct {
			Kind  string `json:"kind"`
			App   string `json:"app"`
			Count int    `json:"count"`
		}
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("delivered line %q: %v", l, err)
		}
		if j.Kind != "" {
			continue
		}
		records++
		calls[j.App] += max(j.Count, 1)
	}
	return calls, records
}

// metricSum adds up every series of the counter name in reg.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int(sum)
}

// The issue: denials of callers no app selects filled the spool, and then
// on_full: deny refused every app. Their share is bounded now; and every
// denied call is still accounted for, in a record's count or in the
// dropped counter.
func TestShareUnidentifiedFloodLeavesRoomForApps(t *testing.T) {
	sink := newMemSink()
	sink.block = make(chan struct{}) // the sinks are behind: nothing leaves the spool
	o := testOptions(t.TempDir(), sink)
	o.MaxBytes = 4 * o.SegmentBytes
	reg := prometheus.NewRegistry()
	o.Registry = reg
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 300)
	const flood, repeats, apps = 2000, 500, 150 // ~1.7 MB of denials for a 256 KiB spool
	for i := range flood {                      // every caller and reason different: nothing to fold
		p.Write(denial(i, fmt.Sprintf("10.%d.%d.%d:4000", i>>16, i>>8&255, i&255), fmt.Sprintf("no app selects caller %d %s", i, pad)))
	}
	for i := range repeats { // one caller saying the same thing, from a new port each time
		p.Write(denial(flood+i, fmt.Sprintf("10.9.9.9:%d", 1024+i), "no app selects this caller "+pad))
	}
	for i := range apps {
		r := callRecord(i)
		if err := p.Begin(r); err != nil {
			t.Fatalf("app call %d after the flood of denials: %v; want room: the callers no app selects hold only their share", i, err)
		}
		p.Write(r)
	}
	close(sink.block)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines, _ := sink.snapshot()
	if res := verifyLines(lines, VerifyOptions{Keys: []string{p.PublicKey()}}); len(res.Problems) != 0 {
		t.Fatalf("chain: %v", res.Problems)
	}
	calls, _ := delivered(t, lines)
	dropped := metricSum(t, reg, "warden_audit_dropped_total")
	if calls["app"] != apps {
		t.Errorf("%d app calls recorded, want %d", calls["app"], apps)
	}
	if calls[""] == 0 || dropped == 0 {
		t.Errorf("%d denials recorded and %d counted as dropped: want both (the flood is bigger than its share)", calls[""], dropped)
	}
	if got := calls[""] + dropped; got != flood+repeats {
		t.Errorf("denied calls: %d in records + %d counted as dropped = %d, want the %d made", calls[""], dropped, got, flood+repeats)
	}
}

// A share refuses its own new calls only: bounded while the sinks hold
// its lines, other shares unaffected, room again once the sinks take them.
func TestShareBoundsAndRelease(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			sink := newMemSink()
			sink.block = make(chan struct{})
			o := testOptions("", sink)
			o.MaxBytes = 8 * o.SegmentBytes
			o.DropWhenFull = drop
			reg := prometheus.NewRegistry()
			o.Registry = reg
			p, err := Open(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			limit := int64(0.1 * float64(o.MaxBytes))
			var begun []*Record
			refusedAt := -1
			for i := range 1000 {
				r := callRecord(i)
				r.App, r.Reason = "", strings.Repeat("u", 400)
				held := p.sp.heldBy("")
				err := p.Begin(r)
				switch {
				case err == nil && r.pending != nil:
					begun = append(begun, r)
					continue
				case err == nil && drop: // dropped, counted
				case errors.Is(err, ErrShareFull) && errors.Is(err, ErrSpoolFull):
				default:
					t.Fatalf("Begin %d: %v", i, err)
				}
				if held+int64(frameSize(r.RequestID, r.AppendJSON(nil))) <= limit {
					t.Fatalf("refused at %d bytes held, under the share's %d", held, limit)
				}
				refusedAt = i
				break
			}
			if refusedAt < 0 {
				t.Fatal("the share never filled")
			}
			if held := p.sp.heldBy(""); held > limit {
				t.Errorf("the share holds %d bytes, over its bound of %d", held, limit)
			}
			gauges := map[string]float64{}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == "unidentified" && m.GetGauge() != nil {
						gauges[mf.GetName()] = m.GetGauge().GetValue()
					}
				}
			}
			if gauges["warden_audit_share_bytes"] != float64(p.sp.heldBy("")) || gauges["warden_audit_share_limit_bytes"] != float64(limit) {
				t.Errorf("share gauges %v, want %d held of %d", gauges, p.sp.heldBy(""), limit)
			}
			for i := range 50 { // another share still has room
				r := callRecord(10000 + i)
				if err := p.Begin(r); err != nil || r.pending == nil {
					t.Fatalf("app call %d: %v", i, err)
				}
				p.Write(r)
			}
			for _, r := range begun { // completions are never refused by a share
				p.Write(r)
			}
			if n := metricSum(t, reg, "warden_audit_share_refusals_total"); n != 1 {
				t.Errorf("share refusals: %d, want 1", n)
			}
			if n, want := metricSum(t, reg, "warden_audit_dropped_total"), map[bool]int{false: 0, true: 1}[drop]; n != want {
				t.Errorf("dropped: %d, want %d", n, want)
			}
			close(sink.block)
			for i := 0; p.sp.heldBy("") > 0 || p.sp.heldBy("app") > 0; i++ {
				if i == 1000 {
					t.Fatalf("the shares still hold %d and %d bytes after the sink caught up", p.sp.heldBy(""), p.sp.heldBy("app"))
				}
				time.Sleep(10 * time.Millisecond)
			}
			r := callRecord(20000)
			r.App = ""
			if err := p.Begin(r); err != nil || r.pending == nil {
				t.Fatalf("after the sink caught up: %v", err)
			}
			p.Write(r)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Repeated denials of one client (any port) for one reason become one
// record on its own and one with a count; the report and the verifier
// count the calls. For callers no app selects, the reason's text and the
// model (theirs to choose) do not split windows; for an app they do.
func TestDenialsAggregatePerClientAndReason(t *testing.T) {
	sink := newMemSink()
	o := testOptions(t.TempDir(), sink)
	o.DenialWindow = time.Hour // one window for the whole test: Close flushes it
	reg := prometheus.NewRegistry()
	o.Registry = reg
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	const per = 50
	clients := []string{"10.0.0.1", "10.0.0.2", "[fd00::1]"}
	kinds := []struct {
		app, rule, model string
		reason           func(i int) string
	}{
		{"", "route", "", func(i int) string { return fmt.Sprintf("unknown operation: POST /p-%d", i) }},
		{"", "identity", "", func(i int) string { return "workload identity could not be verified" }},
		{"app", "apps[0].allow.models", "m1", func(int) string { return "model m1 is not allowed" }},
		{"app", "apps[0].allow.models", "m2", func(int) string { return "model m2 is not allowed" }},
	}
	n := 0
	for i := range per {
		for _, c := range clients {
			for _, k := range kinds {
				r := denial(n, fmt.Sprintf("%s:%d", c, 2000+i), k.reason(i))
				r.App, r.Rule, r.Model = k.app, k.rule, k.model
				if k.rule == "route" {
					r.Model = fmt.Sprintf("caller-chosen-%d", i)
				}
				if i == per-1 {
					r.ResponseSHA256 = "other" // a hash differing in one call stands for none
				}
				p.Write(r)
				n++
			}
		}
	}
	// Not folded: a forwarded call's record, and a denial with findings.
	allowed := callRecord(1)
	p.Begin(allowed)
	p.Write(allowed)
	guarded := denial(n, "10.0.0.1:9", "blocked")
	guarded.Findings = []Finding{{Guard: "g", Detector: "pii", Type: "EMAIL", Count: 1, Action: "block"}}
	p.Write(guarded)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	lines, _ := sink.snapshot()
	type key struct{ client, rule, model string }
	got := map[key][]Record{}
	rb := NewReportBuilder(ReportOptions{})
	v := NewVerifier(VerifyOptions{Keys: []string{p.PublicKey()}})
	for _, l := range lines {
		_ = rb.Add("sink", []byte(l))
		v.Add("sink", []byte(l))
		if strings.Contains(l, `"kind":"checkpoint"`) {
			continue
		}
		r, err := DecodeRecord([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if r.Decision == "deny" && len(r.Findings) == 0 {
			k := key{clientHost(r.Client), r.Rule, r.Model}
			if r.App == "" {
				k.model = ""
			}
			got[k] = append(got[k], r)
		}
	}
	if len(got) != len(clients)*len(kinds) {
		t.Fatalf("%d (client, kind) pairs recorded, want %d", len(got), len(clients)*len(kinds))
	}
	for k, rs := range got {
		if len(rs) != 2 || rs[0].Count != 0 || rs[1].Count != per-1 {
			t.Errorf("%v: %d records with counts %v, want the first call's own and one with count %d", k, len(rs), counts(rs), per-1)
			continue
		}
		agg := rs[1]
		if agg.Client != strings.Trim(k.client, "[]") && agg.Client != k.client || agg.BytesIn != 10*(per-1) || agg.ResponseSHA256 != "" {
			t.Errorf("%v: aggregated record client %q, bytes_in %d, response_sha256 %q; want the address without a port, the sum, none",
				k, agg.Client, agg.BytesIn, agg.ResponseSHA256)
		}
		if rs[0].Client == agg.Client || rs[0].ResponseSHA256 != "ab12" {
			t.Errorf("%v: the window's first call is not recorded as it was: %+v", k, rs[0])
		}
		if varied := strings.HasPrefix(agg.Reason, "(reasons and models vary"); varied != (k.rule == "route") {
			t.Errorf("%v: aggregated reason %q", k, agg.Reason)
		}
	}
	if n := metricSum(t, reg, "warden_audit_denials_aggregated_total"); n != len(got)*(per-1) {
		t.Errorf("aggregated: %d, want %d", n, len(got)*(per-1))
	}
	calls := len(clients)*len(kinds)*per + 2
	rep := rb.Report()
	if rep.Calls != calls || rep.Records != 2*len(got)+2 {
		t.Errorf("report: %d calls in %d records, want %d in %d", rep.Calls, rep.Records, calls, 2*len(got)+2)
	}
	if len(rep.Apps) != 2 || rep.Apps[0].App != "" || rep.Apps[0].Denied != calls/2 || rep.Apps[1].Calls != calls/2 || rep.Apps[1].Denied != calls/2-1 {
		t.Errorf("report apps: %+v", rep.Apps)
	}
	found := false
	for _, rc := range rep.Reasons {
		found = found || rc.Reason == "workload identity could not be verified" && rc.Calls == len(clients)*per
	}
	if !found {
		t.Errorf("report reasons: %+v", rep.Reasons)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), fmt.Sprintf("calls               %d\n", calls)) {
		t.Errorf("report text (%v):\n%s", err, text.String())
	}
	res := v.Finish()
	if len(res.Problems) != 0 || res.Chains[0].Calls != calls || res.Chains[0].Records != 2*len(got)+2 {
		t.Errorf("verify: %+v", res)
	}
}

func counts(rs []Record) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.Count)
	}
	return out
}

// A window's aggregated record goes in when the window ends, without
// waiting for Close.
func TestDenialAggregatesFlushWhenTheWindowEnds(t *testing.T) {
	sink := newMemSink()
	o := testOptions("", sink)
	o.DenialWindow = 20 * time.Millisecond
	p, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 10 {
		p.Write(denial(i, "10.0.0.1:1", "no app selects this caller"))
	}
	for i := 0; ; i++ {
		lines, _ := sink.snapshot()
		calls, records := delivered(t, lines)
		if calls[""] == 10 {
			if records != 2 {
				t.Fatalf("10 denials in %d records, want 2", records)
			}
			return
		}
		if i == 1000 {
			t.Fatalf("after 10 s, %d of 10 denials delivered: the window's record was not flushed", calls[""])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
