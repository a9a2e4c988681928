package proxy

import (
	"net/http"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz/policy"
)

// capFindingGuard names the caps in audit findings.
const capFindingGuard = "limits"

// appConfig returns the snapshot's config of app (nil when it is not there).
func (snap *snapshot) appConfig(app string) *policy.AppConfig {
	if snap == nil || snap.cfg == nil {
		return nil
	}
	for i := range snap.cfg.Apps {
		if snap.cfg.Apps[i].Name == app {
			return &snap.cfg.Apps[i]
		}
	}
	return nil
}

// applyCaps applies the deciding app's request caps and guardrail
// (policy.AppConfig.ApplyCaps) to c, rewriting c.body and r's headers as
// they say. A non-nil error is the answer for the caller: nothing is
// forwarded. dryRunDeny is set when a dry-run app's call would have been
// denied and is forwarded as sent.
func (s *Server) applyCaps(r *http.Request, c *call, d policy.Decision) (dryRunDeny bool, err error) {
	if c.snap == nil || d.App == "" {
		return false, nil
	}
	a := c.snap.appConfig(d.App)
	if a == nil {
		return false, nil
	}
	res, err := a.ApplyCaps(d, policy.CapRequest{Op: c.route.Op, Body: c.body, Header: r.Header, Extract: c.extract, Passthrough: c.passthrough})
	if res.Rule != "" {
		c.record(verdict{rule: res.Rule, reason: res.Reason})
	}
	if res.Body != nil {
		c.body = res.Body
	}
	for k, v := range res.SetHeader {
		r.Header[k] = []string{v}
	}
	if res.Clamped > 0 {
		c.rec.Findings = addFinding(c.rec.Findings, audit.Finding{Guard: capFindingGuard, Detector: "max_output_tokens", Type: "MAX_TOKENS", Count: res.Clamped, Action: policy.LimitClamp})
	}
	return res.DryRunDeny, err
}

// addFinding counts f into fs, one entry per guard, detector, type and action.
func addFinding(fs []audit.Finding, f audit.Finding) []audit.Finding {
	for i := range fs {
		if fs[i].Guard == f.Guard && fs[i].Detector == f.Detector && fs[i].Type == f.Type && fs[i].Action == f.Action {
			fs[i].Count += f.Count
			return fs
		}
	}
	return append(fs, f)
}
