package audit

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// AppBudget is an app's day and month budgets (apps[].budgets), given to
// the report as plain numbers (audit does not read the policy): 0 for none.
type AppBudget struct {
	TokensPerDay    int64
	CostPerDayUSD   float64
	CostPerMonthUSD float64
}

// BudgetStats are one app's use of its day and month budgets in the UTC
// day and month of Report.BudgetsAsOf, from the records of the calls that
// were forwarded (input, output and cache tokens; the estimated cost).
type BudgetStats struct {
	App                 string
	Budget              AppBudget
	DayTokens           int64
	DayCostUSD          float64
	MonthCostUSD        float64
	DayTokensLeft       int64   // TokensPerDay − DayTokens, at least 0 (when TokensPerDay is set)
	DayCostLeftUSD      float64 // when CostPerDayUSD is set
	MonthCostLeftUSD    float64 // when CostPerMonthUSD is set
	DayResets, MonthEnd time.Time
}

// budgetAcc adds up forwarded calls' tokens and cost per app, UTC day and
// UTC month.
type budgetAcc struct {
	dayTokens map[string]map[int64]int64
	dayCost   map[string]map[int64]float64
	monthCost map[string]map[int64]float64
}

func newBudgetAcc() budgetAcc {
	return budgetAcc{dayTokens: map[string]map[int64]int64{}, dayCost: map[string]map[int64]float64{}, monthCost: map[string]map[int64]float64{}}
}

func utcDay(t time.Time) int64 { return t.Unix() / 86400 }

func utcMonth(t time.Time) int64 { y, m, _ := t.UTC().Date(); return int64(y)*12 + int64(m) - 1 }

func add[V int64 | float64](m map[string]map[int64]V, app string, k int64, v V) {
	if m[app] == nil {
		m[app] = map[int64]V{}
	}
	m[app][k] += v
}

func (a *budgetAcc) add(l *Record) {
	if l.Time.IsZero() || (l.Decision != DecisionAllow && l.Decision != DecisionDryRunDeny) {
		return
	}
	if l.Usage.Known {
		add(a.dayTokens, l.App, utcDay(l.Time), l.Usage.Input+l.Usage.Output+l.Usage.CacheRead+l.Usage.CacheWrite)
	}
	if l.CostKnown {
		add(a.dayCost, l.App, utcDay(l.Time), l.CostUSD)
		add(a.monthCost, l.App, utcMonth(l.Time), l.CostUSD)
	}
}

// stats computes each budgeted app's use in asOf's UTC day and month.
func (a *budgetAcc) stats(budgets map[string]AppBudget, asOf time.Time) []BudgetStats {
	var out []BudgetStats
	day, month := utcDay(asOf), utcMonth(asOf)
	y, m, _ := asOf.UTC().Date()
	for app, b := range budgets {
		s := BudgetStats{App: app, Budget: b,
			DayTokens: a.dayTokens[app][day], DayCostUSD: a.dayCost[app][day], MonthCostUSD: a.monthCost[app][month],
			DayResets: time.Unix((day+1)*86400, 0).UTC(), MonthEnd: time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)}
		s.DayTokensLeft = max(0, b.TokensPerDay-s.DayTokens)
		s.DayCostLeftUSD = max(0, b.CostPerDayUSD-s.DayCostUSD)
		s.MonthCostLeftUSD = max(0, b.CostPerMonthUSD-s.MonthCostUSD)
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y BudgetStats) int { return strings.Compare(x.App, y.App) })
	return out
}

// BudgetRow is one line of the budgets table: an app's use of one day or
// month budget, its limit, what remains and when it resets. The text and
// HTML reports print the same rows.
type BudgetRow struct {
	App, Budget            string // the app; its budget's key (tokens_per_day, cost_per_day_usd, cost_per_month_usd)
	Used, Limit, Remaining string // formatted: tokens as integers, USD as the report prints costs
	PercentUsed            int    // 0–100 (capped: records can show more than a limit let through at the edge)
	Resets                 time.Time
}

// BudgetRows lists r.Budgets a row per app and budget it sets.
func (r *Report) BudgetRows() []BudgetRow {
	var out []BudgetRow
	pct := func(used, limit float64) int { return int(min(100, max(0, 100*used/limit))) }
	for _, s := range r.Budgets {
		if s.Budget.TokensPerDay > 0 {
			out = append(out, BudgetRow{s.App, "tokens_per_day", fmt.Sprint(s.DayTokens), fmt.Sprint(s.Budget.TokensPerDay), fmt.Sprint(s.DayTokensLeft),
				pct(float64(s.DayTokens), float64(s.Budget.TokensPerDay)), s.DayResets})
		}
		if s.Budget.CostPerDayUSD > 0 {
			out = append(out, BudgetRow{s.App, "cost_per_day_usd", fmtUSD(s.DayCostUSD), fmtUSD(s.Budget.CostPerDayUSD), fmtUSD(s.DayCostLeftUSD),
				pct(s.DayCostUSD, s.Budget.CostPerDayUSD), s.DayResets})
		}
		if s.Budget.CostPerMonthUSD > 0 {
			out = append(out, BudgetRow{s.App, "cost_per_month_usd", fmtUSD(s.MonthCostUSD), fmtUSD(s.Budget.CostPerMonthUSD), fmtUSD(s.MonthCostLeftUSD),
				pct(s.MonthCostUSD, s.Budget.CostPerMonthUSD), s.MonthEnd})
		}
	}
	return out
}

// writeBudgets prints the budgets table: per app and budget, used, the
// limit, what is left and when it resets.
func (r *Report) writeBudgets(tw *tabwriter.Writer) {
	fmt.Fprintf(tw, "APP\tBUDGET\tUSED\tLIMIT\tREMAINING\tUSED %%\tRESETS (UTC)\n")
	for _, b := range r.BudgetRows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", textSafe(b.App), b.Budget, b.Used, b.Limit, b.Remaining, b.PercentUsed, b.Resets.Format(time.RFC3339))
	}
}
