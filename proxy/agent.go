package proxy

// The agent runtime (bedrock-agent-runtime: InvokeAgent, Retrieve,
// RetrieveAndGenerate, InvokeFlow, …) on the request path. Endpoint mode
// serves it on the same listener as the runtime, chosen by the path's first
// segment (no runtime path starts with one of the agent runtime's; the two
// parsers are fuzzed disjoint); forward-proxy and transparent modes
// intercept the agent-runtime host and parse only its routes. Calls go to
// upstream.agent_runtime_url, signed for service "bedrock" as runtime calls
// are.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
)

// agentPathSegments are the first path segments of the agent runtime's
// operations (aws-sdk-go-v2/service/bedrockagentruntime's serializers).
func agentPathSegment(seg string) bool {
	switch seg {
	case "agents", "knowledgebases", "flows", "sessions", "tags",
		"retrieveAndGenerate", "retrieveAndGenerateStream", "rerank", "generateQuery", "optimize-prompt":
		return true
	}
	return false
}

// isAgentCall says whether c is an agent-runtime call: by the intercepted
// host, or in endpoint mode by the path's first segment.
func isAgentCall(c *call) bool {
	if c.via != nil {
		return c.via.host.Service == bedrock.ServiceAgentRuntime
	}
	seg := strings.TrimPrefix(c.escapedPath, "/")
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg = seg[:i]
	}
	return agentPathSegment(seg)
}

