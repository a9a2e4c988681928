package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/trace"
	"strings"
	"time"

	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/policy"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
)

// call is one request's state as it moves through the pipeline.
type call struct {
	tctx        context.Context // the request's context, with its trace task when tracing
	start       time.Time
	requestID   string
	escapedPath string
	asyncOutput string // StartAsyncInvoke's output s3Uri
	metaHeader  string // X-Amzn-Bedrock-Request-Metadata to send (InvokeModel*), "" to leave alone
	route       bedrock.Route
	errShape    bedrock.ErrorAPI  // the caller's API's error shape, judged by the path until the route is known
	agent       *policy.AgentCall // an agent-runtime call's ids and body facts (agent.go); nil otherwise
	model       *bedrock.ModelID
	body        []byte
	rec         audit.Record
	// A stream detached from its handler (detach.go): the upstream call's
	// cancel and its link to the handler's context, whether it was
	// detached, what the handler left to run after the relay, and a
	// channel closed when the handler has returned.
	upCancel    context.CancelFunc
	upUnlink    func() bool
	detached    bool
	later       []func()
	unwound     chan struct{}
	via         *via          // how an intercepted call arrived; nil in endpoint mode
	passthrough bool          // forward the caller's own signature (intercepted calls under upstream.signing: passthrough)
	accessKeyID string        // the caller's SigV4 key id, in passthrough
	forwarded   bool          // the body was handed to the upstream transport
	digest      *promptDigest // written by hashPrompt's goroutine until promptDone closes
	capture     *captured     // payloads kept for audit.capture; nil for most apps
	promptDone  chan struct{}
	// prefixOf is the body a rewrite made from the app's by editing only
	// past its first prefixLen bytes (the metadata stamp), so its payload
	// hash continues the prompt's digest (bodyhash.go).
	prefixOf  []byte
	prefixLen int
	hashed    []byte // the body hashPrompt hashes
	// snap is the policy snapshot that decides this call; guards, caps and
	// output guards read the same one, whatever a reload does meanwhile.
	snap *snapshot
	// res is the call's share of the body budget (limits.inflight_body_bytes).
	res reservation
	// br reads the request body (kept here: one allocation fewer per call).
	br bodyReader
	// buf holds the body as read; sharedFwd says the upstream transport
	// reads the forwarded body from it (sharedBody), holding references.
	buf       *bodyBuf
	sharedFwd bool
	// digestFed says the prompt digest was taken while the body was read
	// (digestFeed): promptDone and digest are already set.
	digestFed bool
	// prescan is the stamp's scan of a long body, running ahead (metadata.go).
	prescan *prescan

	// ticket is the call's budget reservation (apps[].budgets), settled
	// when the call ends; upstreamOK says the upstream answered 2xx;
	// streamText counts the answer text a stream relayed (for a stream cut
	// before its usage event).
	ticket     *budget.Ticket
	upstreamOK bool
	streamText int64
	// budgetIn and budgetOut are the call's token estimate for its
	// budgets (measureForBudget), budgetMeasured says they were taken.
	budgetIn, budgetOut int64
	budgetMeasured      bool

	// extracted caches bedrock.ExtractRequest of extractedOf (the body it
	// read), so guards and caps read the body once unless a mask rewrote it.
	extracted   *bedrock.Extracted
	extractErr  error
	extractedOf []byte
}

// asyncPromptHash is the body size from which the prompt's SHA-256 runs in
// its own goroutine, beside the policy, guards, signing and the upstream
// call (~2.5 µs for 4 KB here), rather than on the call's path.
const asyncPromptHash = 2048

// hashPrompt starts hashing the request body for the record.
func (c *call) hashPrompt(body []byte) {
	c.hashed = body
	if c.digestFed {
		return
	}
	if len(body) < asyncPromptHash {
		c.digest = newPromptDigest(body)
		return
	}
	done := make(chan struct{})
	c.promptDone = done
	go func() {
		c.digest = newPromptDigest(body)
		close(done)
	}()
}

