package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/bundle"
	"github.com/warden-egress/warden/config"
)

// The dashboard and alert rules in deploy/monitoring are checked here, in
// proxy, because the metrics they name are registered here (and by the
// audit pipeline and the bundle follower Warden runs): a renamed metric
// fails this test instead of leaving a panel blank or an alert silent.

const (
	alertRulesFile = "../deploy/monitoring/warden-alerts.yaml"
	dashboardFile  = "../deploy/monitoring/warden-dashboard.json"
)

// promqlFuncs are PromQL's functions and aggregations: metricsql parses a
// superset (MetricsQL), so anything else is refused here.
var promqlFuncs = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min count_over_time
		day_of_month day_of_week day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction
		histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase irate label_join
		label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month predict_linear
		present_over_time quantile_over_time rate resets round scalar sgn sort sort_desc sort_by_label sort_by_label_desc sqrt
		stddev_over_time stdvar_over_time sum_over_time time timestamp vector year
		sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio`) {
		promqlFuncs[f] = true
	}
}

// rangeFuncs take a range vector: PromQL has no default window for them.
var rangeFuncs = regexp.MustCompile(`^(rate|irate|increase|delta|idelta|deriv|changes|resets|predict_linear|holt_winters|\w+_over_time)$`)

// metricsIn parses a PromQL expression and returns the metric names it
// selects; it fails on anything PromQL would not accept that metricsql
// does (MetricsQL functions, implicit range windows, WITH templates).
func metricsIn(expr string) ([]string, error) {
	e, err := metricsql.Parse(expr)
	if err != nil {
		return nil, err
	}
	if strings.Contains(expr, "WITH") {
		return nil, fmt.Errorf("WITH templates are MetricsQL, not PromQL")
	}
	var names []string
	var problems []string
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		switch v := x.(type) {
		case *metricsql.MetricExpr:
			for _, lfs := range v.LabelFilterss {
				for _, lf := range lfs {
					if lf.Label == "__name__" && !lf.IsRegexp && !lf.IsNegative {
						names = append(names, lf.Value)
					}
				}
			}
		case *metricsql.FuncExpr:
			if !promqlFuncs[v.Name] {
				problems = append(problems, "function "+v.Name+" is not PromQL")
			}
			if rangeFuncs.MatchString(v.Name) {
				if len(v.Args) == 0 {
					problems = append(problems, v.Name+" without an argument")
				} else if r, ok := v.Args[len(v.Args)-1].(*metricsql.RollupExpr); !ok || r.Window == nil {
					if r, ok := v.Args[0].(*metricsql.RollupExpr); !ok || r.Window == nil {
						problems = append(problems, v.Name+" needs a range vector ([5m])")
					}
				}
			}
		case *metricsql.AggrFuncExpr:
			if !promqlFuncs[v.Name] {
				problems = append(problems, "aggregation "+v.Name+" is not PromQL")
			}
		}
	})
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("selects no metric")
	}
	return names, nil
}

// The rule file's schema, as Prometheus's rulefmt reads it.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name        string            `yaml:"name"`
	Interval    string            `yaml:"interval"`
	QueryOffset string            `yaml:"query_offset"`
	Limit       int               `yaml:"limit"`
	Labels      map[string]string `yaml:"labels"`
	Rules       []alertRule       `yaml:"rules"`
}

type alertRule struct {
	Record        string            `yaml:"record"`
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

var (
	promDuration = regexp.MustCompile(`^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$`)
	labelName    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	metricName   = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
)

// templateFuncs are the functions Prometheus's alert templates have
// (template.go's defaults); only their names matter to the parser.
var templateFuncs = template.FuncMap{}

func init() {
	for _, f := range strings.Fields(`query first label value strvalue args reReplaceAll safeHtml match title toUpper toLower graphLink
		tableLink sortByLabel humanize humanize1024 humanizeDuration humanizePercentage humanizeTimestamp toTime toDuration
		pathPrefix externalURL parseDuration stripPort stripDomain urlQueryEscape now`) {
		templateFuncs[f] = func(...any) string { return "" }
	}
}

// checkRules validates a rule file as Prometheus would load it, and returns
// the metric names per rule.
func checkRules(data []byte) (map[string][]string, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return nil, []error{err}
	}
	if len(rf.Groups) == 0 {
		bad("no groups")
	}
	used := map[string][]string{}
	groups := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			bad("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		for _, d := range []string{g.Interval, g.QueryOffset} {
			if d != "" && !promDuration.MatchString(d) {
				bad("group %s: %q is not a Prometheus duration", g.Name, d)
			}
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %s rule %d (%s%s)", g.Name, i, r.Alert, r.Record)
			if (r.Alert == "") == (r.Record == "") {
				bad("%s: want exactly one of alert and record", where)
			}
			if r.Record != "" && (!metricName.MatchString(r.Record) || r.For != "" || r.KeepFiringFor != "" || r.Annotations != nil) {
				bad("%s: a recording rule with a bad name, for, keep_firing_for or annotations", where)
			}
			for _, d := range []string{r.For, r.KeepFiringFor} {
				if d != "" && (d == "0" || !promDuration.MatchString(d)) {
					bad("%s: %q is not a Prometheus duration", where, d)
				}
			}
			names, err := metricsIn(r.Expr)
			if err != nil {
				bad("%s: expr %q: %v", where, r.Expr, err)
			}
			used[where] = names
			for k, v := range r.Labels {
				if !labelName.MatchString(k) || k == "__name__" {
					bad("%s: label name %q", where, k)
				}
				checkTemplate(where+" label "+k, v, bad)
			}
			for k, v := range r.Annotations {
				if !labelName.MatchString(k) {
					bad("%s: annotation name %q", where, k)
				}
				checkTemplate(where+" annotation "+k, v, bad)
			}
			if r.Alert != "" && r.Annotations["summary"] == "" {
				bad("%s: no summary annotation", where)
			}
		}
	}
	return used, errs
}

// checkTemplate parses an alert template with the variables Prometheus
// defines before it.
func checkTemplate(where, text string, bad func(string, ...any)) {
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	if _, err := template.New(where).Funcs(templateFuncs).Option("missingkey=zero").Parse(defs + text); err != nil {
		bad("%s: template: %v", where, err)
	}
}

// dashboardQueries returns every PromQL query of a Grafana dashboard:
// panel targets (rows' panels too) and query variables, with Grafana's
// variables replaced as Grafana would before sending them.
func dashboardQueries(t *testing.T, data []byte) map[string]string {
	t.Helper()
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h", "${datasource}", "prom",
		"$instance", ".*", "$app", ".*")
	out := map[string]string{}
	type panel struct {
		Title   string            `json:"title"`
		Type    string            `json:"type"`
		Panels  []json.RawMessage `json:"panels"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out["panel "+p.Title+" "+tg.RefID] = vars.Replace(tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((\w+), *\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := ""
		switch x := v.Query.(type) {
		case string:
			q = x
		case map[string]any:
			q, _ = x["query"].(string)
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q)
			continue
		}
		out["variable "+v.Name] = m[1]
	}
	return out
}

