package bedrock

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	tSess      = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	tSessARN   = "arn:aws:bedrock:us-east-1:123456789012:session/" + tSess
	tStep      = "6f1d8e1a-0b2c-4d3e-9f40-5a6b7c8d9e0f"
	tFlowARN   = "arn:aws:bedrock:us-east-1:123456789012:flow/FLOW123456"
	tFlowAlias = tFlowARN + "/alias/ALIAS12345"
)

// agentPath builds the path of r's operation from its identifiers, each
// label encoded by enc: the inverse of ParseAgentRoute, used to check that
// SDK-encoded and raw forms of the same call route identically.
func agentPath(r AgentRoute, enc func(string) string) (method, path string) {
	sess := r.Session
	if r.SessionARN != "" {
		sess = r.SessionARN
	}
	flow, alias := r.FlowID, r.FlowAliasID
	if r.FlowARN != "" {
		flow = r.FlowARN
	}
	if r.FlowAliasARN != "" {
		alias = r.FlowAliasARN
	}
	switch r.Op {
	case OpInvokeAgent:
		return "POST", "/agents/" + enc(r.AgentID) + "/agentAliases/" + enc(r.AgentAliasID) + "/sessions/" + enc(r.SessionID) + "/text"
	case OpInvokeInlineAgent:
		return "POST", "/agents/" + enc(r.SessionID)
	case OpGetAgentMemory, OpDeleteAgentMemory:
		m := map[Operation]string{OpGetAgentMemory: "GET", OpDeleteAgentMemory: "DELETE"}[r.Op]
		return m, "/agents/" + enc(r.AgentID) + "/agentAliases/" + enc(r.AgentAliasID) + "/memories"
	case OpRetrieve:
		return "POST", "/knowledgebases/" + enc(r.KnowledgeBaseID) + "/retrieve"
	case OpInvokeFlow:
		return "POST", "/flows/" + enc(flow) + "/aliases/" + enc(alias)
	case OpRetrieveAndGenerate:
		return "POST", "/retrieveAndGenerate"
	case OpRetrieveAndGenerateStream:
		return "POST", "/retrieveAndGenerateStream"
	case OpRerank:
		return "POST", "/rerank"
	case OpGenerateQuery:
		return "POST", "/generateQuery"
	case OpOptimizePrompt:
		return "POST", "/optimize-prompt"
	case OpCreateSession:
		return "PUT", "/sessions/"
	case OpListSessions:
		return "POST", "/sessions/"
	case OpGetSession:
		return "GET", "/sessions/" + enc(sess) + "/"
	case OpUpdateSession:
		return "PUT", "/sessions/" + enc(sess) + "/"
	case OpDeleteSession:
		return "DELETE", "/sessions/" + enc(sess) + "/"
	case OpEndSession:
		return "PATCH", "/sessions/" + enc(sess)
	case OpCreateInvocation:
		return "PUT", "/sessions/" + enc(sess) + "/invocations/"
	case OpListInvocations:
		return "POST", "/sessions/" + enc(sess) + "/invocations/"
	case OpPutInvocationStep:
		return "PUT", "/sessions/" + enc(sess) + "/invocationSteps/"
	case OpListInvocationSteps:
		return "POST", "/sessions/" + enc(sess) + "/invocationSteps/"
	case OpGetInvocationStep:
		return "POST", "/sessions/" + enc(sess) + "/invocationSteps/" + enc(r.InvocationStepID)
	case OpTagResource, OpUntagResource, OpListTagsForResource:
		m := map[Operation]string{OpTagResource: "POST", OpUntagResource: "DELETE", OpListTagsForResource: "GET"}[r.Op]
		return m, "/tags/" + enc(sess)
	}
	panic("no path for " + r.Op)
}

func rawLabel(s string) string { return s }