// awaitPromptHash waits for the hash and puts it in the record.
func (c *call) awaitPromptHash() {
	if c.promptDone != nil {
		<-c.promptDone
		c.promptDone = nil
	}
	if c.digest != nil && c.rec.PromptSHA256 == "" {
		c.rec.PromptSHA256 = hexString(c.digest.sum[:])
	}
}

// payloadSum is the SHA-256 of body, the bytes Warden signs and forwards:
// the prompt's own digest when they are the app's bytes, its continuation
// when only their tail was rewritten, a fresh hash otherwise.
func (c *call) payloadSum(body []byte) [32]byte {
	c.awaitPromptHash()
	if d := c.digest; d != nil {
		// The stamp's continuation first: a stamp written in place leaves
		// the body in the prompt's array (d.edited says so).
		switch {
		case c.prefixLen > 0 && sameBytes(body, c.prefixOf):
			return d.sumOf(body, c.prefixLen)
		case !d.edited && sameBytes(body, d.body):
			return d.sum
		}
	}
	return sha256.Sum256(body)
}

// sameBytes says a and b are the same slice of the same array.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// extract returns the text Warden reads in the request body, parsing it
// only when the body changed since the last call.
func (c *call) extract() (bedrock.Extracted, error) {
	if c.extracted == nil || !sameBytes(c.extractedOf, c.body) {
		ex, err := bedrock.ExtractRequest(c.route.Op, requestFamily(c), c.body)
		c.extracted, c.extractErr, c.extractedOf = &ex, err, c.body
	}
	return *c.extracted, c.extractErr
}

func (s *Server) serveEndpoint(w http.ResponseWriter, r *http.Request) { s.serve(w, r, nil) }

// stop is a stage's typed outcome when it ends the call: the AWS-shaped
// error the caller receives and the record's rule (kept when a limit or
// guard already named itself). A nil *stop means "go on".
type stop struct {
	err  error
	rule string
}

func stopWith(err error, rule string) *stop { return &stop{err: err, rule: rule} }

// serve runs one call through the pipeline's stages, in order:
//
//	parse → identify → authorize → record intent → inspect → budget → forward
//
// and, whatever happens, record (s.finish writes the one audit record).
// Each stage reads and fills the call and returns nil to go on or a *stop
// that ends the call with an AWS-shaped error; the verdict fields of the
// record are written through verdict.go only.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, v *via) {
	// Under an execution trace (warden serve --pprof, /debug/pprof/trace)
	// each call is a task and each stage a region, so a slow call's time
	// can be split by stage and by what its goroutine waited on
	// (warden-bench trace). Without one, StartRegion is an atomic load.
	ctx := r.Context()
	var task *trace.Task
	if trace.IsEnabled() {
		ctx, task = trace.NewTask(ctx, "warden.call") // ends after the record is written
	}
	c := &call{start: time.Now(), requestID: newRequestID(), via: v, tctx: ctx}
	c.rec = audit.Record{Time: c.start, RequestID: c.requestID, Client: r.RemoteAddr, Protocol: r.Proto,
		Path: s.upstreamPath}
	c.starts()
	w.Header()["X-Warden-Request-Id"] = []string{c.requestID} // canonical already
	buf := getBodyBuf()
	c.buf = buf
	// finish (the record, the budget settlement, which may read c.body)
	// runs before the body's buffer goes back to the pool. A stream
	// detached from this handler (detach.go) runs them when it ends.
	defer func() {
		if c.detached {
			c.later = append(c.later, func() { s.end(c, buf, task) })
			close(c.unwound)
			return
		}
		s.end(c, buf, task)
	}()

	rg := trace.StartRegion(ctx, "parse")
	st := s.parse(w, r, c, buf)
	rg.End()
	if st != nil {
		s.fail(w, c, st.err, st.rule)
		return
	}
	rg = trace.StartRegion(ctx, "identify")
	id, st := s.identify(r, c)
	rg.End()
	if st != nil {
		s.fail(w, c, st.err, st.rule)
		return
	}
	rg = trace.StartRegion(ctx, "authorize")
	d, st := s.authorize(r, c, id)
	if st == nil {
		st = s.recordIntent(c, d)
	}
	rg.End()
	if st != nil {
		s.fail(w, c, st.err, st.rule)
		return
	}
	rg = trace.StartRegion(ctx, "inspect")
	dryRunDeny, st := s.inspect(r, c, d, id)
	rg.End()
	if st != nil {
		s.fail(w, c, st.err, st.rule)
		return
	}
	rg = trace.StartRegion(ctx, "budget")
	st = s.reserveBudget(r.Context(), c, d)
	rg.End()
	if st != nil {
		s.fail(w, c, st.err, st.rule)
		return
	}
	c.forwarding(!d.Allow || dryRunDeny) // a dry-run app's denial is recorded and the call forwarded anyway
	rg = trace.StartRegion(ctx, "forward")
	s.forward(w, r, c)
	rg.End()
}

