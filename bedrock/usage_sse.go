package bedrock

import "bytes"

// UsageFromSSE reads the token counts of a server-sent event stream of the
// OpenAI-compatible or Anthropic Messages APIs, as the client was sent it:
// each event's data is a JSON object whose usage (chat completions' last
// chunk with stream_options.include_usage; Responses' response.completed
// event, under "response"; Messages' message_start, under "message", and
// message_delta) states counts. The stream's usage is their merge, a later
// count replacing an earlier one when larger. It reports false when no event
// states an input or output count.
func UsageFromSSE(body []byte) (Usage, bool) {
	var su SSEUsage
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:"))
		if !ok {
			continue
		}
		su.Observe(data)
	}
	return su.Usage()
}

// SSEUsage merges the usage a stream's events state, event by event, as
// UsageFromSSE does for a whole stream.
type SSEUsage struct{ f usageFields }

// Observe reads one event's data.
func (s *SSEUsage) Observe(data []byte) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' || !bytes.Contains(data, []byte("tokens")) {
		return
	}
	if ev, _ := usageOfObject(data, 0); ev.has != 0 {
		s.f.merge(ev)
	}
}

// Usage is the merged usage, and whether an input or output count was stated.
func (s *SSEUsage) Usage() (Usage, bool) { return s.f.u, s.f.known() }
