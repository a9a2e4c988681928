package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// ReportOptions shape a report. TopReasons bounds the denial reasons listed
// (default 10); TopModels the models charted (default 10).
type ReportOptions struct {
	TopReasons int
	TopModels  int
	// Exposure, when set, adds the exposure view of the records it
	// matches (every path they took, with their ids).
	Exposure *ExposureFilter
	// Budgets are the apps' day and month budgets (from the config, by
	// app): the report adds each one's use and what remains of it in the
	// UTC day and month of BudgetsAsOf (zero: the last call's time).
	Budgets     map[string]AppBudget
	BudgetsAsOf time.Time
}

// Report summarises audit records: who called which model, what was denied
// and why, what the guards found, tokens and cost. It holds only what the
// records hold (no prompt or answer text exists in them).
type Report struct {
	Lines   int // non-empty lines read
	Records int // distinct call records (by request_id)
	// Calls are the calls those records stand for: an aggregated denial
	// record (count N) counts N. Every per-decision, app, model, reason
	// and timeline figure counts calls.
	Calls       int
	Duplicates  int // re-delivered call records and checkpoints, counted once
	Checkpoints int // distinct checkpoint lines (not counted as calls)
	Malformed   int // lines that are not audit records
	// FirstMalformed says where the first malformed line was and why.
	FirstMalformed string

	First, Last time.Time // earliest and latest call time
	Incomplete  int       // records recovered from a spool: the call never ended

	TokensIn, TokensOut int64
	CostUSD             float64
	CostUnknown         int // calls without a known cost

	Decisions []Count
	Accounts  []Count
	Apps      []AppStats
	Models    []ModelStats
	Findings  []FindingStats
	// Reasons are the commonest reasons for deny and dry-run-deny
	// decisions (at most TopReasons); DistinctReasons counts them all.
	Reasons         []ReasonCount
	DistinctReasons int

	// Bucket is the timeline's bucket size: "minute", "hour" or "day",
	// chosen from the span of the calls; Timeline holds the non-empty
	// buckets in time order.
	Bucket   string
	Timeline []TimeBucket

	// Paths are the access paths (account -> VPC/subnet -> app -> model),
	// most calls first; Edges the graph's edges, layer by layer.
	Paths []PathStats
	Edges []EdgeStats
	// Exposure is the exposure view, when ReportOptions asked for one.
	Exposure *Exposure
	// Budgets are the budgeted apps' use and remaining day and month
	// budgets (with ReportOptions.Budgets), as of BudgetsAsOf.
	Budgets     []BudgetStats
	BudgetsAsOf time.Time

	topModels int // models charted
}

// Count is a name and how many calls had it.
type Count struct {
	Name  string
	Calls int
}

// AppStats are one app's calls ("" for calls no app matched).
type AppStats struct {
	App                         string
	Calls                       int
	Allowed, Denied, DryRunDeny int
	Incomplete                  int
	TokensIn, TokensOut         int64
	CacheRead, CacheWrite       int64
	CostUSD                     float64
	// LatencyP50 and LatencyP99 are over all the app's calls, denied ones
	// included (nearest rank).
	LatencyP50, LatencyP99 time.Duration
}

// ModelStats are one model's calls, by canonical id (the model as
// requested when the record has no canonical form).
type ModelStats struct {
	Model               string
	Calls               int
	TokensIn, TokensOut int64
	CostUSD             float64
}

// FindingStats add up one guard's findings of one type.
type FindingStats struct {
	Guard, Type string
	Calls       int            // calls with such a finding
	Count       int            // findings in all
	ByAction    map[string]int // findings per action taken
}

// ReasonCount is how many calls got one decision for one reason.
type ReasonCount struct {
	Decision, Reason string
	Calls            int
}

// TimeBucket counts calls per app in [Start, Start+bucket).
type TimeBucket struct {
	Start time.Time
	Apps  map[string]int
}

// UnknownAccount names calls whose record carries no account.
const UnknownAccount = "unknown"

// Account is the AWS account a record's identity names: the aws.account
// tag (EC2 and ECS sources set it), else the account field of the
// ecs.task_arn or ecs.cluster ARN, else UnknownAccount (Kubernetes
// identities name a namespace, not an account).
func Account(tags map[string]string) string {
	if a := tags["aws.account"]; a != "" {
		return a
	}
	for _, k := range []string{"ecs.task_arn", "ecs.cluster"} {
		// arn:partition:service:region:account:resource
		if parts := strings.SplitN(tags[k], ":", 6); len(parts) == 6 && parts[0] == "arn" && parts[4] != "" {
			return parts[4]
		}
	}
	return UnknownAccount
}

// ReportBuilder aggregates audit lines into a Report; Add has the shape
// ReadSource calls, so a builder can take a source directly. It is not safe
// for concurrent use.
type ReportBuilder struct {
	opts      ReportOptions
	r         Report
	seen      map[string]struct{} // request ids
	seenCP    map[string]struct{} // checkpoint ids
	decisions map[string]int
	accounts  map[string]int
	apps      map[string]*appAcc
	models    map[string]*ModelStats
	findings  map[[2]string]*FindingStats
	reasons   map[[2]string]int
	timeline  timeline
	paths     paths
	exposure  *exposureAcc
	budgets   budgetAcc
}

type appAcc struct {
	AppStats
	latencies []time.Duration
}

// NewReportBuilder starts an empty report.
func NewReportBuilder(opts ReportOptions) *ReportBuilder {
	if opts.TopReasons <= 0 {
		opts.TopReasons = 10
	}
	if opts.TopModels <= 0 {
		opts.TopModels = 10
	}
	b := &ReportBuilder{
		opts:      opts,
		seen:      map[string]struct{}{},
		seenCP:    map[string]struct{}{},
		decisions: map[string]int{},
		accounts:  map[string]int{},
		apps:      map[string]*appAcc{},
		models:    map[string]*ModelStats{},
		findings:  map[[2]string]*FindingStats{},
		reasons:   map[[2]string]int{},
		timeline:  newTimeline(),
		paths:     paths{},
		budgets:   newBudgetAcc(),
	}
	if opts.Exposure != nil {
		b.exposure = newExposureAcc(*opts.Exposure)
	}
	return b
}