// TestAlertRulesParse: the rule file loads as Prometheus would load it,
// and the checker refuses what Prometheus refuses.
func TestAlertRulesParse(t *testing.T) {
	data, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	used, errs := checkRules(data)
	for _, e := range errs {
		t.Error(e)
	}
	if len(used) < 10 {
		t.Errorf("%d rules, want the audit, calls, identity and policy alerts", len(used))
	}
	broken := map[string]string{
		"unknown key":         "groups: [{name: g, rules: [{alert: A, expr: up, summary: x}]}]",
		"alert and record":    "groups: [{name: g, rules: [{alert: A, record: r, expr: up, annotations: {summary: s}}]}]",
		"bad PromQL":          "groups: [{name: g, rules: [{alert: A, expr: 'rate(up[5m]', annotations: {summary: s}}]}]",
		"no range window":     "groups: [{name: g, rules: [{alert: A, expr: 'rate(up)', annotations: {summary: s}}]}]",
		"MetricsQL function":  "groups: [{name: g, rules: [{alert: A, expr: 'range_median(up)', annotations: {summary: s}}]}]",
		"bad duration":        "groups: [{name: g, rules: [{alert: A, expr: up, for: 5 minutes, annotations: {summary: s}}]}]",
		"bad template":        "groups: [{name: g, rules: [{alert: A, expr: up, annotations: {summary: '{{ $labels.x '}}]}]",
		"undefined variable":  "groups: [{name: g, rules: [{alert: A, expr: up, annotations: {summary: '{{ $nope }}'}}]}]",
		"repeated group name": "groups: [{name: g, rules: [{record: r, expr: up}]}, {name: g, rules: [{record: s, expr: up}]}]",
	}
	for name, y := range broken {
		if _, errs := checkRules([]byte(y)); len(errs) == 0 {
			t.Errorf("%s: accepted %s", name, y)
		}
	}
}

// describeNames lists the metric names a collector describes.
type describeNames map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d describeNames) add(c prometheus.Collector) {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d[m[1]] = true
		}
	}
}

