package bedrocktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The agent runtime (bedrock-agent-runtime) on the same listener as the
// runtime: its paths (/agents, /knowledgebases, /flows, /sessions, /tags,
// /retrieveAndGenerate…) collide with none of the runtime's. Point
// AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME (or the SDK's BaseEndpoint) at
// Server.URL. Requests are signed for service "bedrock", as the SDK does.

// Agent-runtime operation names.
const (
	OpInvokeAgent               = "InvokeAgent"
	OpInvokeInlineAgent         = "InvokeInlineAgent"
	OpRetrieve                  = "Retrieve"
	OpRetrieveAndGenerate       = "RetrieveAndGenerate"
	OpRetrieveAndGenerateStream = "RetrieveAndGenerateStream"
	OpInvokeFlow                = "InvokeFlow"
	OpRerank                    = "Rerank"
	OpGenerateQuery             = "GenerateQuery"
	OpOptimizePrompt            = "OptimizePrompt"
	OpCreateSession             = "CreateSession"
	OpGetSession                = "GetSession"
	OpUpdateSession             = "UpdateSession"
	OpEndSession                = "EndSession"
	OpDeleteSession             = "DeleteSession"
	OpListSessions              = "ListSessions"
	OpCreateInvocation          = "CreateInvocation"
	OpListInvocations           = "ListInvocations"
	OpPutInvocationStep         = "PutInvocationStep"
	OpGetInvocationStep         = "GetInvocationStep"
	OpListInvocationSteps       = "ListInvocationSteps"
	OpGetAgentMemory            = "GetAgentMemory"
	OpDeleteAgentMemory         = "DeleteAgentMemory"
	OpTagResource               = "TagResource"
	OpUntagResource             = "UntagResource"
	OpListTagsForResource       = "ListTagsForResource"
)

// Agent is an InvokeAgent fixture: what the agent's answers carry besides
// its text. InvokeInlineAgent derives the same from its request (a
// RETURN_CONTROL action group, AMAZON.CodeInterpreter, knowledge bases).
type Agent struct {
	// Aliases are the alias ids that exist (TSTALIASID always does);
	// empty: any.
	Aliases []string
	// FoundationModel is the model the agent runs, named in traces.
	FoundationModel string
	// ReturnControl answers with a returnControl event (a function call the
	// caller must run) until the caller returns its results in
	// sessionState.returnControlInvocationResults.
	ReturnControl bool
	// Files adds a files event (code interpreter output).
	Files bool
	// KnowledgeBaseID makes the last chunk cite that knowledge base.
	KnowledgeBaseID string
}

// Passage is a knowledge-base document chunk.
type Passage struct {
	Text string
	URI  string // s3://bucket/key
}

// DefaultPassages are the passages of a knowledge base without a fixture.
var DefaultPassages = []Passage{
	{Text: "Warden is an egress proxy for Amazon Bedrock.", URI: "s3://kb-docs/warden.md"},
	{Text: "Every call gets one audit record.", URI: "s3://kb-docs/audit.md"},
}

const defaultAgentModel = "anthropic.claude-3-5-haiku-20241022-v1:0"

// agentState is the agent runtime's server-side state: sessions, their
// invocations and steps, tags, and agent memory.
type agentState struct {
	sessions map[string]*agentSession // session UUID ->
	memory   map[string][]jmap        // memoryId -> session summaries
	// agentSessions remembers the memoryId of open InvokeAgent sessions
	// (agentId/aliasId/sessionId -> memoryId and start).
	agentSessions map[string]agentSessionMemory
}

type agentSessionMemory struct {
	memoryID string
	start    time.Time
}

type agentSession struct {
	id, arn, status string
	created, update time.Time
	metadata        map[string]string
	tags            map[string]string
	invocations     []jmap
	steps           []jmap // each with its payload
}

func isAgentStreamOp(op string) bool {
	switch op {
	case OpInvokeAgent, OpInvokeInlineAgent, OpInvokeFlow, OpRetrieveAndGenerateStream, OpOptimizePrompt:
		return true
	}
	return false
}

