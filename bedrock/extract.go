package bedrock

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// TextSpan is one JSON string value holding text a model reads or wrote.
type TextSpan struct {
	// Path locates the value: "messages[0].content[1].text". Keys that are
	// not [A-Za-z0-9_-]+ are written ["quoted"]. A value inside a decoded
	// base64 body has the path of that body, a '/', then its path inside
	// it: "input.invokeModel.body/messages[0].content".
	Path string
	// Text is the decoded value (escapes such as \u0040 and surrogate pairs
	// decoded exactly as encoding/json does). No other normalisation.
	Text string
	// Start and End delimit the JSON string literal, quotes included, in
	// the bytes named by Src, so a caller can replace it with a re-encoded
	// string: json.Unmarshal(src[Start:End], &s) gives Text.
	Start, End int
	// Src is 0 when Start and End index the body passed in, and i when they
	// index Extracted.Decoded[i-1].Bytes.
	Src int
	// Base64 marks a text document sent as bytes (Converse formats txt,
	// md, csv, html): the literal holds the base64 of Text's UTF-8, so a
	// rewrite base64-encodes the new text before JSON-encoding it.
	Base64 bool
}

// Decoded is a JSON body carried base64-encoded inside the scanned one: the
// native body in CountTokens' input.invokeModel.body, or the model's chunk
// in an InvokeModelWithResponseStream "chunk" event's "bytes".
type Decoded struct {
	Path string
	// Start and End delimit the base64 string literal, quotes included, in
	// the scanned body: to rewrite a span inside Bytes, re-encode Bytes and
	// replace body[Start:End].
	Start, End int
	Bytes      []byte
}

// Extracted is what a body holds for guardrails to read.
type Extracted struct {
	// Texts are every string value holding text, in body order (nested
	// bodies' values where their base64 string sits). Empty strings are
	// left out.
	Texts []TextSpan
	// Unscannable are the paths of content Warden cannot read: images,
	// video, audio, binary (pdf, doc, docx, xls, xlsx) or S3-hosted
	// documents, text documents whose bytes are not UTF-8, redacted reasoning,
	// base64 that does not decode to JSON, unknown document sources.
	Unscannable []string
	// MaxTokens is the output-token limit the request asks for (requests
	// only, never from a decoded nested body), read from maxTokens,
	// max_tokens, max_gen_len, max_new_tokens, maxTokenCount,
	// max_tokens_to_sample, … where the family puts it. MaxTokensPath is ""
	// when the request sets none. A number that is not an integer counts
	// rounded up (saturating at the int64 range); a value that is not a
	// number gives -1. If the key occurs more than once the largest value
	// is reported and MaxTokensCount says how many there are (a clamp that
	// rewrites one leaves the others: reject such a body instead).
	// MaxTokensStart and MaxTokensEnd delimit the raw value in the body,
	// for clamping.
	MaxTokens                    int64
	MaxTokensPath                string
	MaxTokensStart, MaxTokensEnd int
	MaxTokensCount               int
	// Decoded are the base64-carried bodies whose values are in Texts
	// (TextSpan.Src indexes them from 1).
	Decoded []Decoded
	// IDs are identifiers a client or a model chooses that are no model
	// text but travel with it, so could carry a value: tool-use ids
	// (Converse toolUse.toolUseId and toolResult.toolUseId, in requests,
	// answers and contentBlockStart.start.toolUse events; Anthropic
	// tool_use id and tool_result tool_use_id; Mistral tool_call_id). They
	// are not in Texts: a guard runs only the number and key detectors on
	// them, and a rewrite must keep an id an id (see guard). Same fields as
	// Texts; Src as there.
	IDs []TextSpan
}

// TextBytes is the length of every text the body holds, as it arrived:
// what a budgeted stream counts of each event it relays.
func (x *Extracted) TextBytes() int64 {
	var n int64
	for _, t := range x.Texts {
		n += int64(len(t.Text))
	}
	return n
}

// ExtractRequest returns the text, unscannable content and output-token
// limit of a request body. family is one of the Family constants (see
// ModelID.Family); it matters for InvokeModel, InvokeModelWithResponseStream,
// CountTokens' invokeModel input and StartAsyncInvoke's modelInput. Converse
// and ConverseStream bodies have one shape whatever the model. Fields the
// extractor does not know, unknown families and unknown operations have
// every string value scanned: only enumerations, identifiers and opaque
// signatures are ever passed over. A body that is not valid JSON (or not
// UTF-8) is an error.
func ExtractRequest(op Operation, family string, body []byte) (Extracted, error) {
	if op.AgentRuntime() {
		return extract(body, cAgentReq, family, false, "request")
	}
	var root ctx
	switch op {
	case OpConverse, OpConverseStream:
		root = cConvRoot
	case OpCountTokens:
		root = cCTRoot
	case OpInvokeModel, OpInvokeModelWithResponseStream:
		root = familyRequest(family)
	case OpStartAsyncInvoke:
		root = cAsyncRoot
	case OpApplyGuardrail:
		root = cApplyGuard
	case OpOpenAIChatCompletions, OpMantleChatCompletions:
		root = cChat // OpenAI's chat shape: messages[], content parts, tool calls
	case OpMantleMessages:
		root = cAnth // Anthropic's Messages API
	case OpOpenAIResponses, OpMantleResponses:
		root = cResp // input items, content parts, tool calls and their outputs
	default:
		root = cAnyRoot
	}
	return extract(body, root, family, true, "request")
}

