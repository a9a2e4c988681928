// Package budget enforces the apps' budgets and rate limits
// (apps[].budgets) across every Warden replica that shares a store: it
// compiles an app's budgets into Limits, turns a call into the Amount it
// reserves, reserves it before the call is forwarded and settles it from
// the real usage afterwards, and says how a refusal is answered (a throttle
// or an exhausted budget). The stores sit behind one interface, one file
// each: in memory (store_memory.go, the default, per replica) and Redis
// (store_redis.go, shared, with server-side scripts).
//
// The budget's decisions live here; the proxy only relays them: it
// measures the call (the prompt's estimate, the output cap, the price) and
// asks.
package budget

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

// Kind names one budget. Day and month quotas come first: a call that
// would break a quota and a throttle is told about the quota (retrying
// does not help it).
type Kind uint8

// The budgets, in the order they are checked.
const (
	TokensPerDay Kind = iota
	CostPerDay
	CostPerMonth
	RequestsPerSecond
	RequestsPerMinute
	InputTokensPerMinute
	OutputTokensPerMinute
	ConcurrentStreams
	NumKinds
)

var kindKeys = [NumKinds]string{
	TokensPerDay:          "tokens_per_day",
	CostPerDay:            "cost_per_day_usd",
	CostPerMonth:          "cost_per_month_usd",
	RequestsPerSecond:     "requests_per_second",
	RequestsPerMinute:     "requests_per_minute",
	InputTokensPerMinute:  "input_tokens_per_minute",
	OutputTokensPerMinute: "output_tokens_per_minute",
	ConcurrentStreams:     "concurrent_streams",
}

