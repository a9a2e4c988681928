package proxy

import (
	"context"
	"errors"

	"github.com/warden-egress/warden/authz"
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
// appended to the message. The resolved models, and whether the answer was
// served stale during an outage, go into the audit record.
func (s *Server) decide(ctx context.Context, id authz.Identity, c *call, ac authz.Call) authz.Decision {
	var rerr *authz.ResolveError
	// Only a caller some app selects gets control-plane lookups: a workload
	// the policy does not know cannot make Warden call AWS on its behalf.
	if m := c.model; m != nil && m.Indirect() && m.Kind != bedrock.KindSageMakerEndpoint && s.selected(id) {
		// A SageMaker endpoint hides no Bedrock model: the policy matches its ARN.
		res, err := s.models.Lookup(ctx, *m)
		switch {
		case err == nil:
			ac.Foundations, ac.Regions, ac.Resolved = res.Foundations, res.Regions, true
			c.rec.ModelResolved, c.rec.ModelResolvedStale = res.Foundations, res.Stale
		case !errors.As(err, &rerr):
			rerr = &authz.ResolveError{Model: m.Raw, Reason: "internal error", Err: err}
		}
	}
	d := s.policy.Decide(id, ac)
	if rerr != nil && !d.Allow && d.Rule == "model-resolution" {
		d.Reason += ": " + rerr.Reason
	}
	return d
}

func (s *Server) selected(id authz.Identity) bool {
	_, i := s.policy.Match(id)
	return i >= 0
}