// ExtractResponse returns the text and unscannable content of a unary
// response body (Converse, InvokeModel by family; anything else has every
// string scanned). Streaming operations' responses are event streams: give
// their events to ExtractStreamEvent.
func ExtractResponse(op Operation, family string, body []byte) (Extracted, error) {
	if op.AgentRuntime() {
		if op.AgentStreaming() {
			return Extracted{}, fmt.Errorf("extract %s response: an event stream; extract its events", op)
		}
		return extract(body, cAgentResp, family, false, "response")
	}
	var root ctx
	switch op {
	case OpConverse:
		root = cConvResp
	case OpInvokeModel:
		root = familyResponse(family)
	case OpConverseStream, OpInvokeModelWithResponseStream, OpInvokeModelWithBidirectionalStream:
		return Extracted{}, fmt.Errorf("extract %s response: an event stream; extract its events", op)
	case OpOpenAIChatCompletions, OpMantleChatCompletions:
		root = cChat
	case OpMantleMessages:
		root = cAnth
	case OpOpenAIResponses, OpMantleResponses:
		root = cResp
	default:
		root = cAnyRoot
	}
	return extract(body, root, family, false, "response")
}

// ExtractStreamEvent returns the text and unscannable content of one event's
// payload. ConverseStream events (messageStart, contentBlockStart,
// contentBlockDelta with text, toolUse input or reasoning text,
// messageStop, metadata) have one shape; the text of a toolUse delta is a
// fragment of JSON, returned as it is. An InvokeModelWithResponseStream
// "chunk" event's payload is {"bytes":"<base64>","p":"…"}: the base64 is
// decoded and the family's chunk read, so its spans have Src 1 and their
// offsets index the decoded JSON (Extracted.Decoded[0].Bytes), not the
// payload. Other events (exceptions) and unknown families have every
// string scanned.
func ExtractStreamEvent(op Operation, family string, eventType string, payload []byte) (Extracted, error) {
	var out Extracted
	if err := extractEvent(&out, nil, op, family, eventType, payload); err != nil {
		return Extracted{}, err
	}
	return out, nil
}

// EventExtractor extracts a stream's events one after another as
// ExtractStreamEvent does, keeping its buffers from one event to the next:
// a stream guard extracts every token's event, and a fresh Extracted, path
// buffer and path strings per event were most of what a token cost. The
// zero value is ready; one EventExtractor serves one goroutine.
type EventExtractor struct {
	path    []byte
	scratch []byte
	// paths are the span paths met so far (a stream's events repeat a
	// few: "delta.text", "delta.toolUse.input"), handed out again instead
	// of a new string per span.
	paths []string
}

// maxInternedPaths bounds EventExtractor.paths: a stream whose events name
// ever new paths (array indices) gets new strings past it.
const maxInternedPaths = 16

// Extract is ExtractStreamEvent writing into *dst, whose slices (and the
// buffers of its Decoded bodies) it truncates and reuses: nothing dst held
// may still be in use. On error *dst holds no spans.
func (x *EventExtractor) Extract(dst *Extracted, op Operation, family, eventType string, payload []byte) error {
	err := extractEvent(dst, x, op, family, eventType, payload)
	if err != nil {
		dst.Texts, dst.IDs, dst.Unscannable, dst.Decoded = dst.Texts[:0], dst.IDs[:0], dst.Unscannable[:0], dst.Decoded[:0]
	}
	return err
}

// extractEvent is ExtractStreamEvent into *out (reset first), with x's
// buffers when x is not nil. The event type is named in an error only when
// there is one (no string per event).
func extractEvent(out *Extracted, x *EventExtractor, op Operation, family string, eventType string, payload []byte) error {
	root := cAnyRoot
	switch op {
	case OpConverseStream:
		root = cConvEvent
	case OpInvokeModelWithResponseStream:
		if eventType == "chunk" {
			root = cChunkWrap
		}
	case OpOpenAIChatCompletions, OpMantleChatCompletions:
		root = cChat // a chat.completion.chunk
	case OpMantleMessages:
		if eventType != "error" {
			root = cAnth // message_start, content_block_*, message_delta, …
		}
	case OpOpenAIResponses, OpMantleResponses:
		if eventType != "error" {
			root = cResp // response.output_text.delta, response.completed, …
		}
	default: // the agent runtime's operations are none of the above
		if !op.AgentRuntime() {
			break
		}
		if !AgentEventKnown(op, eventType) {
			// An event Warden does not know may carry anything, in any
			// encoding: it is not read as text (but must be JSON, as
			// every event payload is).
			if err := extractInto(out, x, payload, cAny, family, false); err != nil {
				return fmt.Errorf("extract %s event: %w", eventType, err)
			}
			out.Texts, out.IDs, out.Decoded = out.Texts[:0], out.IDs[:0], out.Decoded[:0]
			out.Unscannable = append(out.Unscannable[:0], quoteTrunc(eventType)+" event (a type Warden does not know for "+string(op)+")")
			return nil
		}
		root = cAgentResp
	}
	if err := extractInto(out, x, payload, root, family, false); err != nil {
		return fmt.Errorf("extract %s event: %w", eventType, err)
	}
	return nil
}

