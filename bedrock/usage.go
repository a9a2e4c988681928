package bedrock

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
)

// Usage counts one call's tokens as the upstream reported them. Input is
// what the model read outside the prompt cache; CacheRead and CacheWrite
// are the input tokens read from and written to it.
type Usage struct {
	Input, Output         int64
	CacheRead, CacheWrite int64
}

// Response headers InvokeModel answers carry its token counts in (reference §1).
const (
	HeaderInputTokens      = "X-Amzn-Bedrock-Input-Token-Count"
	HeaderOutputTokens     = "X-Amzn-Bedrock-Output-Token-Count"
	HeaderCacheReadTokens  = "X-Amzn-Bedrock-Cache-Read-Input-Token-Count"
	HeaderCacheWriteTokens = "X-Amzn-Bedrock-Cache-Write-Input-Token-Count"
)

// usageFields is a Usage with which of its counts a body stated, so a
// stream's events can be merged field by field.
type usageFields struct {
	u   Usage
	has uint8 // hasInput | hasOutput | …
	// metrics says the counts came from Bedrock's own
	// amazon-bedrock-invocationMetrics, which outrank the model's.
	metrics bool
}

const (
	hasInput uint8 = 1 << iota
	hasOutput
	hasCacheRead
	hasCacheWrite
)

func (f *usageFields) set(bit uint8, dst *int64, v int64) {
	*dst = v
	f.has |= bit
}

// known says the input or the output count was stated: cache counts alone
// are not a usage report.
func (f usageFields) known() bool { return f.has&(hasInput|hasOutput) != 0 }

// UsageFromHeaders reads InvokeModel's token-count headers. It reports
// false unless the input or the output count is present and a non-negative
// integer.
func UsageFromHeaders(h http.Header) (Usage, bool) {
	var f usageFields
	var ok bool
	if f.u.Input, ok = headerCount(h, HeaderInputTokens); ok {
		f.has |= hasInput
	}
	if f.u.Output, ok = headerCount(h, HeaderOutputTokens); ok {
		f.has |= hasOutput
	}
	if f.u.CacheRead, ok = headerCount(h, HeaderCacheReadTokens); ok {
		f.has |= hasCacheRead
	}
	if f.u.CacheWrite, ok = headerCount(h, HeaderCacheWriteTokens); ok {
		f.has |= hasCacheWrite
	}
	return f.u, f.known()
}

// headerCount reads a count header (name in canonical form).
func headerCount(h http.Header, name string) (int64, bool) {
	vs := h[name]
	if len(vs) == 0 {
		return 0, false
	}
	return parseCount([]byte(vs[0]))
}

// UsageFromResponse reads the token counts of a unary response body:
// Converse's usage{inputTokens,outputTokens,cacheReadInputTokens,
// cacheWriteInputTokens}, and InvokeModel's native bodies — Anthropic
// usage{input_tokens,output_tokens,cache_read_input_tokens,
// cache_creation_input_tokens}, Titan inputTextTokenCount and
// results[].tokenCount, Nova usage{inputTokens,outputTokens,…}, Llama
// prompt_token_count and generation_token_count, Mistral chat and Jamba
// usage{prompt_tokens,completion_tokens}, Cohere meta.billed_units. Every
// known key is read whatever family says, so a model whose family is
// unknown (an unresolved application profile) still reports its tokens;
// family only decides between spellings that could collide. It reports
// false for a body that is not a JSON object or states no input or output
// count.
func UsageFromResponse(op Operation, family string, body []byte) (Usage, bool) {
	switch op {
	case OpConverseStream, OpInvokeModelWithResponseStream, OpInvokeModelWithBidirectionalStream:
		return Usage{}, false // event streams: see UsageFromStreamEvent
	}
	f, _ := usageOfObject(body, 0)
	return f.u, f.known()
}