// parseAgentRoute maps an agent-runtime request to its operation and
// identifiers, from the SDK's templates; labels are split on the escaped
// path and decoded one by one.
func parseAgentRoute(method, escaped, rawQuery string) (route, bool) {
	trailing := strings.HasSuffix(escaped, "/")
	segs := strings.Split(strings.Trim(escaped, "/"), "/")
	ids := map[string]string{}
	dec := func(name, v string) bool {
		d, err := url.PathUnescape(v)
		if err != nil || d == "" {
			return false
		}
		ids[name] = d
		return true
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return route{}, false
	}
	for _, k := range []string{"memoryId", "sessionId"} {
		if v := q.Get(k); v != "" {
			ids[k] = v
		}
	}
	op := ""
	n := len(segs)
	switch {
	case !trailing && n == 1:
		op = map[string]string{"retrieveAndGenerate": OpRetrieveAndGenerate, "retrieveAndGenerateStream": OpRetrieveAndGenerateStream,
			"rerank": OpRerank, "generateQuery": OpGenerateQuery, "optimize-prompt": OpOptimizePrompt}[segs[0]]
		if method != http.MethodPost {
			op = ""
		}
	// /agents/{sessionId}
	case !trailing && n == 2 && segs[0] == "agents" && method == http.MethodPost:
		if dec("sessionId", segs[1]) {
			op = OpInvokeInlineAgent
		}
	// /agents/{agentId}/agentAliases/{agentAliasId}/memories
	case !trailing && n == 5 && segs[0] == "agents" && segs[2] == "agentAliases" && segs[4] == "memories":
		if dec("agentId", segs[1]) && dec("agentAliasId", segs[3]) {
			op = map[string]string{http.MethodGet: OpGetAgentMemory, http.MethodDelete: OpDeleteAgentMemory}[method]
		}
	// /agents/{agentId}/agentAliases/{agentAliasId}/sessions/{sessionId}/text
	case !trailing && n == 7 && segs[0] == "agents" && segs[2] == "agentAliases" && segs[4] == "sessions" && segs[6] == "text" && method == http.MethodPost:
		if dec("agentId", segs[1]) && dec("agentAliasId", segs[3]) && dec("sessionId", segs[5]) {
			op = OpInvokeAgent
		}
	// /knowledgebases/{knowledgeBaseId}/retrieve
	case !trailing && n == 3 && segs[0] == "knowledgebases" && segs[2] == "retrieve" && method == http.MethodPost:
		if dec("knowledgeBaseId", segs[1]) {
			op = OpRetrieve
		}
	// /flows/{flowIdentifier}/aliases/{flowAliasIdentifier}
	case !trailing && n == 4 && segs[0] == "flows" && segs[2] == "aliases" && method == http.MethodPost:
		if dec("flowIdentifier", segs[1]) && dec("flowAliasIdentifier", segs[3]) {
			op = OpInvokeFlow
		}
	// /tags/{resourceArn}
	case !trailing && n == 2 && segs[0] == "tags":
		if dec("resourceArn", segs[1]) {
			op = map[string]string{http.MethodGet: OpListTagsForResource, http.MethodPost: OpTagResource, http.MethodDelete: OpUntagResource}[method]
		}
	case segs[0] == "sessions":
		op = sessionOp(method, segs, trailing, dec)
	}
	if op == "" {
		return route{}, false
	}
	return route{op: op, ids: ids, query: q}, true
}

func sessionOp(method string, segs []string, trailing bool, dec func(string, string) bool) string {
	n := len(segs)
	switch {
	case n == 1 && trailing:
		return map[string]string{http.MethodPut: OpCreateSession, http.MethodPost: OpListSessions}[method]
	case n < 2 || !dec("sessionIdentifier", segs[1]):
		return ""
	case n == 2 && trailing:
		return map[string]string{http.MethodGet: OpGetSession, http.MethodPut: OpUpdateSession, http.MethodDelete: OpDeleteSession}[method]
	case n == 2:
		return map[string]string{http.MethodPatch: OpEndSession}[method]
	case n == 3 && trailing && segs[2] == "invocations":
		return map[string]string{http.MethodPut: OpCreateInvocation, http.MethodPost: OpListInvocations}[method]
	case n == 3 && trailing && segs[2] == "invocationSteps":
		return map[string]string{http.MethodPut: OpPutInvocationStep, http.MethodPost: OpListInvocationSteps}[method]
	case n == 4 && !trailing && segs[2] == "invocationSteps" && method == http.MethodPost:
		if dec("invocationStepId", segs[3]) {
			return OpGetInvocationStep
		}
	}
	return ""
}

// agentModel is the model an agent-runtime request names in its body, for
// Call.ModelID: InvokeInlineAgent's foundationModel, RetrieveAndGenerate's
// modelArn, Rerank's modelArn, OptimizePrompt's targetModelId.
func agentModel(op string, body []byte) string {
	var in struct {
		FoundationModel string `json:"foundationModel"`
		TargetModelID   string `json:"targetModelId"`
		RAG             struct {
			KB struct {
				ModelArn string `json:"modelArn"`
			} `json:"knowledgeBaseConfiguration"`
			Ext struct {
				ModelArn string `json:"modelArn"`
			} `json:"externalSourcesConfiguration"`
		} `json:"retrieveAndGenerateConfiguration"`
		Rerank struct {
			Bedrock struct {
				Model struct {
					ModelArn string `json:"modelArn"`
				} `json:"modelConfiguration"`
			} `json:"bedrockRerankingConfiguration"`
		} `json:"rerankingConfiguration"`
	}
	if json.Unmarshal(body, &in) != nil {
		return ""
	}
	switch op {
	case OpInvokeInlineAgent:
		return in.FoundationModel
	case OpOptimizePrompt:
		return in.TargetModelID
	case OpRetrieveAndGenerate, OpRetrieveAndGenerateStream:
		if in.RAG.KB.ModelArn != "" {
			return in.RAG.KB.ModelArn
		}
		return in.RAG.Ext.ModelArn
	case OpRerank:
		return in.Rerank.Bedrock.Model.ModelArn
	}
	return ""
}

