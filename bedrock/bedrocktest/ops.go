package bedrocktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/eventstream"
)

const invalidModelMsg = "The provided model identifier is invalid."
const malformedMsg = "Malformed input request, please reformat your input and try again."

// family of a model, for request validation and response shapes.
type family string

const (
	famAnthropic family = "anthropic"
	famTitan     family = "titan"
	famNova      family = "nova"
	famLlama     family = "llama"
	famMistral   family = "mistral"
	famCohere    family = "cohere"
	famJamba     family = "jamba"
)

var geoPrefixes = []string{"us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "global."}

// familyOf resolves the model family of a model id (foundation model id,
// system inference profile id, their ARNs, or an id mapped by Profiles).
func (s *Server) familyOf(id string) (family, bool) {
	if m, ok := s.cfg.Profiles[id]; ok {
		id = m
	}
	if strings.HasPrefix(id, "arn:") {
		parts := strings.SplitN(id, ":", 6)
		if len(parts) != 6 {
			return "", false
		}
		res := parts[5]
		typ, rid, ok := strings.Cut(res, "/")
		if !ok || (typ != "foundation-model" && typ != "inference-profile") {
			return "", false
		}
		id = rid
	}
	for _, p := range geoPrefixes {
		if strings.HasPrefix(id, p) {
			id = id[len(p):]
			break
		}
	}
	switch {
	case strings.HasPrefix(id, "anthropic.claude"):
		return famAnthropic, true
	case strings.HasPrefix(id, "amazon.titan-text"), strings.HasPrefix(id, "amazon.titan-tg1"):
		return famTitan, true
	case strings.HasPrefix(id, "amazon.nova-"):
		return famNova, true
	case strings.HasPrefix(id, "meta.llama"):
		return famLlama, true
	case strings.HasPrefix(id, "mistral."):
		return famMistral, true
	case strings.HasPrefix(id, "cohere.command-r"):
		return famCohere, true
	case strings.HasPrefix(id, "ai21.jamba"):
		return famJamba, true
	}
	return "", false
}

func tokens(s string) int { return (len(s) + 3) / 4 }

func (s *Server) reply(op, model, prompt string) string {
	if s.cfg.Reply != nil {
		return s.cfg.Reply(op, model, prompt)
	}
	return fmt.Sprintf("Hello from the bedrocktest emulator. You sent %d characters to %s; this reply is deterministic.", len(prompt), model)
}

// deltas cuts a streamed completion into events: Config.Deltas, else pieces.
func (s *Server) deltas(op, text string) []string {
	if s.cfg.Deltas != nil {
		if ps := s.cfg.Deltas(op, text); len(ps) > 0 {
			return ps
		}
	}
	return pieces(text)
}

// pieces splits a completion into stream deltas (at most 4, on spaces).
func pieces(text string) []string {
	words := strings.SplitAfter(text, " ")
	n := 4
	if len(words) < n {
		n = len(words)
	}
	if n == 0 {
		return []string{""}
	}
	out := make([]string, n)
	per := (len(words) + n - 1) / n
	for i := 0; i < n; i++ {
		lo, hi := i*per, (i+1)*per
		if lo > len(words) {
			lo = len(words)
		}
		if hi > len(words) {
			hi = len(words)
		}
		out[i] = strings.Join(words[lo:hi], "")
	}
	// Drop empty trailing pieces.
	for len(out) > 1 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

type jmap = map[string]any

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route, body []byte, f *Fault) {
	switch rt.op {
	case OpInvokeModel, OpInvokeModelWithResponseStream:
		fam, ok := s.familyOf(rt.modelID)
		if !ok {
			writeError(w, 400, "ValidationException", invalidModelMsg)
			return
		}
		prompt, chat, msg := extractNative(fam, body)
		if msg != "" {
			writeError(w, 400, "ValidationException", msg)
			return
		}
		text := s.reply(rt.op, rt.modelID, prompt)
		in, out := tokens(prompt), tokens(text)
		if rt.op == OpInvokeModel {
			start := time.Now()
			b, _ := json.Marshal(nativeResponse(fam, chat, text, in, out, rt.modelID))
			h := w.Header()
			ct := r.Header.Get("Accept")
			if ct == "" || ct == "*/*" {
				ct = "application/json"
			}
			h.Set("Content-Type", ct)
			h.Set("X-Amzn-Bedrock-Input-Token-Count", strconv.Itoa(in))
			h.Set("X-Amzn-Bedrock-Output-Token-Count", strconv.Itoa(out))
			h.Set("X-Amzn-Bedrock-Invocation-Latency", strconv.FormatInt(time.Since(start).Milliseconds()+1, 10))
			w.WriteHeader(200)
			_, _ = w.Write(b)
			return
		}
		chunks := nativeStream(fam, chat, text, s.deltas(rt.op, text), in, out, rt.modelID)
		events := make([]event, len(chunks))
		for i, c := range chunks {
			payload, _ := json.Marshal(jmap{"bytes": base64.StdEncoding.EncodeToString(c), "p": "abcdefghijklmnopqrstuvwxyz"[:1+i%26]})
			events[i] = event{typ: "chunk", payload: payload}
		}
		s.stream(w, r, events, f)
	case OpConverse, OpConverseStream:
		if _, ok := s.familyOf(rt.modelID); !ok {
			writeError(w, 400, "ValidationException", invalidModelMsg)
			return
		}
		prompt, msg := extractConverse(body)
		if msg != "" {
			writeError(w, 400, "ValidationException", msg)
			return
		}
		text := s.reply(rt.op, rt.modelID, prompt)
		in, out := tokens(prompt), tokens(text)
		usage := jmap{"inputTokens": in, "outputTokens": out, "totalTokens": in + out}
		if rt.op == OpConverse {
			writeJSON(w, jmap{
				"output":     jmap{"message": jmap{"role": "assistant", "content": []jmap{{"text": text}}}},
				"stopReason": "end_turn",
				"usage":      usage,
				"metrics":    jmap{"latencyMs": 1 + len(text)/10},
			})
			return
		}
		var events []event
		add := func(typ string, v any) {
			b, _ := json.Marshal(v)
			events = append(events, event{typ: typ, payload: b})
		}
		add("messageStart", jmap{"role": "assistant"})
		for _, p := range s.deltas(rt.op, text) {
			add("contentBlockDelta", jmap{"contentBlockIndex": 0, "delta": jmap{"text": p}})
		}
		add("contentBlockStop", jmap{"contentBlockIndex": 0})
		add("messageStop", jmap{"stopReason": "end_turn"})
		add("metadata", jmap{"usage": usage, "metrics": jmap{"latencyMs": 1 + len(text)/10}})
		s.stream(w, r, events, f)
	case OpCountTokens:
		s.countTokens(w, rt, body)
	case OpInvokeModelWithBidiStream:
		writeError(w, 400, "ValidationException", "InvokeModelWithBidirectionalStream is not supported by the bedrocktest emulator.")
	case OpApplyGuardrail:
		var in struct {
			Source  *string `json:"source"`
			Content []struct {
				Text *struct {
					Text string `json:"text"`
				} `json:"text"`
			} `json:"content"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, 400, "ValidationException", malformedMsg)
			return
		}
		if in.Source == nil || (*in.Source != "INPUT" && *in.Source != "OUTPUT") {
			writeError(w, 400, "ValidationException", "1 validation error detected: Value at 'source' failed to satisfy constraint: Member must satisfy enum value set: [INPUT, OUTPUT]")
			return
		}
		if in.Content == nil {
			writeError(w, 400, "ValidationException", "1 validation error detected: Value null at 'content' failed to satisfy constraint: Member must not be null")
			return
		}
		n := 0
		for _, c := range in.Content {
			if c.Text != nil {
				n += len(c.Text.Text)
			}
		}
		units := (n + 999) / 1000
		writeJSON(w, jmap{
			"usage": jmap{"topicPolicyUnits": units, "contentPolicyUnits": units, "wordPolicyUnits": units,
				"sensitiveInformationPolicyUnits": units, "sensitiveInformationPolicyFreeUnits": 0, "contextualGroundingPolicyUnits": 0},
			"action":      "NONE",
			"outputs":     []any{},
			"assessments": []any{},
		})
	case OpInvokeGuardrailChecks:
		writeError(w, 400, "ValidationException", "InvokeGuardrailChecks is not supported by the bedrocktest emulator.")
	case OpStartAsyncInvoke, OpGetAsyncInvoke, OpListAsyncInvokes:
		s.asyncOp(w, r, rt, body)
	default:
		if rt.ids != nil {
			s.agentDispatch(w, r, rt, body, f)
			return
		}
		writeError(w, 404, "UnknownOperationException", "")
	}
}

func (s *Server) countTokens(w http.ResponseWriter, rt route, body []byte) {
	fam, ok := s.familyOf(rt.modelID)
	if !ok {
		writeError(w, 400, "ValidationException", invalidModelMsg)
		return
	}
	var in struct {
		Input *struct {
			InvokeModel *struct {
				Body string `json:"body"`
			} `json:"invokeModel"`
			Converse json.RawMessage `json:"converse"`
		} `json:"input"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Input == nil {
		writeError(w, 400, "ValidationException", malformedMsg)
		return
	}
	var prompt, msg string
	switch {
	case in.Input.InvokeModel != nil:
		raw, err := base64.StdEncoding.DecodeString(in.Input.InvokeModel.Body)
		if err != nil {
			writeError(w, 400, "ValidationException", malformedMsg)
			return
		}
		prompt, _, msg = extractNative(fam, raw)
	case in.Input.Converse != nil:
		prompt, msg = extractConverse(in.Input.Converse)
	default:
		msg = "1 validation error detected: Value null at 'input' failed to satisfy constraint: Member must not be null"
	}
	if msg != "" {
		writeError(w, 400, "ValidationException", msg)
		return
	}
	writeJSON(w, jmap{"inputTokens": tokens(prompt)})
}

// --- text extraction -------------------------------------------------------

// textOf collects text from a JSON value that is a string or content blocks
// ({"text": ...} / {"type":"text","text": ...}).
func textOf(v any, sb *strings.Builder) {
	switch x := v.(type) {
	case string:
		sb.WriteString(x)
		sb.WriteByte('\n')
	case []any:
		for _, e := range x {
			textOf(e, sb)
		}
	case map[string]any:
		if t, ok := x["text"]; ok {
			textOf(t, sb)
		}
		if c, ok := x["content"]; ok {
			textOf(c, sb)
		}
	}
}

// extractNative validates an InvokeModel body and returns its prompt text
// and whether it is a chat (messages) request; msg is a validation error.
func extractNative(fam family, body []byte) (prompt string, chat bool, msg string) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return "", false, malformedMsg
	}
	req := func(keys ...string) string {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return fmt.Sprintf("Malformed input request: #: required key [%s] not found, please reformat your input and try again.", k)
			}
		}
		return ""
	}
	var sb strings.Builder
	switch fam {
	case famAnthropic:
		if e := req("anthropic_version", "max_tokens", "messages"); e != "" {
			return "", false, e
		}
		textOf(m["system"], &sb)
		textOf(m["messages"], &sb)
		chat = true
	case famTitan:
		if e := req("inputText"); e != "" {
			return "", false, e
		}
		textOf(m["inputText"], &sb)
	case famNova:
		if e := req("messages"); e != "" {
			return "", false, e
		}
		textOf(m["system"], &sb)
		textOf(m["messages"], &sb)
		chat = true
	case famLlama:
		if e := req("prompt"); e != "" {
			return "", false, e
		}
		textOf(m["prompt"], &sb)
	case famMistral:
		if _, ok := m["messages"]; ok {
			textOf(m["messages"], &sb)
			chat = true
		} else if e := req("prompt"); e != "" {
			return "", false, e
		} else {
			textOf(m["prompt"], &sb)
		}
	case famCohere:
		if e := req("message"); e != "" {
			return "", false, e
		}
		textOf(m["preamble"], &sb)
		if h, ok := m["chat_history"].([]any); ok {
			for _, e := range h {
				if em, ok := e.(map[string]any); ok {
					textOf(em["message"], &sb)
				}
			}
		}
		textOf(m["message"], &sb)
		chat = true
	case famJamba:
		if e := req("messages"); e != "" {
			return "", false, e
		}
		textOf(m["messages"], &sb)
		chat = true
	}
	return strings.TrimSuffix(sb.String(), "\n"), chat, ""
}