// agentSamples is one route of every operation, with ARNs where an
// operation takes them.
var agentSamples = []AgentRoute{
	{Op: OpInvokeAgent, AgentID: "AGENT12345", AgentAliasID: "TSTALIASID", SessionID: "user:42.a_b-c"},
	{Op: OpInvokeInlineAgent, SessionID: "inline:1"},
	{Op: OpGetAgentMemory, AgentID: "A", AgentAliasID: "B"},
	{Op: OpDeleteAgentMemory, AgentID: "AGENT12345", AgentAliasID: "ALIAS12345"},
	{Op: OpRetrieve, KnowledgeBaseID: "KB12345678"},
	{Op: OpInvokeFlow, FlowID: "FLOW123456", FlowAliasID: "TSTALIASID"},
	{Op: OpInvokeFlow, FlowID: "FLOW123456", FlowAliasID: "ALIAS12345", FlowARN: tFlowARN, FlowAliasARN: tFlowAlias},
	{Op: OpInvokeFlow, FlowID: "FLOW123456", FlowAliasID: "ALIAS12345", FlowAliasARN: tFlowAlias},
	{Op: OpRetrieveAndGenerate}, {Op: OpRetrieveAndGenerateStream}, {Op: OpRerank}, {Op: OpGenerateQuery}, {Op: OpOptimizePrompt},
	{Op: OpCreateSession}, {Op: OpListSessions},
	{Op: OpGetSession, Session: tSess}, {Op: OpGetSession, Session: tSess, SessionARN: tSessARN},
	{Op: OpUpdateSession, Session: tSess}, {Op: OpDeleteSession, Session: tSess, SessionARN: tSessARN},
	{Op: OpEndSession, Session: tSess}, {Op: OpEndSession, Session: tSess, SessionARN: tSessARN},
	{Op: OpCreateInvocation, Session: tSess}, {Op: OpListInvocations, Session: tSess, SessionARN: tSessARN},
	{Op: OpPutInvocationStep, Session: tSess}, {Op: OpListInvocationSteps, Session: tSess},
	{Op: OpGetInvocationStep, Session: tSess, SessionARN: tSessARN, InvocationStepID: tStep},
	{Op: OpTagResource, Session: tSess, SessionARN: tSessARN}, {Op: OpUntagResource, Session: tSess, SessionARN: tSessARN},
	{Op: OpListTagsForResource, Session: tSess, SessionARN: tSessARN},
}

func TestParseAgentRouteForms(t *testing.T) {
	seen := map[Operation]bool{}
	for _, want := range agentSamples {
		seen[want.Op] = true
		for _, enc := range []func(string) string{sdkEscape, rawLabel} {
			m, p := agentPath(want, enc)
			got, err := ParseAgentRoute(m, p, "")
			if want.Op == OpGetAgentMemory {
				// memoryId is required.
				got, err = ParseAgentRoute(m, p, "memoryId=m1")
				want.MemoryID = "m1"
			}
			if err != nil {
				t.Errorf("ParseAgentRoute(%s %q): %v", m, p, err)
				continue
			}
			if got != want {
				t.Errorf("ParseAgentRoute(%s %q) = %+v, want %+v", m, p, got, want)
			}
		}
	}
	for _, op := range AgentOperations() {
		if !seen[op] {
			t.Errorf("no sample for %s", op)
		}
	}
	if n := len(AgentOperations()); n != 25 {
		t.Errorf("%d agent operations, the SDK has 25", n)
	}
}

func TestParseAgentRouteQuery(t *testing.T) {
	mem := "/agents/AGENT12345/agentAliases/ALIAS12345/memories"
	good := []struct {
		method, path, query string
		want                AgentRoute
	}{
		{"GET", mem, "maxItems=20&memoryId=m%3A1&memoryType=SESSION_SUMMARY&nextToken=a%2Bb%3D", AgentRoute{Op: OpGetAgentMemory, AgentID: "AGENT12345", AgentAliasID: "ALIAS12345", MemoryID: "m:1"}},
		{"DELETE", mem, "memoryId=mem-1&sessionId=s.1", AgentRoute{Op: OpDeleteAgentMemory, AgentID: "AGENT12345", AgentAliasID: "ALIAS12345", MemoryID: "mem-1", SessionID: "s.1"}},
		{"DELETE", mem, "", AgentRoute{Op: OpDeleteAgentMemory, AgentID: "AGENT12345", AgentAliasID: "ALIAS12345"}},
		{"POST", "/sessions/", "maxResults=10&nextToken=x", AgentRoute{Op: OpListSessions}},
		{"POST", "/sessions/" + tSess + "/invocations/", "maxResults=1", AgentRoute{Op: OpListInvocations, Session: tSess}},
		{"POST", "/sessions/" + tSess + "/invocationSteps/", "nextToken=x", AgentRoute{Op: OpListInvocationSteps, Session: tSess}},
		{"DELETE", "/tags/" + sdkEscape(tSessARN), "tagKeys=a&tagKeys=b", AgentRoute{Op: OpUntagResource, Session: tSess, SessionARN: tSessARN}},
	}
	for _, tt := range good {
		got, err := ParseAgentRoute(tt.method, tt.path, tt.query)
		if err != nil || got != tt.want {
			t.Errorf("ParseAgentRoute(%s %q ?%q) = %+v, %v; want %+v", tt.method, tt.path, tt.query, got, err, tt.want)
		}
	}
}