func familyRequest(family string) ctx {
	switch family {
	case FamilyAnthropic:
		return cAnth
	case FamilyTitanText:
		return cTitan
	case FamilyNova:
		return cConvRoot
	case FamilyLlama:
		return cLlama
	case FamilyMistral, FamilyJamba:
		return cChat
	case FamilyCohereCommandR:
		return cCohere
	}
	return cAnyRoot
}

func familyResponse(family string) ctx {
	if family == FamilyNova {
		return cConvResp
	}
	return familyRequest(family)
}

func familyChunk(family string) ctx {
	if family == FamilyNova {
		return cNovaChunk
	}
	return familyRequest(family)
}

func extract(body []byte, root ctx, family string, wantMax bool, what string) (Extracted, error) {
	var out Extracted
	if err := extractInto(&out, nil, body, root, family, wantMax); err != nil {
		return Extracted{}, fmt.Errorf("extract %s: %w", what, err)
	}
	return out, nil
}

// extractInto walks body from root into *out, whose slices it truncates
// and reuses, with x's buffers when x is not nil. The walker holds the
// Extracted by value (a pointer to a local one made it escape, one
// allocation per call).
func extractInto(out *Extracted, x *EventExtractor, body []byte, root ctx, family string, wantMax bool) error {
	e := extractor{
		jsonScanner: jsonScanner{b: body},
		x:           x,
		wantMax:     wantMax,
		famReq:      familyRequest(family),
		famChunk:    familyChunk(family),
	}
	e.out = Extracted{Texts: out.Texts[:0], IDs: out.IDs[:0], Unscannable: out.Unscannable[:0], Decoded: out.Decoded[:0]}
	if x != nil {
		e.path, e.scratch = x.path[:0], x.scratch[:0]
	}
	err := e.run(root)
	if x != nil {
		x.path, x.scratch = e.path[:0], e.scratch[:0]
	}
	*out = e.out
	if err != nil && !utf8.Valid(body) {
		err = ErrNotUTF8
	}
	return err
}

// ctx is where in a known body shape the walker stands: it decides what each
// member key holds. Arrays are transparent (their elements have the array's
// ctx), and a string value met anywhere except under aSkip, aUnsc or aB64
// is text.
type ctx uint8

const (
	cAny      ctx = iota // arbitrary JSON: every string is text
	cAnyRoot             // an unknown body: every string, and max-token keys
	cInferAny            // an unknown body's generation config

	cConvRoot   // Converse request, Nova request
	cMsg        // {role, content}
	cBlock      // a Converse content block, system block, tool result block or delta
	cDoc        // document block
	cDocSrc     // document source
	cToolUse    // toolUse
	cToolResult // toolResult
	cGuard      // guardContent
	cGuardText  // guardContent.text
	cReason     // reasoningContent (blocks and deltas)
	cReasonText // reasoningContent.reasoningText
	cInfer      // inferenceConfig
	cToolConfig // toolConfig, tools[]
	cConvResp   // Converse response, Nova response
	cOutput     // output
	cConvEvent  // a ConverseStream event payload
	cNovaChunk  // a Nova stream chunk: {contentBlockDelta: {...}} and siblings

	cCTRoot     // CountTokens request
	cCTInput    // input
	cCTInvoke   // input.invokeModel
	cAsyncRoot  // StartAsyncInvoke request
	cApplyGuard // ApplyGuardrail request
	cChunkWrap  // InvokeModelWithResponseStream chunk payload

	cAnth      // Anthropic request, response and stream chunk
	cAnthMsg   // messages[]
	cAnthBlock // content blocks, deltas
	cAnthSrc   // a block's source: readable only for type text / content

	cTitan    // Titan text request, response and chunk
	cTitanCfg // textGenerationConfig
	cTitanRes // results[]

	cLlama // Llama request, response and chunk

	cChat        // Mistral (text and chat) and AI21 Jamba request, response and chunk
	cChatMsg     // an OpenAI-style message or delta
	cChatContent // its content: a string or blocks
	cChoice      // choices[] / outputs[]

	cCohere     // Cohere Command R request, response and chunk
	cCohereHist // chat_history[]

	cResp     // OpenAI Responses request, response and stream event
	cRespItem // an input or output item, or a content part

	cAgentReq    // an agent-runtime request body (extract_agent.go)
	cAgentOpaque // a structured member of caller data (PutInvocationStep's payload)
	cAgentResp   // an agent-runtime answer or stream event payload
	cAgentFile   // an agent's output file (files event)
)

