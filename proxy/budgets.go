package proxy

import (
	"context"
	"strings"
	"time"

	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

// The apps' budgets (apps[].budgets) are decided in authz/budget; this file
// only measures the call for it and relays its answer. A call reserves its
// share before it is forwarded — one request, one stream, the prompt's
// token estimate plus the most the model may answer, and their price — and
// settles after it ends from what the upstream reported: the unary body or
// headers, or a stream's final usage event. A call the upstream refused,
// or that never left, gives its tokens back; a stream cut before its usage
// event settles its prompt estimate and the answer text it relayed; a
// unary answer whose usage Warden could not read keeps its reservation.

// settleTimeout bounds a settlement (it runs after the call, off its path).
const settleTimeout = 5 * time.Second

// budgetLimits compiles every app's budgets (nil entries left out).
func budgetLimits(apps []policy.AppConfig) map[string]*budget.Limits {
	out := map[string]*budget.Limits{}
	for i := range apps {
		if l := budget.Compile(apps[i].Budgets); l != nil {
			out[apps[i].Name] = l
		}
	}
	return out
}

// currentBudgets is the running snapshot's budgets (for /metrics).
func (s *Server) currentBudgets() map[string]*budget.Limits {
	if snap := s.snap.Load(); snap != nil {
		return snap.budgets
	}
	return nil
}

// reserveBudget: the deciding app's budgets, reserved before the call is
// forwarded. Like the other limits they hold in dry-run too.
func (s *Server) reserveBudget(ctx context.Context, c *call, d policy.Decision) *stop {
	if c.snap == nil || d.App == "" {
		return nil
	}
	lim := c.snap.budgets[d.App]
	if lim == nil {
		return nil
	}
	bc := budget.Call{Op: c.route.Op, Streamed: c.route.Op.BodyModel() && bedrock.BodyStreams(c.body)}
	if lim.Tokens() && budget.Generates(c.route.Op) {
		if !c.budgetMeasured {
			s.measureForBudget(c, d)
		}
		bc.InputTokens, bc.OutputTokens = c.budgetIn, c.budgetOut
		bc.CostUSD, bc.CostKnown = callCost(s.priceTable(), c, bedrock.Usage{Input: bc.InputTokens, Output: bc.OutputTokens})
	}
	amt, ref := lim.Amount(d.App, bc)
	if ref == nil {
		t, r := s.budgets.Reserve(ctx, d.App, lim, amt)
		if r == nil {
			c.ticket = &t
			c.rec.BudgetFallback = t.Fallback
			return nil
		}
		ref = r
	}
	if ref.Exceeded != nil && ref.Exceeded.Fallback {
		c.rec.BudgetFallback = true
	}
	c.record(verdict{rule: ref.Rule})
	return stopWith(ref.APIError(), ref.Rule)
}

// measureForBudget takes the call's token estimate when its app counts
// tokens, from the body as the caps left it (their extraction is reused).
func (s *Server) measureForBudget(c *call, d policy.Decision) {
	if c.snap == nil || d.App == "" || !budget.Generates(c.route.Op) {
		return
	}
	if lim := c.snap.budgets[d.App]; lim == nil || !lim.Tokens() {
		return
	}
	c.budgetIn, c.budgetOut = s.estimateTokens(c)
	c.budgetMeasured = true
}

// estimateTokens is what the call reserves: the prompt's estimate from
// the text Warden reads in it, and the most the model may answer (the
// request's own limit when it sets one within the app's cap, else the cap).
func (s *Server) estimateTokens(c *call) (in, out int64) {
	ex, err := c.extract()
	n := 0
	if err != nil {
		n = len(c.body)
	} else {
		for _, t := range ex.Texts {
			if !strings.HasPrefix(t.Path, "requestMetadata") { // Warden's stamp, not prompt
				n += len(t.Text)
			}
		}
	}
	in = budget.EstimateTokens(n)
	cp := int64(0)
	if a := c.snap.appConfig(c.rec.App); a != nil {
		cp = a.Limits.MaxOutputTokens
	}
	out = cp
	if err == nil && ex.MaxTokens > 0 && (cp <= 0 || ex.MaxTokens < cp) {
		out = ex.MaxTokens
	}
	return in, out
}

// settleBudget settles the call's reservation from what it used, after
// the call: in memory at once, in a shared store off the call's path
// (Shutdown waits for it).
func (s *Server) settleBudget(c *call) {
	t := c.ticket
	if t == nil {
		return
	}
	c.ticket = nil
	used := budget.Used(t.Amount, c.forwarded, s.budgetUsage(c, t))
	if !s.budgets.Shared() || t.Fallback {
		// In this replica's memory: nanoseconds, no round trip to wait for.
		s.budgets.Settle(context.Background(), t, used)
		return
	}
	s.settling.Add(1)
	go func() {
		defer s.settling.Done()
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		defer cancel()
		s.budgets.Settle(ctx, t, used)
	}()
}

// budgetUsage is what the call used, as far as Warden knows (nil:
// nothing).
func (s *Server) budgetUsage(c *call, t *budget.Ticket) *budget.Usage {
	if !c.forwarded || !budget.Generates(c.route.Op) && c.route.Op != bedrock.OpStartAsyncInvoke {
		return nil
	}
	if c.route.Op == bedrock.OpStartAsyncInvoke {
		if !c.upstreamOK {
			return nil
		}
		return &budget.Usage{CostUSD: float64(t.Amount[budget.CostPerDay]) * budget.MicroUSD}
	}
	streamed := budget.Streams(c.route.Op) || c.route.Op.BodyModel() && bedrock.BodyStreams(c.body)
	if c.rec.Usage.Known {
		u := &budget.Usage{Input: c.rec.Usage.Input, Output: c.rec.Usage.Output, CacheRead: c.rec.Usage.CacheRead, CacheWrite: c.rec.Usage.CacheWrite}
		if c.rec.CostKnown {
			u.CostUSD = c.rec.CostUSD
		}
		// A stream that failed or was cut may have stated only its
		// start's usage (Messages' message_start: an output of 1, the
		// real one comes in message_delta at the end): it settles at
		// least the answer it relayed.
		if streamed && c.rec.ErrorType != "" {
			if out := min(t.Amount[budget.OutputTokensPerMinute], budget.EstimateTokens(int(c.streamText))); out > u.Output {
				u.Output = out
				b := bedrock.Usage{Input: u.Input, Output: u.Output, CacheRead: u.CacheRead, CacheWrite: u.CacheWrite}
				if cost, ok := callCost(s.priceTable(), c, b); ok {
					u.CostUSD = cost
				}
			}
		}
		return u
	}
	if !c.upstreamOK {
		return nil // refused upstream (or never answered): nothing generated
	}
	in, out := t.Amount[budget.InputTokensPerMinute], t.Amount[budget.OutputTokensPerMinute]
	if streamed {
		// Cut before its usage event: the prompt, and the answer relayed.
		out = min(out, budget.EstimateTokens(int(c.streamText)))
	}
	u := &budget.Usage{Input: in, Output: out}
	if cost, ok := callCost(s.priceTable(), c, bedrock.Usage{Input: in, Output: out}); ok {
		u.CostUSD = cost
	}
	return u
}

// WaitBudgets waits for the budget settlements of calls that have ended
// (they run after each call, off its path).
func (s *Server) WaitBudgets() { s.settling.Wait() }

// countsStreamText says whether a streamed answer's text is counted as it
// passes (call.streamText): a budgeted call settles it, as its output's
// estimate, when the stream ends before the usage it states.
func (c *call) countsStreamText() bool {
	return c.ticket != nil && c.ticket.Amount[budget.OutputTokensPerMinute] > 0
}
