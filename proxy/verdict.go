package proxy

import "github.com/warden-egress/warden/audit"

// A call's verdict — the record's decision, rule and reason — is written
// here and nowhere else (TestOneVerdictWriter checks the sources). A call
// starts denied; a stage that ends it, and a guard, cap or limit that acts
// on it, names its rule and the reason the caller reads; only a call the
// pipeline forwards becomes allow or dry-run-deny (and a guard on the answer
// may still turn it into deny or dry-run-deny).

// verdict is a change to a call's verdict: empty fields keep what the
// record holds.
type verdict struct {
	decision string // audit.DecisionAllow, DecisionDeny, DecisionDryRunDeny
	rule     string
	reason   string
}

// record applies v to the call's record.
func (c *call) record(v verdict) {
	if v.decision != "" {
		c.rec.Decision = v.decision
	}
	if v.rule != "" {
		c.rec.Rule = v.rule
	}
	if v.reason != "" {
		c.rec.Reason = v.reason
	}
}

// starts gives a new call its first verdict: deny, until the pipeline
// forwards it.
func (c *call) starts() { c.record(verdict{decision: audit.DecisionDeny}) }

// denied turns the call's verdict into deny, naming the rule and the
// reason when given (a guard on the answer that blocks it, a stream ended
// by a guard, a call whose intent is recorded and not yet inspected).
func (c *call) denied(rule, reason string) {
	c.record(verdict{decision: audit.DecisionDeny, rule: rule, reason: reason})
}

// failed records why the call ends with an error: the first rule named
// stays (a limit or guard that named itself before failing the call keeps
// its name), the reason is what the caller reads.
func (c *call) failed(rule, reason string) {
	if c.rec.Rule != "" {
		rule = ""
	}
	c.record(verdict{rule: rule, reason: reason})
}

// forwarding records the verdict of a call about to leave Warden: allow,
// or dry-run-deny when the policy or a guard or cap would have denied it.
func (c *call) forwarding(dryRunDeny bool) {
	d := audit.DecisionAllow
	if dryRunDeny {
		d = audit.DecisionDryRunDeny
	}
	c.record(verdict{decision: d})
}

// dryRunBlocked records that a dry-run app's output guard would have
// blocked the answer (a policy denial recorded first keeps its rule).
func (c *call) dryRunBlocked(rule, reason string) {
	if c.rec.Decision == audit.DecisionAllow {
		c.record(verdict{decision: audit.DecisionDryRunDeny, rule: rule, reason: reason})
	}
}