func agentNotFound(w http.ResponseWriter, what, id string) {
	writeError(w, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("%s %s not found.", what, id))
}

func (s *Server) agentDispatch(w http.ResponseWriter, r *http.Request, rt route, body []byte, f *Fault) {
	if len(body) > 0 && !json.Valid(body) {
		writeError(w, 400, "ValidationException", malformedMsg)
		return
	}
	switch rt.op {
	case OpInvokeAgent:
		s.invokeAgent(w, r, rt, body, f)
	case OpInvokeInlineAgent:
		s.invokeInlineAgent(w, r, rt, body, f)
	case OpRetrieve:
		s.retrieve(w, rt, body)
	case OpRetrieveAndGenerate, OpRetrieveAndGenerateStream:
		s.retrieveAndGenerate(w, r, rt, body, f)
	case OpInvokeFlow:
		s.invokeFlow(w, r, rt, body, f)
	case OpRerank:
		s.rerank(w, body)
	case OpGenerateQuery:
		var in struct {
			Input struct {
				Text string `json:"text"`
			} `json:"queryGenerationInput"`
		}
		_ = json.Unmarshal(body, &in)
		if in.Input.Text == "" {
			writeError(w, 400, "ValidationException", "queryGenerationInput.text is required.")
			return
		}
		writeJSON(w, jmap{"queries": []jmap{{"type": "REDSHIFT_SQL", "sql": "SELECT 1 -- " + fmt.Sprint(len(in.Input.Text)) + " characters"}}})
	case OpOptimizePrompt:
		var in struct {
			Input struct {
				TextPrompt struct {
					Text string `json:"text"`
				} `json:"textPrompt"`
			} `json:"input"`
			TargetModelID string `json:"targetModelId"`
		}
		_ = json.Unmarshal(body, &in)
		if in.TargetModelID == "" || in.Input.TextPrompt.Text == "" {
			writeError(w, 400, "ValidationException", "input.textPrompt.text and targetModelId are required.")
			return
		}
		text := s.reply(rt.op, in.TargetModelID, in.Input.TextPrompt.Text)
		s.stream(w, r, []event{
			jsonEvent("analyzePromptEvent", jmap{"message": "The prompt is clear."}),
			jsonEvent("optimizedPromptEvent", jmap{"optimizedPrompt": jmap{"textPrompt": jmap{"text": text}}}),
		}, f)
	case OpGetAgentMemory, OpDeleteAgentMemory:
		s.agentMemory(w, rt)
	default:
		s.sessionsAPI(w, rt, body)
	}
}

func jsonEvent(typ string, v any) event {
	b, _ := json.Marshal(v)
	return event{typ: typ, payload: b}
}

// agentRequest is what InvokeAgent and InvokeInlineAgent share.
type agentRequest struct {
	InputText    string `json:"inputText"`
	EnableTrace  bool   `json:"enableTrace"`
	EndSession   bool   `json:"endSession"`
	MemoryID     string `json:"memoryId"`
	SessionState *struct {
		ReturnControlInvocationResults []json.RawMessage `json:"returnControlInvocationResults"`
		InvocationID                   string            `json:"invocationId"`
	} `json:"sessionState"`
	InlineSessionState *struct {
		ReturnControlInvocationResults []json.RawMessage `json:"returnControlInvocationResults"`
	} `json:"inlineSessionState"`
	// InvokeInlineAgent.
	FoundationModel string `json:"foundationModel"`
	Instruction     string `json:"instruction"`
	ActionGroups    []struct {
		ActionGroupName            string `json:"actionGroupName"`
		ParentActionGroupSignature string `json:"parentActionGroupSignature"`
		ActionGroupExecutor        *struct {
			CustomControl string `json:"customControl"`
		} `json:"actionGroupExecutor"`
	} `json:"actionGroups"`
	KnowledgeBases []struct {
		KnowledgeBaseID string `json:"knowledgeBaseId"`
	} `json:"knowledgeBases"`
}