// act is what to do with a member's value.
type act uint8

const (
	aText    act = iota // walk it in the returned ctx; its strings are text
	aSkip               // an enumeration, identifier or opaque token
	aUnsc               // content Warden cannot read
	aMax                // an output-token limit
	aB64                // a base64 string holding a JSON body of the returned ctx
	aB64Text            // a base64 string holding UTF-8 text (a text document's bytes)
	aID                 // an identifier the client or model chooses (Extracted.IDs)
)

// rule says what member k of an object in ctx c holds. Anything not listed
// is scanned as arbitrary JSON.
func (e *extractor) rule(c ctx, k []byte) (act, ctx) {
	if c >= cAgentReq {
		return e.agentRule(c, k) // extract_agent.go
	}
	switch c {
	case cAny:
		return aText, cAny
	case cAnyRoot, cInferAny:
		switch string(k) {
		case "max_tokens", "maxTokens", "max_gen_len", "max_new_tokens", "maxTokenCount",
			"max_tokens_to_sample", "max_completion_tokens", "max_output_tokens", "maxOutputTokens":
			return aMax, cAny
		case "inferenceConfig", "textGenerationConfig", "generationConfig", "parameters":
			if c == cAnyRoot {
				return aText, cInferAny
			}
		}

	case cConvRoot:
		switch string(k) {
		case "messages":
			return aText, cMsg
		case "system":
			return aText, cBlock
		case "inferenceConfig":
			return aText, cInfer
		case "toolConfig":
			return aText, cToolConfig
		case "guardrailConfig", "performanceConfig", "serviceTier", "schemaVersion":
			return aSkip, 0
		}
	case cMsg:
		switch string(k) {
		case "role":
			return aSkip, 0
		case "content":
			return aText, cBlock
		}
	case cBlock:
		switch string(k) {
		case "image", "video", "audio":
			return aUnsc, 0
		case "document":
			return aText, cDoc
		case "toolUse":
			return aText, cToolUse
		case "toolResult":
			return aText, cToolResult
		case "guardContent":
			return aText, cGuard
		case "reasoningContent":
			return aText, cReason
		case "start", "delta":
			return aText, cBlock
		case "cachePoint", "role", "stopReason", "p", "contentBlockIndex":
			return aSkip, 0
		}
	case cDoc:
		switch string(k) {
		case "format":
			return aSkip, 0
		case "source":
			return aText, cDocSrc
		}
	case cDocSrc:
		switch string(k) {
		case "text":
			return aText, cAny
		case "content":
			return aText, cBlock
		case "bytes":
			if e.textDoc {
				return aB64Text, 0
			}
		}
		return aUnsc, 0 // bytes, s3Location, and sources not known yet
	case cToolUse:
		switch string(k) {
		case "toolUseId":
			return aID, 0
		case "type":
			return aSkip, 0
		}
	case cToolResult:
		switch string(k) {
		case "toolUseId":
			return aID, 0
		case "status", "type":
			return aSkip, 0
		case "content":
			return aText, cBlock
		}
	case cGuard:
		switch string(k) {
		case "text":
			return aText, cGuardText
		case "image":
			return aUnsc, 0
		}
	case cGuardText:
		if string(k) == "qualifiers" {
			return aSkip, 0
		}
	case cReason:
		switch string(k) {
		case "reasoningText":
			return aText, cReasonText
		case "signature":
			return aSkip, 0
		case "redactedContent":
			return aUnsc, 0
		}
	case cReasonText:
		if string(k) == "signature" {
			return aSkip, 0
		}
	case cInfer:
		switch string(k) {
		case "maxTokens", "max_new_tokens":
			return aMax, cAny
		}
	case cToolConfig:
		switch string(k) {
		case "tools":
			return aText, cToolConfig
		case "cachePoint":
			return aSkip, 0
		}
	case cConvResp:
		switch string(k) {
		case "output":
			return aText, cOutput
		case "stopReason", "performanceConfig", "serviceTier":
			return aSkip, 0
		}
	case cOutput:
		if string(k) == "message" {
			return aText, cMsg
		}
	case cConvEvent:
		switch string(k) {
		case "start", "delta":
			return aText, cBlock
		case "role", "stopReason", "p", "contentBlockIndex":
			return aSkip, 0
		}
	case cNovaChunk:
		switch string(k) {
		case "messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata":
			return aText, cConvEvent
		case "amazon-bedrock-invocationMetrics":
			return aSkip, 0
		}

	case cCTRoot:
		if string(k) == "input" {
			return aText, cCTInput
		}
	case cCTInput:
		switch string(k) {
		case "converse":
			return aText, cConvRoot
		case "invokeModel":
			return aText, cCTInvoke
		}
	case cCTInvoke:
		if string(k) == "body" {
			return aB64, e.famReq
		}
	case cAsyncRoot:
		switch string(k) {
		case "modelInput":
			return aText, e.famReq
		case "clientRequestToken", "modelId", "outputDataConfig":
			return aSkip, 0
		}
	case cApplyGuard:
		switch string(k) {
		case "content":
			return aText, cGuard
		case "source", "outputScope":
			return aSkip, 0
		}
	case cChunkWrap:
		switch string(k) {
		case "bytes":
			return aB64, e.famChunk
		case "p":
			return aSkip, 0
		}

	case cAnth:
		switch string(k) {
		case "max_tokens", "max_tokens_to_sample":
			return aMax, cAny
		case "system", "content", "content_block", "delta":
			return aText, cAnthBlock
		case "messages":
			return aText, cAnthMsg
		case "message":
			return aText, cAnth
		case "anthropic_version", "anthropic_beta", "id", "type", "role", "model", "stop_reason",
			"amazon-bedrock-invocationMetrics", "amazon-bedrock-guardrailAction":
			return aSkip, 0
		}
	case cAnthMsg:
		switch string(k) {
		case "role":
			return aSkip, 0
		case "content":
			return aText, cAnthBlock
		}
	case cAnthBlock:
		switch string(k) {
		case "id", "tool_use_id":
			return aID, 0
		case "type", "signature", "cache_control", "stop_reason":
			return aSkip, 0
		case "source":
			return aText, cAnthSrc
		case "content":
			return aText, cAnthBlock
		case "data": // redacted_thinking: encrypted
			return aUnsc, 0
		}
	case cAnthSrc: // only reached for text and content sources
		switch string(k) {
		case "type", "media_type":
			return aSkip, 0
		case "content":
			return aText, cAnthBlock
		}

	case cTitan:
		switch string(k) {
		case "textGenerationConfig":
			return aText, cTitanCfg
		case "results":
			return aText, cTitanRes
		case "completionReason", "amazon-bedrock-invocationMetrics":
			return aSkip, 0
		}
	case cTitanCfg:
		if string(k) == "maxTokenCount" {
			return aMax, cAny
		}
	case cTitanRes:
		if string(k) == "completionReason" {
			return aSkip, 0
		}

	case cLlama:
		switch string(k) {
		case "max_gen_len":
			return aMax, cAny
		case "images":
			return aUnsc, 0
		case "stop_reason", "amazon-bedrock-invocationMetrics":
			return aSkip, 0
		}

	case cChat:
		switch string(k) {
		case "max_tokens":
			return aMax, cAny
		case "messages":
			return aText, cChatMsg
		case "choices", "outputs":
			return aText, cChoice
		case "id", "model", "object", "tool_choice", "amazon-bedrock-invocationMetrics":
			return aSkip, 0
		}
	case cChatMsg:
		switch string(k) {
		case "tool_call_id":
			return aID, 0
		case "role":
			return aSkip, 0
		case "content":
			return aText, cChatContent
		}
	case cChatContent:
		switch string(k) {
		case "type":
			return aSkip, 0
		case "image_url", "input_audio", "image", "document_url", "file":
			return aUnsc, 0
		}
	case cChoice:
		switch string(k) {
		case "message", "delta":
			return aText, cChatMsg
		case "index", "finish_reason", "stop_reason":
			return aSkip, 0
		}

	case cResp:
		switch string(k) {
		case "max_output_tokens":
			return aMax, cAny
		case "input", "output", "item", "part":
			return aText, cRespItem
		case "response":
			return aText, cResp
		case "id", "object", "model", "status", "type", "item_id", "previous_response_id", "service_tier", "tool_choice",
			"truncation", "reasoning", "prompt_cache_key", "safety_identifier", "user", "usage", "error", "incomplete_details":
			return aSkip, 0
		}
	case cRespItem:
		switch string(k) {
		case "type", "role", "id", "status", "name", "annotations", "logprobs":
			return aSkip, 0
		case "call_id":
			return aID, 0
		case "content":
			return aText, cRespItem
		case "image_url", "file_data", "file_id", "file_url", "encrypted_content":
			return aUnsc, 0
		}
	case cCohere:
		switch string(k) {
		case "max_tokens":
			return aMax, cAny
		case "chat_history":
			return aText, cCohereHist
		case "response":
			return aText, cCohere
		case "event_type", "finish_reason", "response_id", "generation_id", "is_finished",
			"amazon-bedrock-invocationMetrics":
			return aSkip, 0
		}
	case cCohereHist:
		if string(k) == "role" {
			return aSkip, 0
		}
	}
	return aText, cAny
}

