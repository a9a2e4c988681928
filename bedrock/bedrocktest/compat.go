package bedrocktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The OpenAI-compatible and Anthropic-native APIs: bedrock-runtime's
// /openai/v1 (Config.Service "" or "bedrock-runtime"), bedrock-mantle's
// /v1, /openai/v1 and /anthropic/v1 (Config.Service "bedrock-mantle", signed
// for the service bedrock-mantle), with the bodies and server-sent event
// streams of the OpenAI and Anthropic APIs (shapes from openai-go v3 and
// @anthropic-ai/sdk). Their errors take those APIs' shapes too; SigV4
// failures keep AWS's.

// Operation names of the OpenAI-compatible and Anthropic-native routes.
const (
	OpOpenAIChatCompletions = "OpenAIChatCompletions"
	OpOpenAIResponses       = "OpenAIResponses"
	OpMantleChatCompletions = "MantleChatCompletions"
	OpMantleResponses       = "MantleResponses"
	OpMantleMessages        = "MantleMessages"
)

// Services an emulator can stand for (Config.Service).
const (
	ServiceRuntime = "bedrock-runtime"
	ServiceMantle  = "bedrock-mantle"
)

// signingName is the SigV4 service name the emulator verifies.
func (s *Server) signingName() string {
	if s.cfg.Service == ServiceMantle {
		return "bedrock-mantle"
	}
	return "bedrock"
}

// route maps a request to an operation of the emulated service.
func (s *Server) route(method, escaped string) (route, bool) {
	if s.cfg.Service == ServiceMantle {
		if method != http.MethodPost {
			return route{}, false
		}
		switch escaped {
		case "/v1/chat/completions", "/openai/v1/chat/completions":
			return route{op: OpMantleChatCompletions}, true
		case "/v1/responses", "/openai/v1/responses":
			return route{op: OpMantleResponses}, true
		case "/anthropic/v1/messages":
			return route{op: OpMantleMessages}, true
		}
		return route{}, false
	}
	switch {
	case method == http.MethodPost && escaped == "/openai/v1/chat/completions":
		return route{op: OpOpenAIChatCompletions}, true
	case method == http.MethodPost && escaped == "/openai/v1/responses":
		return route{op: OpOpenAIResponses}, true
	}
	return parseRoute(method, escaped)
}

func isCompatOp(op string) bool {
	switch op {
	case OpOpenAIChatCompletions, OpOpenAIResponses, OpMantleChatCompletions, OpMantleResponses, OpMantleMessages:
		return true
	}
	return false
}

// compatModel reads the body's "model" for the call record.
func compatModel(body []byte) string {
	var in struct {
		Model string `json:"model"`
	}
	_ = json.Unmarshal(body, &in)
	return in.Model
}

// writeCompatError answers in the error shape of the route's API: OpenAI's
// {"error":{message,type,param,code}} or Anthropic's
// {"type":"error","error":{type,message}}.
func writeCompatError(w http.ResponseWriter, op string, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var b []byte
	if op == OpMantleMessages {
		b, _ = json.Marshal(jmap{"type": "error", "error": jmap{"type": anthropicErrorType(status), "message": msg}})
	} else {
		b, _ = json.Marshal(jmap{"error": jmap{"message": msg, "type": openAIErrorType(status), "param": nil, "code": nil}})
	}
	_, _ = w.Write(b)
}

func openAIErrorType(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_denied_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_exceeded"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func anthropicErrorType(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 413:
		return "request_too_large"
	case status == 429:
		return "rate_limit_error"
	case status == 529, status == 503:
		return "overloaded_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

// validCompatModel: the ids the emulator answers for on these routes, any
// PROVIDER.NAME[:…] (or a system inference profile of one) in the lower-case
// alphabet Bedrock's ids use.
func validCompatModel(m string) bool {
	if m == "" || len(m) > 256 || !strings.Contains(m, ".") {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '_') {
			return false
		}
	}
	return true
}

// sseEvent is one server-sent event: an optional event name and its data.
type sseEvent struct {
	name string
	data []byte
}

func (e sseEvent) bytes() []byte {
	var b bytes.Buffer
	if e.name != "" {
		b.WriteString("event: ")
		b.WriteString(e.name)
		b.WriteByte('\n')
	}
	b.WriteString("data: ")
	b.Write(e.data)
	b.WriteString("\n\n")
	return b.Bytes()
}