func (a agentRequest) returnedResults() bool {
	return a.SessionState != nil && len(a.SessionState.ReturnControlInvocationResults) > 0 ||
		a.InlineSessionState != nil && len(a.InlineSessionState.ReturnControlInvocationResults) > 0
}

func (s *Server) invokeAgent(w http.ResponseWriter, r *http.Request, rt route, body []byte, f *Fault) {
	agentID, aliasID, sessionID := rt.ids["agentId"], rt.ids["agentAliasId"], rt.ids["sessionId"]
	var in agentRequest
	_ = json.Unmarshal(body, &in)
	fix, ok := s.cfg.Agents[agentID]
	if s.cfg.Agents != nil && !ok {
		agentNotFound(w, "Agent", agentID)
		return
	}
	if aliasID != "TSTALIASID" && len(fix.Aliases) > 0 && !contains(fix.Aliases, aliasID) {
		agentNotFound(w, "Agent alias", aliasID)
		return
	}
	if in.InputText == "" && !in.returnedResults() {
		writeError(w, 400, "ValidationException", "inputText is required unless returnControlInvocationResults are sent.")
		return
	}
	model := fix.FoundationModel
	if model == "" {
		model = defaultAgentModel
	}
	s.rememberAgentSession(agentID, aliasID, sessionID, in.MemoryID, in.EndSession)
	w.Header().Set("X-Amzn-Bedrock-Agent-Content-Type", "application/json")
	w.Header().Set("X-Amz-Bedrock-Agent-Session-Id", sessionID)
	if in.MemoryID != "" {
		w.Header().Set("X-Amz-Bedrock-Agent-Memory-Id", in.MemoryID)
	}
	trace := jmap{"agentId": agentID, "agentAliasId": aliasID, "agentVersion": "1", "sessionId": sessionID}
	s.stream(w, r, s.agentEvents(rt.op, agentID, model, in, trace, fix), f)
}

func (s *Server) invokeInlineAgent(w http.ResponseWriter, r *http.Request, rt route, body []byte, f *Fault) {
	var in agentRequest
	_ = json.Unmarshal(body, &in)
	switch {
	case in.FoundationModel == "":
		writeError(w, 400, "ValidationException", "foundationModel is required.")
		return
	case len(in.Instruction) < 40:
		writeError(w, 400, "ValidationException", "1 validation error detected: Value at 'instruction' failed to satisfy constraint: Member must have length greater than or equal to 40")
		return
	case in.InputText == "" && !in.returnedResults():
		writeError(w, 400, "ValidationException", "inputText is required unless returnControlInvocationResults are sent.")
		return
	}
	if _, ok := s.familyOf(in.FoundationModel); !ok {
		writeError(w, 400, "ValidationException", invalidModelMsg)
		return
	}
	var fix Agent
	for _, g := range in.ActionGroups {
		if g.ActionGroupExecutor != nil && g.ActionGroupExecutor.CustomControl == "RETURN_CONTROL" {
			fix.ReturnControl = true
		}
		if g.ParentActionGroupSignature == "AMAZON.CodeInterpreter" {
			fix.Files = true
		}
	}
	for _, kb := range in.KnowledgeBases {
		if s.cfg.KnowledgeBases != nil {
			if _, ok := s.cfg.KnowledgeBases[kb.KnowledgeBaseID]; !ok {
				agentNotFound(w, "Knowledge base", kb.KnowledgeBaseID)
				return
			}
		}
		if fix.KnowledgeBaseID == "" {
			fix.KnowledgeBaseID = kb.KnowledgeBaseID
		}
	}
	sessionID := rt.ids["sessionId"]
	w.Header().Set("X-Amzn-Bedrock-Agent-Content-Type", "application/json")
	w.Header().Set("X-Amz-Bedrock-Agent-Session-Id", sessionID)
	trace := jmap{"sessionId": sessionID}
	s.stream(w, r, s.agentEvents(rt.op, in.FoundationModel, in.FoundationModel, in, trace, fix), f)
}

// The tokens an agent's traces report when the caller enables them: a
// preProcessingTrace and an orchestrationTrace modelInvocationOutput each
// state metadata.usage; these are their sums (the pre-processing step's
// share is AgentTracePre*).
const (
	AgentTraceInputTokens     = 150
	AgentTraceOutputTokens    = 25
	AgentTracePreInputTokens  = 40
	AgentTracePreOutputTokens = 5
)