// end writes c's record, then releases its body and ends its trace task:
// serve's deferred steps, run when serve returns or, for a stream detached
// from it, when the stream ends.
func (s *Server) end(c *call, buf *bodyBuf, task *trace.Task) {
	s.finish(c)
	s.releaseBody(c, buf)
	if task != nil {
		task.End()
	}
}

// releaseBody returns the body buffer to the pool once the call is done.
func (s *Server) releaseBody(c *call, buf *bodyBuf) {
	c.awaitPromptHash() // it may still be reading buf
	c.awaitPrescan()    // so may the stamp's scan
	// A forwarded body may still be in the transport's hands after
	// RoundTrip returns (net/http may finish writing it in another
	// goroutine when the upstream answers early). Read through sharedBody
	// readers, it holds references and the last one to let go pools the
	// buffer; read any other way out of buf, buf is left to the garbage
	// collector.
	if !(c.forwarded && !c.sharedFwd && sharesArray(c.body, buf.Bytes())) {
		buf.release()
	}
	c.res.release()
}

// parse: the route, operation and model id from the path (and, for
// StartAsyncInvoke, the body); an intercepted call's host checks; the body,
// read whole before anything is forwarded, so a request is either forwarded
// complete or not at all.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, c *call, buf *bodyBuf) *stop {
	// EscapedPath re-validates RawPath on every call: take it once.
	c.escapedPath = r.URL.EscapedPath()
	svc := bedrock.ServiceRuntime
	if c.via != nil {
		svc = c.via.host.Service
	}
	c.errShape = bedrock.PathErrorShape(svc, c.escapedPath)
	// Agent-runtime paths first (by the intercepted host, or the path's
	// first segment): ParseEndpointRoute never sees them (FuzzAgentDispatch).
	if isAgentCall(c) {
		return s.parseAgent(w, r, c, buf) // agent.go
	}
	var route bedrock.Route
	var err error
	if c.via != nil {
		// An intercepted call: only the paths of the service its host names.
		route, err = bedrock.ParseServiceRoute(c.via.host.Service, r.Method, c.escapedPath, r.URL.RawQuery)
	} else {
		route, err = bedrock.ParseEndpointRoute(r.Method, c.escapedPath, r.URL.RawQuery)
	}
	if err != nil {
		return stopWith(err, "route")
	}
	c.route = route
	c.errShape = route.Op.ErrorShape()
	c.rec.Operation = string(route.Op)
	if svc := route.OnService(); svc != bedrock.ServiceRuntime {
		base, _, ok := s.upstreamFor(svc)
		if !ok {
			return stopWith(bedrock.Validation("warden: %s has no endpoint in %s, and upstream names none", svc, s.region), "upstream")
		}
		c.rec.Path.Upstream, c.rec.Path.UpstreamVPCEndpoint = base.Host, ""
	}
	if c.via != nil {
		if err := s.checkIntercepted(r, c, c.via); err != nil {
			return stopWith(err, "intercept")
		}
	}
	if err := s.readBody(w, r, buf, c); err != nil {
		return stopWith(err, "limits.max_body_bytes") // unless readBody named the limit
	}
	c.body = buf.Bytes()
	c.rec.BytesIn = int64(len(c.body))
	c.hashPrompt(c.body) // as the app sent it, before any mask or stamp (awaited before a stamp in place)
	c.startPrescan()

	rawModel := route.RawModel
	if route.Op.BodyModel() {
		// The OpenAI-compatible and Anthropic Messages APIs name the model
		// in the body; whether they stream is the body's "stream".
		if rawModel, err = bedrock.BodyModel(route.Op, c.body); err != nil {
			return stopWith(err, "route")
		}
	}
	if route.Op == bedrock.OpStartAsyncInvoke {
		if rawModel, err = bedrock.AsyncInvokeModel(c.body); err != nil {
			return stopWith(err, "route")
		}
		if c.asyncOutput, err = bedrock.AsyncOutputURI(c.body); err != nil {
			return stopWith(err, "route")
		}
	}
	switch {
	case route.RawModel != "":
		c.model = &c.route.Model // classified by ParseRoute
	case rawModel != "":
		m, err := bedrock.ParseModelID(rawModel)
		if err != nil {
			c.rec.Model = rawModel
			return stopWith(err, "model-id")
		}
		c.model = &m
	}
	if c.model != nil {
		c.rec.Model = c.model.Raw
		c.rec.ModelCanonical = c.model.Canonical
	}
	return nil
}

