package policy

import "fmt"

// BudgetsConfig is an app's budgets and rate limits (apps[].budgets): what
// the app may take per second, minute, UTC day and UTC month, and how many
// streams it may hold open, across every Warden replica that shares the
// budget store (top-level budgets:). 0 or absent: no limit of that kind.
//
// Per-second, per-minute and stream limits are throttles (429
// ThrottlingException: the SDKs retry); per-day and per-month budgets are
// quotas (400 ServiceQuotaExceededException naming the budget and when it
// resets: the SDKs do not retry). authz/budget enforces them.
type BudgetsConfig struct {
	RequestsPerSecond     int64 `yaml:"requests_per_second,omitempty"`
	RequestsPerMinute     int64 `yaml:"requests_per_minute,omitempty"`
	InputTokensPerMinute  int64 `yaml:"input_tokens_per_minute,omitempty"`
	OutputTokensPerMinute int64 `yaml:"output_tokens_per_minute,omitempty"`
	// TokensPerDay counts input, output and cache read and write tokens.
	TokensPerDay int64 `yaml:"tokens_per_day,omitempty"`
	// CostPerDayUSD and CostPerMonthUSD are priced with audit.prices
	// (profiles and cache tokens included); a call on a model without a
	// price is denied while the app has a cost budget.
	CostPerDayUSD   float64 `yaml:"cost_per_day_usd,omitempty"`
	CostPerMonthUSD float64 `yaml:"cost_per_month_usd,omitempty"`
	// ConcurrentStreams bounds the app's InvokeModelWithResponseStream and
	// ConverseStream calls open at once.
	ConcurrentStreams int64 `yaml:"concurrent_streams,omitempty"`
	// AsyncInvokeCostUSD is what one StartAsyncInvoke is charged against a
	// cost budget (Warden never sees an async job's tokens); without it,
	// StartAsyncInvoke is denied to an app with a cost budget.
	AsyncInvokeCostUSD float64 `yaml:"async_invoke_cost_usd,omitempty"`
}

// Any says whether any budget or rate limit is set.
func (b BudgetsConfig) Any() bool {
	return b.RequestsPerSecond > 0 || b.RequestsPerMinute > 0 || b.InputTokensPerMinute > 0 ||
		b.OutputTokensPerMinute > 0 || b.TokensPerDay > 0 || b.CostPerDayUSD > 0 || b.CostPerMonthUSD > 0 ||
		b.ConcurrentStreams > 0
}

// Tokens says whether a token budget is set.
func (b BudgetsConfig) Tokens() bool {
	return b.InputTokensPerMinute > 0 || b.OutputTokensPerMinute > 0 || b.TokensPerDay > 0
}

// Cost says whether a cost budget is set.
func (b BudgetsConfig) Cost() bool { return b.CostPerDayUSD > 0 || b.CostPerMonthUSD > 0 }

// validateBudgets checks an app's budgets against its limits: a token or
// cost budget reserves max_output_tokens before forwarding, so it needs it.
func validateBudgets(a *AppConfig) []string {
	var errs []string
	b := a.Budgets
	for _, v := range []struct {
		key string
		n   float64
	}{
		{"requests_per_second", float64(b.RequestsPerSecond)},
		{"requests_per_minute", float64(b.RequestsPerMinute)},
		{"input_tokens_per_minute", float64(b.InputTokensPerMinute)},
		{"output_tokens_per_minute", float64(b.OutputTokensPerMinute)},
		{"tokens_per_day", float64(b.TokensPerDay)},
		{"cost_per_day_usd", b.CostPerDayUSD},
		{"cost_per_month_usd", b.CostPerMonthUSD},
		{"concurrent_streams", float64(b.ConcurrentStreams)},
		{"async_invoke_cost_usd", b.AsyncInvokeCostUSD},
	} {
		if v.n < 0 {
			errs = append(errs, fmt.Sprintf("budgets.%s: must not be negative (0 or absent: no limit)", v.key))
		}
	}
	if (b.Tokens() || b.Cost()) && a.Limits.MaxOutputTokens <= 0 {
		errs = append(errs, "budgets: a token or cost budget needs limits.max_output_tokens: Warden reserves the prompt's estimate plus the most the model may answer before it forwards a call, and without a cap the most is unknown")
	}
	if b.AsyncInvokeCostUSD > 0 && !b.Cost() {
		errs = append(errs, "budgets.async_invoke_cost_usd: prices StartAsyncInvoke against a cost budget, and the app has none (cost_per_day_usd, cost_per_month_usd)")
	}
	return errs
}