// agentEvents is an agent's answer: traces when enabled, then either a
// returnControl event or the reply in chunks (the last citing a knowledge
// base when the agent has one), then files.
func (s *Server) agentEvents(op, who, model string, in agentRequest, trace jmap, fix Agent) []event {
	var events []event
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if in.EnableTrace {
		for _, t := range []jmap{
			{"orchestrationTrace": jmap{"modelInvocationInput": jmap{"traceId": "trace-1", "type": "ORCHESTRATION", "text": in.InputText, "foundationModel": model}}},
			{"orchestrationTrace": jmap{"rationale": jmap{"traceId": "trace-1", "text": "The user asked a question; I will answer it."}}},
			{"preProcessingTrace": jmap{"modelInvocationOutput": jmap{"traceId": "trace-0", "metadata": jmap{"usage": jmap{
				"inputTokens": AgentTracePreInputTokens, "outputTokens": AgentTracePreOutputTokens}}}}},
			{"orchestrationTrace": jmap{"modelInvocationOutput": jmap{"traceId": "trace-1", "metadata": jmap{"usage": jmap{
				"inputTokens": AgentTraceInputTokens - AgentTracePreInputTokens, "outputTokens": AgentTraceOutputTokens - AgentTracePreOutputTokens}}}}},
		} {
			tp := jmap{"eventTime": now, "trace": t}
			for k, v := range trace {
				tp[k] = v
			}
			events = append(events, jsonEvent("trace", tp))
		}
	}
	if fix.ReturnControl && !in.returnedResults() {
		events = append(events, jsonEvent("returnControl", jmap{
			"invocationId": newUUID(),
			"invocationInputs": []jmap{{"functionInvocationInput": jmap{
				"actionGroup": "lookup", "function": "find", "actionInvocationType": "RESULT",
				"parameters": []jmap{{"name": "query", "type": "string", "value": in.InputText}},
			}}},
		}))
		return events
	}
	text := s.reply(op, who, in.InputText)
	ps := s.deltas(op, text)
	for i, p := range ps {
		chunk := jmap{"bytes": base64.StdEncoding.EncodeToString([]byte(p))}
		if i == len(ps)-1 && fix.KnowledgeBaseID != "" {
			chunk["attribution"] = jmap{"citations": []jmap{s.citation(fix.KnowledgeBaseID, text)}}
		}
		events = append(events, jsonEvent("chunk", chunk))
	}
	if fix.Files {
		events = append(events, jsonEvent("files", jmap{"files": []jmap{{
			"name": "result.csv", "type": "text/csv", "bytes": base64.StdEncoding.EncodeToString([]byte("n,square\n2,4\n")),
		}}}))
	}
	return events
}

func (s *Server) passages(kb string) []Passage {
	if ps := s.cfg.KnowledgeBases[kb]; len(ps) > 0 {
		return ps
	}
	return DefaultPassages
}

func reference(p Passage) jmap {
	return jmap{
		"content":  jmap{"type": "TEXT", "text": p.Text},
		"location": jmap{"type": "S3", "s3Location": jmap{"uri": p.URI}},
		"metadata": jmap{"x-amz-bedrock-kb-source-uri": p.URI},
	}
}

// citation cites every passage of kb for the whole of text.
func (s *Server) citation(kb, text string) jmap {
	var refs []jmap
	for _, p := range s.passages(kb) {
		refs = append(refs, reference(p))
	}
	return jmap{
		"generatedResponsePart": jmap{"textResponsePart": jmap{"text": text, "span": jmap{"start": 0, "end": len(text)}}},
		"retrievedReferences":   refs,
	}
}

func (s *Server) knownKB(w http.ResponseWriter, kb string) bool {
	if s.cfg.KnowledgeBases == nil {
		return true
	}
	if _, ok := s.cfg.KnowledgeBases[kb]; !ok {
		agentNotFound(w, "Knowledge base", kb)
		return false
	}
	return true
}

func (s *Server) retrieve(w http.ResponseWriter, rt route, body []byte) {
	kb := rt.ids["knowledgeBaseId"]
	var in struct {
		Query struct {
			Text string `json:"text"`
		} `json:"retrievalQuery"`
	}
	_ = json.Unmarshal(body, &in)
	if in.Query.Text == "" {
		writeError(w, 400, "ValidationException", "retrievalQuery.text is required.")
		return
	}
	if !s.knownKB(w, kb) {
		return
	}
	var results []jmap
	for i, p := range s.passages(kb) {
		res := reference(p)
		res["score"] = 0.9 - float64(i)/10
		results = append(results, res)
	}
	writeJSON(w, jmap{"retrievalResults": results})
}

