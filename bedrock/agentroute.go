package bedrock

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ParseAgentRoute maps a bedrock-agent-runtime request's method, escaped
// path (r.URL.EscapedPath()) and raw query to an operation and its
// identifiers, with the same split as ParseRoute: a malformed path, query or
// identifier is a 400 ValidationException; a well-formed path that names no
// operation, or a known path with the wrong method, is a 403
// AccessDeniedException "unknown operation" that names the method and path.
//
// The templates are those of aws-sdk-go-v2/service/bedrockagentruntime's
// serializers, exactly: where a template ends in '/' (GetSession's
// "/sessions/{sessionIdentifier}/") the path must too, and where it does not
// (EndSession's "/sessions/{sessionIdentifier}") it must not. Identifiers may
// arrive percent-encoded as the SDKs send them or raw from hand-written
// clients; an ARN sent raw spans path segments and is recognised only where
// that is unambiguous. Query parameters are those the operation takes, each
// at most once (UntagResource's tagKeys may repeat).
func ParseAgentRoute(method, escapedPath, rawQuery string) (AgentRoute, error) {
	p, trailing := strings.CutSuffix(escapedPath, "/")
	if trailing && p == "" {
		p = "/" // "/" alone: let checkPath name it
		trailing = false
	}
	if err := checkPath(p); err != nil {
		// Name the path the caller sent, not the trimmed one.
		var ae *APIError
		if errors.As(err, &ae) && trailing {
			ae.Message = strings.Replace(ae.Message, quoteTrunc(p), quoteTrunc(escapedPath), 1)
		}
		return AgentRoute{}, err
	}
	r := agentRouter{method: method, path: escapedPath, query: rawQuery}
	return r.route(p, trailing)
}

type agentRouter struct {
	method, path, query string
}

func (r agentRouter) unknown() (AgentRoute, error) {
	return AgentRoute{}, AccessDenied("unknown operation: %q %q is not a Bedrock agent runtime operation Warden recognises", quoteTrunc(r.method), quoteTrunc(r.path))
}

// pick returns the operation the method selects among a template's
// operations, or the "method not allowed" refusal that names them all.
func (r agentRouter) pick(ops map[string]Operation) (Operation, error) {
	if op, ok := ops[r.method]; ok {
		return op, nil
	}
	names := make([]string, 0, len(ops))
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		if op, ok := ops[m]; ok {
			names = append(names, m+" "+string(op))
		}
	}
	return "", AccessDenied("unknown operation: method %q is not allowed on %q (%s)", quoteTrunc(r.method), quoteTrunc(r.path), strings.Join(names, ", "))
}

func (r agentRouter) route(p string, trailing bool) (AgentRoute, error) {
	var op Operation
	switch p {
	case "/retrieveAndGenerate":
		op = OpRetrieveAndGenerate
	case "/retrieveAndGenerateStream":
		op = OpRetrieveAndGenerateStream
	case "/rerank":
		op = OpRerank
	case "/generateQuery":
		op = OpGenerateQuery
	case "/optimize-prompt":
		op = OpOptimizePrompt
	}
	if op != "" {
		if trailing {
			return r.unknown()
		}
		return r.finish(AgentRoute{}, map[string]Operation{"POST": op})
	}
	switch {
	case strings.HasPrefix(p, "/agents/"):
		return r.agents(p[len("/agents/"):], trailing)
	case strings.HasPrefix(p, "/knowledgebases/"):
		return r.knowledgeBase(p[len("/knowledgebases/"):], trailing)
	case strings.HasPrefix(p, "/flows/"):
		return r.flows(p[len("/flows/"):], trailing)
	case p == "/sessions" || strings.HasPrefix(p, "/sessions/"):
		return r.sessions(strings.TrimPrefix(p[len("/sessions"):], "/"), trailing)
	case strings.HasPrefix(p, "/tags/"):
		return r.tags(p[len("/tags/"):], trailing)
	}
	return r.unknown()
}