// Key is the budget's config key under apps[].budgets.
func (k Kind) Key() string {
	if k < NumKinds {
		return kindKeys[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Period is the window a budget counts over.
type Period uint8

// The windows: none (concurrency: held while the call lasts), a second, a
// minute, a UTC day, a UTC month. Windows are fixed (aligned to the epoch,
// the UTC day or month), not sliding.
const (
	PeriodNone Period = iota
	PeriodSecond
	PeriodMinute
	PeriodDay
	PeriodMonth
)

var kindPeriods = [NumKinds]Period{
	TokensPerDay: PeriodDay, CostPerDay: PeriodDay, CostPerMonth: PeriodMonth,
	RequestsPerSecond: PeriodSecond, RequestsPerMinute: PeriodMinute,
	InputTokensPerMinute: PeriodMinute, OutputTokensPerMinute: PeriodMinute,
	ConcurrentStreams: PeriodNone,
}

// Period is the window k counts over.
func (k Kind) Period() Period { return kindPeriods[k] }

// Throttle says whether a refusal under k is a throttle (429, the SDKs
// retry: it clears within a minute) rather than an exhausted quota (400,
// not retried: it clears at the next UTC day or month).
func (k Kind) Throttle() bool { p := k.Period(); return p != PeriodDay && p != PeriodMonth }

// Window is the index of the window of period p holding t: Unix seconds,
// minutes or days, or months since year 0 (year*12 + month-1), in UTC.
func Window(p Period, t time.Time) int64 {
	sec := t.Unix()
	switch p {
	case PeriodSecond:
		return sec
	case PeriodMinute:
		return floorDiv(sec, 60)
	case PeriodDay:
		return floorDiv(sec, 86400)
	case PeriodMonth:
		y, m, _ := t.UTC().Date()
		return int64(y)*12 + int64(m) - 1
	}
	return 0
}

// ResetAt is when window w of period p ends (zero for PeriodNone).
func ResetAt(p Period, w int64) time.Time {
	switch p {
	case PeriodSecond:
		return time.Unix(w+1, 0).UTC()
	case PeriodMinute:
		return time.Unix((w+1)*60, 0).UTC()
	case PeriodDay:
		return time.Unix((w+1)*86400, 0).UTC()
	case PeriodMonth:
		next := w + 1
		return time.Date(int(floorDiv(next, 12)), time.Month(next-floorDiv(next, 12)*12+1), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// MicroUSD is one millionth of a US dollar: costs are counted in integers.
const MicroUSD = 1e-6

// microUSD converts dollars to micro-dollars, rounding up (a reservation
// never falls short of the price).
func microUSD(usd float64) int64 {
	if usd <= 0 {
		return 0
	}
	v := usd * 1e6
	if r := math.Round(v); math.Abs(v-r) < 1e-6 {
		return int64(r) // 0.0001 is 100 µ$, not 100.00000000000001
	}
	return int64(math.Ceil(v))
}

// Limits are an app's budgets compiled: the limit of each kind (costs in
// micro-USD), 0 for none.
type Limits struct {
	Max [NumKinds]int64
	// AsyncInvokeCost is what StartAsyncInvoke is charged against a cost
	// budget (micro-USD); 0 denies it under one.
	AsyncInvokeCost int64
}

// Compile turns an app's budgets config into Limits; nil when it sets none.
func Compile(c policy.BudgetsConfig) *Limits {
	if !c.Any() {
		return nil
	}
	l := &Limits{AsyncInvokeCost: microUSD(c.AsyncInvokeCostUSD)}
	l.Max[TokensPerDay] = c.TokensPerDay
	l.Max[CostPerDay] = microUSD(c.CostPerDayUSD)
	l.Max[CostPerMonth] = microUSD(c.CostPerMonthUSD)
	l.Max[RequestsPerSecond] = c.RequestsPerSecond
	l.Max[RequestsPerMinute] = c.RequestsPerMinute
	l.Max[InputTokensPerMinute] = c.InputTokensPerMinute
	l.Max[OutputTokensPerMinute] = c.OutputTokensPerMinute
	l.Max[ConcurrentStreams] = c.ConcurrentStreams
	return l
}

// tokens says whether a token budget is set.
func (l *Limits) tokens() bool {
	return l.Max[TokensPerDay] > 0 || l.Max[InputTokensPerMinute] > 0 || l.Max[OutputTokensPerMinute] > 0
}

// cost says whether a cost budget is set.
func (l *Limits) cost() bool { return l.Max[CostPerDay] > 0 || l.Max[CostPerMonth] > 0 }

// Tracked says whether l has a limit of kind k.
func (l *Limits) Tracked(k Kind) bool { return l.Max[k] > 0 }

// Divided is l with every limit divided by n (at least 1 where l has
// one): a replica's share when it decides alone (fail_open).
func (l *Limits) Divided(n int64) *Limits {
	if n <= 1 {
		return l
	}
	d := *l
	for k := range d.Max {
		if d.Max[k] > 0 {
			d.Max[k] = max(1, d.Max[k]/n)
		}
	}
	return &d
}

// Amount is what a call takes of each budget (costs in micro-USD).
type Amount [NumKinds]int64

// Usage is what a call reports it used, or is estimated to have used.
type Usage struct {
	Input, Output, CacheRead, CacheWrite int64
	CostUSD                              float64
}

// Call is what the proxy measured of a call before forwarding it.
type Call struct {
	Op bedrock.Operation
	// Streamed is set for a call whose body asks for a streamed answer
	// (the OpenAI-compatible and Messages APIs decide it there, not by
	// operation).
	Streamed bool
	// InputTokens is the prompt's estimate (EstimateTokens of its text),
	// OutputTokens the most the model may answer (the request's own limit,
	// else the app's limits.max_output_tokens).
	InputTokens, OutputTokens int64
	// CostUSD is the price of InputTokens and OutputTokens on the call's
	// model; CostKnown is false when audit.prices has no price for it.
	CostUSD   float64
	CostKnown bool
}

// EstimateTokens is the token estimate of a prompt of n bytes of text:
// one token per three bytes, rounded up. Tokenizers average about four
// bytes of English per token; the estimate leans high so reservations
// rarely fall short.
func EstimateTokens(textBytes int) int64 { return int64(textBytes+2) / 3 }

// Amount is what c reserves of l's budgets. A call l cannot price under
// a cost budget is refused: the error is the answer for the caller.
func (l *Limits) Amount(app string, c Call) (Amount, *Refusal) {
	var a Amount
	a[RequestsPerSecond], a[RequestsPerMinute] = 1, 1
	if Streams(c.Op) || c.Streamed {
		a[ConcurrentStreams] = 1
	}
	if c.Op == bedrock.OpStartAsyncInvoke {
		if l.cost() {
			if l.AsyncInvokeCost <= 0 {
				return a, &Refusal{App: app, Rule: "budgets.async_invoke_cost_usd", api: bedrock.AccessDenied(
					"warden: app %s has a cost budget and StartAsyncInvoke has no price (budgets.async_invoke_cost_usd): Warden cannot see an async job's tokens", app)}
			}
			a[CostPerDay], a[CostPerMonth] = l.AsyncInvokeCost, l.AsyncInvokeCost
		}
		return a, nil
	}
	if !Generates(c.Op) {
		return a, nil
	}
	a[InputTokensPerMinute] = c.InputTokens
	a[OutputTokensPerMinute] = c.OutputTokens
	a[TokensPerDay] = c.InputTokens + c.OutputTokens
	if l.cost() {
		if !c.CostKnown {
			return a, &Refusal{App: app, Rule: "budgets.cost", api: bedrock.AccessDenied(
				"warden: app %s has a cost budget and model calls it makes must be priced; audit.prices has no price for this call's model", app)}
		}
		a[CostPerDay], a[CostPerMonth] = microUSD(c.CostUSD), microUSD(c.CostUSD)
	}
	return a, nil
}

// Generates says whether op makes a model generate tokens Warden sees
// (token and cost budgets apply; StartAsyncInvoke's are never seen).
func Generates(op bedrock.Operation) bool {
	switch op {
	case bedrock.OpInvokeModel, bedrock.OpInvokeModelWithResponseStream, bedrock.OpConverse, bedrock.OpConverseStream:
		return true
	}
	return op.BodyModel() // the OpenAI-compatible and Messages APIs
}

// Streams says whether op holds a stream open (budgets.concurrent_streams).
func Streams(op bedrock.Operation) bool {
	return op == bedrock.OpInvokeModelWithResponseStream || op == bedrock.OpConverseStream
}

// Tokens says whether l counts tokens or cost, so the proxy measures them.
func (l *Limits) Tokens() bool { return l.tokens() || l.cost() }

// Used is what a settled call takes of each budget: forwarded says the
// call reached the upstream (its requests count), u what it used (nil:
// nothing — the upstream refused it or it never left). Concurrency is
// always returned.
func Used(reserved Amount, forwarded bool, u *Usage) Amount {
	var a Amount
	if forwarded {
		a[RequestsPerSecond], a[RequestsPerMinute] = reserved[RequestsPerSecond], reserved[RequestsPerMinute]
	}
	if u == nil {
		return a
	}
	a[InputTokensPerMinute] = u.Input
	a[OutputTokensPerMinute] = u.Output
	a[TokensPerDay] = u.Input + u.Output + u.CacheRead + u.CacheWrite
	a[CostPerDay], a[CostPerMonth] = microUSD(u.CostUSD), microUSD(u.CostUSD)
	return a
}

// Ticket is a reservation: what was taken of which windows, to settle.
type Ticket struct {
	App string
	// ID names the reservation in a shared store ("" in memory).
	ID      string
	Amount  Amount
	Windows [NumKinds]int64
	// Kinds has bit k set when budget k was checked and charged.
	Kinds uint16
	// Fallback says a replica's local share decided (fail_open while the
	// shared store was unreachable).
	Fallback bool
	store    Store
	// hold keeps a shared store's reservation alive while the call runs
	// (nil in memory); Settle stops it.
	hold *hold
}

func (t *Ticket) tracked(k Kind) bool { return t.Kinds&(1<<k) != 0 }

// reserves says whether t holds anything in the store (a reservation is
// stored only for the budgets it takes a positive amount of).
func (t *Ticket) reserves() bool {
	for k := Kind(0); k < NumKinds; k++ {
		if t.tracked(k) && t.Amount[k] > 0 {
			return true
		}
	}
	return false
}

// Store keeps the budgets' counters. Reserve checks every budget l sets
// and, if each has room for amt, takes amt of them all at once (atomically:
// concurrent calls on any replica cannot both take the last of a budget);
// it returns an *Exceeded when one has no room, or an error when the store
// failed. Settle replaces a ticket's amounts by what the call used (a
// window that has passed is left alone). Usage reads the current windows.
type Store interface {
	Reserve(ctx context.Context, app string, l *Limits, amt Amount) (Ticket, error)
	Settle(ctx context.Context, t *Ticket, used Amount) error
	Usage(ctx context.Context, app string, l *Limits) (Amount, error)
	Close() error
}

// Exceeded is a refused reservation: budget Kind of App has Used of Limit
// and the call wanted Want more. ResetAt is when its window ends (zero for
// concurrency).
type Exceeded struct {
	App              string
	Kind             Kind
	Limit, Used      int64
	Want             int64
	ResetAt          time.Time
	Fallback         bool // decided by a replica's local share (fail_open)
	FallbackReplicas int64
}

func (e *Exceeded) Error() string {
	return fmt.Sprintf("app %s: budgets.%s: %s of %s used, %s more wanted", e.App, e.Kind.Key(),
		e.format(e.Used), e.format(e.Limit), e.format(e.Want))
}

func (e *Exceeded) format(n int64) string {
	if e.Kind == CostPerDay || e.Kind == CostPerMonth {
		return fmt.Sprintf("$%.6f", float64(n)*MicroUSD)
	}
	return fmt.Sprint(n)
}

// Refusal is a call the budgets refuse: the answer for the caller and the
// rule for the record.
type Refusal struct {
	App  string
	Rule string
	api  *bedrock.APIError
	// Exceeded is set when a budget had no room.
	Exceeded *Exceeded
}

// APIError is the answer for the caller.
func (r *Refusal) APIError() *bedrock.APIError { return r.api }

func (r *Refusal) Error() string { return r.api.Error() }

// refuse turns an Exceeded into its answer: a throttle (429
// ThrottlingException, retried by the SDKs) for per-second, per-minute and
// concurrency limits; an exhausted budget (400
// ServiceQuotaExceededException, not retried) naming the budget and when
// it resets for day and month budgets.
func refuse(e *Exceeded) *Refusal {
	r := &Refusal{App: e.App, Rule: "budgets." + e.Kind.Key(), Exceeded: e}
	local := ""
	if e.Fallback {
		local = fmt.Sprintf(" (this replica's share, 1/%d, while the budget store is unreachable)", e.FallbackReplicas)
	}
	switch {
	case e.Kind == ConcurrentStreams:
		r.api = bedrock.Throttling("warden: app %s has %d streams open, its limit (budgets.concurrent_streams)%s; retry when one ends", e.App, e.Used, local)
	case e.Kind.Throttle():
		r.api = bedrock.Throttling("warden: app %s is over budgets.%s (%s of %s used, the call needs %s)%s; the window ends at %s",
			e.App, e.Kind.Key(), e.format(e.Used), e.format(e.Limit), e.format(e.Want), local, e.ResetAt.Format(time.RFC3339))
	default:
		r.api = bedrock.ServiceQuotaExceeded("warden: app %s has exhausted budgets.%s (%s of %s used, the call needs %s)%s; it resets at %s",
			e.App, e.Kind.Key(), e.format(e.Used), e.format(e.Limit), e.format(e.Want), local, e.ResetAt.Format(time.RFC3339))
	}
	return r
}