func (s *Server) retrieveAndGenerate(w http.ResponseWriter, r *http.Request, rt route, body []byte, f *Fault) {
	var in struct {
		Input struct {
			Text string `json:"text"`
		} `json:"input"`
		Config struct {
			Type string `json:"type"`
			KB   struct {
				ID       string `json:"knowledgeBaseId"`
				ModelArn string `json:"modelArn"`
			} `json:"knowledgeBaseConfiguration"`
			Ext struct {
				ModelArn string `json:"modelArn"`
				Sources  []struct {
					SourceType string `json:"sourceType"`
					S3Location struct {
						URI string `json:"uri"`
					} `json:"s3Location"`
					ByteContent struct {
						Identifier string `json:"identifier"`
					} `json:"byteContent"`
				} `json:"sources"`
			} `json:"externalSourcesConfiguration"`
		} `json:"retrieveAndGenerateConfiguration"`
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(body, &in)
	if in.Input.Text == "" {
		writeError(w, 400, "ValidationException", "input.text is required.")
		return
	}
	var model string
	var passages []Passage
	switch in.Config.Type {
	case "KNOWLEDGE_BASE":
		if in.Config.KB.ID == "" || !s.knownKB(w, in.Config.KB.ID) {
			if in.Config.KB.ID == "" {
				writeError(w, 400, "ValidationException", "knowledgeBaseConfiguration.knowledgeBaseId is required.")
			}
			return
		}
		model, passages = in.Config.KB.ModelArn, s.passages(in.Config.KB.ID)
	case "EXTERNAL_SOURCES":
		model = in.Config.Ext.ModelArn
		for _, src := range in.Config.Ext.Sources {
			uri := src.S3Location.URI
			if src.SourceType == "BYTE_CONTENT" {
				uri = "byte-content://" + src.ByteContent.Identifier
			}
			passages = append(passages, Passage{Text: "An external source.", URI: uri})
		}
	default:
		writeError(w, 400, "ValidationException", "retrieveAndGenerateConfiguration.type must be KNOWLEDGE_BASE or EXTERNAL_SOURCES.")
		return
	}
	if _, ok := s.familyOf(modelIDOf(model)); !ok {
		writeError(w, 400, "ValidationException", invalidModelMsg)
		return
	}
	sessionID := in.SessionID
	if sessionID == "" {
		sessionID = newUUID()
	}
	text := s.reply(rt.op, model, in.Input.Text)
	var refs []jmap
	for _, p := range passages {
		refs = append(refs, reference(p))
	}
	cit := jmap{
		"generatedResponsePart": jmap{"textResponsePart": jmap{"text": text, "span": jmap{"start": 0, "end": len(text)}}},
		"retrievedReferences":   refs,
	}
	if rt.op == OpRetrieveAndGenerate {
		writeJSON(w, jmap{"output": jmap{"text": text}, "citations": []jmap{cit}, "sessionId": sessionID})
		return
	}
	w.Header().Set("X-Amzn-Bedrock-Knowledge-Base-Session-Id", sessionID)
	var events []event
	for _, p := range s.deltas(rt.op, text) {
		events = append(events, jsonEvent("output", jmap{"text": p}))
	}
	events = append(events, jsonEvent("citation", cit))
	s.stream(w, r, events, f)
}

// modelIDOf turns a foundation-model ARN into its id (the emulator picks
// families from ids); other values are returned as they are.
func modelIDOf(m string) string {
	if i := strings.Index(m, ":foundation-model/"); i >= 0 {
		return m[i+len(":foundation-model/"):]
	}
	return m
}

func (s *Server) invokeFlow(w http.ResponseWriter, r *http.Request, rt route, body []byte, f *Fault) {
	flow, alias := rt.ids["flowIdentifier"], rt.ids["flowAliasIdentifier"]
	if i := strings.LastIndex(flow, "/"); i >= 0 {
		flow = flow[i+1:]
	}
	if i := strings.LastIndex(alias, "/"); i >= 0 {
		alias = alias[i+1:]
	}
	if s.cfg.Flows != nil {
		aliases, ok := s.cfg.Flows[flow]
		if !ok {
			agentNotFound(w, "Flow", flow)
			return
		}
		if alias != "TSTALIASID" && !contains(aliases, alias) {
			agentNotFound(w, "Flow alias", alias)
			return
		}
	}
	var in struct {
		Inputs []struct {
			NodeName string `json:"nodeName"`
			Content  struct {
				Document json.RawMessage `json:"document"`
			} `json:"content"`
		} `json:"inputs"`
		EnableTrace bool   `json:"enableTrace"`
		ExecutionID string `json:"executionId"`
	}
	_ = json.Unmarshal(body, &in)
	if len(in.Inputs) == 0 {
		writeError(w, 400, "ValidationException", "inputs is required.")
		return
	}
	var texts []string
	for _, i := range in.Inputs {
		var v any
		_ = json.Unmarshal(i.Content.Document, &v)
		texts = docStrings(v, texts)
	}
	prompt := strings.Join(texts, "\n")
	exec := in.ExecutionID
	if exec == "" {
		exec = newUUID()
	}
	w.Header().Set("X-Amz-Bedrock-Flow-Execution-Id", exec)
	var events []event
	if in.EnableTrace {
		events = append(events, jsonEvent("flowTraceEvent", jmap{"trace": jmap{"nodeInputTrace": jmap{
			"nodeName": in.Inputs[0].NodeName, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
			"fields": []jmap{{"nodeInputName": "document", "content": jmap{"document": prompt}}},
		}}}))
	}
	events = append(events,
		jsonEvent("flowOutputEvent", jmap{"nodeName": "FlowOutputNode", "nodeType": "FlowOutputNode",
			"content": jmap{"document": s.reply(rt.op, flow, prompt)}}),
		jsonEvent("flowCompletionEvent", jmap{"completionReason": "SUCCESS"}))
	s.stream(w, r, events, f)
}

// docStrings appends every string in a JSON document (object keys in
// order), the text a flow input carries.
func docStrings(v any, out []string) []string {
	switch x := v.(type) {
	case string:
		return append(out, x)
	case []any:
		for _, e := range x {
			out = docStrings(e, out)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = docStrings(x[k], out)
		}
	}
	return out
}

func (s *Server) rerank(w http.ResponseWriter, body []byte) {
	var in struct {
		Sources []struct {
			Inline struct {
				Text struct {
					Text string `json:"text"`
				} `json:"textDocument"`
			} `json:"inlineDocumentSource"`
		} `json:"sources"`
		Config struct {
			Bedrock struct {
				Model struct {
					ModelArn string `json:"modelArn"`
				} `json:"modelConfiguration"`
			} `json:"bedrockRerankingConfiguration"`
		} `json:"rerankingConfiguration"`
	}
	_ = json.Unmarshal(body, &in)
	if in.Config.Bedrock.Model.ModelArn == "" || len(in.Sources) == 0 {
		writeError(w, 400, "ValidationException", "sources and rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn are required.")
		return
	}
	// Longer documents rank first: deterministic and easy to predict.
	idx := make([]int, len(in.Sources))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return len(in.Sources[idx[a]].Inline.Text.Text) > len(in.Sources[idx[b]].Inline.Text.Text)
	})
	var results []jmap
	for rank, i := range idx {
		results = append(results, jmap{"index": i, "relevanceScore": 1 / float64(rank+1)})
	}
	writeJSON(w, jmap{"results": results})
}