func TestParseAgentRouteRejects(t *testing.T) {
	const inv = "/agents/AGENT12345/agentAliases/TSTALIASID/sessions/s1/text"
	const mem = "/agents/AGENT12345/agentAliases/TSTALIASID/memories"
	const flow = "/flows/FLOW123456/aliases/TSTALIASID"
	const otherFlowAlias = "arn:aws:bedrock:us-east-1:123456789012:flow/OTHER12345/alias/ALIAS12345"
	V, A := TypeValidation, TypeAccessDenied
	tests := []struct {
		name, method, path, query string
		typ                       string
	}{
		// The path tricks of the runtime routes.
		{"dotdot", "POST", "/agents/../agents/AGENT12345/agentAliases/TSTALIASID/sessions/s1/text", "", V},
		{"dot", "POST", "/agents/./x", "", V},
		{"encoded dotdot id", "POST", "/knowledgebases/%2E%2E/retrieve", "", V},
		{"encoded slash in kb", "POST", "/knowledgebases/KB%2F..%2Fx/retrieve", "", V},
		{"encoded slash dotdot in flow", "POST", "/flows/" + sdkEscape(tFlowARN+"/../x") + "/aliases/TSTALIASID", "", V},
		{"empty segment", "POST", "//rerank", "", V},
		{"empty segment mid", "POST", "/agents//agentAliases/TSTALIASID/memories", "", V},
		{"double trailing slash", "GET", "/sessions/" + tSess + "//", "", V},
		{"double encoding", "GET", "/sessions/" + strings.ReplaceAll(sdkEscape(tSessARN), "%", "%25") + "/", "", V},
		{"NUL encoded", "POST", "/agents/inline%00", "", V},
		{"newline encoded", "POST", "/knowledgebases/KB1%0A/retrieve", "", V},
		{"tab raw", "POST", "/agents/in\tline", "", V},
		{"semicolon", "POST", "/rerank;x=y", "", V},
		{"semicolon encoded", "POST", "/agents/a%3Bb", "", V},
		{"backslash", "POST", "/knowledgebases/KB1\\..\\x/retrieve", "", V},
		{"question encoded", "POST", "/agents/a%3Fb", "", V},
		{"hash encoded", "POST", "/agents/a%23b", "", V},
		{"space", "POST", "/agents/a%20b", "", V},
		{"non-ASCII", "POST", "/agents/ab%C3%A9", "", V},
		{"invalid escape", "POST", "/agents/a%zz", "", V},
		{"truncated escape", "POST", "/agents/ab%2", "", V},
		{"overlong", "POST", "/agents/" + strings.Repeat("a", 2050), "", V},
		{"no leading slash", "POST", "rerank", "", V},
		{"empty path", "POST", "", "", V},
		{"root", "GET", "/", "", V},
		// Identifier syntax.
		{"agent id too long", "POST", "/agents/AGENT123456/agentAliases/TSTALIASID/sessions/s1/text", "", V},
		{"agent id punct", "POST", "/agents/AG-1/agentAliases/TSTALIASID/sessions/s1/text", "", V},
		{"alias id punct", "GET", "/agents/AG1/agentAliases/a.b/memories", "memoryId=m1", V},
		{"session id short", "POST", "/agents/AG1/agentAliases/TSTALIASID/sessions/s/text", "", V},
		{"session id slash", "POST", "/agents/AG1/agentAliases/TSTALIASID/sessions/a%2Fb/text", "", V},
		{"session id tilde", "POST", "/agents/ab~c", "", V},
		{"session id encoded dotdot", "POST", "/agents/%2E%2E", "", V},
		{"session id encoded dotdot invoke", "POST", "/agents/AG1/agentAliases/TSTALIASID/sessions/%2e%2e/text", "", V},
		{"memory id dotdot", "GET", "/agents/AG1/agentAliases/TSTALIASID/memories", "memoryId=..", V},
		{"inline session id long", "POST", "/agents/" + strings.Repeat("a", 101), "", V},
		{"kb id long", "POST", "/knowledgebases/KB123456789/retrieve", "", V},
		{"flow id short", "POST", "/flows/FLOW1/aliases/TSTALIASID", "", V},
		{"flow alias short", "POST", "/flows/FLOW123456/aliases/ALIAS", "", V},
		{"flow ARN wrong service", "POST", "/flows/" + sdkEscape(strings.Replace(tFlowARN, ":bedrock:", ":lambda:", 1)) + "/aliases/TSTALIASID", "", V},
		{"flow ARN no account", "POST", "/flows/arn:aws:bedrock:us-east-1::flow/FLOW123456/aliases/TSTALIASID", "", V},
		{"alias of another flow", "POST", "/flows/FLOW123456/aliases/" + sdkEscape(otherFlowAlias), "", V},
		{"alias of another flow raw", "POST", "/flows/FLOW123456/aliases/" + otherFlowAlias, "", V},
		{"alias in another account", "POST", "/flows/" + sdkEscape(tFlowARN) + "/aliases/" + sdkEscape(strings.Replace(tFlowAlias, "123456789012", "210987654321", 1)), "", V},
		{"alias in another region", "POST", "/flows/" + tFlowARN + "/aliases/" + strings.Replace(tFlowAlias, "us-east-1", "us-west-2", 1), "", V},
		{"alias ARN for flow id", "POST", "/flows/" + sdkEscape(tFlowAlias) + "/aliases/TSTALIASID", "", V},
		{"session not uuid", "GET", "/sessions/abc/", "", V},
		{"session uuid bad", "GET", "/sessions/" + strings.Replace(tSess, "-", "x", 1) + "/", "", V},
		{"session ARN wrong kind", "GET", "/sessions/" + sdkEscape(strings.Replace(tSessARN, ":session/", ":flow/", 1)) + "/", "", V},
		{"session ARN raw wrong kind", "GET", "/sessions/" + strings.Replace(tSessARN, ":session/", ":flow/", 1) + "/", "", V},
		{"session ARN extra", "GET", "/sessions/" + sdkEscape(tSessARN+"/x") + "/", "", V},
		{"step id not uuid", "POST", "/sessions/" + tSess + "/invocationSteps/step1", "", V},
		{"tag not ARN", "GET", "/tags/" + tSess, "", V},
		{"tag ARN other resource", "GET", "/tags/" + sdkEscape(tFlowARN), "", V},
		{"tag ARN dotdot", "GET", "/tags/" + sdkEscape(tSessARN+"/../x"), "", V},
		// Queries.
		{"query on invoke", "POST", inv, "x=1", V},
		{"query on retrieve", "POST", "/knowledgebases/KB1/retrieve", "nextToken=x", V},
		{"memory without id", "GET", mem, "", V},
		{"memory unknown param", "GET", mem, "memoryId=m1&agentId=OTHER", V},
		{"memory repeated id", "GET", mem, "memoryId=m1&memoryId=m2", V},
		{"memory bad id", "GET", mem, "memoryId=a%2Fb", V},
		{"memory bad type", "GET", mem, "memoryId=m1&memoryType=ALL", V},
		{"memory bad count", "GET", mem, "memoryId=m1&maxItems=-1", V},
		{"memory count leading zero", "GET", mem, "memoryId=m1&maxItems=01", V},
		{"delete memory bad session", "DELETE", mem, "sessionId=%00x", V},
		{"list repeated", "POST", "/sessions/", "maxResults=1&maxResults=2", V},
		{"list empty pair", "POST", "/sessions/", "maxResults=1&", V},
		{"list semicolon", "POST", "/sessions/", "maxResults=1;x=2", V},
		{"list bad escape", "POST", "/sessions/", "nextToken=%zz", V},
		{"list NUL", "POST", "/sessions/", "nextToken=%00", V},
		{"untag other param", "DELETE", "/tags/" + sdkEscape(tSessARN), "tagKeys=a&x=b", V},
		{"query on get session", "GET", "/sessions/" + tSess + "/", "x=1", V},

		// Unknown operations and wrong methods, refused by name.
		{"wrong method invoke", "GET", inv, "", A},
		{"lowercase method", "post", inv, "", A},
		{"wrong method memory", "POST", mem, "", A},
		{"wrong method flow", "PUT", flow, "", A},
		{"wrong method retrieve", "GET", "/knowledgebases/KB1/retrieve", "", A},
		{"wrong method rag", "GET", "/retrieveAndGenerate", "", A},
		{"wrong method sessions", "GET", "/sessions/", "", A},
		{"wrong method session", "POST", "/sessions/" + tSess + "/", "", A},
		{"wrong method end", "GET", "/sessions/" + tSess, "", A},
		{"wrong method step", "GET", "/sessions/" + tSess + "/invocationSteps/" + tStep, "", A},
		{"wrong method tags", "PUT", "/tags/" + sdkEscape(tSessARN), "", A},
		{"sessions without slash", "PUT", "/sessions", "", A},
		{"get session without slash", "GET", "/sessions/" + tSess, "", A},
		{"end session with slash", "PATCH", "/sessions/" + tSess + "/", "", A},
		{"invocations without slash", "PUT", "/sessions/" + tSess + "/invocations", "", A},
		{"step with slash", "POST", "/sessions/" + tSess + "/invocationSteps/" + tStep + "/", "", A},
		{"invoke trailing slash", "POST", inv + "/", "", A},
		{"rag trailing slash", "POST", "/retrieveAndGenerate/", "", A},
		{"inline trailing slash", "POST", "/agents/inline1/", "", A},
		{"kb trailing slash", "POST", "/knowledgebases/KB1/retrieve/", "", A},
		{"flow trailing slash", "POST", flow + "/", "", A},
		{"tags trailing slash", "GET", "/tags/" + sdkEscape(tSessARN) + "/", "", A},
		{"unknown suffix", "POST", "/agents/AGENT12345/agentAliases/TSTALIASID/sessions/s1/voice", "", A},
		{"encoded op literal", "POST", "/agents/AGENT12345/agentAliases/TSTALIASID/sessions/s1/%74ext", "", A},
		{"encoded slash before literal", "POST", "/knowledgebases/KB1%2Fretrieve", "", A},
		{"two aliases", "POST", "/flows/FLOW123456/aliases/TSTALIASID/aliases/TSTALIASID", "", A},
		{"flow without alias", "POST", "/flows/FLOW123456", "", A},
		{"case of prefix", "POST", "/Rerank", "", A},
		{"case of literal", "POST", "/agents/AGENT12345/AgentAliases/TSTALIASID/memories", "", A},
		{"runtime route", "POST", "/model/anthropic.claude-v2/invoke", "", A},
		{"control plane", "GET", "/agents/AGENT12345/agentaliases/", "", A},
		{"flow executions (newer SDKs)", "POST", "/flows/FLOW123456/aliases/TSTALIASID/executions", "", A},
		{"unknown session op", "POST", "/sessions/" + tSess + "/summaries/", "", A},
		{"unknown top", "POST", "/evaluate", "", A},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseAgentRoute(tt.method, tt.path, tt.query)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v is not *APIError", err, err)
			}
			if ae.Type != tt.typ {
				t.Errorf("type %s, want %s (%v)", ae.Type, tt.typ, err)
			}
			if ae.Status != map[string]int{V: 400, A: 403}[tt.typ] {
				t.Errorf("status %d for %s", ae.Status, ae.Type)
			}
			if r != (AgentRoute{}) {
				t.Errorf("non-zero route %+v with error", r)
			}
			if tt.typ == A && !strings.Contains(ae.Message, "unknown operation") {
				t.Errorf("message %q does not say unknown operation", ae.Message)
			}
		})
	}
}