// Add takes one audit line. A line that is not an audit record is counted
// as malformed, not returned as an error: one bad line should not hide a
// day of records. Checkpoint lines and other non-call kinds are counted
// apart; call records are de-duplicated by request_id (delivery is
// at-least-once; a record without one is always counted) and checkpoints
// by id.
func (b *ReportBuilder) Add(name string, line []byte) error {
	b.r.Lines++
	kind, id, l, err := decodeLine(line)
	if err != nil {
		b.r.Malformed++
		if b.r.FirstMalformed == "" {
			b.r.FirstMalformed = fmt.Sprintf("%s: %v", name, err)
		}
		return nil
	}
	if kind != "" {
		if kind == "checkpoint" {
			if _, dup := b.seenCP[id]; dup && id != "" {
				b.r.Duplicates++
				return nil
			}
			b.seenCP[id] = struct{}{}
			b.r.Checkpoints++
		}
		return nil
	}
	if l.RequestID != "" {
		if _, dup := b.seen[l.RequestID]; dup {
			b.r.Duplicates++
			return nil
		}
		b.seen[l.RequestID] = struct{}{}
	}
	b.addCall(&l)
	return nil
}

func (b *ReportBuilder) addCall(l *Record) {
	r := &b.r
	t := l.Time
	n := l.Calls()
	r.Records++
	r.Calls += n
	if !t.IsZero() {
		if r.First.IsZero() || t.Before(r.First) {
			r.First = t
		}
		if t.After(r.Last) {
			r.Last = t
		}
		b.timeline.add(t, l.App, n)
	}
	cost := l.CostUSD
	if !l.CostKnown {
		r.CostUnknown += n
	}
	r.TokensIn += l.Usage.Input
	r.TokensOut += l.Usage.Output
	r.CostUSD += cost
	if l.Incomplete {
		r.Incomplete++
	}
	b.decisions[l.Decision] += n
	b.accounts[Account(l.Tags)] += n
	b.paths.add(l)
	if b.exposure != nil {
		b.exposure.add(l)
	}

	a := b.apps[l.App]
	if a == nil {
		a = &appAcc{AppStats: AppStats{App: l.App}}
		b.apps[l.App] = a
	}
	b.budgets.add(l)
	a.Calls += n
	switch l.Decision {
	case DecisionAllow:
		a.Allowed += n
	case DecisionDeny:
		a.Denied += n
	case DecisionDryRunDeny:
		a.DryRunDeny += n
	}
	if l.Incomplete {
		a.Incomplete++
	}
	a.TokensIn += l.Usage.Input
	a.TokensOut += l.Usage.Output
	a.CacheRead += l.Usage.CacheRead
	a.CacheWrite += l.Usage.CacheWrite
	a.CostUSD += cost
	if l.Latency >= 0 { // -1: the line held none a record could; an aggregated record's first call stands for the rest
		a.latencies = append(a.latencies, l.Latency)
	}

	model := l.ModelCanonical
	if model == "" {
		model = l.Model
	}
	m := b.models[model]
	if m == nil {
		m = &ModelStats{Model: model}
		b.models[model] = m
	}
	m.Calls += n
	m.TokensIn += l.Usage.Input
	m.TokensOut += l.Usage.Output
	m.CostUSD += cost

	if l.Decision != "" && l.Decision != DecisionAllow {
		b.reasons[[2]string{l.Decision, l.Reason}] += n
	}
	counted := map[[2]string]bool{}
	for _, f := range l.Findings {
		k := [2]string{f.Guard, f.Type}
		fs := b.findings[k]
		if fs == nil {
			fs = &FindingStats{Guard: f.Guard, Type: f.Type, ByAction: map[string]int{}}
			b.findings[k] = fs
		}
		if !counted[k] {
			counted[k] = true
			fs.Calls++
		}
		fs.Count += f.Count
		fs.ByAction[f.Action] += f.Count
	}
}

// Report returns the report so far (a snapshot; the builder may go on).
func (b *ReportBuilder) Report() *Report {
	r := b.r
	r.topModels = b.opts.TopModels
	if len(b.opts.Budgets) > 0 {
		r.BudgetsAsOf = b.opts.BudgetsAsOf
		if r.BudgetsAsOf.IsZero() {
			r.BudgetsAsOf = r.Last
		}
		r.Budgets = b.budgets.stats(b.opts.Budgets, r.BudgetsAsOf)
	}
	r.Decisions = decisionCounts(b.decisions)
	r.Accounts = sortedCounts(b.accounts)
	r.Apps = nil
	for _, a := range b.apps {
		s := a.AppStats
		lat := slices.Clone(a.latencies)
		slices.Sort(lat)
		s.LatencyP50, s.LatencyP99 = percentile(lat, 0.50), percentile(lat, 0.99)
		r.Apps = append(r.Apps, s)
	}
	slices.SortFunc(r.Apps, func(x, y AppStats) int { return strings.Compare(x.App, y.App) })
	r.Models = nil
	for _, m := range b.models {
		r.Models = append(r.Models, *m)
	}
	slices.SortFunc(r.Models, func(x, y ModelStats) int {
		if x.Calls != y.Calls {
			return y.Calls - x.Calls
		}
		return strings.Compare(x.Model, y.Model)
	})
	r.Findings = nil
	for _, f := range b.findings {
		c := *f
		c.ByAction = make(map[string]int, len(f.ByAction))
		for k, v := range f.ByAction {
			c.ByAction[k] = v
		}
		r.Findings = append(r.Findings, c)
	}
	slices.SortFunc(r.Findings, func(x, y FindingStats) int {
		if x.Count != y.Count {
			return y.Count - x.Count
		}
		if c := strings.Compare(x.Guard, y.Guard); c != 0 {
			return c
		}
		return strings.Compare(x.Type, y.Type)
	})
	r.Reasons = nil
	for k, n := range b.reasons {
		r.Reasons = append(r.Reasons, ReasonCount{Decision: k[0], Reason: k[1], Calls: n})
	}
	slices.SortFunc(r.Reasons, func(x, y ReasonCount) int {
		if x.Calls != y.Calls {
			return y.Calls - x.Calls
		}
		if c := strings.Compare(x.Reason, y.Reason); c != 0 {
			return c
		}
		return strings.Compare(x.Decision, y.Decision)
	})
	r.DistinctReasons = len(r.Reasons)
	if len(r.Reasons) > b.opts.TopReasons {
		r.Reasons = r.Reasons[:b.opts.TopReasons]
	}
	r.Bucket, r.Timeline = b.timeline.buckets()
	r.Paths, r.Edges = b.paths.stats()
	if b.exposure != nil {
		r.Exposure = b.exposure.exposure()
	}
	return &r
}

