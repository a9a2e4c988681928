package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard"
)

// sseTextRef counts the text of an SSE stream as the guarded relay does:
// its events read by readSSEEvent, each given to an output guard's
// Stream.NextSSE, EventTextBytes summed.
func sseTextRef(t testing.TB, op bedrock.Operation, body []byte) int64 {
	t.Helper()
	set, err := guard.Compile([]guard.App{{Name: "a", Guards: []string{"g"}}}, map[string]guard.Config{
		"g": {Words: &guard.WordsConfig{List: []string{"zzqx"}, Action: guard.Record}, Unscannable: "allow", AppliesTo: []string{"output"}}})
	if err != nil {
		t.Fatal(err)
	}
	sg := set.For("a").NewStream(op, bedrock.FamilyUnknown, false)
	br := bufio.NewReader(bytes.NewReader(body))
	var ev sseEvent
	var n int64
	for {
		if err := readSSEEvent(br, &ev); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("readSSEEvent: %v", err)
			}
			return n
		}
		_, _, _ = sg.NextSSE(ev.raw, ev.name, ev.data)
		n += sg.EventTextBytes()
	}
}

// review31SSECases are streams of the three APIs: whole, with events of
// several data lines, CRLF, comments and events without data.
var review31SSECases = []struct {
	name   string
	op     bedrock.Operation
	stream string
	text   int64 // the answer's text bytes
}{
	{"chat", bedrock.OpOpenAIChatCompletions, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"hello\"}}]}\n\n: keep-alive\n\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\r\n\r\n" +
		"data: {\"choices\":[{\"delta\":\ndata: {\"content\":\"split\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n", 16},
	{"messages", bedrock.OpMantleMessages, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"four\"}}\n\n" +
		"event: ping\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\": \\\"x\\\"\"}}\n\n", 4},
	{"responses", bedrock.OpOpenAIResponses, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"abc\"}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"defg\"}\n\n", 7},
}

// The unguarded relay's count (sseUsageScanner with countText) is the
// guarded relay's on whole streams, however the stream is cut into
// writes; and it counts at least the answer's text.
func TestReview31SSETextCount(t *testing.T) {
	for _, tc := range review31SSECases {
		t.Run(tc.name, func(t *testing.T) {
			want := sseTextRef(t, tc.op, []byte(tc.stream))
			if want < tc.text {
				t.Fatalf("the guarded relay counts %d bytes, the answer has %d", want, tc.text)
			}
			for split := 0; split <= len(tc.stream); split++ {
				var s sseUsageScanner
				s.countText(tc.op, bedrock.FamilyUnknown)
				_, _ = s.Write([]byte(tc.stream[:split]))
				_, _ = s.Write([]byte(tc.stream[split:]))
				if got := s.textBytes(); got != want {
					t.Fatalf("split at %d: %d text bytes, the guarded relay %d", split, got, want)
				}
			}
			var s sseUsageScanner
			s.countText(tc.op, bedrock.FamilyUnknown)
			if _, err := io.Copy(&s, iotest.OneByteReader(strings.NewReader(tc.stream))); err != nil {
				t.Fatal(err)
			}
			if got := s.textBytes(); got != want {
				t.Fatalf("one byte at a time: %d text bytes, the guarded relay %d", got, want)
			}
			if _, ok := s.Usage(); ok != strings.Contains(tc.stream, "_tokens") {
				t.Fatalf("usage read %v", ok)
			}
		})
	}
}

// A stream cut inside an event counts the bytes the client got of it; an
// event longer than the bounds counts all its bytes; without countText
// nothing is counted.
func TestReview31SSETextCountCutAndLong(t *testing.T) {
	op := bedrock.OpOpenAIChatCompletions
	var s sseUsageScanner
	s.countText(op, bedrock.FamilyUnknown)
	_, _ = s.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"whole\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"cut sh"))
	if got, want := s.textBytes(), int64(5+len(`{"choices":[{"delta":{"content":"cut sh`)); got != want {
		t.Fatalf("cut inside an event: %d text bytes, want %d", got, want)
	}

	s = sseUsageScanner{}
	s.countText(op, bedrock.FamilyUnknown)
	long := strings.Repeat("y", maxUsageCapture+10)
	_, _ = s.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"" + long + "\"}}]}\n\n"))
	if got := s.textBytes(); got < int64(len(long)) {
		t.Fatalf("a line over the bound: %d text bytes, its text is %d", got, len(long))
	}
	s = sseUsageScanner{}
	s.countText(op, bedrock.FamilyUnknown)
	mid := strings.Repeat("z", maxSSEEvent/2)
	_, _ = s.Write([]byte("data: {\"choices\":[{\"delta\":\ndata: {\"content\":\"" + mid + "\"}}]}\ndata: " + mid + "\n\n"))
	if got := s.textBytes(); got < int64(2*len(mid)) {
		t.Fatalf("data over the event bound: %d text bytes, its data is %d", got, 2*len(mid))
	}
	if cap(s.data) > maxSSEEvent+64 {
		t.Fatalf("the scanner kept %d bytes of one event", cap(s.data))
	}

	s = sseUsageScanner{}
	_, _ = s.Write([]byte(review31SSECases[0].stream))
	if got := s.textBytes(); got != 0 {
		t.Fatalf("not counting: %d text bytes", got)
	}
}

// FuzzReview31SSETextCount: on any bytes, cut anywhere, the unguarded
// relay's count is at least the guarded relay's, and the same when the
// stream ends with a blank line; the usage read is unchanged.
func FuzzReview31SSETextCount(f *testing.F) {
	for _, tc := range review31SSECases {
		f.Add([]byte(tc.stream), uint16(len(tc.stream)/2), uint8(0))
	}
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"x"), uint16(7), uint8(0))
	f.Add([]byte("event: error\ndata: {\"error\":{\"message\":\"m\"}}\n\n"), uint16(3), uint8(1))
	ops := []bedrock.Operation{bedrock.OpOpenAIChatCompletions, bedrock.OpMantleMessages, bedrock.OpOpenAIResponses}
	f.Fuzz(func(t *testing.T, body []byte, split uint16, opi uint8) {
		op := ops[int(opi)%len(ops)]
		at := min(int(split), len(body))
		var s sseUsageScanner
		s.countText(op, bedrock.FamilyUnknown)
		_, _ = s.Write(body[:at])
		_, _ = s.Write(body[at:])
		got := s.textBytes()
		u, ok := s.Usage()
		if wu, wok := bedrock.UsageFromSSE(body); u != wu || ok != wok {
			t.Fatalf("usage %+v %v, UsageFromSSE %+v %v", u, ok, wu, wok)
		}
		want := sseTextRef(t, op, body)
		if got < want {
			t.Fatalf("%d text bytes, the guarded relay %d", got, want)
		}
		if (bytes.HasSuffix(body, []byte("\n\n")) || bytes.HasSuffix(body, []byte("\n\r\n"))) && got != want {
			t.Fatalf("a whole stream: %d text bytes, the guarded relay %d", got, want)
		}
	})
}
