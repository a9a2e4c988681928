package budget

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

func TestWindowsAndResets(t *testing.T) {
	for _, tc := range []struct {
		p     Period
		at    string
		reset string
	}{
		{PeriodSecond, "2026-03-04T05:06:07.9Z", "2026-03-04T05:06:08Z"},
		{PeriodMinute, "2026-03-04T05:06:07Z", "2026-03-04T05:07:00Z"},
		{PeriodDay, "2026-03-04T23:59:59Z", "2026-03-05T00:00:00Z"},
		{PeriodDay, "2026-03-04T23:30:00-02:00", "2026-03-06T00:00:00Z"}, // UTC days, whatever the local zone
		{PeriodMonth, "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
		{PeriodMonth, "2024-02-29T12:00:00Z", "2024-03-01T00:00:00Z"},
		{PeriodMonth, "1969-12-31T00:00:00Z", "1970-01-01T00:00:00Z"},
	} {
		at, _ := time.Parse(time.RFC3339Nano, tc.at)
		w := Window(tc.p, at)
		if got := ResetAt(tc.p, w).Format(time.RFC3339); got != tc.reset {
			t.Errorf("period %d at %s: window %d resets %s, want %s", tc.p, tc.at, w, got, tc.reset)
		}
		if Window(tc.p, ResetAt(tc.p, w)) != w+1 {
			t.Errorf("period %d at %s: the reset instant is not in the next window", tc.p, tc.at)
		}
	}
}

func TestGeneratesCompat(t *testing.T) {
	for _, op := range []bedrock.Operation{bedrock.OpOpenAIChatCompletions, bedrock.OpOpenAIResponses,
		bedrock.OpMantleChatCompletions, bedrock.OpMantleResponses, bedrock.OpMantleMessages} {
		if !Generates(op) {
			t.Errorf("%s does not count against token and cost budgets", op)
		}
	}
	if Generates(bedrock.OpAnthropicSessions) {
		t.Error("AnthropicSessions counts as generating")
	}
}

func TestAmount(t *testing.T) {
	lim := Compile(policy.BudgetsConfig{RequestsPerMinute: 10, TokensPerDay: 1000, CostPerDayUSD: 1, ConcurrentStreams: 2})
	for _, tc := range []struct {
		name     string
		call     Call
		want     Amount
		wantRule string
	}{
		{"converse", Call{Op: bedrock.OpConverse, InputTokens: 10, OutputTokens: 100, CostUSD: 0.0001, CostKnown: true},
			Amount{TokensPerDay: 110, CostPerDay: 100, CostPerMonth: 100, RequestsPerSecond: 1, RequestsPerMinute: 1, InputTokensPerMinute: 10, OutputTokensPerMinute: 100}, ""},
		{"stream holds a stream", Call{Op: bedrock.OpConverseStream, InputTokens: 1, OutputTokens: 1, CostKnown: true},
			Amount{TokensPerDay: 2, RequestsPerSecond: 1, RequestsPerMinute: 1, InputTokensPerMinute: 1, OutputTokensPerMinute: 1, ConcurrentStreams: 1}, ""},
		{"streamed chat completion holds a stream", Call{Op: bedrock.OpMantleChatCompletions, Streamed: true, InputTokens: 1, OutputTokens: 1, CostKnown: true},
			Amount{TokensPerDay: 2, RequestsPerSecond: 1, RequestsPerMinute: 1, InputTokensPerMinute: 1, OutputTokensPerMinute: 1, ConcurrentStreams: 1}, ""},
		{"responses call", Call{Op: bedrock.OpOpenAIResponses, InputTokens: 3, OutputTokens: 4, CostKnown: true},
			Amount{TokensPerDay: 7, RequestsPerSecond: 1, RequestsPerMinute: 1, InputTokensPerMinute: 3, OutputTokensPerMinute: 4}, ""},
		{"unpriced compat model under a cost budget", Call{Op: bedrock.OpMantleMessages, InputTokens: 1, OutputTokens: 1}, Amount{}, "budgets.cost"},
		{"count tokens is a request only", Call{Op: bedrock.OpCountTokens, InputTokens: 10},
			Amount{RequestsPerSecond: 1, RequestsPerMinute: 1}, ""},
		{"unpriced model under a cost budget", Call{Op: bedrock.OpConverse, InputTokens: 1, OutputTokens: 1}, Amount{}, "budgets.cost"},
		{"async under a cost budget without a price", Call{Op: bedrock.OpStartAsyncInvoke}, Amount{}, "budgets.async_invoke_cost_usd"},
	} {
		got, ref := lim.Amount("a", tc.call)
		switch {
		case tc.wantRule != "":
			if ref == nil || ref.Rule != tc.wantRule || ref.APIError().Status != 403 {
				t.Errorf("%s: refusal %+v, want rule %s (403)", tc.name, ref, tc.wantRule)
			}
		case ref != nil:
			t.Errorf("%s: refused: %v", tc.name, ref)
		case got != tc.want:
			t.Errorf("%s: amount %v, want %v", tc.name, got, tc.want)
		}
	}
	priced := Compile(policy.BudgetsConfig{CostPerMonthUSD: 10, AsyncInvokeCostUSD: 0.5})
	if a, ref := priced.Amount("a", Call{Op: bedrock.OpStartAsyncInvoke}); ref != nil || a[CostPerMonth] != 500_000 {
		t.Errorf("priced async: %v %v", a, ref)
	}
}

// Short windows throttle (429, the SDKs retry); day and month budgets are
// exhausted quotas (400 ServiceQuotaExceededException, not retried) that
// name the budget and when it resets.
func TestRefusalAnswers(t *testing.T) {
	reset := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ex     Exceeded
		status int
		typ    string
		says   []string
	}{
		{Exceeded{App: "a", Kind: RequestsPerMinute, Limit: 10, Used: 10, Want: 1, ResetAt: reset}, 429, "ThrottlingException", []string{"budgets.requests_per_minute", "10 of 10"}},
		{Exceeded{App: "a", Kind: ConcurrentStreams, Limit: 2, Used: 2, Want: 1}, 429, "ThrottlingException", []string{"2 streams open"}},
		{Exceeded{App: "a", Kind: TokensPerDay, Limit: 1000, Used: 990, Want: 20, ResetAt: reset}, 400, "ServiceQuotaExceededException", []string{"budgets.tokens_per_day", "990 of 1000", "resets at 2026-03-05T00:00:00Z"}},
		{Exceeded{App: "a", Kind: CostPerMonth, Limit: 5_000_000, Used: 5_000_000, Want: 1, ResetAt: reset}, 400, "ServiceQuotaExceededException", []string{"budgets.cost_per_month_usd", "$5.000000"}},
		{Exceeded{App: "a", Kind: TokensPerDay, Limit: 10, Used: 10, Want: 1, ResetAt: reset, Fallback: true, FallbackReplicas: 3}, 400, "ServiceQuotaExceededException", []string{"1/3", "unreachable"}},
	} {
		e := refuse(&tc.ex).APIError()
		if e.Status != tc.status || e.Type != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.ex.Kind.Key(), e.Status, e.Type, tc.status, tc.typ)
		}
		for _, s := range tc.says {
			if !strings.Contains(e.Message, s) {
				t.Errorf("%s: %q does not say %q", tc.ex.Kind.Key(), e.Message, s)
			}
		}
	}
}

func TestDivided(t *testing.T) {
	l := Compile(policy.BudgetsConfig{RequestsPerSecond: 2, RequestsPerMinute: 90, TokensPerDay: 1000})
	d := l.Divided(3)
	if d.Max[RequestsPerSecond] != 1 || d.Max[RequestsPerMinute] != 30 || d.Max[TokensPerDay] != 333 || d.Max[CostPerDay] != 0 {
		t.Fatalf("divided by 3: %v", d.Max)
	}
	if l.Max[RequestsPerMinute] != 90 {
		t.Fatal("Divided changed its receiver")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