// identify: who is calling (presented credentials first, then the listed
// sources). A lookup over its limits is a throttle, not a verdict on the
// caller; a credential that fails is a denial.
func (s *Server) identify(r *http.Request, c *call) (identity.Identity, *stop) {
	if identity.PresentsBedrockAPIKey(r) {
		// Never forwarded, never logged: the key is the app's way around Warden.
		return identity.Identity{}, stopWith(bedrock.AccessDenied("warden: the request carries an Amazon Bedrock API key (ABSK… or bedrock-api-key-…); "+
			"Warden refuses them, since they reach Bedrock without Warden: revoke it and use a Warden-issued key (warden keys issue --format bearer)"), "identity.bedrock-api-key")
	}
	conn := connOf(r, c.body)
	conn.Redirected = c.via != nil && c.via.redirected
	id, err := s.identity.Resolve(r.Context(), conn)
	c.rec.Path.VPCEndpoint = conn.VPCEndpoint
	if err == nil {
		callerPath(&c.rec.Path, id)
	}
	if err != nil && isLookupLimited(err) {
		// Not a verdict on the caller: the SDKs retry a throttle.
		return id, stopWith(bedrock.Throttling("warden: workload identity not verified yet: %v", err), "identity-lookup-limit")
	}
	if err != nil && !errors.Is(err, identity.ErrNoIdentity) {
		return id, stopWith(bedrock.AccessDenied("warden: workload identity could not be verified: %v", err), "identity")
	}
	if c.accessKeyID != "" {
		// Recorded and selectable, but claimed: Warden has not verified the
		// signature (the upstream does), so the tag is weak.
		id = id.WithTag(identity.TagAWSAccessKey, identity.WeakTag("passthrough", c.accessKeyID))
	}
	c.rec.IdentitySource = id.Source
	c.rec.IdentityStale = id.Stale
	c.rec.Tags = id.TagValues()
	c.rec.WeakTags = id.WeakTagNames()
	return id, nil
}

// callerPath fills the caller's side of a record's network path from the
// identity's strong tags: what the platform vouches for, never what the
// workload claims.
func callerPath(p *audit.Path, id identity.Identity) {
	strong := func(k string) string {
		if t, ok := id.Tags[k]; ok && t.Strong {
			return t.Value
		}
		return ""
	}
	p.Account = strong(identity.TagAWSAccount)
	p.VPC = strong(identity.TagAWSVPC)
	p.Subnet = strong(identity.TagAWSSubnet)
	p.ENI = strong(identity.TagAWSENI)
	if p.VPCEndpoint == "" {
		p.VPCEndpoint = strong(identity.TagAWSVPCE)
	}
}