func TestParseAgentRouteErrorNamesInput(t *testing.T) {
	for _, tt := range []struct{ method, path, query, want string }{
		{"POST", "/evaluate", "", `"/evaluate"`},
		{"GET", "/retrieveAndGenerate", "", `"GET"`},
		{"GET", "/retrieveAndGenerate", "", "POST RetrieveAndGenerate"},
		{"GET", "/sessions/" + tSess + "/", "", ""},
		{"POST", "/sessions/" + tSess + "/", "", "GET GetSession, PUT UpdateSession, DELETE DeleteSession"},
		{"POST", "/agents/AGENT12345/agentAliases/TSTALIASID/sessions/s%0A/text", "", `s%0A`},
		{"GET", "/sessions/abc/", "", `"abc"`},
		{"GET", "/sessions/a%00/", "", `a%00/`},
		{"GET", "/agents/A/agentAliases/B/memories", "memoryId=m1&evil=1", `"evil"`},
	} {
		_, err := ParseAgentRoute(tt.method, tt.path, tt.query)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s %q: %v", tt.method, tt.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q ?%q: error %v does not name %s", tt.method, tt.path, tt.query, err, tt.want)
		}
	}
}

func TestAgentOperations(t *testing.T) {
	for _, op := range AgentOperations() {
		if !op.AgentRuntime() || op.AgentIAMAction() == "" || !strings.HasPrefix(op.AgentIAMAction(), "bedrock:") {
			t.Errorf("%s: AgentRuntime %v, action %q", op, op.AgentRuntime(), op.AgentIAMAction())
		}
	}
	for _, op := range []Operation{OpInvokeModel, OpConverse, OpStartAsyncInvoke} {
		if op.AgentRuntime() || op.AgentStreaming() || op.AgentIAMAction() != "" {
			t.Errorf("%s classified as agent runtime", op)
		}
	}
	for op, want := range map[Operation]bool{OpInvokeAgent: true, OpInvokeInlineAgent: true, OpInvokeFlow: true,
		OpRetrieveAndGenerateStream: true, OpOptimizePrompt: true, OpRetrieveAndGenerate: false, OpRetrieve: false, OpGetSession: false} {
		if op.AgentStreaming() != want {
			t.Errorf("%s.AgentStreaming() = %v", op, !want)
		}
	}
}