// UsageFromStreamEvent reads the token counts one event of a stream states:
// ConverseStream's metadata event (usage), and InvokeModelWithResponseStream
// chunks whose decoded bytes carry amazon-bedrock-invocationMetrics (the
// last chunk), Anthropic's message_start.message.usage and
// message_delta.usage, or a family's own count fields. Exceptions and other
// events report false. A stream's usage is the merge of its events: use
// StreamUsage.
func UsageFromStreamEvent(op Operation, family string, f *Frame) (Usage, bool) {
	uf := streamEventUsage(op, f, nil)
	return uf.u, uf.known()
}

// StreamUsage merges the usage a stream's events report, event by event,
// without keeping them: a count a later event states replaces an earlier
// one when larger (the models' counts are cumulative: Anthropic's
// message_start says one output token, its message_delta the final count),
// and once Bedrock's invocation metrics arrive (the final chunk) their
// input and output counts win.
type StreamUsage struct {
	Op     Operation
	Family string
	f      usageFields
	// buf is decoding room for chunk bytes (InvokeModelWithResponseStream),
	// allocated at the first chunk: a StreamUsage lives as long as its
	// stream, and a ConverseStream never needs it (issue 19).
	buf   *[1024]byte
	agent *agentStreamUsage
}

// Observe reads one frame of the stream. It costs a header lookup for
// events that cannot carry usage; chunk events are base64-decoded into a
// fixed buffer and scanned only if they mention tokens.
func (s *StreamUsage) Observe(f *Frame) {
	if s.Op == OpInvokeAgent || s.Op == OpInvokeInlineAgent {
		if s.agent == nil {
			s.agent = &agentStreamUsage{}
		}
		s.agent.observe(f)
		return
	}
	var buf []byte
	if s.Op == OpInvokeModelWithResponseStream {
		if s.buf == nil {
			s.buf = new([1024]byte)
		}
		buf = s.buf[:0]
	}
	ev := streamEventUsage(s.Op, f, buf)
	if ev.has == 0 {
		return
	}
	s.f.merge(ev)
}

// Usage returns the merged usage and whether any event reported it.
// An agent stream's usage is the sum of its traces' model invocations.
func (s *StreamUsage) Usage() (Usage, bool) {
	if s.agent != nil {
		return s.agent.u, s.agent.known
	}
	return s.f.u, s.f.known()
}

// Models are the foundation models an agent stream's traces named, in the
// order first seen (nil for other streams).
func (s *StreamUsage) Models() []string {
	if s.agent == nil {
		return nil
	}
	return s.agent.models
}

func (f *usageFields) merge(ev usageFields) {
	if f.metrics && !ev.metrics {
		// Bedrock's counts are final; a model's later numbers (there
		// should be none) only fill in what they lack.
		ev.has &^= f.has
	}
	take := func(bit uint8, dst *int64, v int64) {
		if ev.has&bit == 0 {
			return
		}
		if ev.metrics || f.has&bit == 0 || v > *dst {
			*dst = v
		}
		f.has |= bit
	}
	take(hasInput, &f.u.Input, ev.u.Input)
	take(hasOutput, &f.u.Output, ev.u.Output)
	take(hasCacheRead, &f.u.CacheRead, ev.u.CacheRead)
	take(hasCacheWrite, &f.u.CacheWrite, ev.u.CacheWrite)
	f.metrics = f.metrics || ev.metrics
}

// streamEventUsage reads one event; buf, if it has room, holds a chunk's
// decoded bytes so the common small chunk allocates nothing.
func streamEventUsage(op Operation, f *Frame, buf []byte) usageFields {
	if f.MessageType() != MessageTypeEvent {
		return usageFields{}
	}
	switch op {
	case OpConverseStream:
		if f.EventType() != "metadata" {
			return usageFields{}
		}
		uf, _ := usageOfObject(f.Message.Payload, 0)
		return uf
	case OpInvokeModelWithResponseStream:
		if f.EventType() != "chunk" {
			return usageFields{}
		}
		dec := chunkBytes(f.Message.Payload, buf)
		// Every count key has "oken" in it (tokens, Tokens, TokenCount,
		// token_count): a text delta is passed over at memchr speed.
		if dec == nil || !bytes.Contains(dec, []byte("oken")) {
			return usageFields{}
		}
		uf, _ := usageOfObject(dec, 0)
		return uf
	}
	return usageFields{}
}