func extractConverse(body []byte) (string, string) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return "", malformedMsg
	}
	msgs, ok := m["messages"].([]any)
	if !ok || len(msgs) == 0 {
		if _, has := m["messages"]; !has {
			return "", "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null"
		}
		return "", "A conversation must start with a user message. Try again with a conversation that starts with a user message."
	}
	var sb strings.Builder
	textOf(m["system"], &sb)
	for _, e := range msgs {
		em, ok := e.(map[string]any)
		if !ok {
			return "", malformedMsg
		}
		if role, _ := em["role"].(string); role != "user" && role != "assistant" {
			return "", "1 validation error detected: Value at 'messages.1.member.role' failed to satisfy constraint: Member must satisfy enum value set: [assistant, user]"
		}
		textOf(em["content"], &sb)
	}
	return strings.TrimSuffix(sb.String(), "\n"), ""
}

// --- native responses ------------------------------------------------------

func baseModel(id string) string {
	if i := strings.LastIndex(id, "/"); i >= 0 {
		id = id[i+1:]
	}
	return id
}

func nativeResponse(fam family, chat bool, text string, in, out int, model string) any {
	switch fam {
	case famAnthropic:
		return jmap{"id": "msg_bdrk_" + strings.ReplaceAll(newUUID(), "-", "")[:24], "type": "message", "role": "assistant",
			"model": baseModel(model), "content": []jmap{{"type": "text", "text": text}},
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage": jmap{"input_tokens": in, "output_tokens": out}}
	case famTitan:
		return jmap{"inputTextTokenCount": in, "results": []jmap{{"tokenCount": out, "outputText": text, "completionReason": "FINISH"}}}
	case famNova:
		return jmap{"output": jmap{"message": jmap{"role": "assistant", "content": []jmap{{"text": text}}}},
			"stopReason": "end_turn", "usage": jmap{"inputTokens": in, "outputTokens": out, "totalTokens": in + out}}
	case famLlama:
		return jmap{"generation": text, "prompt_token_count": in, "generation_token_count": out, "stop_reason": "stop"}
	case famMistral:
		if chat {
			return jmap{"choices": []jmap{{"index": 0, "message": jmap{"role": "assistant", "content": text}, "stop_reason": "stop"}}}
		}
		return jmap{"outputs": []jmap{{"text": text, "stop_reason": "stop"}}}
	case famCohere:
		return jmap{"response_id": newUUID(), "text": text, "generation_id": newUUID(), "finish_reason": "COMPLETE",
			"chat_history": []jmap{{"role": "CHATBOT", "message": text}}}
	case famJamba:
		return jmap{"id": "chatcmpl-" + newUUID(), "model": "jamba-instruct",
			"choices": []jmap{{"index": 0, "message": jmap{"role": "assistant", "content": text}, "finish_reason": "stop"}},
			"usage":   jmap{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}}
	}
	return jmap{}
}

// nativeStream returns the decoded "bytes" of each chunk event.
func nativeStream(fam family, chat bool, text string, ps []string, in, out int, model string) [][]byte {
	metrics := jmap{"inputTokenCount": in, "outputTokenCount": out, "invocationLatency": 1 + len(text)/10, "firstByteLatency": 1}
	var chunks []jmap
	last := func(m jmap) { m["amazon-bedrock-invocationMetrics"] = metrics; chunks = append(chunks, m) }
	switch fam {
	case famAnthropic:
		chunks = append(chunks, jmap{"type": "message_start", "message": jmap{"id": "msg_bdrk_" + strings.ReplaceAll(newUUID(), "-", "")[:24],
			"type": "message", "role": "assistant", "model": baseModel(model), "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": jmap{"input_tokens": in, "output_tokens": 1}}})
		chunks = append(chunks, jmap{"type": "content_block_start", "index": 0, "content_block": jmap{"type": "text", "text": ""}})
		for _, p := range ps {
			chunks = append(chunks, jmap{"type": "content_block_delta", "index": 0, "delta": jmap{"type": "text_delta", "text": p}})
		}
		chunks = append(chunks, jmap{"type": "content_block_stop", "index": 0})
		chunks = append(chunks, jmap{"type": "message_delta", "delta": jmap{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": jmap{"output_tokens": out}})
		last(jmap{"type": "message_stop"})
	case famTitan:
		for i, p := range ps {
			m := jmap{"outputText": p, "index": 0, "totalOutputTextTokenCount": nil, "completionReason": nil, "inputTextTokenCount": nil}
			if i == 0 {
				m["inputTextTokenCount"] = in
			}
			if i == len(ps)-1 {
				m["totalOutputTextTokenCount"], m["completionReason"] = out, "FINISH"
				last(m)
			} else {
				chunks = append(chunks, m)
			}
		}
	case famNova:
		chunks = append(chunks, jmap{"messageStart": jmap{"role": "assistant"}})
		for _, p := range ps {
			chunks = append(chunks, jmap{"contentBlockDelta": jmap{"delta": jmap{"text": p}, "contentBlockIndex": 0}})
		}
		chunks = append(chunks, jmap{"contentBlockStop": jmap{"contentBlockIndex": 0}})
		chunks = append(chunks, jmap{"messageStop": jmap{"stopReason": "end_turn"}})
		last(jmap{"metadata": jmap{"usage": jmap{"inputTokens": in, "outputTokens": out}, "metrics": jmap{}, "trace": jmap{}}})
	case famLlama:
		for i, p := range ps {
			m := jmap{"generation": p, "prompt_token_count": nil, "generation_token_count": i + 1, "stop_reason": nil}
			if i == 0 {
				m["prompt_token_count"] = in
			}
			if i == len(ps)-1 {
				m["generation_token_count"], m["stop_reason"] = out, "stop"
				last(m)
			} else {
				chunks = append(chunks, m)
			}
		}
	case famMistral:
		for i, p := range ps {
			var stop any
			if i == len(ps)-1 {
				stop = "stop"
			}
			var m jmap
			if chat {
				m = jmap{"choices": []jmap{{"index": 0, "message": jmap{"role": "assistant", "content": p}, "stop_reason": stop}}}
			} else {
				m = jmap{"outputs": []jmap{{"text": p, "stop_reason": stop}}}
			}
			if i == len(ps)-1 {
				last(m)
			} else {
				chunks = append(chunks, m)
			}
		}
	case famCohere:
		chunks = append(chunks, jmap{"is_finished": false, "event_type": "stream-start", "generation_id": newUUID()})
		for _, p := range ps {
			chunks = append(chunks, jmap{"is_finished": false, "event_type": "text-generation", "text": p})
		}
		last(jmap{"is_finished": true, "event_type": "stream-end", "finish_reason": "COMPLETE",
			"response": jmap{"response_id": newUUID(), "text": text, "generation_id": newUUID(), "finish_reason": "COMPLETE"}})
	case famJamba:
		id := "chatcmpl-" + newUUID()
		for i, p := range ps {
			m := jmap{"id": id, "choices": []jmap{{"index": 0, "delta": jmap{"content": p}, "finish_reason": nil}}}
			if i == 0 {
				m["choices"].([]jmap)[0]["delta"].(jmap)["role"] = "assistant"
			}
			chunks = append(chunks, m)
		}
		last(jmap{"id": id, "choices": []jmap{{"index": 0, "delta": jmap{}, "finish_reason": "stop"}},
			"usage": jmap{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}})
	}
	out2 := make([][]byte, len(chunks))
	for i, c := range chunks {
		out2[i], _ = json.Marshal(c)
	}
	return out2
}

// --- event streams ---------------------------------------------------------

type event struct {
	typ     string
	payload []byte
}

func encodeEvent(enc *eventstream.Encoder, buf *bytes.Buffer, msgType, typ string, payload []byte) []byte {
	buf.Reset()
	var h eventstream.Headers
	h.Set(":message-type", eventstream.StringValue(msgType))
	if msgType == "exception" {
		h.Set(":exception-type", eventstream.StringValue(typ))
	} else {
		h.Set(":event-type", eventstream.StringValue(typ))
	}
	h.Set(":content-type", eventstream.StringValue("application/json"))
	_ = enc.Encode(buf, eventstream.Message{Headers: h, Payload: payload})
	return buf.Bytes()
}

// stream writes events one frame at a time, flushing each, applying the
// stream parts of a fault.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, events []event, f *Fault) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.Header().Set("X-Amzn-Bedrock-Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	enc := eventstream.NewEncoder()
	var buf bytes.Buffer
	if f == nil {
		f = &Fault{}
	}
	delay := f.EventDelay
	if delay == 0 {
		delay = s.cfg.EventDelay
	}
	ctx := r.Context()
	for i, ev := range events {
		if i > 0 && delay > 0 {
			t := time.NewTimer(delay)
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
		if s.cfg.EventSent != nil {
			s.cfg.EventSent(i, ev.typ)
		}
		if _, err := w.Write(encodeEvent(enc, &buf, "event", ev.typ, ev.payload)); err != nil {
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
				p, _ := json.Marshal(jmap{"message": msg})
				_, _ = w.Write(encodeEvent(enc, &buf, "exception", f.MidStreamException, p))
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

// --- async invoke ----------------------------------------------------------

type asyncJob struct {
	arn, modelID, token, status string
	submit, modified            time.Time
	output                      json.RawMessage
}

func (j *asyncJob) summary() jmap {
	m := jmap{"invocationArn": j.arn, "modelArn": j.modelArn(), "status": j.status,
		"submitTime": j.submit.Format(time.RFC3339Nano), "lastModifiedTime": j.modified.Format(time.RFC3339Nano),
		"outputDataConfig": j.output}
	if j.token != "" {
		m["clientRequestToken"] = j.token
	}
	return m
}

func (j *asyncJob) modelArn() string {
	if strings.HasPrefix(j.modelID, "arn:") {
		return j.modelID
	}
	region := strings.Split(j.arn, ":")[3]
	return "arn:aws:bedrock:" + region + "::foundation-model/" + j.modelID
}

func (s *Server) asyncOp(w http.ResponseWriter, r *http.Request, rt route, body []byte) {
	switch rt.op {
	case OpStartAsyncInvoke:
		var in struct {
			ClientRequestToken string          `json:"clientRequestToken"`
			ModelID            string          `json:"modelId"`
			ModelInput         json.RawMessage `json:"modelInput"`
			OutputDataConfig   json.RawMessage `json:"outputDataConfig"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(w, 400, "ValidationException", malformedMsg)
			return
		}
		var odc struct {
			S3 *struct {
				S3URI string `json:"s3Uri"`
			} `json:"s3OutputDataConfig"`
		}
		_ = json.Unmarshal(in.OutputDataConfig, &odc)
		switch {
		case in.ModelID == "":
			writeError(w, 400, "ValidationException", "1 validation error detected: Value null at 'modelId' failed to satisfy constraint: Member must not be null")
			return
		case in.ModelInput == nil:
			writeError(w, 400, "ValidationException", "1 validation error detected: Value null at 'modelInput' failed to satisfy constraint: Member must not be null")
			return
		case odc.S3 == nil || !strings.HasPrefix(odc.S3.S3URI, "s3://"):
			writeError(w, 400, "ValidationException", "1 validation error detected: Value at 'outputDataConfig.s3OutputDataConfig.s3Uri' failed to satisfy constraint: Member must satisfy regular expression pattern: s3://.*")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if in.ClientRequestToken != "" {
			for _, j := range s.async {
				if j.token == in.ClientRequestToken {
					writeJSON(w, jmap{"invocationArn": j.arn})
					return
				}
			}
		}
		now := time.Now().UTC()
		j := &asyncJob{arn: fmt.Sprintf("arn:aws:bedrock:%s:123456789012:async-invoke/%s", s.cfg.Region, strings.ReplaceAll(newUUID(), "-", "")[:12]),
			modelID: in.ModelID, token: in.ClientRequestToken, status: "InProgress", submit: now, modified: now, output: in.OutputDataConfig}
		s.async = append(s.async, j)
		writeJSON(w, jmap{"invocationArn": j.arn})
	case OpGetAsyncInvoke:
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, j := range s.async {
			if j.arn == rt.pathID {
				writeJSON(w, j.summary())
				return
			}
		}
		writeError(w, 404, "ResourceNotFoundException", "The specified invocation ARN does not exist.")
	case OpListAsyncInvokes:
		q := r.URL.Query()
		status := q.Get("statusEquals")
		max := 1000
		if v := q.Get("maxResults"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				writeError(w, 400, "ValidationException", "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000")
				return
			}
			max = n
		}
		s.mu.Lock()
		jobs := append([]*asyncJob(nil), s.async...)
		s.mu.Unlock()
		sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].submit.After(jobs[b].submit) })
		if q.Get("sortOrder") == "Ascending" {
			sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].submit.Before(jobs[b].submit) })
		}
		start := 0
		if t := q.Get("nextToken"); t != "" {
			n, err := strconv.Atoi(t)
			if err != nil || n < 0 {
				writeError(w, 400, "ValidationException", "The provided pagination token is invalid.")
				return
			}
			start = n
		}
		var out []jmap
		next := ""
		for i := 0; i < len(jobs); i++ {
			j := jobs[i]
			if status != "" && j.status != status {
				continue
			}
			if i < start {
				continue
			}
			if len(out) == max {
				next = strconv.Itoa(i)
				break
			}
			out = append(out, j.summary())
		}
		resp := jmap{"asyncInvokeSummaries": out}
		if out == nil {
			resp["asyncInvokeSummaries"] = []jmap{}
		}
		if next != "" {
			resp["nextToken"] = next
		}
		writeJSON(w, resp)
	}
}