func sseJSON(name string, v any) sseEvent {
	b, _ := json.Marshal(v)
	return sseEvent{name: name, data: b}
}

// sse writes a text/event-stream, one event per flush, applying the stream
// parts of a fault as the event-stream writer does; a MidStreamException
// becomes the API's own error event (errEvent).
func (s *Server) sse(w http.ResponseWriter, r *http.Request, events []sseEvent, f *Fault, errEvent func(msg string) sseEvent) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	if f == nil {
		f = &Fault{}
	}
	ctx := r.Context()
	for i, ev := range events {
		if i > 0 && f.EventDelay > 0 {
			t := time.NewTimer(f.EventDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		if f.ResetAfterEvents > 0 && i == f.ResetAfterEvents {
			abort(w, r)
		}
		if _, err := w.Write(ev.bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if i == 0 {
			if f.MidStreamException != "" {
				msg := f.Message
				if msg == "" {
					msg = defaultMessage(f.MidStreamException)
				}
				_, _ = w.Write(errEvent(msg).bytes())
				_ = rc.Flush()
				return
			}
			if f.Gate != nil {
				select {
				case <-f.Gate:
				case <-ctx.Done():
					return
				}
			}
		}
	}
	if f.ResetAfterEvents > 0 && f.ResetAfterEvents >= len(events) {
		abort(w, r)
	}
}

// compatText collects the text of chat messages, Responses input and
// Anthropic messages (strings, and content parts with "text").
func compatText(v any, sb *strings.Builder) { textOf(v, sb) }

func (s *Server) dispatchCompat(w http.ResponseWriter, r *http.Request, rt route, body []byte, f *Fault) {
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil || in == nil {
		writeCompatError(w, rt.op, 400, "The request body is not a JSON object.")
		return
	}
	model, _ := in["model"].(string)
	if !validCompatModel(model) {
		writeCompatError(w, rt.op, 400, fmt.Sprintf("The provided model identifier is invalid: %q.", model))
		return
	}
	stream, _ := in["stream"].(bool)
	switch rt.op {
	case OpOpenAIChatCompletions, OpMantleChatCompletions:
		msgs, ok := in["messages"].([]any)
		if !ok || len(msgs) == 0 {
			writeCompatError(w, rt.op, 400, "'messages' is a required property and must be a non-empty array.")
			return
		}
		var sb strings.Builder
		compatText(msgs, &sb)
		s.chatCompletion(w, r, rt.op, model, sb.String(), in, stream, f)
	case OpOpenAIResponses, OpMantleResponses:
		input, ok := in["input"]
		if !ok {
			writeCompatError(w, rt.op, 400, "'input' is a required property.")
			return
		}
		var sb strings.Builder
		if ins, ok := in["instructions"].(string); ok {
			sb.WriteString(ins)
			sb.WriteByte('\n')
		}
		compatText(input, &sb)
		s.response(w, r, rt.op, model, sb.String(), in, stream, f)
	case OpMantleMessages:
		if r.Header.Get("Anthropic-Version") == "" {
			writeCompatError(w, rt.op, 400, "anthropic-version: header is required")
			return
		}
		msgs, ok := in["messages"].([]any)
		if _, hasMax := in["max_tokens"]; !ok || len(msgs) == 0 || !hasMax {
			writeCompatError(w, rt.op, 400, "messages and max_tokens are required")
			return
		}
		var sb strings.Builder
		compatText(in["system"], &sb)
		compatText(msgs, &sb)
		s.message(w, r, rt.op, model, sb.String(), stream, f)
	}
}

func (s *Server) chatCompletion(w http.ResponseWriter, r *http.Request, op, model, prompt string, in map[string]any, stream bool, f *Fault) {
	text := s.reply(op, model, prompt)
	pt, ct := tokens(prompt), tokens(text)
	n := 1
	if v, ok := in["n"].(float64); ok && v >= 1 && v <= 8 {
		n = int(v)
	}
	id := "chatcmpl-" + strings.ReplaceAll(newUUID(), "-", "")
	created := time.Now().Unix()
	usage := jmap{"prompt_tokens": pt, "completion_tokens": n * ct, "total_tokens": pt + n*ct}
	if !stream {
		choices := make([]jmap, n)
		for i := range choices {
			choices[i] = jmap{"index": i, "message": jmap{"role": "assistant", "content": text, "refusal": nil}, "finish_reason": "stop", "logprobs": nil}
		}
		writeJSON(w, jmap{"id": id, "object": "chat.completion", "created": created, "model": model, "choices": choices, "usage": usage})
		return
	}
	chunk := func(choices []jmap, u any) sseEvent {
		return sseJSON("", jmap{"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices, "usage": u})
	}
	var events []sseEvent
	for i := 0; i < n; i++ {
		events = append(events, chunk([]jmap{{"index": i, "delta": jmap{"role": "assistant", "content": ""}, "finish_reason": nil, "logprobs": nil}}, nil))
		for _, p := range s.deltas(op, text) {
			events = append(events, chunk([]jmap{{"index": i, "delta": jmap{"content": p}, "finish_reason": nil, "logprobs": nil}}, nil))
		}
		events = append(events, chunk([]jmap{{"index": i, "delta": jmap{}, "finish_reason": "stop", "logprobs": nil}}, nil))
	}
	if so, _ := in["stream_options"].(map[string]any); so != nil && so["include_usage"] == true {
		events = append(events, chunk([]jmap{}, usage))
	}
	events = append(events, sseEvent{data: []byte("[DONE]")})
	s.sse(w, r, events, f, func(msg string) sseEvent {
		return sseJSON("", jmap{"error": jmap{"message": msg, "type": "server_error", "param": nil, "code": nil}})
	})
}

func (s *Server) response(w http.ResponseWriter, r *http.Request, op, model, prompt string, in map[string]any, stream bool, f *Fault) {
	text := s.reply(op, model, prompt)
	it, ot := tokens(prompt), tokens(text)
	id := "resp_" + strings.ReplaceAll(newUUID(), "-", "")
	msgID := "msg_" + strings.ReplaceAll(newUUID(), "-", "")
	store := true
	if v, ok := in["store"].(bool); ok {
		store = v
	}
	resp := func(status string, output []jmap, usage any) jmap {
		return jmap{
			"id": id, "object": "response", "created_at": time.Now().Unix(), "status": status, "model": model,
			"output": output, "usage": usage, "store": store, "error": nil, "incomplete_details": nil,
			"instructions": in["instructions"], "metadata": jmap{}, "parallel_tool_calls": true,
			"temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "tools": []any{},
		}
	}
	part := func(t string) jmap { return jmap{"type": "output_text", "text": t, "annotations": []any{}} }
	item := func(status string, content []jmap) jmap {
		return jmap{"type": "message", "id": msgID, "status": status, "role": "assistant", "content": content}
	}
	usage := jmap{"input_tokens": it, "input_tokens_details": jmap{"cached_tokens": 0},
		"output_tokens": ot, "output_tokens_details": jmap{"reasoning_tokens": 0}, "total_tokens": it + ot}
	done := resp("completed", []jmap{item("completed", []jmap{part(text)})}, usage)
	if !stream {
		writeJSON(w, done)
		return
	}
	seq := 0
	var events []sseEvent
	add := func(typ string, v jmap) {
		v["type"], v["sequence_number"] = typ, seq
		seq++
		events = append(events, sseJSON(typ, v))
	}
	add("response.created", jmap{"response": resp("in_progress", []jmap{}, nil)})
	add("response.in_progress", jmap{"response": resp("in_progress", []jmap{}, nil)})
	add("response.output_item.added", jmap{"output_index": 0, "item": item("in_progress", []jmap{})})
	add("response.content_part.added", jmap{"item_id": msgID, "output_index": 0, "content_index": 0, "part": part("")})
	for _, p := range s.deltas(op, text) {
		add("response.output_text.delta", jmap{"item_id": msgID, "output_index": 0, "content_index": 0, "delta": p, "logprobs": []any{}})
	}
	add("response.output_text.done", jmap{"item_id": msgID, "output_index": 0, "content_index": 0, "text": text, "logprobs": []any{}})
	add("response.content_part.done", jmap{"item_id": msgID, "output_index": 0, "content_index": 0, "part": part(text)})
	add("response.output_item.done", jmap{"output_index": 0, "item": item("completed", []jmap{part(text)})})
	add("response.completed", jmap{"response": done})
	s.sse(w, r, events, f, func(msg string) sseEvent {
		return sseJSON("error", jmap{"type": "error", "code": "server_error", "message": msg, "param": nil, "sequence_number": seq})
	})
}

func (s *Server) message(w http.ResponseWriter, r *http.Request, op, model, prompt string, stream bool, f *Fault) {
	text := s.reply(op, model, prompt)
	it, ot := tokens(prompt), tokens(text)
	id := "msg_" + strings.ReplaceAll(newUUID(), "-", "")
	msg := func(content []jmap, stop any, out int) jmap {
		return jmap{"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
			"stop_reason": stop, "stop_sequence": nil, "usage": jmap{"input_tokens": it, "output_tokens": out}}
	}
	if !stream {
		writeJSON(w, msg([]jmap{{"type": "text", "text": text}}, "end_turn", ot))
		return
	}
	var events []sseEvent
	add := func(typ string, v jmap) {
		v["type"] = typ
		events = append(events, sseJSON(typ, v))
	}
	add("message_start", jmap{"message": msg([]jmap{}, nil, 1)})
	add("content_block_start", jmap{"index": 0, "content_block": jmap{"type": "text", "text": ""}})
	for _, p := range s.deltas(op, text) {
		add("content_block_delta", jmap{"index": 0, "delta": jmap{"type": "text_delta", "text": p}})
	}
	add("content_block_stop", jmap{"index": 0})
	add("message_delta", jmap{"delta": jmap{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": jmap{"output_tokens": ot}})
	add("message_stop", jmap{})
	s.sse(w, r, events, f, func(m string) sseEvent {
		return sseJSON("error", jmap{"type": "error", "error": jmap{"type": "overloaded_error", "message": m}})
	})
}

// Anthropic's Bedrock-only APIs (Claude Managed Agents) live on the control
// plane's host under /anthropic/v1/; the ControlPlane emulator answers them
// with small, well-formed objects: enough for a proxy's tests to see them
// arrive signed and come back.
const (
	OpAnthropicAgents       = "AnthropicAgents"
	OpAnthropicSessions     = "AnthropicSessions"
	OpAnthropicMemoryStores = "AnthropicMemoryStores"
)

var anthropicBedrockOps = map[string]string{
	"agents": OpAnthropicAgents, "sessions": OpAnthropicSessions, "memory_stores": OpAnthropicMemoryStores,
}

// anthropicBedrockRoute maps /anthropic/v1/RESOURCE[/…] to its operation.
func anthropicBedrockRoute(escaped string) (op string, segs []string, ok bool) {
	rest, ok := strings.CutPrefix(escaped, "/anthropic/v1/")
	if !ok {
		return "", nil, false
	}
	segs = strings.Split(rest, "/")
	op, ok = anthropicBedrockOps[segs[0]]
	return op, segs, ok
}

// serveAnthropicBedrock answers a signed Bedrock-only call: a list, an
// object (created, read, updated or archived), a deletion, or for
// …/stream one server-sent event.
func serveAnthropicBedrock(w http.ResponseWriter, r *http.Request, segs []string) {
	kind := strings.TrimSuffix(segs[0], "s")
	last := segs[len(segs)-1]
	switch {
	case last == "stream":
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(sseJSON("", jmap{"type": "session.status_idle", "id": "sevt_" + strings.ReplaceAll(newUUID(), "-", "")[:12]}).bytes())
	case r.Method == http.MethodGet && len(segs)%2 == 1:
		writeJSON(w, jmap{"data": []any{}, "first_id": nil, "last_id": nil, "has_more": false})
	case r.Method == http.MethodDelete:
		writeJSON(w, jmap{"id": last, "type": kind + "_deleted"})
	case r.Method == http.MethodPost && len(segs) == 1:
		writeJSON(w, jmap{"id": kind + "_" + strings.ReplaceAll(newUUID(), "-", "")[:16], "type": kind})
	default:
		id := segs[1]
		writeJSON(w, jmap{"id": id, "type": kind})
	}
}