func FuzzParseAgentRoute(f *testing.F) {
	for _, r := range agentSamples {
		for _, enc := range []func(string) string{sdkEscape, rawLabel} {
			m, p := agentPath(r, enc)
			f.Add(m, p, "")
		}
	}
	mem := "/agents/AGENT12345/agentAliases/ALIAS12345/memories"
	f.Add("GET", mem, "memoryId=m1&maxItems=5&memoryType=SESSION_SUMMARY")
	f.Add("DELETE", mem, "memoryId=m1&sessionId=s1")
	f.Add("DELETE", "/tags/"+sdkEscape(tSessARN), "tagKeys=a&tagKeys=b")
	f.Add("POST", "/sessions/", "maxResults=10&nextToken=a%2Bb")
	f.Add("POST", "/flows/FLOW123456/aliases/arn:aws:bedrock:us-east-1:123456789012:flow/OTHER12345/alias/ALIAS12345", "")
	f.Add("POST", "/knowledgebases/KB%2F..%2Fx/retrieve", "")
	f.Add("GET", "/sessions/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Asession/"+tSess+"/", "")
	f.Add("GET", "/sessions/"+tSess+"//", "")
	f.Add("POST", "/agents/a%252Fb", "")
	f.Fuzz(func(t *testing.T, method, path, query string) {
		r, err := ParseAgentRoute(method, path, query)
		if err != nil {
			ae := mustAPIError(t, err, "ParseAgentRoute")
			if !utf8.ValidString(ae.Message) {
				t.Fatalf("message is not valid UTF-8: %q", ae.Message)
			}
			if r != (AgentRoute{}) {
				t.Fatalf("route %+v with error", r)
			}
			return
		}
		if !r.Op.AgentRuntime() {
			t.Fatalf("success with operation %q", r.Op)
		}
		for _, v := range []string{r.AgentID, r.AgentAliasID, r.SessionID, r.MemoryID, r.KnowledgeBaseID, r.FlowID,
			r.FlowAliasID, r.FlowARN, r.FlowAliasARN, r.Session, r.SessionARN, r.InvocationStepID} {
			if hasControl(v) || strings.ContainsAny(v, "%?#;\\ ") {
				t.Fatalf("decoded field %q has a forbidden character", v)
			}
			for seg := range strings.SplitSeq(v, "/") {
				if seg == "." || seg == ".." || v != "" && seg == "" {
					t.Fatalf("decoded field %q has an empty or dot segment", v)
				}
			}
		}
		switch method {
		case "GET", "POST", "PUT", "PATCH", "DELETE":
		default:
			t.Fatalf("method %q accepted", method)
		}
		// The SDK-encoded and the raw form of the same call route identically.
		for _, enc := range []func(string) string{sdkEscape, rawLabel} {
			m, p := agentPath(r, enc)
			r2, err := ParseAgentRoute(m, p, query)
			if err != nil || r2 != r || m != method {
				t.Fatalf("re-encoded %s %q routes to %+v, %v; want %s %+v", m, p, r2, err, method, r)
			}
		}
		// A bedrock-runtime path is never an agent-runtime one, and the reverse.
		if rr, err := ParseRoute(method, path, query); err == nil {
			t.Fatalf("%s %q is both %s and %s", method, path, r.Op, rr.Op)
		}
	})
}