// chunkBytes returns the decoded "bytes" of a chunk payload
// {"bytes":"<base64>","p":"…"}, decoded into buf when it fits; nil when the
// payload holds no such string or it is not base64.
func chunkBytes(payload, buf []byte) []byte {
	var b64 []byte
	const prefix = `{"bytes":"`
	if bytes.HasPrefix(payload, []byte(prefix)) {
		rest := payload[len(prefix):]
		if end := bytes.IndexByte(rest, '"'); end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			b64 = rest[:end]
		}
	}
	if b64 == nil { // another layout: find the member properly
		var mb [4]Member
		members, _, err := ScanObjectInto(mb[:0], payload)
		if err != nil {
			return nil
		}
		for _, m := range members {
			if m.Key == "bytes" {
				v := payload[m.ValueStart:m.ValueEnd]
				if len(v) < 2 || v[0] != '"' {
					return nil
				}
				b64 = unquoteJSON(nil, v[1:len(v)-1])
			}
		}
		if b64 == nil {
			return nil
		}
	}
	n := base64.RawStdEncoding.DecodedLen(len(b64)) // the larger bound (see decodeBase64)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	m, err := base64.StdEncoding.Decode(buf, b64)
	if err != nil {
		if m, err = base64.RawStdEncoding.Decode(buf, b64); err != nil {
			return nil
		}
	}
	return buf[:m]
}

// usageOfObject reads the count keys of the JSON object starting at start
// in body (after whitespace). depth bounds recursion into the objects that
// nest counts (Anthropic's message, Nova chunks' metadata, Cohere's meta,
// a stream-end's response).
func usageOfObject(body []byte, depth int) (usageFields, bool) {
	if depth > 4 {
		return usageFields{}, false
	}
	var mb [16]rawMember
	members, err := rawMembers(mb[:0], body, depth == 0)
	if err != nil {
		return usageFields{}, false
	}
	var f, metrics usageFields
	var titanOut int64
	titan := false
	for _, m := range members {
		v := body[m.vs:m.ve]
		switch string(m.key) { // compared in place: no allocation
		case "usage", "billed_units":
			// Converse and Nova (inputTokens…), Anthropic (input_tokens…),
			// Mistral chat and Jamba (prompt_tokens…), Cohere's billed units.
			u, _ := usageOfObject(v, depth+1)
			f.mergeMissing(u)
		case "message", "metadata", "meta", "response":
			if depth < 3 {
				u, _ := usageOfObject(v, depth+1)
				f.mergeMissing(u)
			}
		case "amazon-bedrock-invocationMetrics":
			metrics, _ = usageOfObject(v, depth+1)
			metrics.metrics = metrics.known()
		case "inputTokens", "input_tokens", "prompt_tokens", "inputTokenCount", "inputTextTokenCount", "prompt_token_count":
			f.num(hasInput, &f.u.Input, v)
		case "outputTokens", "output_tokens", "completion_tokens", "outputTokenCount", "generation_token_count", "totalOutputTextTokenCount":
			f.num(hasOutput, &f.u.Output, v)
		case "cacheReadInputTokens", "cache_read_input_tokens", "cacheReadInputTokenCount":
			f.num(hasCacheRead, &f.u.CacheRead, v)
		case "cacheWriteInputTokens", "cache_creation_input_tokens", "cacheWriteInputTokenCount":
			f.num(hasCacheWrite, &f.u.CacheWrite, v)
		case "results": // Titan: results[].tokenCount
			if n, ok := sumTokenCounts(v); ok {
				titanOut, titan = n, true
			}
		}
	}
	if titan && f.has&hasOutput == 0 {
		f.set(hasOutput, &f.u.Output, titanOut)
	}
	if metrics.metrics {
		metrics.mergeMissing(f)
		return metrics, true
	}
	return f, true
}

