package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

var updateReport = flag.Bool("update", false, "rewrite the golden files in testdata/report")

const mixedFixture = "testdata/report/mixed.jsonl"

func buildFixture(t *testing.T, src string) *Report {
	t.Helper()
	r, err := BuildReport(context.Background(), []string{src}, SourceOptions{}, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReportGolden renders every fixture's text report and compares it with
// its golden file (go test ./audit -run TestReportGolden -update rewrites
// them).
func TestReportGolden(t *testing.T) {
	fixtures, err := filepath.Glob("testdata/report/*.jsonl")
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, fx := range fixtures {
		t.Run(filepath.Base(fx), func(t *testing.T) {
			var out bytes.Buffer
			if err := buildFixture(t, fx).WriteText(&out); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(fx, ".jsonl") + ".golden"
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
				t.Errorf("text report differs from %s (run with -update after checking):\n%s", golden, out.String())
			}
		})
	}
}

// TestReportMixed pins the aggregates of the mixed fixture independently of
// the golden file's layout.
func TestReportMixed(t *testing.T) {
	r := buildFixture(t, mixedFixture)
	checks := []struct {
		name      string
		got, want any
	}{
		{"lines", r.Lines, 13}, // the empty line is not one
		{"records", r.Records, 9},
		{"duplicates", r.Duplicates, 2}, // r2 and the checkpoint, re-delivered
		{"checkpoints", r.Checkpoints, 1},
		{"malformed", r.Malformed, 1},
		{"incomplete", r.Incomplete, 1},
		{"tokens in", r.TokensIn, int64(1360)},
		{"tokens out", r.TokensOut, int64(555)},
		{"cost unknown", r.CostUnknown, 5}, // four without cost, one NaN
		{"bucket", r.Bucket, "hour"},
		{"timeline buckets", len(r.Timeline), 5},
		{"apps", len(r.Apps), 4},
		{"models", len(r.Models), 4},
		{"distinct reasons", r.DistinctReasons, 4},
		{"findings", len(r.Findings), 3},
		{"first", r.First, time.Date(2026, 11, 30, 9, 5, 1, 250e6, time.UTC)},
		{"last", r.Last, time.Date(2026, 11, 30, 13, 30, 0, 0, time.UTC)},
		{"decisions", r.Decisions, []Count{{"allow", 5}, {"deny", 3}, {"dry-run-deny", 1}}},
		{"accounts", r.Accounts, []Count{{"111111111111", 4}, {"222222222222", 3}, {UnknownAccount, 2}}},
	}
	for _, c := range checks {
		if gb, _ := json.Marshal(c.got); string(gb) != mustJSON(t, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if math.Abs(r.CostUSD-0.00343) > 1e-12 {
		t.Errorf("cost = %v, want 0.00343", r.CostUSD)
	}
	apps := map[string]AppStats{}
	for _, a := range r.Apps {
		apps[a.App] = a
	}
	pay := apps["payments-prod"]
	if pay.Calls != 4 || pay.Allowed != 3 || pay.Denied != 1 || pay.TokensIn != 310 || pay.CacheRead != 30 {
		t.Errorf("payments-prod = %+v", pay)
	}
	// Latencies 2.1, 95, 120.5, 300 ms: nearest rank p50 is the 2nd, p99 the 4th.
	if pay.LatencyP50 != 95*time.Millisecond || pay.LatencyP99 != 300*time.Millisecond {
		t.Errorf("payments-prod latency p50 %v p99 %v", pay.LatencyP50, pay.LatencyP99)
	}
	if s := apps["search-dev"]; s.DryRunDeny != 1 || s.Incomplete != 1 || s.Calls != 3 {
		t.Errorf("search-dev = %+v", s)
	}
	if f := r.Findings[0]; f.Guard != "pii-block" || f.Type != "US_SOCIAL_SECURITY_NUMBER" || f.Count != 2 || f.ByAction["block"] != 2 {
		t.Errorf("top finding = %+v", f)
	}
	if m := r.Models[0]; m.Model != "anthropic.claude-3-5-haiku-20241022-v1:0" || m.Calls != 4 {
		t.Errorf("top model = %+v", m)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReportTopReasons(t *testing.T) {
	b := NewReportBuilder(ReportOptions{TopReasons: 2})
	for i, reason := range []string{"a", "b", "b", "c", "c", "c"} {
		line := `{"v":2,"time":"2026-11-30T09:00:00Z","request_id":"r` + string(rune('0'+i)) + `","app":"x","decision":"deny","reason":"` + reason + `"}`
		if err := b.Add("t", []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	r := b.Report()
	if r.DistinctReasons != 3 || len(r.Reasons) != 2 || r.Reasons[0].Reason != "c" || r.Reasons[1].Reason != "b" || r.Reasons[0].Calls != 3 {
		t.Errorf("reasons = %+v (distinct %d)", r.Reasons, r.DistinctReasons)
	}
}

func TestAccount(t *testing.T) {
	for _, c := range []struct {
		tags map[string]string
		want string
	}{
		{map[string]string{"aws.account": "1", "ecs.task_arn": "arn:aws:ecs:r:2:task/x"}, "1"},
		{map[string]string{"ecs.task_arn": "arn:aws:ecs:us-east-1:2:task/c/x"}, "2"},
		{map[string]string{"ecs.cluster": "arn:aws-us-gov:ecs:us-gov-west-1:3:cluster/c"}, "3"},
		{map[string]string{"ecs.cluster": "plain-name"}, UnknownAccount},
		{map[string]string{"k8s.namespace": "ns"}, UnknownAccount},
		{nil, UnknownAccount},
	} {
		if got := Account(c.tags); got != c.want {
			t.Errorf("Account(%v) = %q, want %q", c.tags, got, c.want)
		}
	}
}

// TestReportBuckets: the bucket follows the span of the calls, and the
// chart fills the empty buckets in between.
func TestReportBuckets(t *testing.T) {
	base := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		span    time.Duration
		bucket  string
		buckets int // in the chart, empty ones included
	}{
		{0, "minute", 1},
		{90 * time.Minute, "minute", 91},
		{3 * time.Hour, "minute", 181},
		{3*time.Hour + time.Minute, "hour", 4},
		{7 * 24 * time.Hour, "hour", 169},
		{8 * 24 * time.Hour, "day", 9},
	} {
		b := NewReportBuilder(ReportOptions{})
		for i, at := range []time.Time{base.Add(c.span), base} { // out of order on purpose
			line := `{"time":"` + at.Format(time.RFC3339Nano) + `","request_id":"` + string(rune('a'+i)) + `","app":"x","decision":"allow"}`
			if err := b.Add("t", []byte(line)); err != nil {
				t.Fatal(err)
			}
		}
		r := b.Report()
		if r.Bucket != c.bucket || len(r.chartBuckets()) != c.buckets {
			t.Errorf("span %v: bucket %s with %d chart buckets, want %s with %d", c.span, r.Bucket, len(r.chartBuckets()), c.bucket, c.buckets)
		}
	}
}

// TestReportTextSafe: names from records cannot drive the terminal.
func TestReportTextSafe(t *testing.T) {
	var out bytes.Buffer
	if err := buildFixture(t, mixedFixture).WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(out.Bytes(), "\x1b\r\t") {
		t.Errorf("text report holds control characters:\n%q", out.String())
	}
	if !strings.Contains(out.String(), `<script>alert('reason')</script>\x1b[2J`) {
		t.Errorf("text report does not show the escaped reason:\n%s", out.String())
	}
}

func renderHTML(t *testing.T, r *Report) string {
	t.Helper()
	var out bytes.Buffer
	if err := r.WriteHTML(&out); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestReportHTML checks the page's structure and that hostile names from
// the records stay text: no element or event handler comes from them, and
// the page loads nothing from anywhere.
func TestReportHTML(t *testing.T) {
	r := buildFixture(t, mixedFixture)
	page := renderHTML(t, r)
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var (
		charts           = map[string]int{}
		scripts, jsonDat []string
		csp              string
		elements         = map[string]int{}
	)
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			elements[n.Data]++
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s> has an event handler attribute %s=%q", n.Data, a.Key, a.Val)
				}
				if a.Key == "src" || a.Key == "href" {
					t.Errorf("<%s> loads %s=%q", n.Data, a.Key, a.Val)
				}
			}
			switch n.Data {
			case "div":
				if c, ok := attrs["data-chart"]; ok {
					charts[c]++
					if n.LastChild == nil || n.LastChild.Data != "svg" {
						t.Errorf("chart %s has no <svg> as its last child", c)
					}
				}
			case "script":
				text := ""
				if n.FirstChild != nil {
					text = n.FirstChild.Data
				}
				if attrs["type"] == "application/json" {
					jsonDat = append(jsonDat, text)
				} else {
					scripts = append(scripts, text)
				}
			case "meta":
				if attrs["http-equiv"] == "Content-Security-Policy" {
					csp = attrs["content"]
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)

	for _, name := range HTMLCharts() {
		if charts[name] != 1 {
			t.Errorf("chart %q: %d containers, want 1", name, charts[name])
		}
	}
	if len(charts) != len(HTMLCharts()) {
		t.Errorf("charts %v, want %v", charts, HTMLCharts())
	}
	for _, el := range []string{"img", "b", "link", "iframe", "object", "embed"} {
		if elements[el] != 0 {
			t.Errorf("page has %d <%s> elements", elements[el], el)
		}
	}
	if len(scripts) != 1 || len(jsonDat) != 1 {
		t.Fatalf("%d scripts and %d JSON data elements, want 1 and 1", len(scripts), len(jsonDat))
	}
	for _, bad := range []string{"http://", "https://", "//cdn", "url(", "@import", "<img", "<script>alert", "<b>model"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, want := range []string{"&lt;img src=x onerror=alert(1)&gt;", "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;", "&lt;b&gt;model&lt;/b&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page does not show %q as text", want)
		}
	}
	// The CSP lets only this exact script run.
	sum := sha256.Sum256([]byte(scripts[0]))
	if want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q does not pin the page's script (%s)", csp, want)
	}
	// The embedded data round-trips the hostile names exactly.
	var data chartData
	if err := json.Unmarshal([]byte(jsonDat[0]), &data); err != nil {
		t.Fatalf("chart data: %v\n%s", err, jsonDat[0])
	}
	if strings.Join(data.Apps, "|") != "|<img src=x onerror=alert(1)>|payments-prod|search-dev" {
		t.Errorf("chart apps = %q", data.Apps)
	}
	if len(data.Cost) != 4 || len(data.Tokens) != 4 || len(data.Denials) != 4 || len(data.Models) != 4 || len(data.Findings) != 3 || len(data.Timeline) != 5 {
		t.Errorf("chart data sizes: cost %d tokens %d denials %d models %d findings %d timeline %d",
			len(data.Cost), len(data.Tokens), len(data.Denials), len(data.Models), len(data.Findings), len(data.Timeline))
	}
}

// TestReportHTMLEmpty: a report of nothing is still a valid page.
func TestReportHTMLEmpty(t *testing.T) {
	page := renderHTML(t, NewReportBuilder(ReportOptions{}).Report())
	if !strings.Contains(page, `data-chart="timeline"`) {
		t.Errorf("empty report page lacks its charts")
	}
	var out bytes.Buffer
	if err := NewReportBuilder(ReportOptions{}).Report().WriteText(&out); err != nil {
		t.Fatal(err)
	}
}

// ExpectedMarks is how many marks the page's script draws per chart for r:
// one bar per reason, model (top 10), app (cost; two for tokens) and
// guard/type, one timeline segment per non-empty (bucket, app).
func expectedMarks(r *Report) map[string]int {
	d := r.chartData()
	segments := 0
	for _, b := range d.Timeline {
		for _, n := range b.Counts {
			if n > 0 {
				segments++
			}
		}
	}
	return map[string]int{
		"timeline": segments,
		"denials":  len(d.Denials),
		"models":   len(d.Models),
		"tokens":   2 * len(d.Tokens),
		"cost":     len(d.Cost),
		"findings": len(d.Findings),
		"paths":    len(d.Paths.Edges),
	}
}

func TestExpectedMarksMixed(t *testing.T) {
	got := expectedMarks(buildFixture(t, mixedFixture))
	want := map[string]int{"timeline": 7, "denials": 4, "models": 4, "tokens": 8, "cost": 4, "findings": 3, "paths": 12}
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("expected marks %v, want %v", got, want)
	}
}

// FuzzReportLine: no line, however malformed, makes the aggregator or the
// writers panic or fail.
func FuzzReportLine(f *testing.F) {
	fixture, err := os.ReadFile(mixedFixture)
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.Split(fixture, []byte("\n")) {
		f.Add(l)
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"kind":"checkpoint"}`, `{"time":1.7e9,"request_id":"x"}`, `{"time":1e300}`,
		`{"time":"NaN"}`, `{"cost_usd":"+Inf","latency_ms":"NaN"}`, `{"cost_usd":"nope"}`, `{"latency_ms":-5}`,
		`{"latency_ms":1e308}`, `{"findings":[{"count":-3}]}`, `{"tags":{"ecs.cluster":"arn:::::"}}`,
		`{"time":"0001-01-01T00:00:00Z","request_id":"a"}`, `{"time":"9999-12-31T23:59:59Z","request_id":"b"}`,
		`{"app":"\u2028\u001b","reason":"\xff"}`, `{"request_id":"c","decision":"deny","count":5}`, `{"count":-1}`,
		`{"count":1099511627777}`, `{"count":1e3}`,
		`{"request_id":"d","src_account":"1","src_vpc":"v","src_subnet":"s","src_vpce":"e","findings":[{"guard":"g","type":"t","count":2}]}`,
		`{"request_id":"e","src_vpce":" <b>","app":"<img>","findings":[{"type":"EMAIL","count":-1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		// An exposure view matching every record, so the fuzzed one meets
		// the path and exposure aggregates too.
		b := NewReportBuilder(ReportOptions{Exposure: &ExposureFilter{}})
		// Alongside a real record, so the fuzzed one meets every aggregate.
		if err := b.Add("seed", []byte(`{"time":"2026-11-30T09:00:00Z","request_id":"seed","app":"a","decision":"deny","reason":"r","findings":[{"guard":"g","type":"t","count":1,"action":"block"}]}`)); err != nil {
			t.Fatal(err)
		}
		if err := b.Add("fuzz", line); err != nil {
			t.Fatal(err)
		}
		r := b.Report()
		if r.Records+r.Malformed+r.Checkpoints+r.Duplicates > r.Lines {
			t.Fatalf("counts exceed lines: %+v", r)
		}
		if r.Calls < r.Records {
			t.Fatalf("fewer calls than records: %+v", r)
		}
		if x := r.Exposure; x == nil || x.Calls != r.Calls || x.Records != r.Records {
			t.Fatalf("an empty exposure filter matched %+v, the report has %d calls in %d records", x, r.Calls, r.Records)
		}
		var out bytes.Buffer
		if err := r.WriteText(&out); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteHTML(&out); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReportReadsAppendJSON: the report reads the lines the writers write
// (Record.AppendJSON), so a renamed field shows up here.
func TestReportReadsAppendJSON(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	recs := []Record{
		{Time: at, RequestID: "a", Tags: map[string]string{"aws.account": "123456789012"}, App: "<app>", Model: "m", ModelCanonical: "canon",
			Decision: "allow", Status: 200, Usage: Usage{Known: true, Input: 7, Output: 3, CacheRead: 2, CacheWrite: 1},
			CostUSD: 0.5, CostKnown: true, Latency: 1500 * time.Microsecond,
			Findings: []Finding{{Guard: "g", Detector: "pii", Type: "EMAIL", Count: 2, Action: "mask", Phase: "output"}}},
		{Time: at.Add(time.Minute), RequestID: "b", App: "<app>", Model: "m", Decision: "deny", Reason: "why", Status: 403, Incomplete: true},
	}
	b := NewReportBuilder(ReportOptions{})
	for i := range recs {
		if err := b.Add("w", recs[i].AppendJSON(nil)); err != nil {
			t.Fatal(err)
		}
	}
	r := b.Report()
	a := r.Apps[0]
	if r.Records != 2 || r.Malformed != 0 || a.App != "<app>" || a.Allowed != 1 || a.Denied != 1 || a.Incomplete != 1 ||
		a.TokensIn != 7 || a.TokensOut != 3 || a.CacheRead != 2 || a.CacheWrite != 1 || a.CostUSD != 0.5 || a.LatencyP99 != 1500*time.Microsecond {
		t.Errorf("report = %+v, app %+v", r, a)
	}
	if r.Models[0].Model != "canon" || r.Models[1].Model != "m" || r.Accounts[0].Name != "123456789012" || r.CostUnknown != 1 {
		t.Errorf("models %+v accounts %+v", r.Models, r.Accounts)
	}
	if len(r.Findings) != 1 || r.Findings[0].ByAction["mask"] != 2 || len(r.Reasons) != 1 || r.Reasons[0].Reason != "why" || r.Bucket != "minute" {
		t.Errorf("findings %+v reasons %+v bucket %s", r.Findings, r.Reasons, r.Bucket)
	}
}

// With the apps' budgets the report shows each app's use of its day and
// month budgets and what remains, in the UTC day and month of the last
// call: forwarded calls count (input, output and cache tokens), denied
// ones and other days do not.
func TestReportBudgets(t *testing.T) {
	b := NewReportBuilder(ReportOptions{Budgets: map[string]AppBudget{
		"chat": {TokensPerDay: 1000, CostPerDayUSD: 1, CostPerMonthUSD: 10},
	}})
	add := func(id, at, decision string, in, out, cache int64, cost float64) {
		t.Helper()
		line := fmt.Sprintf(`{"v":2,"time":%q,"request_id":%q,"app":"chat","decision":%q,"tokens_in":%d,"tokens_out":%d,"cache_read_tokens":%d,"cost_usd":%g}`,
			at, id, decision, in, out, cache, cost)
		if err := b.Add("t", []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	add("1", "2026-03-03T10:00:00Z", DecisionAllow, 100, 100, 0, 2)    // an earlier day of the month
	add("2", "2026-03-04T10:00:00Z", DecisionAllow, 100, 50, 50, 0.25) // today
	add("3", "2026-03-04T11:00:00Z", DecisionDryRunDeny, 10, 10, 0, 0.25)
	add("4", "2026-03-04T12:00:00Z", DecisionDeny, 0, 0, 0, 0)
	add("5", "2026-02-28T12:00:00Z", DecisionAllow, 500, 500, 0, 5) // last month
	r := b.Report()
	if len(r.Budgets) != 1 {
		t.Fatalf("budgets: %+v", r.Budgets)
	}
	s := r.Budgets[0]
	if s.DayTokens != 220 || s.DayTokensLeft != 780 || s.DayCostUSD != 0.5 || s.DayCostLeftUSD != 0.5 || s.MonthCostUSD != 2.5 || s.MonthCostLeftUSD != 7.5 {
		t.Fatalf("budget stats: %+v", s)
	}
	if got := s.DayResets.Format(time.RFC3339); got != "2026-03-05T00:00:00Z" {
		t.Fatalf("day resets %s", got)
	}
	var out strings.Builder
	if err := r.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Budgets (UTC day and month of 2026-03-04T12:00:00Z", "tokens_per_day      220", "cost_per_month_usd  2.500000", "2026-04-01T00:00:00Z"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	// The HTML page has the same rows: used, limit, remaining, % used and
	// the reset, per app and budget.
	want := [][]string{
		{"chat", "tokens_per_day", "220", "1000", "780", "22", "2026-03-05T00:00:00Z"},
		{"chat", "cost_per_day_usd", "0.500000", "1.000000", "0.500000", "50", "2026-03-05T00:00:00Z"},
		{"chat", "cost_per_month_usd", "2.500000", "10.000000", "7.500000", "25", "2026-04-01T00:00:00Z"},
	}
	if got := htmlRows(t, renderHTML(t, r), "budget"); !reflect.DeepEqual(got, want) {
		t.Errorf("HTML budget rows %q, want %q", got, want)
	}
	for i, row := range r.BudgetRows() {
		text := []string{row.App, row.Budget, row.Used, row.Limit, row.Remaining, fmt.Sprint(row.PercentUsed), row.Resets.Format(time.RFC3339)}
		if !reflect.DeepEqual(text, want[i]) {
			t.Errorf("text row %d %q, want %q", i, text, want[i])
		}
	}
	// Without budgets, no section.
	if page := renderHTML(t, buildFixture(t, mixedFixture)); strings.Contains(page, `id="budgets"`) {
		t.Error("a report without budgets has a budgets section")
	}
}

// htmlRows are the text of the cells of each <tr class=CLASS> of page.
func htmlRows(t *testing.T, page, class string) [][]string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var rows [][]string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			for _, a := range n.Attr {
				if a.Key == "class" && a.Val == class {
					var row []string
					for c := n.FirstChild; c != nil; c = c.NextSibling {
						if c.Type == html.ElementNode && c.Data == "td" {
							row = append(row, strings.TrimSpace(text(c)))
						}
					}
					rows = append(rows, row)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return rows
}