// rememberAgentSession records an InvokeAgent session's memoryId; ending
// the session writes its summary into that memory, as Bedrock does.
func (s *Server) rememberAgentSession(agentID, aliasID, sessionID, memoryID string, end bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.agent
	if st.agentSessions == nil {
		st.agentSessions = map[string]agentSessionMemory{}
		st.memory = map[string][]jmap{}
	}
	key := agentID + "/" + aliasID + "/" + sessionID
	m, ok := st.agentSessions[key]
	if !ok {
		m = agentSessionMemory{memoryID: memoryID, start: time.Now().UTC()}
		st.agentSessions[key] = m
	}
	if !end || m.memoryID == "" {
		return
	}
	delete(st.agentSessions, key)
	st.memory[m.memoryID] = append(st.memory[m.memoryID], jmap{"sessionSummary": jmap{
		"memoryId": m.memoryID, "sessionId": sessionID,
		"sessionStartTime":  m.start.Format(time.RFC3339Nano),
		"sessionExpiryTime": m.start.Add(30 * 24 * time.Hour).Format(time.RFC3339Nano),
		"summaryText":       fmt.Sprintf("The user talked to agent %s in session %s.", agentID, sessionID),
	}})
}

func (s *Server) agentMemory(w http.ResponseWriter, rt route) {
	mem := rt.ids["memoryId"]
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt.op == OpDeleteAgentMemory {
		if mem == "" {
			s.agent.memory = nil
		} else {
			delete(s.agent.memory, mem)
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("{}"))
		return
	}
	if mem == "" {
		writeError(w, 400, "ValidationException", "memoryId is required.")
		return
	}
	out := s.agent.memory[mem]
	if out == nil {
		out = []jmap{}
	}
	writeJSON(w, jmap{"memoryContents": out})
}