// authorize: the policy's decision (indirect model ids resolved first, for
// selected callers only), async job ownership, and the app's own body
// limit. A dry-run app's denial goes on, to be recorded and forwarded.
func (s *Server) authorize(r *http.Request, c *call, id identity.Identity) (policy.Decision, *stop) {
	d := s.decide(r.Context(), id, c, policy.Call{Op: c.route.Op, Model: c.model, S3OutputURI: c.asyncOutput, Agent: c.agent})
	d = policy.CheckAsyncOwner(r.Context(), s.async, d, c.route.Op, c.route.InvocationARN)
	d = policy.CheckAgentOwner(r.Context(), s.async, d, c.agent) // sessions and memory are per app
	c.rec.App = d.App
	s.recordEndUser(c) // metadata.go
	c.record(verdict{rule: d.Rule, reason: d.Reason})
	if !d.Allow && !d.DryRun {
		return d, stopWith(bedrock.AccessDenied("%s", d.Reason), d.Rule)
	}
	if rule, err := d.CheckBody(len(c.body)); err != nil {
		c.record(verdict{rule: rule})
		return d, stopWith(err, rule)
	}
	return d, nil
}

// inspect: the input guards (block, mask, record; Bedrock ApplyGuardrail),
// the app's caps and guardrail, and the metadata stamp. dryRunDeny says a
// dry-run app's guard or cap would have denied the call.
func (s *Server) inspect(r *http.Request, c *call, d policy.Decision, id identity.Identity) (dryRunDeny bool, _ *stop) {
	if c.agent != nil {
		return s.inspectAgent(r, c, d) // agent.go
	}
	dryRunDeny, err := s.applyInputGuards(r.Context(), c, d)
	if err != nil {
		return false, stopWith(err, "guards")
	}
	capDryRunDeny, err := s.applyCaps(r, c, d) // apps[].limits caps, apps[].bedrock_guardrail
	if err != nil {
		return false, stopWith(err, "app.limits")
	}
	s.measureForBudget(c, d) // from the body the caps read, before the stamp rewrites it
	if c.passthrough {
		// The caller's signature covers body and headers as sent: nothing is stamped.
	} else if err := s.stampMetadata(r, c, d.App, id.Source); err != nil {
		c.record(verdict{rule: "request-metadata"})
		return false, stopWith(err, "request-metadata")
	}
	return dryRunDeny || capDryRunDeny, nil
}

// isLookupLimited reports an identity lookup refused by its rate limit (a
// function of its own, so the errors.As target is allocated only on the
// error path).
func isLookupLimited(err error) bool {
	var lim *identity.LookupLimitedError
	return errors.As(err, &lim)
}

// recordIntent: the call's intent, durable before anything of the call
// leaves Warden (the Bedrock guard kind already sends the prompt to
// ApplyGuardrail), so a crash from here on still leaves a record. A full
// spool refuses the call (audit.spool.on_full: deny).
func (s *Server) recordIntent(c *call, d policy.Decision) *stop {
	// A recovered intent says what was decided before the crash; the
	// record says deny until the guards and caps pass.
	c.forwarding(!d.Allow)
	err := s.audit.Begin(&c.rec)
	c.denied("", "")
	if err == nil {
		s.startCapture(c, d.App) // the body as the app sent it
		return nil
	}
	// The spool's rule replaces the policy's: it is why the call ends.
	rule := "audit.spool"
	if errors.Is(err, audit.ErrShareFull) {
		rule = "audit.spool.share"
	}
	c.record(verdict{rule: rule})
	switch {
	case errors.Is(err, audit.ErrShareFull):
		// Only this app's share: the others' calls still go through.
		who := "app " + d.App + " (its share, audit.spool.share.per_app"
		if d.App == "" {
			who = "calls no app selects (their share, audit.spool.share.unidentified"
		}
		return stopWith(bedrock.ServiceUnavailable("warden: the audit spool is full for %s, holds records the sinks have not taken yet); the call was not forwarded", who), rule)
	case errors.Is(err, audit.ErrSpoolFull):
		return stopWith(bedrock.ServiceUnavailable("warden: the audit spool is full (its sinks are behind); the call was not forwarded"), rule)
	default:
		return stopWith(bedrock.ServiceUnavailable("warden: the call's audit intent could not be written (%v); the call was not forwarded", err), rule)
	}
}