// finish picks the operation by method, checks the query against what that
// operation takes, and fills in the query-bound identifiers.
func (r agentRouter) finish(out AgentRoute, ops map[string]Operation) (AgentRoute, error) {
	op, err := r.pick(ops)
	if err != nil {
		return AgentRoute{}, err
	}
	out.Op = op
	q, err := agentQuery(op, r.query)
	if err != nil {
		return AgentRoute{}, err
	}
	switch op {
	case OpGetAgentMemory:
		if q.memoryID == "" {
			return AgentRoute{}, Validation("GetAgentMemory requires the memoryId query parameter")
		}
		out.MemoryID = q.memoryID
	case OpDeleteAgentMemory:
		out.MemoryID, out.SessionID = q.memoryID, q.sessionID
	}
	return out, nil
}

// agents: /agents/{sessionId} (InvokeInlineAgent),
// /agents/{agentId}/agentAliases/{agentAliasId}/memories (Get/DeleteAgentMemory),
// /agents/{agentId}/agentAliases/{agentAliasId}/sessions/{sessionId}/text (InvokeAgent).
func (r agentRouter) agents(rest string, trailing bool) (AgentRoute, error) {
	seg := strings.Split(rest, "/")
	if trailing {
		return r.unknown()
	}
	switch {
	case len(seg) == 1:
		sid := unescape(seg[0])
		if why := checkAgentSessionID(sid); why != "" {
			return AgentRoute{}, Validation("invalid session id %q for InvokeInlineAgent: %s", quoteTrunc(sid), why)
		}
		return r.finish(AgentRoute{SessionID: sid}, map[string]Operation{"POST": OpInvokeInlineAgent})
	case len(seg) == 4 && seg[1] == "agentAliases" && seg[3] == "memories",
		len(seg) == 6 && seg[1] == "agentAliases" && seg[3] == "sessions" && seg[5] == "text":
	default:
		return r.unknown()
	}
	out := AgentRoute{AgentID: unescape(seg[0]), AgentAliasID: unescape(seg[2])}
	if !validAgentID(out.AgentID) {
		return AgentRoute{}, Validation("invalid agent id %q: want [0-9a-zA-Z]{1,10}", quoteTrunc(out.AgentID))
	}
	if !validAgentID(out.AgentAliasID) {
		return AgentRoute{}, Validation("invalid agent alias id %q: want [0-9a-zA-Z]{1,10}", quoteTrunc(out.AgentAliasID))
	}
	if len(seg) == 4 {
		return r.finish(out, map[string]Operation{"GET": OpGetAgentMemory, "DELETE": OpDeleteAgentMemory})
	}
	out.SessionID = unescape(seg[4])
	if why := checkAgentSessionID(out.SessionID); why != "" {
		return AgentRoute{}, Validation("invalid session id %q for InvokeAgent: %s", quoteTrunc(out.SessionID), why)
	}
	return r.finish(out, map[string]Operation{"POST": OpInvokeAgent})
}

// knowledgeBase: /knowledgebases/{knowledgeBaseId}/retrieve.
func (r agentRouter) knowledgeBase(rest string, trailing bool) (AgentRoute, error) {
	id, ok := strings.CutSuffix(rest, "/retrieve")
	if !ok || trailing || strings.Contains(id, "/") {
		return r.unknown()
	}
	kb := unescape(id)
	if !validAgentID(kb) {
		return AgentRoute{}, Validation("invalid knowledge base id %q: want [0-9a-zA-Z]{1,10}", quoteTrunc(kb))
	}
	return r.finish(AgentRoute{KnowledgeBaseID: kb}, map[string]Operation{"POST": OpRetrieve})
}