// sessionsAPI serves the session, invocation and invocation-step
// operations and the session tags.
func (s *Server) sessionsAPI(w http.ResponseWriter, rt route, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.agent
	if st.sessions == nil {
		st.sessions = map[string]*agentSession{}
	}
	now := time.Now().UTC()
	ts := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	var in struct {
		SessionMetadata map[string]string `json:"sessionMetadata"`
		Tags            map[string]string `json:"tags"`
		InvocationID    string            `json:"invocationId"`
		Description     string            `json:"description"`
		InvocationIdent string            `json:"invocationIdentifier"`
		StepID          string            `json:"invocationStepId"`
		StepTime        string            `json:"invocationStepTime"`
		Payload         json.RawMessage   `json:"payload"`
	}
	_ = json.Unmarshal(body, &in)
	if rt.op == OpCreateSession {
		id := newUUID()
		sess := &agentSession{id: id, arn: fmt.Sprintf("arn:aws:bedrock:%s:123456789012:session/%s", s.cfg.Region, id),
			status: "ACTIVE", created: now, update: now, metadata: in.SessionMetadata, tags: in.Tags}
		st.sessions[id] = sess
		writeJSON(w, jmap{"sessionId": id, "sessionArn": sess.arn, "sessionStatus": sess.status, "createdAt": ts(now)})
		return
	}
	if rt.op == OpListSessions {
		ids := make([]string, 0, len(st.sessions))
		for id := range st.sessions {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return st.sessions[ids[i]].created.Before(st.sessions[ids[j]].created) })
		out := []jmap{}
		for _, id := range ids {
			x := st.sessions[id]
			out = append(out, jmap{"sessionId": x.id, "sessionArn": x.arn, "sessionStatus": x.status, "createdAt": ts(x.created), "lastUpdatedAt": ts(x.update)})
		}
		writeJSON(w, jmap{"sessionSummaries": out})
		return
	}
	ident := rt.ids["sessionIdentifier"]
	if ident == "" {
		ident = rt.ids["resourceArn"]
	}
	id := ident[strings.LastIndex(ident, "/")+1:]
	sess, ok := st.sessions[id]
	if !ok || strings.HasPrefix(ident, "arn:") && ident != sess.arn {
		agentNotFound(w, "Session", ident)
		return
	}
	switch rt.op {
	case OpGetSession:
		writeJSON(w, jmap{"sessionId": sess.id, "sessionArn": sess.arn, "sessionStatus": sess.status, "createdAt": ts(sess.created),
			"lastUpdatedAt": ts(sess.update), "sessionMetadata": sess.metadata})
	case OpUpdateSession:
		sess.metadata, sess.update = in.SessionMetadata, now
		writeJSON(w, jmap{"sessionId": sess.id, "sessionArn": sess.arn, "sessionStatus": sess.status, "createdAt": ts(sess.created), "lastUpdatedAt": ts(now)})
	case OpEndSession:
		sess.status, sess.update = "ENDED", now
		writeJSON(w, jmap{"sessionId": sess.id, "sessionArn": sess.arn, "sessionStatus": sess.status})
	case OpDeleteSession:
		delete(st.sessions, id)
		writeJSON(w, jmap{})
	case OpCreateInvocation:
		inv := in.InvocationID
		if inv == "" {
			inv = newUUID()
		}
		sess.invocations = append(sess.invocations, jmap{"invocationId": inv, "sessionId": sess.id, "createdAt": ts(now)})
		writeJSON(w, jmap{"invocationId": inv, "sessionId": sess.id, "createdAt": ts(now)})
	case OpListInvocations:
		out := append([]jmap{}, sess.invocations...)
		writeJSON(w, jmap{"invocationSummaries": out})
	case OpPutInvocationStep:
		step := in.StepID
		if step == "" {
			step = newUUID()
		}
		sess.steps = append(sess.steps, jmap{"invocationId": in.InvocationIdent, "invocationStepId": step, "sessionId": sess.id,
			"invocationStepTime": in.StepTime, "payload": in.Payload})
		writeJSON(w, jmap{"invocationStepId": step})
	case OpGetInvocationStep:
		for _, x := range sess.steps {
			if x["invocationStepId"] == rt.ids["invocationStepId"] {
				writeJSON(w, jmap{"invocationStep": x})
				return
			}
		}
		agentNotFound(w, "Invocation step", rt.ids["invocationStepId"])
	case OpListInvocationSteps:
		out := []jmap{}
		for _, x := range sess.steps {
			out = append(out, jmap{"invocationId": x["invocationId"], "invocationStepId": x["invocationStepId"], "sessionId": x["sessionId"], "invocationStepTime": x["invocationStepTime"]})
		}
		writeJSON(w, jmap{"invocationStepSummaries": out})
	case OpTagResource:
		if sess.tags == nil {
			sess.tags = map[string]string{}
		}
		for k, v := range in.Tags {
			sess.tags[k] = v
		}
		writeJSON(w, jmap{})
	case OpUntagResource:
		for _, k := range rt.query["tagKeys"] {
			delete(sess.tags, k)
		}
		writeJSON(w, jmap{})
	case OpListTagsForResource:
		tags := sess.tags
		if tags == nil {
			tags = map[string]string{}
		}
		writeJSON(w, jmap{"tags": tags})
	default:
		writeError(w, 404, "UnknownOperationException", "")
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
