package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard"
)

// This file is where the relay meets package guard, which decides: proxy
// hands it the call as plain values (the body, its extracted texts, the
// operation and model family) and turns the typed guard.Outcome into the
// answer on the wire and the audit record's fields.

// guardApps is what guard.Compile needs of the apps.
func guardApps(apps []policy.AppConfig) []guard.App {
	out := make([]guard.App, len(apps))
	for i, a := range apps {
		out[i] = guard.App{Name: a.Name, Guards: a.Guards, DryRun: a.Mode == policy.ModeDryRun}
	}
	return out
}

// auditFindings converts the guards' findings for the record (the two
// types have the same fields).
func auditFindings(fs []guard.Finding) []audit.Finding {
	out := make([]audit.Finding, len(fs))
	for i, f := range fs {
		out[i] = audit.Finding(f)
	}
	return out
}

// requestFamily is the native body family of the call's model: the
// resolved foundation model's for an indirect id (when all of them agree),
// else the id's own.
func requestFamily(c *call) string {
	if c.model == nil {
		return bedrock.FamilyUnknown
	}
	if f := c.model.Family(); f != bedrock.FamilyUnknown || len(c.rec.ModelResolved) == 0 {
		return f
	}
	fam := ""
	for i, r := range c.rec.ModelResolved {
		m, err := bedrock.ParseModelID(r)
		if err != nil {
			return bedrock.FamilyUnknown
		}
		if f := m.Family(); i == 0 {
			fam = f
		} else if f != fam {
			return bedrock.FamilyUnknown // every string gets scanned
		}
	}
	return fam
}

// applyInputGuards runs the app's input guards on c (after the allow
// decision and the body limits, before metadata stamping), rewriting c.body
// when a guard masks. A non-nil error is the answer for the caller: nothing
// is forwarded. dryRunDeny is set when a dry-run app's guard would have
// blocked.
//
// The guards come from the snapshot that decided the call.
func (s *Server) applyInputGuards(ctx context.Context, c *call, d policy.Decision) (dryRunDeny bool, err error) {
	if c.snap == nil || d.App == "" {
		return false, nil
	}
	ag := c.snap.guards.For(d.App)
	if !ag.HasInput() {
		return false, nil
	}
	req := guard.Request{Body: c.body, Passthrough: c.passthrough, DryRun: d.DryRun}
	if len(bytes.TrimSpace(c.body)) > 0 { // GET operations have nothing to read
		req.Extracted, req.ExtractErr = c.extract()
	}
	res := ag.CheckInput(ctx, req, s.guardrail)
	c.rec.Findings = append(c.rec.Findings, auditFindings(res.Findings)...)
	if res.Body != nil {
		c.body = res.Body
	}
	if !res.Blocked() {
		return false, nil
	}
	if d.DryRun {
		if d.Allow { // a policy denial recorded first keeps its rule and reason
			c.record(verdict{rule: res.Rule, reason: "warden: " + res.Message})
		}
		return true, nil
	}
	c.record(verdict{rule: res.Rule})
	return false, bedrock.AccessDenied("warden: %s", res.Message)
}

// outputGuards returns the app's output guards for a call whose answer is
// model text (Converse*, InvokeModel*), nil otherwise, and whether blocks
// are only recorded (the app, or the whole policy, is in dry-run).
func (s *Server) outputGuards(c *call) (*guard.Guards, bool) {
	switch op := c.route.Op; {
	case op.AgentRuntime():
		// Every agent-runtime answer is read: chunks, citations, retrieved
		// passages, flow outputs, sessions' and memory's contents.
	case op == bedrock.OpConverse, op == bedrock.OpConverseStream, op == bedrock.OpInvokeModel, op == bedrock.OpInvokeModelWithResponseStream:
	default:
		if !c.route.Op.BodyModel() { // the OpenAI-compatible and Messages APIs answer model text too
			return nil, false
		}
	}
	snap := c.snap // the policy that decided the call also guards its answer
	if snap == nil || c.rec.App == "" {
		return nil, false
	}
	ag := snap.guards.For(c.rec.App)
	if !ag.HasOutput() {
		return nil, false
	}
	return ag, ag.DryRun() || snap.cfg != nil && snap.cfg.Mode == policy.ModeDryRun
}

