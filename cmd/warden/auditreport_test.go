package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/warden-egress/warden/internal/miniotest"
)

// reportFixture is the audit package's report fixture: duplicates, a
// checkpoint, every decision, findings, tokens and cost, an incomplete
// record and hostile names.
const reportFixture = "../../audit/testdata/report/mixed.jsonl"

func runAuditReport(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"audit", "report"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func TestAuditReport(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	out, errs, code := runAuditReport(t, "--html", page, reportFixture)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden, err := os.ReadFile("../../audit/testdata/report/mixed.golden")
	if err != nil {
		t.Fatal(err)
	}
	// The golden file names the fixture by its path from the audit package.
	if out = strings.Replace(out, reportFixture, "testdata/report/mixed.jsonl", 1); out != string(golden) {
		t.Errorf("stdout is not the fixture's golden report:\n%s", out)
	}
	st, err := os.Stat(page)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("html page mode %v, want 0600", st.Mode().Perm())
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-chart="timeline"`, `data-chart="cost"`, "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("html page lacks %q", want)
		}
	}
}

// Several sources, a directory with a gzip file among them, add up into
// one report and de-duplicate across sources.
func TestAuditReportSources(t *testing.T) {
	fixture, err := os.ReadFile(reportFixture)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(fixture)
	zw.Close()
	if err := os.WriteFile(filepath.Join(dir, "again.jsonl.gz"), gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runAuditReport(t, reportFixture, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Every call and checkpoint line of the second copy (12) is a
	// duplicate, as are the 2 re-deliveries within the first.
	for _, want := range []string{"\ncalls               9\n", "\nlines read          26\n", "\nduplicates skipped  14\n", "\nmalformed lines     2\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// The command reads s3:// sources with the --s3-* flags and credentials
// from the default chain (here, the environment).
func TestAuditReportS3(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "trail")
	fixture, err := os.ReadFile(reportFixture)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(fixture)
	zw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("trail"), Key: aws.String("bedrock/dt=2026-11-30/hour=09/w-1.jsonl.gz"),
		Body: bytes.NewReader(gz.Bytes())}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	out, errs, code := runAuditReport(t, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region, "--s3-path-style", "s3://trail/bedrock/")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if errs != "" {
		t.Errorf("stderr: %s", errs)
	}
	golden, err := os.ReadFile("../../audit/testdata/report/mixed.golden")
	if err != nil {
		t.Fatal(err)
	}
	if out = strings.Replace(out, "bedrock/dt=2026-11-30/hour=09/w-1.jsonl.gz", "testdata/report/mixed.jsonl", 1); out != string(golden) {
		t.Errorf("report from S3 is not the fixture's golden report:\n%s", out)
	}
}

func TestAuditReportErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "want at least one audit source"},
		{[]string{"--top", "0", reportFixture}, "--top 0"},
		{[]string{"no/such/file.jsonl"}, "no/such/file.jsonl"},
		{[]string{"--html", "/no/such/dir/r.html", reportFixture}, "--html"},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		_, errs, code := runAuditReport(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q, want an error with %q", c.args, code, errs, c.want)
		}
	}
	if out, errs, code := runAuditReport(t, "-h"); code != 0 || !strings.Contains(out, "warden audit report") {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// The exposure flags select the audit package's exposure goldens: the
// command's text report ends with the same view.
func TestAuditReportExposureFlags(t *testing.T) {
	const fixture = "../../audit/testdata/report/paths.jsonl"
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"paths.exposure-app-range.golden", []string{"--app", "search-dev", "--from", "2026-12-01", "--to", "2026-12-02T00:00:00Z"}},
		{"paths.exposure-subnet.golden", []string{"--subnet", "subnet-0b1"}},
		{"paths.exposure-guard-type-account.golden", []string{"--finding-type", "pii-block/US_SOCIAL_SECURITY_NUMBER", "--account", "111111111111"}},
	} {
		out, errs, code := runAuditReport(t, append(tc.args, fixture)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errs)
		}
		want, err := os.ReadFile("../../audit/testdata/report/" + tc.golden)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(out, string(want)) {
			t.Errorf("%v: the report does not end with %s:\n%s", tc.args, tc.golden, out)
		}
	}
	// --exposure alone: every record.
	out, errs, code := runAuditReport(t, "--exposure", fixture)
	if code != 0 || !strings.Contains(out, "\nExposure: all records\nmatching calls    10\nmatching records  8\n") {
		t.Errorf("--exposure: exit %d %s\n%s", code, errs, out)
	}
	// No filter: no exposure view.
	if out, _, _ := runAuditReport(t, fixture); strings.Contains(out, "Exposure") {
		t.Errorf("an exposure view without --exposure or a filter:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "yesterday"}, `--from "yesterday": want RFC 3339`},
		{[]string{"--to", "2026-13-01"}, `--to "2026-13-01"`},
		{[]string{"--from", "2026-12-02", "--to", "2026-12-01"}, "is not before --to"},
	} {
		_, errs, code := runAuditReport(t, append(tc.args, fixture)...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errs, tc.want)
		}
	}
}

// --config reports each budgeted app's use of its day and month budgets
// and what remains.
func TestAuditReportBudgets(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(cfg, []byte(`version: 1
listen: {endpoint: 127.0.0.1:8480}
upstream: {region: us-east-1}
identity: {sources: [static], static: {app: p}}
audit: {prices: {"anthropic.*": {input_per_mtok: 1, output_per_mtok: 5}}}
apps:
  - name: payments-prod
    allow_weak_identity: true
    match: {tags: {app: p}}
    allow: {models: ["*"], operations: [Converse]}
    limits: {max_output_tokens: 100}
    budgets: {tokens_per_day: 100000, cost_per_month_usd: 50}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "report.html")
	out, errs, code := runAuditReport(t, "--config", cfg, "--html", page, reportFixture)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"Budgets (UTC day and month of 2026-11-30T13:30:00Z", "payments-prod  tokens_per_day", "payments-prod  cost_per_month_usd", "2026-12-01T00:00:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<h2 id="budgets">Budgets (UTC day and month of 2026-11-30T13:30:00Z`,
		`<tr class="budget"><td>payments-prod</td><td>tokens_per_day</td>`, `<td>cost_per_month_usd</td>`, `<td class="n">100000</td>`, `<td>2026-12-01T00:00:00Z</td>`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("html page lacks %q", want)
		}
	}
	if _, errs, code := runAuditReport(t, "--config", filepath.Join(t.TempDir(), "none.yaml"), reportFixture); code == 0 || !strings.Contains(errs, "--config") {
		t.Errorf("a missing config: exit %d, %s", code, errs)
	}
}