// answered notes a response body the app was sent whole: its hash for the
// record, and a copy for capture.
func (c *call) answered(body []byte) {
	c.rec.ResponseSHA256 = sha256Hex(body)
	if c.capture != nil {
		c.capture.addResp(body)
	}
}

// sharesArray reports whether a and b are views of one backing array (a
// stamped Converse body is a new array, so its read buffer can be reused).
func sharesArray(a, b []byte) bool {
	if cap(a) == 0 || cap(b) == 0 {
		return false
	}
	return &a[:cap(a)][cap(a)-1] == &b[:cap(b)][cap(b)-1]
}

// readBody reads the request body into buf, bounded by the configured
// size, the body budget (it grows with the bytes received, never with what
// the client declares) and the progress bounds (limits.body_idle_timeout,
// limits.body_min_rate).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, buf *bodyBuf, c *call) error {
	if r.ContentLength > s.maxBody {
		return bedrock.Validation("warden: request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.maxBody)
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return bedrock.Validation("warden: Content-Encoding %q is not supported; send the body uncompressed", enc)
	}
	cs := connStateFrom(r.Context())
	var src sourceKey
	if cs != nil && cs.srcKnown.Load() {
		src = sourceKey{cs.vpce, cs.src}
	}
	c.res = s.budget.newReservation(src, cs)
	if r.ContentLength == 0 {
		return nil
	}
	first := int64(bodyChunk) // what the client declares is not reserved, only a small chunk
	if r.ContentLength > 0 {
		first = min(first, r.ContentLength)
	}
	if err := c.res.grow(first); err != nil {
		return s.budgetRefused(c, err, false)
	}
	buf.Grow(int(first))
	br := &c.br
	br.r, br.res = r.Body, &c.res
	br.watch(s.limits.BodyIdleTimeout, s.limits.BodyMinRate, w)
	if r.ContentLength >= longBody {
		// A long prompt is hashed as it arrives, beside the read. Should
		// the read panic, the feed still stops before the buffer can be
		// pooled again.
		br.feed = newDigestFeed()
		defer func() {
			if f := br.feed; f != nil {
				br.feed = nil
				f.abort()
			}
		}()
	}
	n, err := buf.ReadFrom(io.LimitReader(br, s.maxBody+1))
	br.stopWatch()
	if f := br.feed; f != nil {
		br.feed = nil
		if err != nil || br.err != nil || br.cutLimit() != "" || n > s.maxBody {
			f.abort()
		} else {
			f.finish(buf.Bytes())
			c.digest, c.promptDone, c.digestFed = f.d, f.done, true
		}
	}
	if br.err != nil {
		return s.budgetRefused(c, br.err, false)
	}
	if cut := br.cutLimit(); cut != "" {
		// The deadline that unblocked the read stays: the connection is
		// done (net/http closes it after this answer).
		s.limitMetrics.refusals.WithLabelValues(cut).Inc()
		c.record(verdict{rule: "limits." + cut})
		return bedrock.New(http.StatusRequestTimeout, "RequestTimeoutException",
			"warden: the request body arrived too slowly (%d bytes read; limits.body_idle_timeout %s, limits.body_min_rate %d bytes/s)",
			n, s.limits.BodyIdleTimeout, s.limits.BodyMinRate)
	}
	if err != nil {
		return bedrock.Validation("warden: reading request body: %v", err)
	}
	if n > s.maxBody {
		return bedrock.Validation("warden: request body exceeds the limit of %d bytes", s.maxBody)
	}
	return nil
}

// budgetRefused counts a body budget refusal, records which share refused
// it, and says it to the client (answer: while buffering the answer).
func (s *Server) budgetRefused(c *call, err error, answer bool) error {
	var be *errBudget
	if !errors.As(err, &be) {
		return err
	}
	be.answer = answer
	s.limitMetrics.refusals.WithLabelValues(be.limit).Inc()
	c.record(verdict{rule: "limits." + be.limit})
	return be.apiError()
}

