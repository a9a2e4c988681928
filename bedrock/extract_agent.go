package bedrock

import "strings"

// The agent runtime's bodies as the guards read them. Requests: every
// string is text (inputText, session and prompt-session attributes,
// retrieval queries, flow inputs, instructions, conversation history,
// returned tool results…) except the identifiers policy checked
// (AgentRequestFacts' keys: a mask must never change what was authorised)
// and a few enumerations; bytes, images and S3-hosted files are
// unscannable. Answers and stream events: every string is text except
// identifiers and timestamps; an agent's chunk is base64 of its text (a
// Base64 span, so the stream hold-back reads the chunks of one answer as
// one text and a mask re-encodes it); an output file is text when its
// media type says so, else unscannable; an event type Warden does not know
// is unscannable (ExtractStreamEvent).

// agentEvents lists the event types of each agent-runtime stream
// (aws-sdk-go-v2/service/bedrockagentruntime's deserializers).
var agentEvents = map[Operation][]string{
	OpInvokeAgent:               {"chunk", "files", "returnControl", "trace"},
	OpInvokeInlineAgent:         {"chunk", "files", "returnControl", "trace"},
	OpRetrieveAndGenerateStream: {"output", "citation", "guardrail"},
	OpInvokeFlow:                {"flowOutputEvent", "flowCompletionEvent", "flowTraceEvent", "flowMultiTurnInputRequestEvent"},
	OpOptimizePrompt:            {"analyzePromptEvent", "optimizedPromptEvent"},
}

// AgentEventKnown reports whether typ is an event type of op's stream.
func AgentEventKnown(op Operation, typ string) bool {
	for _, t := range agentEvents[op] {
		if t == typ {
			return true
		}
	}
	return false
}

// textMediaType reports whether an agent output file's media type is text.
func textMediaType(t string) bool {
	t, _, _ = strings.Cut(t, ";")
	t = strings.TrimSpace(strings.ToLower(t))
	return strings.HasPrefix(t, "text/") || t == "application/json" || t == "application/xml" || t == "application/x-yaml"
}

func (e *extractor) agentRule(c ctx, k []byte) (act, ctx) {
	key := string(k)
	switch c {
	case cAgentReq:
		if agentFactKey(key) != "" {
			return aSkip, 0 // checked by policy: never rewritten
		}
		switch key {
		case "document", "json", "sessionAttributes", "promptSessionAttributes", "sessionMetadata", "metadata", "filter",
			"additionalModelRequestFields", "tags":
			return aText, cAny // the caller's data: every string
		case "payload":
			return aText, cAgentOpaque
		case "byteContent", "image", "images", "s3Location", "redactedContent", "video", "audio":
			return aUnsc, 0
		case "type", "sourceType", "searchType", "overrideSearchType", "promptType", "promptCreationMode", "promptState",
			"parserMode", "actionGroupState", "customControl", "agentCollaboration", "relayConversationHistory", "useCase",
			"contentType", "mediaType", "format", "queryTransformationConfiguration", "performanceConfig":
			return aSkip, 0
		}
		return aText, cAgentReq
	case cAgentOpaque:
		switch key {
		case "byteContent", "image", "images", "s3Location", "redactedContent", "video", "audio", "bytes":
			return aUnsc, 0
		}
		return aText, cAgentOpaque
	case cAgentResp:
		switch key {
		case "bytes":
			return aB64Text, 0 // a chunk's text
		case "files":
			return aText, cAgentFile
		case "document", "json", "sessionAttributes", "promptSessionAttributes", "sessionMetadata", "metadata", "tags":
			return aText, cAny // data as the caller or a flow shaped it: every string
		case "payload":
			return aText, cAgentOpaque
		case "image", "images", "byteContent", "redactedContent", "video", "audio":
			return aUnsc, 0
		case "sessionId", "sessionArn", "sessionStatus", "memoryId", "invocationId", "invocationStepId", "agentId", "agentAliasId",
			"agentVersion", "traceId", "executionId", "eventTime", "timestamp", "createdAt", "lastUpdatedAt", "endedAt",
			"invocationStepTime", "sessionStartTime", "sessionExpiryTime", "nextToken", "type", "sourceType", "score",
			"relevanceScore", "index", "span", "completionReason", "nodeType":
			return aSkip, 0
		}
		return aText, cAgentResp
	case cAgentFile:
		switch key {
		case "bytes":
			if e.textDoc {
				return aB64Text, 0
			}
			return aUnsc, 0
		case "type":
			return aSkip, 0
		}
		return aText, cAgentResp
	}
	return aText, cAny
}