// extractor walks one JSON body, validating it as it goes (what
// encoding/json.Valid accepts, UTF-8 only) and recording what the rules say.
type extractor struct {
	jsonScanner
	out      Extracted
	x        *EventExtractor // its buffers and interned paths, or nil
	src      int             // TextSpan.Src of what this walker finds
	path     []byte          // of the value being walked
	scratch  []byte          // for decoding escaped strings and keys
	wantMax  bool
	textDoc  bool // the document being walked has a text format
	famReq   ctx  // the family's native request body
	famChunk ctx  // the family's stream chunk
}

func (e *extractor) run(root ctx) error {
	if err := e.value(root); err != nil {
		return err
	}
	e.ws()
	if e.i != len(e.b) {
		return fmt.Errorf("data after the JSON value at offset %d", e.i)
	}
	return nil
}

func (e *extractor) value(c ctx) error {
	e.ws()
	if e.i >= len(e.b) {
		return e.errorf("value expected")
	}
	switch ch := e.b[e.i]; {
	case ch == '{':
		switch c {
		case cAnthSrc:
			// Only text sources (data is plain text) and content sources
			// (text blocks) can be read; base64, url, file and unknown
			// ones cannot.
			if t := e.peekString("type"); t != "text" && t != "content" {
				e.unscannable()
				return e.jsonScanner.value()
			}
		case cAgentFile:
			// The media type says whether the file's bytes are text.
			saved := e.textDoc
			e.textDoc = textMediaType(e.peekString("type"))
			err := e.object(c)
			e.textDoc = saved
			return err
		case cDoc:
			// The format, wherever it sits among the members, says
			// whether the document's bytes are text.
			saved := e.textDoc
			e.textDoc = textFormat(e.peekString("format"))
			err := e.object(c)
			e.textDoc = saved
			return err
		}
		return e.object(c)
	case ch == '[':
		return e.array(c)
	case ch == '"':
		start := e.i
		esc, err := e.str()
		if err != nil {
			return err
		}
		e.emit(start, e.i, esc)
		return nil
	}
	return e.jsonScanner.value() // a number or literal
}