// fail answers with an AWS-shaped error and records why.
func (s *Server) fail(w http.ResponseWriter, c *call, err error, rule string) {
	var apiErr *bedrock.APIError
	if !errors.As(err, &apiErr) {
		apiErr = bedrock.InternalServer("warden: %v", err)
	}
	c.failed(rule, apiErr.Message)
	c.rec.Status = apiErr.Status
	c.rec.ErrorType = apiErr.Type
	c.answered(writeAPIErrorAs(w, c.requestID, apiErr, c.errShape))
}

// writeAPIError answers with e and returns the body it wrote.
func writeAPIError(w http.ResponseWriter, requestID string, e *bedrock.APIError) []byte {
	return writeAPIErrorAs(w, requestID, e, bedrock.ErrorAWS)
}

// writeAPIErrorAs answers with e in the body shape of the caller's API (the
// OpenAI and Anthropic SDKs raise their typed errors from their own).
func writeAPIErrorAs(w http.ResponseWriter, requestID string, e *bedrock.APIError, shape bedrock.ErrorAPI) []byte {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-ErrorType", e.Type)
	h.Set("X-Amzn-Requestid", requestID)
	body := e.BodyFor(shape)
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
	return body
}

// finish emits the call's one audit record and its metrics. It runs before
// the handler returns, and the server sends what it still buffers of the
// response only after that: the records of one client's sequential calls are
// in order, and a unary answer normally completes only once its record exists.
func (s *Server) finish(c *call) {
	defer trace.StartRegion(c.tctx, "record").End()
	c.rec.Latency = time.Since(c.start)
	c.awaitPromptHash()
	if c.rec.PolicyHash == "" { // failed before the policy was consulted
		if snap := s.snap.Load(); snap != nil {
			c.rec.PolicyHash, c.rec.PolicySerial = snap.hash, snap.serial
		}
	}
	s.settleBudget(c)
	s.audit.Write(&c.rec)
	s.finishCapture(c)
	s.metrics.observe(&c.rec)
}

func connOf(r *http.Request, body []byte) *identity.Conn {
	c := &identity.Conn{Request: r, Body: body}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.Remote = ap
	}
	if cs := connStateFrom(r.Context()); cs != nil && cs.srcKnown.Load() {
		c.VPCEndpoint = cs.vpce
	}
	return c
}

// newRequestID returns a random UUIDv4. Request ids must be unique, not
// secret, so the runtime's per-thread ChaCha8 generator serves (no syscall).
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// forwardHeader names the only client headers that reach the upstream
// (canonical forms): what the Bedrock runtime reads (reference §1), plus SDK
// bookkeeping. Anything else — credentials, hop-by-hop, compression, and any
// X-Amzn-Bedrock-* header Bedrock adds later until Warden knows what it does
// — is dropped, fail closed.
func forwardHeader(name string) bool {
	switch name {
	case "Content-Type", "Accept", "User-Agent", "X-Amz-User-Agent", "X-Amzn-Trace-Id",
		"Amz-Sdk-Invocation-Id", "Amz-Sdk-Request",
		"X-Amzn-Bedrock-Accept", "X-Amzn-Bedrock-Trace",
		"X-Amzn-Bedrock-Guardrailidentifier", "X-Amzn-Bedrock-Guardrailversion",
		"X-Amzn-Bedrock-Performanceconfig-Latency", "X-Amzn-Bedrock-Service-Tier",
		"X-Amzn-Bedrock-Request-Metadata",
		// Anthropic's Messages API reads its version and beta flags here.
		"Anthropic-Version", "Anthropic-Beta":
		return true
	}
	return false
}

// upstreamPath rebuilds the path from the parsed route: the upstream sees
// exactly the operation and model Warden authorised, in the SDKs' encoding,
// whatever spelling the client used. It returns the escaped and decoded forms.
func upstreamPath(rt bedrock.Route, escapedPath string) (escaped, decoded string, err error) {
	if rt.Path != "" {
		escapedPath = rt.Path // an endpoint-mode prefix removed, or /anthropic added
	}
	if rt.RawModel == "" {
		decoded, err = url.PathUnescape(escapedPath)
		return escapedPath, decoded, err
	}
	suffix := escapedPath[strings.LastIndexByte(escapedPath, '/'):] // "/converse": operation names need no escaping
	return "/model/" + escapeLabel(rt.RawModel) + suffix, "/model/" + rt.RawModel + suffix, nil
}

