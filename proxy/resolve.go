package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/models"
	"github.com/warden-egress/warden/authz/policy"

	"github.com/warden-egress/warden/bedrock"
)

// decide resolves an indirect model id (application inference profile,
// provisioned or custom model, deployment, imported model, prompt, prompt
// router) through the Bedrock control plane, then asks the policy.
//
// A resolution failure is not answered here: the call goes to the policy
// unresolved, which denies it ("could not be resolved") after the checks
// that come first (no app, operation) and honours dry-run; the reason the
// resolver gave (not found, access denied, control plane failing) is
// appended to the message (policy.Call.ResolveReason). The resolved models, and whether the answer was
// served stale during an outage, go into the audit record.
//
// The policy snapshot is loaded once here: the decision and the audit
// record's policy_hash come from the same policy whatever reloads happen.
func (s *Server) decide(ctx context.Context, id identity.Identity, c *call, ac policy.Call) policy.Decision {
	snap := s.snap.Load()
	c.snap = snap
	if snap == nil {
		return policy.NoPolicy()
	}
	c.rec.PolicyHash = snap.hash
	c.rec.PolicySerial = snap.serial
	c.rec.PolicyExpired = snap.bundleExpired(time.Now())
	var rerr *models.ResolveError
	// Only a caller some app selects gets control-plane lookups: a workload
	// the policy does not know cannot make Warden call AWS on its behalf;
	// nor does a re-pointable id (an unversioned prompt) the app refuses.
	if m := c.model; m != nil && m.Indirect() && m.Kind != bedrock.KindSageMakerEndpoint && snap.policy.Resolves(id, m) {
		// A SageMaker endpoint hides no Bedrock model: the policy matches its ARN.
		res, err := s.models.Lookup(ctx, *m)
		switch {
		case err == nil:
			ac.Foundations, ac.Regions, ac.Resolved = res.Foundations, res.Regions, true
			c.rec.ModelResolved, c.rec.ModelResolvedStale = res.Foundations, res.Stale
		case !errors.As(err, &rerr):
			rerr = &models.ResolveError{Model: m.Raw, Reason: "internal error", Err: err}
		}
	}
	if ac.Agent != nil {
		s.resolveAgentModels(ctx, snap, id, ac.Agent) // agent.go
	}
	if rerr != nil {
		ac.ResolveReason = rerr.Reason
	}
	return snap.policy.Decide(id, ac)
}