// Register implements prometheus.Registerer for the bundle follower.
func (d describeNames) Register(c prometheus.Collector) error { d.add(c); return nil }
func (d describeNames) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		d.add(c)
	}
}
func (d describeNames) Unregister(prometheus.Collector) bool { return true }

// TestMonitoringMetricsExist runs Warden (the audit pipeline on a spool,
// a guard, prices) in front of the emulator, makes calls that fill every
// call series (allowed with tokens and cost, guarded, denied), and checks
// that every metric the dashboard and the alert rules name is one Warden
// exports: on /metrics now, or described by a collector whose series
// appear with other sources (identity sources' staleness and throttling,
// the bundle follower).
func TestMonitoringMetricsExist(t *testing.T) {
	emu := bedrocktest.NewServer(bedrocktest.Config{Region: "us-east-1", Credentials: map[string]string{"AKIAWARDENMONITOR001": "monitor-secret"}})
	t.Cleanup(emu.Close)
	dir := t.TempDir()
	cfg, err := config.ParseConfig([]byte(fmt.Sprintf(`version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: %q, insecure: true}
identity: {static: {app: shop}}
apps:
  - name: shop
    allow_weak_identity: true
    match: {tags: {app: shop}}
    allow: {models: ["amazon.nova-*"], operations: [Converse]}
    guards: [emails]
guards:
  emails: {pii: {types: [EMAIL], action: record}, unscannable: allow}
audit:
  spool: {dir: %q}
  sinks: [{file: {path: %q}}]
  prices: {"amazon.nova-*": {input_per_mtok: 0.06, output_per_mtok: 0.24}}
`, emu.URL, dir+"/spool", dir+"/audit.jsonl")))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	aw, err := audit.OpenFromConfig(t.Context(), cfg.Audit, nil, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(t.Context(), Options{Config: cfg, Audit: aw, Registry: reg, Version: "v0.0.0-monitoring",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAWARDENMONITOR001", "monitor-secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.ServeEndpoint(ln, nil) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	client := bedrockruntime.New(bedrockruntime.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + ln.Addr().String()),
		RetryMaxAttempts: 1, HTTPClient: bedrocktest.BufferedClient(nil), Credentials: credentials.NewStaticCredentialsProvider("AKIAAPP", "x", "")})
	for i, c := range []struct{ model, text string }{
		{"amazon.nova-lite-v1:0", "hello"},
		{"amazon.nova-lite-v1:0", "write to jane.doe@example.com"},
		{"anthropic.claude-3-5-haiku-20241022-v1:0", "denied: not an allowed model"},
	} {
		_, err := client.Converse(t.Context(), &bedrockruntime.ConverseInput{ModelId: aws.String(c.model),
			Messages: []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: c.text}}}}})
		if (err != nil) != (i == 2) {
			t.Fatalf("call %d: %v", i, err)
		}
	}

	// What Warden exports: the families on /metrics, with a histogram's
	// and a summary's series names …
	have := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		n := mf.GetName()
		have[n] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			have[n+"_bucket"], have[n+"_sum"], have[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			have[n+"_sum"], have[n+"_count"] = true, true
		}
	}
	for _, want := range []string{"warden_tokens_total", "warden_cost_usd_total", "warden_guard_findings_total", "warden_build_info",
		"warden_audit_undelivered_lines", "warden_audit_spool_max_bytes"} {
		if !have[want] {
			t.Errorf("%s not on /metrics after the calls", want)
		}
	}
	// … and what the identity sources and the bundle follower describe.
	described := describeNames{}
	described.add(sourceCollector{s})
	trust, err := bundle.ParseTrust(map[string]string{"k": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.NewFollower(bundle.FollowerOptions{URL: "https://bundles.invalid", Trust: trust, Registry: described,
		Apply: func(context.Context, *bundle.Verified) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	for n := range described {
		have[n] = true
	}

	rules, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	used, errs := checkRules(rules)
	for _, e := range errs {
		t.Error(e)
	}
	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for where, q := range dashboardQueries(t, dash) {
		names, err := metricsIn(q)
		if err != nil {
			t.Errorf("dashboard %s: %q: %v", where, q, err)
		}
		used["dashboard "+where] = names
	}
	var missing []string
	for where, names := range used {
		for _, n := range names {
			if !have[n] {
				missing = append(missing, fmt.Sprintf("%s: %s", where, n))
			}
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("names a metric Warden does not export: %s", m)
	}
	if len(used) < 30 {
		t.Errorf("checked %d queries; the dashboard and the rules have more", len(used))
	}
}