func (e *extractor) object(c ctx) error {
	if e.depth++; e.depth > maxJSONDepth {
		return errJSONDepth
	}
	e.i++ // '{'
	e.ws()
	if e.i < len(e.b) && e.b[e.i] == '}' {
		e.depth--
		e.i++
		return nil
	}
	mark := len(e.path)
	for {
		e.ws()
		if e.i >= len(e.b) || e.b[e.i] != '"' {
			return e.errorf("object key expected")
		}
		ks := e.i
		esc, err := e.str()
		if err != nil {
			return err
		}
		key := e.b[ks+1 : e.i-1]
		if esc {
			e.scratch = unquoteJSON(e.scratch[:0], key)
			key = e.scratch
		}
		e.ws()
		if e.i >= len(e.b) || e.b[e.i] != ':' {
			return e.errorf("':' expected")
		}
		e.i++
		e.path = appendKey(e.path[:mark], key)
		a, cc := e.rule(c, key) // key may be e.scratch: use it before walking on
		if err := e.member(a, cc); err != nil {
			return err
		}
		e.ws()
		if e.i >= len(e.b) {
			return e.errorf("',' or '}' expected")
		}
		switch e.b[e.i] {
		case ',':
			e.i++
		case '}':
			e.depth--
			e.i++
			e.path = e.path[:mark]
			return nil
		default:
			return e.errorf("',' or '}' expected")
		}
	}
}

func (e *extractor) array(c ctx) error {
	if e.depth++; e.depth > maxJSONDepth {
		return errJSONDepth
	}
	e.i++ // '['
	e.ws()
	if e.i < len(e.b) && e.b[e.i] == ']' {
		e.depth--
		e.i++
		return nil
	}
	mark := len(e.path)
	for n := 0; ; n++ {
		e.path = append(strconv.AppendInt(append(e.path[:mark], '['), int64(n), 10), ']')
		if err := e.value(c); err != nil {
			return err
		}
		e.ws()
		if e.i >= len(e.b) {
			return e.errorf("',' or ']' expected")
		}
		switch e.b[e.i] {
		case ',':
			e.i++
		case ']':
			e.depth--
			e.i++
			e.path = e.path[:mark]
			return nil
		default:
			return e.errorf("',' or ']' expected")
		}
	}
}

func (e *extractor) member(a act, c ctx) error {
	switch a {
	case aSkip:
		e.ws()
		return e.jsonScanner.value()
	case aUnsc:
		e.unscannable()
		e.ws()
		return e.jsonScanner.value()
	case aMax:
		return e.maxTokens()
	case aB64:
		return e.base64Body(c)
	case aB64Text:
		return e.base64Text()
	case aID:
		e.ws()
		if e.i < len(e.b) && e.b[e.i] == '"' {
			start := e.i
			esc, err := e.str()
			if err != nil {
				return err
			}
			n := len(e.out.Texts)
			e.emit(start, e.i, esc)
			if len(e.out.Texts) > n { // not empty
				e.out.IDs = append(e.out.IDs, e.out.Texts[n])
				e.out.Texts = e.out.Texts[:n]
			}
			return nil
		}
		return e.jsonScanner.value() // not a string: Bedrock refuses it
	}
	return e.value(c)
}