// relayGuardedUnary buffers a 2xx unary answer (up to guard.MaxAnswerBytes),
// has the output guards check it and relays it, masked where a guard
// masks, or answers 403 AccessDeniedException when one blocks.
func (s *Server) relayGuardedUnary(w http.ResponseWriter, c *call, resp *http.Response, ag *guard.Guards, dryRun bool) {
	// The buffered answer counts against the body budget, as the request did.
	br := &bodyReader{r: resp.Body, res: &c.res}
	br.held.Store(c.res.n) // the request's bytes are held until the call ends
	body, err := io.ReadAll(io.LimitReader(br, guard.MaxAnswerBytes+1))
	if br.err != nil {
		s.fail(w, c, s.budgetRefused(c, br.err, true), "limits.inflight_body_bytes")
		return
	}
	if err != nil {
		if resp.Request != nil && resp.Request.Context().Err() != nil {
			c.rec.Status, c.rec.ErrorType = 499, "ClientClosedRequest"
			return
		}
		s.fail(w, c, bedrock.ServiceUnavailable("warden: reading the upstream response failed (%s)", describeStreamErr(err)), "upstream")
		return
	}
	oversize := len(body) > guard.MaxAnswerBytes
	// The tokens were spent whatever the guards decide: recorded first.
	var whole []byte
	if !oversize {
		whole = body
	}
	u, uok := unaryUsage(c, resp.Header, whole)
	s.recordUsage(c, u, uok)
	ctx := context.Background()
	if resp.Request != nil {
		ctx = resp.Request.Context() // the client's: its going away cancels a guardrail call
	}
	res := ag.CheckAnswer(ctx, guard.Answer{Op: c.route.Op, Family: requestFamily(c), Body: body, Oversize: oversize,
		ContentEncoding: resp.Header.Get("Content-Encoding"), DryRun: dryRun}, s.guardrail)
	c.rec.Findings = append(c.rec.Findings, auditFindings(res.Findings)...)
	if res.Blocked() {
		if !res.DryRun {
			c.denied(res.Rule, "")
			s.fail(w, c, bedrock.AccessDenied("warden: %s", res.Message), res.Rule)
			return
		}
		c.dryRunBlocked(res.Rule, "warden: "+res.Message)
	}
	if res.Body != nil {
		body = res.Body
	}
	copyResponseHeader(w.Header(), resp.Header)
	if oversize {
		w.Header().Del("Content-Length")
	} else {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	}
	w.WriteHeader(resp.StatusCode)
	hw := newHashWriter(w, false, 0)
	hw.also = c.capture
	n, werr := hw.Write(body)
	c.rec.BytesOut = int64(n)
	defer func() { c.rec.ResponseSHA256 = hw.hexSum(); hw.release() }()
	if oversize && werr == nil {
		bp := copyBufPool.Get().(*[]byte)
		m, err := io.CopyBuffer(hw, resp.Body, *bp)
		copyBufPool.Put(bp)
		c.rec.BytesOut += m
		if err != nil && resp.Request.Context().Err() == nil {
			c.rec.ErrorType = "UpstreamBodyError"
			panic(http.ErrAbortHandler)
		}
	}
}

// relayGuardedStream is relayStream with output guards: each event passes
// through a guard.Stream, which holds streamed text back by content (until
// no value a detector reports can still be unfinished in it, within the
// guards' bound), so a value cut into tokens is seen whole before any part
// of it leaves. On a block the client gets a
// modelStreamErrorException frame naming the guard and the finding types,
// and the stream ends.
func (s *Server) relayGuardedStream(w http.ResponseWriter, c *call, resp *http.Response, ag *guard.Guards, dryRun bool) {
	sg := ag.NewStream(c.route.Op, requestFamily(c), dryRun)
	outcome := func() {
		res := sg.Outcome()
		c.rec.Findings = append(c.rec.Findings, auditFindings(res.Findings)...)
		if res.Blocked() && dryRun {
			c.dryRunBlocked(res.Rule, "warden: "+res.Message)
		}
	}
	defer func() {
		if c.detached { // after the relay, on its goroutine (detach.go)
			c.later = append(c.later, outcome)
			return
		}
		outcome()
	}()
	s.relayStream(w, c, resp, sg)
}