// mergeMissing fills in the counts f lacks from u.
func (f *usageFields) mergeMissing(u usageFields) {
	add := func(bit uint8, dst *int64, v int64) {
		if u.has&bit != 0 && f.has&bit == 0 {
			f.set(bit, dst, v)
		}
	}
	add(hasInput, &f.u.Input, u.u.Input)
	add(hasOutput, &f.u.Output, u.u.Output)
	add(hasCacheRead, &f.u.CacheRead, u.u.CacheRead)
	add(hasCacheWrite, &f.u.CacheWrite, u.u.CacheWrite)
}

func (f *usageFields) num(bit uint8, dst *int64, v []byte) {
	if f.has&bit != 0 {
		return // the first spelling found wins
	}
	if n, ok := parseCount(v); ok {
		f.set(bit, dst, n)
	}
}

// sumTokenCounts adds the tokenCount of each object in a JSON array.
func sumTokenCounts(v []byte) (int64, bool) {
	s := jsonScanner{b: v}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return 0, false
	}
	s.i++
	var sum int64
	found := false
	for {
		s.ws()
		if s.i >= len(s.b) {
			return 0, false
		}
		switch s.b[s.i] {
		case ']':
			return sum, found
		case ',':
			s.i++
			continue
		case '{':
			var mb [8]Member
			members, _, err := s.object(mb[:0], true)
			if err != nil {
				return 0, false
			}
			for _, m := range members {
				if m.Key == "tokenCount" {
					if n, ok := parseCount(v[m.ValueStart:m.ValueEnd]); ok {
						sum, found = satAdd(sum, n), true
					}
				}
			}
		default:
			if err := s.value(); err != nil {
				return 0, false
			}
		}
	}
}

func satAdd(a, b int64) int64 {
	if a > maxCount-b {
		return maxCount
	}
	return a + b
}

// maxCount bounds a token count: far above any model's context, far below
// where a price multiplication loses meaning.
const maxCount = 1 << 53

// parseCount reads a non-negative JSON integer (or a number with a zero
// fraction, "12.0"); anything else, including null, is not a count.
func parseCount(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n = n*10 + int64(b[i]-'0'); n > maxCount {
			return 0, false
		}
	}
	if i == 0 {
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) {
			return 0, false
		}
		for ; i < len(b) && b[i] == '0'; i++ {
		}
	}
	return n, i == len(b)
}

// rawMember is a member of a scanned object: its key as raw bytes (decoded
// only if it holds escapes) and its value's range.
type rawMember struct {
	key    []byte
	vs, ve int
}

// rawMembers validates the JSON object at the start of b (after
// whitespace) and returns its members, like ScanObjectInto but without
// turning keys into strings: usage is read on every answer, and most of its
// keys are response keys ScanObject does not intern. whole requires the
// object to be all of b.
func rawMembers(dst []rawMember, b []byte, whole bool) ([]rawMember, error) {
	s := jsonScanner{b: b}
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	s.i++
	s.depth++
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		return dst, s.trailing(whole)
	}
	for {
		s.ws()
		if s.i >= len(b) || b[s.i] != '"' {
			return nil, s.errorf("object key expected")
		}
		ks := s.i
		if _, err := s.str(false); err != nil {
			return nil, err
		}
		key := b[ks+1 : s.i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			key = []byte(unquoteString(key))
		}
		s.ws()
		if s.i >= len(b) || b[s.i] != ':' {
			return nil, s.errorf("':' expected")
		}
		s.i++
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return nil, err
		}
		dst = append(dst, rawMember{key: key, vs: vs, ve: s.i})
		s.ws()
		if s.i >= len(b) {
			return nil, s.errorf("',' or '}' expected")
		}
		switch b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return dst, s.trailing(whole)
		default:
			return nil, s.errorf("',' or '}' expected")
		}
	}
}

func (s *jsonScanner) trailing(whole bool) error {
	if !whole {
		return nil
	}
	s.ws()
	if s.i != len(s.b) {
		return fmt.Errorf("data after the object at offset %d", s.i)
	}
	return nil
}