// BuildReport reads every source (see ReadSourceWith) into one report.
func BuildReport(ctx context.Context, srcs []string, src SourceOptions, opts ReportOptions) (*Report, error) {
	b := NewReportBuilder(opts)
	for _, s := range srcs {
		if err := ReadSourceWith(ctx, s, src, b.Add); err != nil {
			return nil, err
		}
	}
	return b.Report(), nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// decisionCounts orders allow, deny, dry-run-deny first, then the rest.
func decisionCounts(m map[string]int) []Count {
	var out []Count
	for _, d := range []string{DecisionAllow, DecisionDeny, DecisionDryRunDeny} {
		if n := m[d]; n > 0 {
			out = append(out, Count{Name: d, Calls: n})
		}
	}
	var rest []Count
	for d, n := range m {
		if d != DecisionAllow && d != DecisionDeny && d != DecisionDryRunDeny {
			rest = append(rest, Count{Name: d, Calls: n})
		}
	}
	slices.SortFunc(rest, func(x, y Count) int { return strings.Compare(x.Name, y.Name) })
	return append(out, rest...)
}

// sortedCounts orders by calls, most first, then by name.
func sortedCounts(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{Name: k, Calls: n})
	}
	slices.SortFunc(out, func(x, y Count) int {
		if x.Calls != y.Calls {
			return y.Calls - x.Calls
		}
		return strings.Compare(x.Name, y.Name)
	})
	return out
}

// Timeline bucket sizes: minutes while the calls span at most a few hours,
// hours up to a week, days beyond (at most a couple of hundred buckets
// until the span reaches months).
const (
	minuteSpan = 3 * time.Hour
	hourSpan   = 7 * 24 * time.Hour
)

// timeline counts calls per app at every granularity still possible: once
// the span outgrows minutes (or hours) that map is dropped, so memory stays
// bounded by the span, not by the number of calls.
type timeline struct {
	first, last       time.Time
	minute, hour, day map[bucketKey]int
}

type bucketKey struct {
	start int64 // Unix seconds
	app   string
}

func newTimeline() timeline {
	return timeline{minute: map[bucketKey]int{}, hour: map[bucketKey]int{}, day: map[bucketKey]int{}}
}

func (tl *timeline) add(t time.Time, app string, n int) {
	if tl.first.IsZero() || t.Before(tl.first) {
		tl.first = t
	}
	if t.After(tl.last) {
		tl.last = t
	}
	span := tl.last.Sub(tl.first)
	if span > minuteSpan {
		tl.minute = nil
	}
	if span > hourSpan {
		tl.hour = nil
	}
	if tl.minute != nil {
		tl.minute[bucketKey{t.Truncate(time.Minute).Unix(), app}] += n
	}
	if tl.hour != nil {
		tl.hour[bucketKey{t.Truncate(time.Hour).Unix(), app}] += n
	}
	tl.day[bucketKey{t.Truncate(24 * time.Hour).Unix(), app}] += n
}

func (tl *timeline) buckets() (string, []TimeBucket) {
	name, m := "day", tl.day
	switch {
	case tl.minute != nil:
		name, m = "minute", tl.minute
	case tl.hour != nil:
		name, m = "hour", tl.hour
	}
	if len(m) == 0 {
		return name, nil
	}
	by := map[int64]map[string]int{}
	for k, n := range m {
		if by[k.start] == nil {
			by[k.start] = map[string]int{}
		}
		by[k.start][k.app] += n
	}
	out := make([]TimeBucket, 0, len(by))
	for s, apps := range by {
		out = append(out, TimeBucket{Start: time.Unix(s, 0).UTC(), Apps: apps})
	}
	slices.SortFunc(out, func(x, y TimeBucket) int { return x.Start.Compare(y.Start) })
	return name, out
}

// BucketFormat is the layout a timeline bucket's start is shown in.
func (r *Report) BucketFormat() string {
	switch r.Bucket {
	case "minute", "hour":
		return "2006-01-02 15:04"
	}
	return "2006-01-02"
}