func (e *extractor) unscannable() {
	e.out.Unscannable = append(e.out.Unscannable, e.pathString())
}

// pathString is the path being walked as a string: one interned in e.x when
// there is one.
func (e *extractor) pathString() string {
	if e.x == nil {
		return string(e.path)
	}
	for _, p := range e.x.paths {
		if p == string(e.path) {
			return p
		}
	}
	s := string(e.path)
	if len(e.x.paths) < maxInternedPaths {
		e.x.paths = append(e.x.paths, s)
	}
	return s
}

// emit records the string literal b[start:end] as text.
func (e *extractor) emit(start, end int, escaped bool) {
	if end-start == 2 {
		return
	}
	raw := e.b[start+1 : end-1]
	var text string
	if escaped {
		text = unquoteString(raw)
	} else {
		text = string(raw)
	}
	e.out.Texts = append(e.out.Texts, TextSpan{Path: e.pathString(), Text: text, Start: start, End: end, Src: e.src})
}

func (e *extractor) maxTokens() error {
	e.ws()
	start := e.i
	if e.i < len(e.b) && (e.b[e.i] == '-' || e.b[e.i] >= '0' && e.b[e.i] <= '9') {
		if err := e.number(); err != nil {
			return err
		}
		if e.wantMax {
			e.setMax(parseTokens(e.b[start:e.i]), start)
		}
		return nil
	}
	if err := e.value(cAny); err != nil {
		return err
	}
	if e.wantMax {
		e.setMax(-1, start)
	}
	return nil
}

func (e *extractor) setMax(n int64, start int) {
	o := &e.out
	o.MaxTokensCount++
	if o.MaxTokensPath != "" && n <= o.MaxTokens {
		return
	}
	o.MaxTokens, o.MaxTokensPath, o.MaxTokensStart, o.MaxTokensEnd = n, string(e.path), start, e.i
}

// parseTokens reads a valid JSON number as a token count: rounded up,
// saturating.
func parseTokens(b []byte) int64 {
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n
	}
	f, _ := strconv.ParseFloat(string(b), 64) // ±Inf on overflow
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(math.Ceil(f))
}

// base64Body decodes a base64 string holding a JSON body and walks that in
// ctx c. A value that is not a string is scanned as it is; one that is not
// base64 of valid JSON is unscannable.
func (e *extractor) base64Body(c ctx) error {
	e.ws()
	if e.i >= len(e.b) || e.b[e.i] != '"' {
		return e.value(cAny)
	}
	start := e.i
	esc, err := e.str()
	if err != nil {
		return err
	}
	raw := e.b[start+1 : e.i-1]
	if esc {
		raw = unquoteJSON(nil, raw)
	}
	var reuse []byte
	if o := &e.out; e.x != nil && len(o.Decoded) < cap(o.Decoded) {
		reuse = o.Decoded[:len(o.Decoded)+1][len(o.Decoded)].Bytes // an earlier event's, done with
	}
	dec, err := decodeBase64Into(reuse, raw)
	if err != nil {
		e.unscannable()
		return nil
	}
	o := &e.out
	nTexts, nIDs, nUnsc, nDec := len(o.Texts), len(o.IDs), len(o.Unscannable), len(o.Decoded)
	o.Decoded = append(o.Decoded, Decoded{Path: e.pathString(), Start: start, End: e.i, Bytes: dec})
	// The nested walker takes over the Extracted and the buffers (its path
	// continues this one's, past its end) and hands them back.
	sub := extractor{
		jsonScanner: jsonScanner{b: dec},
		out:         *o,
		x:           e.x,
		src:         len(o.Decoded),
		path:        append(e.path, '/'),
		scratch:     e.scratch,
		famReq:      e.famReq,
		famChunk:    e.famChunk,
	}
	err = sub.run(c)
	e.out, e.scratch = sub.out, sub.scratch
	if err != nil {
		o.Texts, o.IDs, o.Unscannable, o.Decoded = o.Texts[:nTexts], o.IDs[:nIDs], o.Unscannable[:nUnsc], o.Decoded[:nDec]
		e.unscannable()
	}
	return nil
}

// textFormat reports whether a Converse document format is plain text.
func textFormat(f string) bool {
	switch f {
	case "txt", "md", "csv", "html":
		return true
	}
	return false
}

// base64Text reads a text document sent as bytes: base64 of UTF-8 text
// becomes a span with Base64 set; anything else is unscannable.
func (e *extractor) base64Text() error {
	e.ws()
	if e.i >= len(e.b) || e.b[e.i] != '"' {
		e.unscannable()
		return e.jsonScanner.value()
	}
	start := e.i
	esc, err := e.str()
	if err != nil {
		return err
	}
	raw := e.b[start+1 : e.i-1]
	if esc {
		raw = unquoteJSON(nil, raw)
	}
	dec, err := decodeBase64(raw)
	if err != nil || !utf8.Valid(dec) {
		e.unscannable()
		return nil
	}
	if len(dec) > 0 {
		e.out.Texts = append(e.out.Texts, TextSpan{Path: e.pathString(), Text: string(dec), Start: start, End: e.i, Src: e.src, Base64: true})
	}
	return nil
}