// flows: /flows/{flowIdentifier}/aliases/{flowAliasIdentifier}, where either
// may be a raw ARN with '/' in it; "/aliases/" occurs in neither.
func (r agentRouter) flows(rest string, trailing bool) (AgentRoute, error) {
	if trailing || strings.Count(rest, "/aliases/") != 1 {
		return r.unknown()
	}
	f, a, _ := strings.Cut(rest, "/aliases/")
	// A raw ARN spans a known number of segments (flow/ID; flow/ID/alias/ID);
	// anything more is a path Warden does not know (newer SDKs add
	// ".../executions"), not a malformed identifier.
	if !rawARNSegments(f, 1) || !rawARNSegments(a, 3) {
		return r.unknown()
	}
	flow, alias := unescape(f), unescape(a)
	for _, v := range [][2]string{{flow, "flow identifier"}, {alias, "flow alias identifier"}} {
		if err := checkDecoded(v[0], v[1]); err != nil {
			return AgentRoute{}, err
		}
	}
	out := AgentRoute{}
	fa, why := parseFlowIdentifier(flow)
	if why != "" {
		return AgentRoute{}, Validation("invalid flow identifier %q: %s", quoteTrunc(flow), why)
	}
	out.FlowID = fa.id
	if fa.arn {
		out.FlowARN = flow
	}
	aa, why := parseFlowAliasIdentifier(alias)
	if why != "" {
		return AgentRoute{}, Validation("invalid flow alias identifier %q: %s", quoteTrunc(alias), why)
	}
	out.FlowAliasID = aa.alias
	if aa.arn {
		out.FlowAliasARN = alias
		// An alias ARN names its flow: it must be the flow in the path, or
		// Warden could authorise one flow while Bedrock runs another.
		if aa.id != out.FlowID || fa.arn && (fa.partition != aa.partition || fa.region != aa.region || fa.account != aa.account) {
			return AgentRoute{}, Validation("flow alias %q does not belong to flow %q", quoteTrunc(alias), quoteTrunc(flow))
		}
	}
	return r.finish(out, map[string]Operation{"POST": OpInvokeFlow})
}

// sessions: the sessions API. rest is what follows "/sessions/" (without a
// trailing '/', which trailing reports).
//
//	/sessions/                                         PUT CreateSession, POST ListSessions
//	/sessions/{id}/                                    GET GetSession, PUT UpdateSession, DELETE DeleteSession
//	/sessions/{id}                                     PATCH EndSession
//	/sessions/{id}/invocations/                        PUT CreateInvocation, POST ListInvocations
//	/sessions/{id}/invocationSteps/                    PUT PutInvocationStep, POST ListInvocationSteps
//	/sessions/{id}/invocationSteps/{invocationStepId}  POST GetInvocationStep
func (r agentRouter) sessions(rest string, trailing bool) (AgentRoute, error) {
	if rest == "" {
		if !trailing {
			return r.unknown()
		}
		return r.finish(AgentRoute{}, map[string]Operation{"PUT": OpCreateSession, "POST": OpListSessions})
	}
	seg := strings.Split(rest, "/")
	out, n, err := takeSession(seg)
	if err != nil {
		return AgentRoute{}, err
	}
	tail := seg[n:]
	switch {
	case len(tail) == 0 && trailing:
		return r.finish(out, map[string]Operation{"GET": OpGetSession, "PUT": OpUpdateSession, "DELETE": OpDeleteSession})
	case len(tail) == 0:
		return r.finish(out, map[string]Operation{"PATCH": OpEndSession})
	case len(tail) == 1 && tail[0] == "invocations" && trailing:
		return r.finish(out, map[string]Operation{"PUT": OpCreateInvocation, "POST": OpListInvocations})
	case len(tail) == 1 && tail[0] == "invocationSteps" && trailing:
		return r.finish(out, map[string]Operation{"PUT": OpPutInvocationStep, "POST": OpListInvocationSteps})
	case len(tail) == 2 && tail[0] == "invocationSteps" && !trailing:
		out.InvocationStepID = unescape(tail[1])
		if !validUUID(out.InvocationStepID) {
			return AgentRoute{}, Validation("invalid invocation step id %q: want a UUID", quoteTrunc(out.InvocationStepID))
		}
		return r.finish(out, map[string]Operation{"POST": OpGetInvocationStep})
	}
	return r.unknown()
}

// takeSession reads a session identifier from the first path segments: a
// UUID, an SDK-encoded ARN (one segment), or a raw ARN
// "arn:…:session/UUID" (two segments). It returns how many it used.
func takeSession(seg []string) (AgentRoute, int, error) {
	v, n := unescape(seg[0]), 1
	if strings.HasPrefix(v, "arn:") && !strings.Contains(v, "/") && len(seg) > 1 {
		v, n = v+"/"+unescape(seg[1]), 2
	}
	id, arn, why := parseSessionIdentifier(v)
	if why != "" {
		return AgentRoute{}, 0, Validation("invalid session identifier %q: %s", quoteTrunc(v), why)
	}
	return AgentRoute{Session: id, SessionARN: arn}, n, nil
}