// textSafe makes a name from a record safe for a terminal: control
// characters (escape sequences included) and invalid UTF-8 are quoted, and
// an empty name shows as "-".
func textSafe(s string) string {
	if s == "" {
		return "-"
	}
	for i, c := range s {
		if (c == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) || unicode.IsControl(c) || c == '\u2028' || c == '\u2029' {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

func fmtMS(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

func fmtUSD(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }

// WriteText writes the report as plain-text tables in a stable order.
func (r *Report) WriteText(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	section := func(title string) {
		_ = tw.Flush() // into a bytes.Buffer: cannot fail
		fmt.Fprintf(&buf, "\n%s\n", title)
	}
	fmt.Fprintf(tw, "Warden audit report\n")
	fmt.Fprintf(tw, "calls\t%d\n", r.Calls)
	if r.Calls != r.Records {
		fmt.Fprintf(tw, "records\t%d (aggregated denials count each of their calls)\n", r.Records)
	}
	if !r.First.IsZero() {
		fmt.Fprintf(tw, "from\t%s\n", r.First.Format(time.RFC3339))
		fmt.Fprintf(tw, "to\t%s\n", r.Last.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "lines read\t%d\n", r.Lines)
	fmt.Fprintf(tw, "duplicates skipped\t%d\n", r.Duplicates)
	fmt.Fprintf(tw, "checkpoints\t%d\n", r.Checkpoints)
	fmt.Fprintf(tw, "malformed lines\t%d\n", r.Malformed)
	if r.FirstMalformed != "" {
		fmt.Fprintf(tw, "first malformed\t%s\n", textSafe(r.FirstMalformed))
	}
	fmt.Fprintf(tw, "incomplete calls\t%d\n", r.Incomplete)
	fmt.Fprintf(tw, "tokens in\t%d\n", r.TokensIn)
	fmt.Fprintf(tw, "tokens out\t%d\n", r.TokensOut)
	fmt.Fprintf(tw, "estimated cost USD\t%s\n", fmtUSD(r.CostUSD))
	fmt.Fprintf(tw, "calls without cost\t%d\n", r.CostUnknown)

	section("Decisions")
	fmt.Fprintf(tw, "DECISION\tCALLS\n")
	for _, d := range r.Decisions {
		fmt.Fprintf(tw, "%s\t%d\n", textSafe(d.Name), d.Calls)
	}

	section("Accounts")
	fmt.Fprintf(tw, "ACCOUNT\tCALLS\n")
	for _, a := range r.Accounts {
		fmt.Fprintf(tw, "%s\t%d\n", textSafe(a.Name), a.Calls)
	}

	section("Apps")
	fmt.Fprintf(tw, "APP\tCALLS\tALLOW\tDENY\tDRY-RUN-DENY\tINCOMPLETE\tTOKENS IN\tTOKENS OUT\tCOST USD\tP50 MS\tP99 MS\n")
	for _, a := range r.Apps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", textSafe(a.App), a.Calls, a.Allowed, a.Denied, a.DryRunDeny,
			a.Incomplete, a.TokensIn, a.TokensOut, fmtUSD(a.CostUSD), fmtMS(a.LatencyP50), fmtMS(a.LatencyP99))
	}

	if len(r.Budgets) > 0 {
		section("Budgets (UTC day and month of " + r.BudgetsAsOf.UTC().Format(time.RFC3339) + ", from the records of forwarded calls)")
		r.writeBudgets(tw)
	}

	section("Models")
	fmt.Fprintf(tw, "MODEL\tCALLS\tTOKENS IN\tTOKENS OUT\tCOST USD\n")
	for _, m := range r.Models {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", textSafe(m.Model), m.Calls, m.TokensIn, m.TokensOut, fmtUSD(m.CostUSD))
	}

	section(fmt.Sprintf("Denial reasons (top %d of %d)", len(r.Reasons), r.DistinctReasons))
	fmt.Fprintf(tw, "CALLS\tDECISION\tREASON\n")
	for _, d := range r.Reasons {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", d.Calls, textSafe(d.Decision), textSafe(d.Reason))
	}

	section("Guardrail findings")
	fmt.Fprintf(tw, "GUARD\tTYPE\tCALLS\tFINDINGS\tBY ACTION\n")
	for _, f := range r.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", textSafe(f.Guard), textSafe(f.Type), f.Calls, f.Count, byAction(f.ByAction))
	}

	r.writePathsText(tw, section)

	section(fmt.Sprintf("Calls per %s", r.Bucket))
	apps := r.appNames()
	fmt.Fprintf(tw, "START (UTC)\tTOTAL")
	for _, a := range apps {
		fmt.Fprintf(tw, "\t%s", textSafe(a))
	}
	fmt.Fprintf(tw, "\n")
	for _, b := range r.Timeline {
		total := 0
		for _, n := range b.Apps {
			total += n
		}
		fmt.Fprintf(tw, "%s\t%d", b.Start.Format(r.BucketFormat()), total)
		for _, a := range apps {
			fmt.Fprintf(tw, "\t%d", b.Apps[a])
		}
		fmt.Fprintf(tw, "\n")
	}
	if r.Exposure != nil {
		r.Exposure.writeText(tw, section)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// appNames lists the apps in report order.
func (r *Report) appNames() []string {
	out := make([]string, len(r.Apps))
	for i, a := range r.Apps {
		out[i] = a.App
	}
	return out
}

func byAction(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = textSafe(k) + "=" + strconv.Itoa(m[k])
	}
	return strings.Join(parts, " ")
}

// chartData is what the page's script draws, embedded as JSON.
type chartData struct {
	Bucket   string        `json:"bucket"`
	Apps     []string      `json:"apps"`
	Timeline []chartBucket `json:"timeline"`
	Denials  []chartBar    `json:"denials"`
	Models   []chartBar    `json:"models"`
	Tokens   []chartTokens `json:"tokens"`
	Cost     []chartBar    `json:"cost"`
	Findings []chartBar    `json:"findings"`
	Paths    *sankeyData   `json:"paths"`
	Exposure *sankeyData   `json:"exposure,omitempty"`
}

// maxChartBuckets bounds the empty buckets the chart fills in.
const maxChartBuckets = 2000

// chartBuckets is the timeline with its empty buckets filled in, so the
// chart's x axis is linear in time (unless that would take more than
// maxChartBuckets buckets).
func (r *Report) chartBuckets() []TimeBucket {
	if len(r.Timeline) < 2 {
		return r.Timeline
	}
	step := 24 * time.Hour
	switch r.Bucket {
	case "minute":
		step = time.Minute
	case "hour":
		step = time.Hour
	}
	first, last := r.Timeline[0].Start, r.Timeline[len(r.Timeline)-1].Start
	if last.Sub(first)/step >= maxChartBuckets {
		return r.Timeline
	}
	out := make([]TimeBucket, 0, last.Sub(first)/step+1)
	i := 0
	for t := first; !t.After(last); t = t.Add(step) {
		if i < len(r.Timeline) && r.Timeline[i].Start.Equal(t) {
			out = append(out, r.Timeline[i])
			i++
			continue
		}
		out = append(out, TimeBucket{Start: t})
	}
	return out
}

type chartBucket struct {
	Start  string `json:"start"`
	Counts []int  `json:"counts"` // per app, in Apps order
}

type chartBar struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

type chartTokens struct {
	App string `json:"app"`
	In  int64  `json:"in"`
	Out int64  `json:"out"`
}

// HTMLCharts names the charts WriteHTML always draws (each container's
// data-chart), in page order; a report with an exposure view adds the
// "exposure" graph.
func HTMLCharts() []string {
	return []string{"paths", "timeline", "denials", "models", "tokens", "cost", "findings"}
}

func (r *Report) chartData() chartData {
	d := chartData{Bucket: r.Bucket, Apps: r.appNames()}
	for _, b := range r.chartBuckets() {
		cb := chartBucket{Start: b.Start.Format(r.BucketFormat()), Counts: make([]int, len(d.Apps))}
		for i, a := range d.Apps {
			cb.Counts[i] = b.Apps[a]
		}
		d.Timeline = append(d.Timeline, cb)
	}
	for _, x := range r.Reasons {
		d.Denials = append(d.Denials, chartBar{Label: x.Decision + ": " + x.Reason, Value: float64(x.Calls)})
	}
	top := r.topModels
	if top <= 0 {
		top = 10
	}
	for i, m := range r.Models {
		if i == top {
			break
		}
		d.Models = append(d.Models, chartBar{Label: m.Model, Value: float64(m.Calls)})
	}
	for _, a := range r.Apps {
		d.Tokens = append(d.Tokens, chartTokens{App: a.App, In: a.TokensIn, Out: a.TokensOut})
		d.Cost = append(d.Cost, chartBar{Label: a.App, Value: a.CostUSD})
	}
	for _, f := range r.Findings {
		d.Findings = append(d.Findings, chartBar{Label: f.Guard + "/" + f.Type, Value: float64(f.Count)})
	}
	d.Paths = r.sankey()
	if r.Exposure != nil {
		d.Exposure = r.Exposure.sankey()
	}
	return d
}

// WriteHTML writes the report as one self-contained page: inline CSS and
// script, the chart data as JSON in a script element, no external URL.
// The script draws each chart as SVG and sets data-drawn on its container
// to the number of marks drawn. Every name from the records is escaped by
// html/template (text, attributes and the JSON alike) and drawn with
// textContent; a Content-Security-Policy allows only the page's own script
// (by hash), so even markup that slipped through could not run or load
// anything.
func (r *Report) WriteHTML(w io.Writer) error {
	sum := sha256.Sum256([]byte(reportScript))
	csp := "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	page := struct {
		R      *Report
		CSP    string
		Data   chartData
		Script template.JS
		Charts []htmlChart
	}{
		R:      r,
		CSP:    csp,
		Data:   r.chartData(),
		Script: template.JS(reportScript),
		Charts: []htmlChart{
			{"paths", "Access paths"},
			{"timeline", "Calls per " + r.Bucket + " by app"},
			{"denials", "Denials by reason"},
			{"models", "Top models by calls"},
			{"tokens", "Tokens per app (in, out)"},
			{"cost", "Estimated cost per app (USD)"},
			{"findings", "Guardrail findings by guard/type"},
		},
	}
	var buf bytes.Buffer
	if err := reportTemplate().Execute(&buf, page); err != nil {
		return fmt.Errorf("audit report html: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

type htmlChart struct{ Name, Title string }

func reportTemplate() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"usd":      fmtUSD,
		"ms":       fmtMS,
		"byAction": byAction,
		"rfc3339":  func(t time.Time) string { return t.Format(time.RFC3339) },
		"tm":       fmtTime,
		"layer":    func(i int) string { return pathLayers[i] + " → " + pathLayers[i+1] },
		"bucket":   func(r *Report, t time.Time) string { return t.Format(r.BucketFormat()) },
		"name": func(s string) string {
			if s == "" {
				return "-"
			}
			return s
		},
	}).Parse(reportPage))
}

const reportPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{.CSP}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Warden audit report</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#5a6270;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px;overflow-x:auto}
.card h2{margin:0 0 8px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:3px 10px 3px 0;border-bottom:1px solid #eef0f2;vertical-align:top}
td.n,th.n{text-align:right}
svg{display:block;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#333}
.nodata{color:#8a919c;font-style:italic}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
</style>
</head>
<body>
<h1>Warden audit report</h1>
<div class="meta">{{.R.Calls}} calls{{if not .R.First.IsZero}} from {{rfc3339 .R.First}} to {{rfc3339 .R.Last}}{{end}}.
Generated from audit records only: no prompt or answer text exists in them.</div>

<div class="card"><h2>Summary</h2><table>
<tr><th>calls</th><td class="n">{{.R.Calls}}</td></tr>{{if ne .R.Calls .R.Records}}
<tr><th>records</th><td class="n">{{.R.Records}}</td></tr>{{end}}
<tr><th>lines read</th><td class="n">{{.R.Lines}}</td></tr>
<tr><th>duplicates skipped</th><td class="n">{{.R.Duplicates}}</td></tr>
<tr><th>checkpoints</th><td class="n">{{.R.Checkpoints}}</td></tr>
<tr><th>malformed lines</th><td class="n">{{.R.Malformed}}</td></tr>{{if .R.FirstMalformed}}
<tr><th>first malformed</th><td>{{.R.FirstMalformed}}</td></tr>{{end}}
<tr><th>incomplete calls</th><td class="n">{{.R.Incomplete}}</td></tr>
<tr><th>tokens in</th><td class="n">{{.R.TokensIn}}</td></tr>
<tr><th>tokens out</th><td class="n">{{.R.TokensOut}}</td></tr>
<tr><th>estimated cost USD</th><td class="n">{{usd .R.CostUSD}}</td></tr>
<tr><th>calls without cost</th><td class="n">{{.R.CostUnknown}}</td></tr>
</table></div>

<h2>Access paths</h2>
<div class="card chart" data-chart="paths"><h2>Account &rarr; VPC/subnet &rarr; app &rarr; model (width: calls; the red and orange shares: denied and dry-run denied calls; hover for findings)</h2><svg role="img" aria-label="Access paths"></svg></div>
{{with .R.Exposure}}
<h2 id="exposure">Exposure: {{.Filter.String}}</h2>
<div class="card"><table>
<tr><th>matching calls</th><td class="n">{{.Calls}}</td></tr>
<tr><th>matching records</th><td class="n">{{.Records}}</td></tr>
<tr><th>paths</th><td class="n">{{len .Paths}}</td></tr>
</table></div>
<div class="card chart" data-chart="exposure"><h2>Exposure paths</h2><svg role="img" aria-label="Exposure paths"></svg></div>
<div class="card"><table><tr><th>account</th><th>vpc/subnet</th><th>app</th><th>model</th><th class="n">calls</th><th class="n">deny</th><th class="n">dry-run-deny</th><th class="n">findings</th><th>first</th><th>last</th><th>record ids</th></tr>
{{range .Paths}}<tr class="exposure-path"><td>{{name .Account}}</td><td>{{name .Network}}</td><td>{{name .App}}</td><td>{{name .Model}}</td><td class="n">{{.Calls}}</td><td class="n">{{.Denied}}</td><td class="n">{{.DryRunDeny}}</td><td class="n">{{.Findings}}</td><td>{{tm .First}}</td><td>{{tm .Last}}</td><td class="ids">{{range $i, $id := .RecordIDs}}{{if $i}} {{end}}<code>{{name $id}}</code>{{end}}</td></tr>
{{end}}</table></div>
{{end}}
<h2>Charts</h2>
<div class="grid">
{{range .Charts}}{{if ne .Name "paths"}}<div class="card chart" data-chart="{{.Name}}"><h2>{{.Title}}</h2><svg role="img" aria-label="{{.Title}}"></svg></div>
{{end}}{{end}}</div>

<h2>Decisions</h2>
<div class="card"><table><tr><th>decision</th><th class="n">calls</th></tr>
{{range .R.Decisions}}<tr><td>{{name .Name}}</td><td class="n">{{.Calls}}</td></tr>
{{end}}</table></div>

<h2>Accounts</h2>
<div class="card"><table><tr><th>account</th><th class="n">calls</th></tr>
{{range .R.Accounts}}<tr><td>{{name .Name}}</td><td class="n">{{.Calls}}</td></tr>
{{end}}</table></div>

<h2>Apps</h2>
<div class="card"><table><tr><th>app</th><th class="n">calls</th><th class="n">allow</th><th class="n">deny</th><th class="n">dry-run-deny</th><th class="n">incomplete</th><th class="n">tokens in</th><th class="n">tokens out</th><th class="n">cost USD</th><th class="n">p50 ms</th><th class="n">p99 ms</th></tr>
{{range .R.Apps}}<tr><td>{{name .App}}</td><td class="n">{{.Calls}}</td><td class="n">{{.Allowed}}</td><td class="n">{{.Denied}}</td><td class="n">{{.DryRunDeny}}</td><td class="n">{{.Incomplete}}</td><td class="n">{{.TokensIn}}</td><td class="n">{{.TokensOut}}</td><td class="n">{{usd .CostUSD}}</td><td class="n">{{ms .LatencyP50}}</td><td class="n">{{ms .LatencyP99}}</td></tr>
{{end}}</table></div>

{{with .R.BudgetRows}}<h2 id="budgets">Budgets (UTC day and month of {{rfc3339 $.R.BudgetsAsOf}}, from the records of forwarded calls)</h2>
<div class="card"><table><tr><th>app</th><th>budget</th><th class="n">used</th><th class="n">limit</th><th class="n">remaining</th><th class="n">used %</th><th>resets (UTC)</th></tr>
{{range .}}<tr class="budget"><td>{{name .App}}</td><td>{{.Budget}}</td><td class="n">{{.Used}}</td><td class="n">{{.Limit}}</td><td class="n">{{.Remaining}}</td><td class="n"><meter min="0" max="100" value="{{.PercentUsed}}"></meter> {{.PercentUsed}}</td><td>{{rfc3339 .Resets}}</td></tr>
{{end}}</table></div>
{{end}}
<h2>Models</h2>
<div class="card"><table><tr><th>model</th><th class="n">calls</th><th class="n">tokens in</th><th class="n">tokens out</th><th class="n">cost USD</th></tr>
{{range .R.Models}}<tr><td>{{name .Model}}</td><td class="n">{{.Calls}}</td><td class="n">{{.TokensIn}}</td><td class="n">{{.TokensOut}}</td><td class="n">{{usd .CostUSD}}</td></tr>
{{end}}</table></div>

<h2>Denial reasons (top {{len .R.Reasons}} of {{.R.DistinctReasons}})</h2>
<div class="card"><table><tr><th class="n">calls</th><th>decision</th><th>reason</th></tr>
{{range .R.Reasons}}<tr><td class="n">{{.Calls}}</td><td>{{name .Decision}}</td><td>{{name .Reason}}</td></tr>
{{end}}</table></div>

<h2>Guardrail findings</h2>
<div class="card"><table><tr><th>guard</th><th>type</th><th class="n">calls</th><th class="n">findings</th><th>by action</th></tr>
{{range .R.Findings}}<tr><td>{{name .Guard}}</td><td>{{name .Type}}</td><td class="n">{{.Calls}}</td><td class="n">{{.Count}}</td><td>{{byAction .ByAction}}</td></tr>
{{end}}</table></div>

<h2>Access paths</h2>
<div class="card"><table><tr><th>account</th><th>vpc/subnet</th><th>app</th><th>model</th><th class="n">calls</th><th class="n">deny</th><th class="n">dry-run-deny</th><th class="n">findings</th></tr>
{{range .R.Paths}}<tr><td>{{name .Account}}</td><td>{{name .Network}}</td><td>{{name .App}}</td><td>{{name .Model}}</td><td class="n">{{.Calls}}</td><td class="n">{{.Denied}}</td><td class="n">{{.DryRunDeny}}</td><td class="n">{{.Findings}}</td></tr>
{{end}}</table></div>

<h2>Access path edges</h2>
<div class="card"><table><tr><th>layer</th><th>from</th><th>to</th><th class="n">calls</th><th class="n">deny</th><th class="n">dry-run-deny</th><th class="n">findings</th></tr>
{{range .R.Edges}}<tr><td>{{layer .Layer}}</td><td>{{name .From}}</td><td>{{name .To}}</td><td class="n">{{.Calls}}</td><td class="n">{{.Denied}}</td><td class="n">{{.DryRunDeny}}</td><td class="n">{{.Findings}}</td></tr>
{{end}}</table></div>

<h2>Calls per {{.R.Bucket}}</h2>
<div class="card"><table><tr><th>start (UTC)</th>{{range .R.Apps}}<th class="n">{{name .App}}</th>{{end}}</tr>
{{$r := .R}}{{range .R.Timeline}}{{$b := .}}<tr><td>{{bucket $r .Start}}</td>{{range $r.Apps}}<td class="n">{{index $b.Apps .App}}</td>{{end}}</tr>
{{end}}</table></div>

<script type="application/json" id="report-data">{{.Data}}</script>
<script>{{.Script}}</script>
</body>
</html>
`

// reportScript draws the charts. It builds SVG elements in the namespace
// of the page's own svg elements (no namespace URL in the page) and sets
// every text from the data with textContent, never as markup.
const reportScript = `(function () {
"use strict";
var data = JSON.parse(document.getElementById("report-data").textContent);
var palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
function color(i) { return palette[i % palette.length]; }
function chart(name) {
	var c = document.querySelector('[data-chart="' + name + '"]');
	var svg = c.querySelector("svg");
	return { c: c, svg: svg, ns: svg.namespaceURI };
}
function el(ch, tag, attrs, text) {
	var e = document.createElementNS(ch.ns, tag);
	for (var k in attrs) { e.setAttribute(k, String(attrs[k])); }
	if (text !== undefined) { e.textContent = text; }
	return e;
}
function short(s, n) { s = s === "" ? "-" : s; return s.length > n ? s.slice(0, n - 1) + "\u2026" : s; }
function num(v) { return String(Math.round(v)); }
function usd(v) { return v.toFixed(4); }
function finish(ch, marks, w, h) {
	if (marks === 0) {
		w = 400; h = 30;
		ch.svg.appendChild(el(ch, "text", { x: 4, y: 18, "class": "nodata" }, "no data"));
	}
	ch.svg.setAttribute("viewBox", "0 0 " + w + " " + h);
	ch.svg.setAttribute("width", w);
	ch.svg.setAttribute("height", h);
	ch.c.setAttribute("data-drawn", String(marks));
}
function legend(ch, names) {
	var d = document.createElement("div");
	d.className = "legend";
	names.forEach(function (n, i) {
		var s = document.createElement("span");
		var sw = document.createElement("i");
		sw.style.background = color(i);
		s.appendChild(sw);
		s.appendChild(document.createTextNode(short(n, 40)));
		d.appendChild(s);
	});
	ch.c.appendChild(d);
}
// bars draws horizontal bars, one row per item, stacked when an item has
// several values (series).
function bars(name, rows, series, fmt) {
	var ch = chart(name), labelW = 230, barW = 420, rowH = 22, marks = 0, max = 0;
	rows.forEach(function (r) {
		var t = r.values.reduce(function (a, b) { return a + b; }, 0);
		if (t > max) { max = t; }
	});
	rows.forEach(function (r, i) {
		var y = i * rowH + 4, x = labelW, total = 0;
		var label = el(ch, "text", { x: labelW - 6, y: y + 13, "text-anchor": "end" }, short(r.label, 34));
		label.appendChild(el(ch, "title", {}, r.label));
		ch.svg.appendChild(label);
		r.values.forEach(function (v, j) {
			var w = max > 0 ? v / max * barW : 0;
			var rect = el(ch, "rect", { "class": "mark", x: x, y: y + 2, width: w, height: rowH - 6, fill: series.length > 1 ? color(j) : color(r.color || 0) });
			rect.appendChild(el(ch, "title", {}, r.label + (series.length > 1 ? " " + series[j] : "") + ": " + fmt(v)));
			ch.svg.appendChild(rect);
			x += w; total += v; marks++;
		});
		ch.svg.appendChild(el(ch, "text", { x: x + 4, y: y + 13 }, fmt(total)));
	});
	if (series.length > 1 && marks > 0) { legend(ch, series); }
	finish(ch, marks, labelW + barW + 90, rows.length * rowH + 8);
}
function timeline() {
	var ch = chart("timeline"), n = data.timeline.length, h = 200, top = 10, left = 40, marks = 0, max = 0;
	var slot = Math.max(4, Math.min(80, Math.floor(720 / Math.max(n, 1))));
	data.timeline.forEach(function (b) {
		var t = b.counts.reduce(function (a, c) { return a + c; }, 0);
		if (t > max) { max = t; }
	});
	data.timeline.forEach(function (b, i) {
		var x = left + i * slot, y = top + h;
		b.counts.forEach(function (c, j) {
			if (c <= 0) { return; }
			var bh = c / max * h;
			y -= bh;
			var rect = el(ch, "rect", { "class": "mark", x: x + 1, y: y, width: Math.max(slot - 2, 1), height: bh, fill: color(j) });
			rect.appendChild(el(ch, "title", {}, b.start + " " + (data.apps[j] === "" ? "-" : data.apps[j]) + ": " + c));
			ch.svg.appendChild(rect);
			marks++;
		});
	});
	if (n > 0) {
		ch.svg.appendChild(el(ch, "line", { x1: left, y1: top + h, x2: left + n * slot, y2: top + h, stroke: "#999" }));
		ch.svg.appendChild(el(ch, "text", { x: left - 4, y: top + 8, "text-anchor": "end" }, num(max)));
		ch.svg.appendChild(el(ch, "text", { x: left - 4, y: top + h, "text-anchor": "end" }, "0"));
		ch.svg.appendChild(el(ch, "text", { x: left, y: top + h + 16 }, data.timeline[0].start));
		if (n > 1) {
			ch.svg.appendChild(el(ch, "text", { x: left + n * slot, y: top + h + 16, "text-anchor": "end" }, data.timeline[n - 1].start));
		}
		legend(ch, data.apps);
	}
	finish(ch, marks, Math.max(left + n * slot + 10, 300), top + h + 24);
}
// sankey draws a layered graph: one column per layer, a node per name
// (its height the larger of the calls in and out), one ribbon per edge
// (its width the edge's calls, with its denied and dry-run denied shares
// drawn over it in red and orange). Each ribbon is a mark naming its ends
// in data-from, data-to and data-layer, its calls in data-calls.
function ribbon(x0, sy, x1, ty, w) {
	var xm = (x0 + x1) / 2;
	return "M" + x0 + "," + sy + " C" + xm + "," + sy + " " + xm + "," + ty + " " + x1 + "," + ty +
		" L" + x1 + "," + (ty + w) + " C" + xm + "," + (ty + w) + " " + xm + "," + (sy + w) + " " + x0 + "," + (sy + w) + " Z";
}
function sankey(name, d) {
	var ch = chart(name), left = 10, top = 24, colW = 280, nodeW = 10, gap = 10, marks = 0;
	var nodes = (d && d.nodes) || [], edges = (d && d.edges) || [];
	if (edges.length === 0) { finish(ch, 0, 0, 0); return; }
	var inSum = [], outSum = [], val = [], cols = [[], [], [], []], i;
	for (i = 0; i < nodes.length; i++) { inSum.push(0); outSum.push(0); }
	edges.forEach(function (e) { outSum[e.from] += e.calls; inSum[e.to] += e.calls; });
	for (i = 0; i < nodes.length; i++) { val.push(Math.max(inSum[i], outSum[i], 1)); cols[nodes[i].layer].push(i); }
	var maxTotal = 0, maxCount = 0;
	cols.forEach(function (c) {
		c.sort(function (a, b) { return val[b] - val[a] || (nodes[a].name < nodes[b].name ? -1 : nodes[a].name > nodes[b].name ? 1 : 0); });
		var t = c.reduce(function (s, k) { return s + val[k]; }, 0);
		if (t > maxTotal) { maxTotal = t; }
		if (c.length > maxCount) { maxCount = c.length; }
	});
	var plotH = Math.max(160, maxCount * 30), scale = (plotH - gap * (maxCount - 1)) / maxTotal;
	var y = [], h = [], x = [], outOff = [], inOff = [], labels = [];
	cols.forEach(function (c, layer) {
		var yy = top;
		ch.svg.appendChild(el(ch, "text", { x: left + layer * colW, y: 12, "font-weight": "bold" }, d.layers[layer]));
		c.forEach(function (k) {
			x[k] = left + layer * colW; y[k] = yy; h[k] = Math.max(val[k] * scale, 2); outOff[k] = 0; inOff[k] = 0;
			var r = el(ch, "rect", { "class": "node", x: x[k], y: y[k], width: nodeW, height: h[k], fill: "#5a6270" });
			r.appendChild(el(ch, "title", {}, (nodes[k].name === "" ? "-" : nodes[k].name) + ": " + val[k] + " calls"));
			ch.svg.appendChild(r);
			var label = el(ch, "text", { x: x[k] + nodeW + 4, y: y[k] + Math.min(h[k], 24) / 2 + 4 }, short(nodes[k].name, 36));
			label.appendChild(el(ch, "title", {}, nodes[k].name));
			labels.push(label);
			yy += h[k] + gap;
		});
	});
	var order = edges.slice().sort(function (a, b) { return (y[a.from] - y[b.from]) || (y[a.to] - y[b.to]); });
	order.forEach(function (e) {
		var w = Math.max(e.calls * scale, 1);
		var x0 = x[e.from] + nodeW, x1 = x[e.to];
		var sy = y[e.from] + outOff[e.from], ty = y[e.to] + inOff[e.to];
		outOff[e.from] += e.calls * scale; inOff[e.to] += e.calls * scale;
		var from = nodes[e.from], to = nodes[e.to];
		var title = (from.name === "" ? "-" : from.name) + " \u2192 " + (to.name === "" ? "-" : to.name) +
			": " + e.calls + " calls, " + e.deny + " denied, " + e.dry + " dry-run denied, " + e.findings + " findings";
		var path = el(ch, "path", { "class": "mark", d: ribbon(x0, sy, x1, ty, w), fill: "#4e79a7", "fill-opacity": 0.45, stroke: "#4e79a7", "stroke-opacity": 0.7,
			"data-layer": from.layer, "data-from": from.name, "data-to": to.name, "data-calls": e.calls });
		path.appendChild(el(ch, "title", {}, title));
		ch.svg.appendChild(path);
		// The denied and dry-run denied shares, drawn over the ribbon's
		// top edge in proportion to their calls.
		var off = 0;
		[[e.deny, "#e15759", "deny"], [e.dry, "#f28e2b", "dry-run"]].forEach(function (part) {
			if (part[0] <= 0) { return; }
			var pw = Math.min(Math.max(part[0] * scale, 1), w - off);
			var sub = el(ch, "path", { "class": "part " + part[2], d: ribbon(x0, sy + off, x1, ty + off, pw), fill: part[1], "fill-opacity": 0.6 });
			sub.appendChild(el(ch, "title", {}, title));
			ch.svg.appendChild(sub);
			off += pw;
		});
		marks++;
	});
	labels.forEach(function (l) { ch.svg.appendChild(l); }); // over the ribbons
	finish(ch, marks, left + 3 * colW + nodeW + 240, top + plotH + 10);
}
function items(list) {
	return (list || []).map(function (b) { return { label: b.label, values: [b.value] }; });
}
timeline();
bars("denials", items(data.denials), ["calls"], num);
bars("models", items(data.models), ["calls"], num);
bars("tokens", (data.tokens || []).map(function (t) { return { label: t.app, values: [t.in, t.out] }; }), ["in", "out"], num);
bars("cost", (data.cost || []).map(function (b, i) { return { label: b.label, values: [b.value], color: i }; }), ["USD"], usd);
bars("findings", items(data.findings), ["findings"], num);
sankey("paths", data.paths);
if (data.exposure) { sankey("exposure", data.exposure); }
})();
`