func decodeBase64(b []byte) ([]byte, error) { return decodeBase64Into(nil, b) }

// decodeBase64Into is decodeBase64 into buf's memory when it is large
// enough.
func decodeBase64Into(buf, b []byte) ([]byte, error) {
	// RawStdEncoding's bound is the larger (it rounds partial quanta up).
	dst := buf[:0]
	if n := base64.RawStdEncoding.DecodedLen(len(b)); cap(dst) >= n {
		dst = dst[:n]
	} else {
		dst = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(dst, b)
	if err != nil {
		n, err = base64.RawStdEncoding.Decode(dst, b)
	}
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// peekString returns the string value of member key of the object at e.i,
// without moving: "" when the object is invalid, lacks the key, or holds it
// more than once with different or non-string values.
func (e *extractor) peekString(key string) string {
	p := jsonScanner{b: e.b, i: e.i, depth: e.depth}
	var buf [8]Member
	members, _, err := p.object(buf[:0], true)
	if err != nil {
		return ""
	}
	val, seen := "", false
	for _, m := range members {
		if m.Key != key {
			continue
		}
		v := e.b[m.ValueStart:m.ValueEnd]
		if len(v) < 2 || v[0] != '"' {
			return ""
		}
		t := unquoteString(v[1 : len(v)-1])
		if seen && t != val {
			return ""
		}
		val, seen = t, true
	}
	return val
}

// str scans a string literal starting at '"' and reports whether it holds
// escapes.
func (e *extractor) str() (escaped bool, err error) {
	s := &e.jsonScanner
	s.i++
	for {
		s.skipPlain()
		if s.i >= len(s.b) {
			return false, s.errorf("unterminated string")
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return false, s.errorf("unterminated escape")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return false, s.errorf("bad \\u escape")
				}
				s.i += 6
			default:
				return false, s.errorf("bad escape")
			}
		case c < 0x20:
			return false, s.errorf("control character in string")
		case c >= utf8.RuneSelf:
			for s.i < len(s.b) && s.b[s.i] >= utf8.RuneSelf {
				r, n := utf8.DecodeRune(s.b[s.i:])
				if r == utf8.RuneError && n == 1 {
					return false, ErrNotUTF8
				}
				s.i += n
			}
		default:
			s.i++
		}
	}
}

// unquoteJSON appends the value of the validated string literal body s
// (without its quotes) to dst.
func unquoteJSON(dst, s []byte) []byte {
	b := bytes.NewBuffer(dst)
	unquoteTo(b, s)
	return b.Bytes()
}

// unquoteString returns the value of the validated string literal body s
// with a single allocation.
func unquoteString(s []byte) string {
	var b strings.Builder
	b.Grow(len(s))
	unquoteTo(&b, s)
	return b.String()
}

type unquoteWriter interface {
	Write([]byte) (int, error)
	WriteByte(byte) error
	WriteRune(rune) (int, error)
}

// unquoteTo writes the value of the validated string literal body s,
// decoding escapes as encoding/json does: a \u escape of a lone or
// ill-paired surrogate becomes U+FFFD.
func unquoteTo(w unquoteWriter, s []byte) {
	for len(s) > 0 {
		j := bytes.IndexByte(s, '\\')
		if j < 0 {
			w.Write(s)
			return
		}
		w.Write(s[:j])
		s = s[j:]
		// s[0] == '\\'; the literal was validated, so the escape is complete.
		switch c := s[1]; c {
		case 'b':
			w.WriteByte('\b')
		case 'f':
			w.WriteByte('\f')
		case 'n':
			w.WriteByte('\n')
		case 'r':
			w.WriteByte('\r')
		case 't':
			w.WriteByte('\t')
		case 'u':
			r := hex4(s[2:6])
			s = s[6:]
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					r2 = hex4(s[2:6])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					w.WriteRune(d)
					s = s[6:]
					continue
				}
				r = utf8.RuneError
			}
			w.WriteRune(r)
			continue
		default: // '"', '\\', '/'
			w.WriteByte(c)
		}
		s = s[2:]
	}
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendKey appends ".key" (or ["key"] for keys that are not plain words) to
// a path; at the start of a path, or after a nested body's '/', without the
// dot.
func appendKey(path, key []byte) []byte {
	plain := len(key) > 0
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	if !plain {
		return append(strconv.AppendQuote(append(path, '['), string(key)), ']') // rare
	}
	if len(path) > 0 && path[len(path)-1] != '/' {
		path = append(path, '.')
	}
	return append(path, key...)
}