// tags: /tags/{resourceArn}, a session ARN (the only taggable resource of
// the agent runtime), raw or encoded.
func (r agentRouter) tags(rest string, trailing bool) (AgentRoute, error) {
	if trailing {
		return r.unknown()
	}
	v := unescape(rest)
	if err := checkDecoded(v, "resource ARN"); err != nil {
		return AgentRoute{}, err
	}
	if !strings.HasPrefix(v, "arn:") {
		return AgentRoute{}, Validation("invalid resource ARN %q: want arn:PARTITION:bedrock:REGION:ACCOUNT:session/ID", quoteTrunc(v))
	}
	id, arn, why := parseSessionIdentifier(v)
	if why != "" {
		return AgentRoute{}, Validation("invalid resource ARN %q: %s", quoteTrunc(v), why)
	}
	return r.finish(AgentRoute{Session: id, SessionARN: arn},
		map[string]Operation{"GET": OpListTagsForResource, "POST": OpTagResource, "DELETE": OpUntagResource})
}

// validAgentID: [0-9a-zA-Z]{1,10}, the API's pattern for agent, agent
// alias and knowledge base ids.
func validAgentID(s string) bool {
	if len(s) < 1 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// checkAgentSessionID: [0-9a-zA-Z._:-]{2,100}, the API's pattern for
// InvokeAgent's and InvokeInlineAgent's sessionId and for memoryId.
func checkAgentSessionID(s string) string {
	if len(s) < 2 || len(s) > 100 {
		return "want 2 to 100 characters"
	}
	if s == ".." {
		return "a '..' segment" // upstream path normalisers might resolve it
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return "want [0-9a-zA-Z._:-]"
		}
	}
	return ""
}

// validUUID: 8-4-4-4-12 hex digits.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if _, ok := unhex(s[i]); !ok {
				return false
			}
		}
	}
	return true
}

// parseSessionIdentifier: a UUID or arn:PARTITION:bedrock:REGION:ACCOUNT:session/UUID.
// It returns the bare UUID and the ARN ("" when a bare id was sent).
func parseSessionIdentifier(s string) (id, arn, why string) {
	if !strings.HasPrefix(s, "arn:") {
		if !validUUID(s) {
			return "", "", "want a UUID or a session ARN"
		}
		return s, "", ""
	}
	a, why := parseARN(s)
	if why != "" {
		return "", "", why
	}
	u, ok := strings.CutPrefix(a.Resource, "session/")
	if a.Service != "bedrock" || a.Account == "" || !ok || !validUUID(u) {
		return "", "", "want arn:PARTITION:bedrock:REGION:ACCOUNT:session/UUID"
	}
	return u, s, ""
}

// flowRef is a flow or flow alias identifier taken apart.
type flowRef struct {
	arn                        bool
	partition, region, account string
	id, alias                  string
}

// validFlowID: [0-9a-zA-Z]{10}.
func validFlowID(s string) bool { return len(s) == 10 && validAgentID(s) }

// parseFlowIdentifier: [0-9a-zA-Z]{10} or arn:PARTITION:bedrock:REGION:ACCOUNT:flow/ID.
func parseFlowIdentifier(s string) (flowRef, string) {
	if !strings.HasPrefix(s, "arn:") {
		if !validFlowID(s) {
			return flowRef{}, "want [0-9a-zA-Z]{10} or a flow ARN"
		}
		return flowRef{id: s}, ""
	}
	a, why := parseARN(s)
	if why != "" {
		return flowRef{}, why
	}
	id, ok := strings.CutPrefix(a.Resource, "flow/")
	if a.Service != "bedrock" || a.Account == "" || !ok || !validFlowID(id) {
		return flowRef{}, "want arn:PARTITION:bedrock:REGION:ACCOUNT:flow/ID"
	}
	return flowRef{arn: true, partition: a.Partition, region: a.Region, account: a.Account, id: id}, ""
}