func (s *Server) newUpstreamRequest(ctx context.Context, r *http.Request, c *call) (*http.Request, error) {
	if c.passthrough {
		return s.newPassthroughRequest(ctx, r, c)
	}
	escaped, decoded, err := upstreamPath(c.route, c.escapedPath)
	if err != nil {
		return nil, err
	}
	base, signer, ok := s.upstreamFor(c.route.OnService())
	if !ok { // parse refuses such a call first
		return nil, fmt.Errorf("no upstream for %s", c.route.OnService())
	}
	u := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: decoded, RawPath: escaped, RawQuery: r.URL.RawQuery}
	body := c.body
	req := (&http.Request{
		Method:     r.Method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, 12),
		Host:       u.Host,
	}).WithContext(ctx)
	setBody(req, c, body, s.shareBody(c, len(body)))
	for k, vs := range r.Header {
		if forwardHeader(k) {
			req.Header[k] = vs
		}
	}
	if c.metaHeader != "" {
		req.Header[metadataHeader] = []string{c.metaHeader}
	}
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieving Warden's AWS credentials: %w", err)
	}
	sum := c.payloadSum(body)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	if err := signer.Sign(req, escaped, string(hexSum[:]), creds, time.Now()); err != nil {
		return nil, err
	}
	return req, nil
}

// setBody gives req the call's whole body. It stays an
// io.NopCloser(*bytes.Reader), a type net/http knows is in memory, so the
// headers and a small body leave in one write.
func setBody(req *http.Request, c *call, body []byte, share bool) {
	if len(body) == 0 && req.Method == http.MethodGet {
		return
	}
	if buf := c.buf; buf != nil && share && sharesArray(body, buf.Bytes()) {
		// Read out of the call's pooled buffer (bodybuf.go).
		// The handler holds buf: its generation is this call's.
		gen := buf.gen.Load()
		sb, err := newSharedBody(buf, gen, body)
		if err == nil {
			c.sharedFwd = true
			req.Body = sb
			req.ContentLength = int64(len(body))
			req.GetBody = func() (io.ReadCloser, error) { return newSharedBody(buf, gen, body) }
			return
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if len(body) == 0 {
		req.Body = http.NoBody
	}
}

// newPassthroughRequest forwards the caller's request as signed: the same
// escaped path, query, Host and body, the caller's SigV4 headers, and only
// the headers Warden forwards at all (checkIntercepted made sure every
// signed one is among them). It goes to upstream.url when one is set, else
// to the intercepted host itself.
func (s *Server) newPassthroughRequest(ctx context.Context, r *http.Request, c *call) (*http.Request, error) {
	decoded, err := url.PathUnescape(c.escapedPath)
	if err != nil {
		return nil, err
	}
	target := s.upstream
	switch svc := c.route.OnService(); {
	case svc != bedrock.ServiceRuntime && s.serviceURLSet(svc):
		target, _, _ = s.upstreamFor(svc) // set, so present
	case svc != bedrock.ServiceRuntime, s.cfg.Upstream.URL == "":
		target = &url.URL{Scheme: "https", Host: c.via.host.Host}
	}
	u := &url.URL{Scheme: target.Scheme, Host: target.Host, Path: decoded, RawPath: c.escapedPath, RawQuery: r.URL.RawQuery}
	body := c.body
	req := (&http.Request{
		Method: r.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, 16),
		Host:   r.Host, // signed: kept as the caller sent it
	}).WithContext(ctx)
	setBody(req, c, body, len(body) >= longBody)
	for k, vs := range r.Header {
		if forwardHeader(k) || passthroughHeader(k) {
			req.Header[k] = vs
		}
	}
	return req, nil
}