// parseAgent is parse for an agent-runtime call: the route, the intercepted
// host, the body read whole, and every fact the body names (a body that is
// not strict JSON is refused here, before anyone is asked about it).
func (s *Server) parseAgent(w http.ResponseWriter, r *http.Request, c *call, buf *bodyBuf) *stop {
	ar, err := bedrock.ParseAgentRoute(r.Method, c.escapedPath, r.URL.RawQuery)
	if err != nil {
		return stopWith(err, "route")
	}
	c.route = bedrock.Route{Op: ar.Op, Service: bedrock.ServiceAgentRuntime}
	c.rec.Operation = string(ar.Op)
	c.rec.Path.Upstream, c.rec.Path.UpstreamVPCEndpoint = s.agentUpstream.Host, ""
	if h, err := bedrock.ParseAgentRuntimeHost(s.agentUpstream.Host); err == nil && h.VPCE {
		c.rec.Path.UpstreamVPCEndpoint = h.VPCEndpointID
	}
	c.rec.Agent = &audit.AgentFields{AgentID: ar.AgentID, AgentAliasID: ar.AgentAliasID, FlowID: ar.FlowID, FlowAliasID: ar.FlowAliasID, SessionID: ar.SessionID}
	if ar.KnowledgeBaseID != "" {
		c.rec.Agent.KnowledgeBases = []string{ar.KnowledgeBaseID}
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
	c.hashPrompt(c.body)
	facts, err := bedrock.AgentRequestFacts(ar.Op, c.body)
	if err != nil {
		return stopWith(err, "agent-request")
	}
	c.agent = &policy.AgentCall{Route: ar, Facts: facts, Models: policy.AgentModels(&facts)}
	for _, kb := range facts.KnowledgeBases {
		if !contains(c.rec.Agent.KnowledgeBases, kb.Value) {
			c.rec.Agent.KnowledgeBases = append(c.rec.Agent.KnowledgeBases, kb.Value)
		}
	}
	for _, m := range facts.Models {
		c.rec.Agent.Models = append(c.rec.Agent.Models, m.Value)
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// resolveAgentModels resolves the indirect models an agent-runtime body
// names, as decide resolves a runtime call's model: only for a caller some
// app selects, and not for a re-pointable id the app refuses. A failure
// leaves the model unresolved, which the policy denies.
func (s *Server) resolveAgentModels(ctx context.Context, snap *snapshot, id identity.Identity, ac *policy.AgentCall) {
	for i := range ac.Models {
		m := &ac.Models[i]
		if m.ID == nil || !m.ID.Indirect() || m.ID.Kind == bedrock.KindSageMakerEndpoint || !snap.policy.Resolves(id, m.ID) {
			continue
		}
		if res, err := s.models.Lookup(ctx, *m.ID); err == nil {
			m.Foundations, m.Regions, m.Resolved = res.Foundations, res.Regions, true
		}
	}
}

// checkAgentContent relays policy.AgentUnsupported, which refuses an
// agent-runtime call of an app whose calls must be capped or metered in ways
// Warden does not apply to agent-runtime bodies (caps, an attached Bedrock
// guardrail, token or cost budgets), to the record and the caller. Guards do
// apply (input guards on the request, output guards on the answer and its
// stream: applyInputGuards, outputGuards). A dry-run app's call is recorded
// as the denial it would have been and forwarded.
func (s *Server) checkAgentContent(c *call, d policy.Decision) (dryRunDeny bool, _ *stop) {
	if c.snap == nil {
		return false, nil
	}
	lim := c.snap.budgets[d.App]
	deny, refused := policy.AgentUnsupported(d, c.snap.appConfig(d.App), lim != nil && lim.Tokens(), c.route.Op)
	if !refused {
		return false, nil
	}
	if deny.DryRun {
		if d.Allow {
			c.record(verdict{rule: deny.Rule, reason: deny.Reason})
		}
		return true, nil
	}
	c.record(verdict{rule: deny.Rule})
	return false, stopWith(bedrock.AccessDenied("%s", deny.Reason), deny.Rule)
}

// inspectAgent is inspect for an agent-runtime call: what Warden cannot
// apply refuses the call (checkAgentContent), then the input guards read
// the body (bedrock.ExtractRequest's agent shapes: inputText, session and
// prompt-session attributes, retrieval queries, flow inputs…; never the
// identifiers policy checked). Caps and the metadata stamp do not apply.
func (s *Server) inspectAgent(r *http.Request, c *call, d policy.Decision) (dryRunDeny bool, _ *stop) {
	dryRunDeny, st := s.checkAgentContent(c, d)
	if st != nil {
		return false, st
	}
	guardDryRun, err := s.applyInputGuards(r.Context(), c, d)
	if err != nil {
		return false, stopWith(err, "guards")
	}
	return dryRunDeny || guardDryRun, nil
}

// agentStreamError is the exception an agent-runtime stream ends with for
// e: the agent streams' unions have no modelStreamErrorException, which
// the SDKs would surface as an untyped error. A guard's block is an
// accessDeniedException; anything else Warden ends a stream with (an idle
// upstream) a dependencyFailedException. Both are in every agent stream's
// union.
func agentStreamError(c *call, e *bedrock.APIError, rule string) *bedrock.APIError {
	if c.agent == nil || e.Type != bedrock.TypeModelStreamError {
		return e
	}
	if strings.HasPrefix(rule, "guards") {
		return bedrock.AccessDenied("%s", e.Message)
	}
	return bedrock.New(http.StatusFailedDependency, "DependencyFailedException", "%s", e.Message)
}

// agentAnswerOwnership runs on an agent-runtime call's 2xx answer before
// it is relayed: the session ids Bedrock generates become the app's
// (CreateSession's sessionId, RetrieveAndGenerate's, the stream's
// X-Amzn-Bedrock-Knowledge-Base-Session-Id header), and ListSessions'
// summaries are filtered down to the app's sessions. A unary body it reads
// is put back for the relay (and the output guards). An error is the
// answer for the client: an unfilterable ListSessions is not relayed.
func (s *Server) agentAnswerOwnership(c *call, resp *http.Response) error {
	ctx := resp.Request.Context()
	remember := func(key string) {
		if err := s.async.Remember(ctx, key, c.rec.App); err != nil {
			// The session exists, but no replica will let the app use it.
			s.log.Warn("remembering an agent-runtime session's owner failed", zapErr(err), zapReq(c.requestID))
		}
	}
	switch c.route.Op {
	case bedrock.OpRetrieveAndGenerateStream:
		if id := resp.Header.Get("X-Amzn-Bedrock-Knowledge-Base-Session-Id"); id != "" {
			remember(policy.AgentKBSessionKey(id))
		}
		return nil
	case bedrock.OpCreateSession, bedrock.OpRetrieveAndGenerate, bedrock.OpListSessions:
	default:
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAsyncResponse+1))
	if err != nil || len(body) > maxAsyncResponse {
		return bedrock.ServiceUnavailable("warden: reading the upstream %s response failed", c.route.Op)
	}
	var out struct {
		SessionID string `json:"sessionId"`
	}
	switch c.route.Op {
	case bedrock.OpCreateSession:
		if json.Unmarshal(body, &out) == nil && out.SessionID != "" {
			remember(policy.AgentSessionKey(out.SessionID))
		}
	case bedrock.OpRetrieveAndGenerate:
		if json.Unmarshal(body, &out) == nil && out.SessionID != "" {
			remember(policy.AgentKBSessionKey(out.SessionID))
		}
	case bedrock.OpListSessions:
		filtered, err := s.filterSessions(ctx, body, c.rec.App)
		if err != nil {
			s.log.Warn("filtering ListSessions", zapErr(err), zapReq(c.requestID))
			return bedrock.InternalServer("warden: the upstream ListSessions response could not be filtered to the app's sessions")
		}
		body = filtered
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// filterSessions drops the summaries of sessions app did not create,
// keeping every other member (nextToken) as sent.
func (s *Server) filterSessions(ctx context.Context, body []byte, app string) ([]byte, error) {
	return s.filterOwned(ctx, body, app, "sessionSummaries", func(raw json.RawMessage) (string, error) {
		var sum struct {
			SessionID string `json:"sessionId"`
		}
		if err := json.Unmarshal(raw, &sum); err != nil || sum.SessionID == "" {
			return "", err
		}
		return policy.AgentSessionKey(sum.SessionID), nil
	})
}

// agentUpstreamURL is upstream.agent_runtime_url or the region's
// bedrock-agent-runtime endpoint.
func agentUpstreamURL(u config.UpstreamConfig, region string) (*url.URL, error) {
	raw := u.AgentRuntimeURL
	if raw == "" {
		var ok bool
		if raw, ok = bedrock.RegionalURL(bedrock.ServiceAgentRuntime, region); !ok {
			return nil, fmt.Errorf("upstream.region: %q has no bedrock-agent-runtime endpoint", region)
		}
	}
	if err := config.ValidateAgentRuntimeURL(raw, u.Insecure); err != nil {
		return nil, err
	}
	parsed, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	parsed.Path, parsed.RawPath = "", ""
	return parsed, nil
}