// parseFlowAliasIdentifier: [0-9a-zA-Z]{10} (TSTALIASID included) or
// arn:PARTITION:bedrock:REGION:ACCOUNT:flow/ID/alias/ALIAS.
func parseFlowAliasIdentifier(s string) (flowRef, string) {
	if !strings.HasPrefix(s, "arn:") {
		if !validFlowID(s) {
			return flowRef{}, "want [0-9a-zA-Z]{10} or a flow alias ARN"
		}
		return flowRef{alias: s}, ""
	}
	a, why := parseARN(s)
	if why != "" {
		return flowRef{}, why
	}
	rest, ok := strings.CutPrefix(a.Resource, "flow/")
	id, alias, ok2 := strings.Cut(rest, "/alias/")
	if a.Service != "bedrock" || a.Account == "" || !ok || !ok2 || !validFlowID(id) || !validFlowID(alias) {
		return flowRef{}, "want arn:PARTITION:bedrock:REGION:ACCOUNT:flow/ID/alias/ALIAS"
	}
	return flowRef{arn: true, partition: a.Partition, region: a.Region, account: a.Account, id: id, alias: alias}, ""
}

// agentQueryParams lists the query parameters each operation takes (from
// the SDK's serializers); an operation not listed takes none.
var agentQueryParams = map[Operation][]string{
	OpGetAgentMemory:      {"maxItems", "memoryId", "memoryType", "nextToken"},
	OpDeleteAgentMemory:   {"memoryId", "sessionId"},
	OpListSessions:        {"maxResults", "nextToken"},
	OpListInvocations:     {"maxResults", "nextToken"},
	OpListInvocationSteps: {"maxResults", "nextToken"},
	OpUntagResource:       {"tagKeys"},
}

type agentQueryValues struct{ memoryID, sessionID string }

// agentQuery checks a raw query against the parameters op takes: known
// names only, each once (but tagKeys), well-formed escapes, no control
// characters, and the syntax of the values Warden reads.
func agentQuery(op Operation, q string) (agentQueryValues, error) {
	var out agentQueryValues
	if q == "" {
		return out, nil
	}
	allowed := agentQueryParams[op]
	if len(allowed) == 0 {
		return out, Validation("unexpected query string %q: %s takes no query parameters", quoteTrunc(q), op)
	}
	if len(q) > MaxPathLen {
		return out, Validation("query string is longer than %d bytes", MaxPathLen)
	}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(pair, "=")
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return out, Validation("unknown query parameter %q in %q for %s", quoteTrunc(k), quoteTrunc(q), op)
		}
		if seen[k] && k != "tagKeys" {
			return out, Validation("repeated query parameter %q in %q", k, quoteTrunc(q))
		}
		seen[k] = true
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f || c == ';' || c == '#' {
				return out, Validation("query parameter %q has the forbidden character %q", k, string(rune(c)))
			}
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return out, Validation("query parameter %q has an invalid escape: %q", k, quoteTrunc(v))
		}
		if hasControl(dv) || !utf8.ValidString(dv) {
			return out, Validation("query parameter %q decodes to a control character or invalid UTF-8", k)
		}
		switch k {
		case "memoryId":
			if why := checkAgentSessionID(dv); why != "" {
				return out, Validation("invalid memoryId %q: %s", quoteTrunc(dv), why)
			}
			out.memoryID = dv
		case "sessionId":
			if why := checkAgentSessionID(dv); why != "" {
				return out, Validation("invalid sessionId %q: %s", quoteTrunc(dv), why)
			}
			out.sessionID = dv
		case "maxItems", "maxResults":
			if !validCount(dv) {
				return out, Validation("query parameter %q is not a count: %q", k, quoteTrunc(dv))
			}
		case "memoryType":
			if dv != "SESSION_SUMMARY" {
				return out, Validation("query parameter memoryType is %q: want SESSION_SUMMARY", quoteTrunc(dv))
			}
		}
	}
	return out, nil
}

// validCount: 1 to 4 decimal digits, no leading zero.
func validCount(s string) bool {
	if len(s) < 1 || len(s) > 4 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// rawARNSegments reports whether the escaped label s is one path segment, or
// a raw ARN (its first segment decodes to "arn:…") of exactly 1+slashes
// segments.
func rawARNSegments(s string, slashes int) bool {
	n := strings.Count(s, "/")
	if n == 0 {
		return true
	}
	first, _, _ := strings.Cut(s, "/")
	return n == slashes && strings.HasPrefix(unescape(first), "arn:")
}
