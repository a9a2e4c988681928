package proxy

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/warden-egress/warden/bedrock"
)

// sseUsageCases are streams of the three APIs, whole and broken off.
var sseUsageCases = []struct {
	name   string
	stream string
	want   bedrock.Usage
	known  bool
}{
	{"chat with usage", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\ndata: [DONE]\n\n",
		bedrock.Usage{Input: 7, Output: 3}, true},
	{"chat cut before its usage chunk", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n", bedrock.Usage{}, false},
	{"messages cut after message_start", "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
		bedrock.Usage{Input: 12, Output: 1}, true},
	{"responses completed, CRLF, no final newline", "event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":9}}}",
		bedrock.Usage{Input: 5, Output: 9}, true},
	{"nothing", "", bedrock.Usage{}, false},
}

// The scanner reads what bedrock.UsageFromSSE reads from the whole body,
// however the stream is cut into writes (every split point, and one byte
// at a time).
func TestSSEUsageScanner(t *testing.T) {
	for _, tc := range sseUsageCases {
		t.Run(tc.name, func(t *testing.T) {
			for split := 0; split <= len(tc.stream); split++ {
				var s sseUsageScanner
				_, _ = s.Write([]byte(tc.stream[:split]))
				_, _ = s.Write([]byte(tc.stream[split:]))
				if u, ok := s.Usage(); u != tc.want || ok != tc.known {
					t.Fatalf("split at %d: %+v %v, want %+v %v", split, u, ok, tc.want, tc.known)
				}
			}
			var s sseUsageScanner
			if _, err := io.Copy(&s, iotest.OneByteReader(strings.NewReader(tc.stream))); err != nil {
				t.Fatal(err)
			}
			if u, ok := s.Usage(); u != tc.want || ok != tc.known {
				t.Fatalf("one byte at a time: %+v %v, want %+v %v", u, ok, tc.want, tc.known)
			}
		})
	}
}

// A stream longer than the bound that keeps unary answers for their usage
// (maxUsageCapture) still has its usage read; a single line over it is
// passed over without keeping it.
func TestSSEUsageScannerLongStream(t *testing.T) {
	var s sseUsageScanner
	chunk := []byte("data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 32<<10) + "\"}}]}\n\n")
	for n := 0; n <= maxUsageCapture; n += len(chunk) {
		_, _ = s.Write(chunk)
	}
	_, _ = s.Write([]byte("data: " + strings.Repeat("y", maxUsageCapture+1)))
	if cap(s.line) > maxUsageCapture+len(chunk) {
		t.Errorf("the scanner kept %d bytes", cap(s.line))
	}
	_, _ = s.Write([]byte("\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":40000}}\n\n"))
	if u, ok := s.Usage(); !ok || u.Input != 2 || u.Output != 40000 {
		t.Fatalf("usage after %d bytes: %+v %v", maxUsageCapture, u, ok)
	}
}

// FuzzSSEUsageScanner: on any bytes, cut anywhere, the scanner agrees with
// bedrock.UsageFromSSE on the whole body (lines under the bound) and never
// panics.
func FuzzSSEUsageScanner(f *testing.F) {
	for _, tc := range sseUsageCases {
		f.Add([]byte(tc.stream), uint16(len(tc.stream)/2))
	}
	f.Add([]byte("data:{\"usage\":{\"input_tokens\":1}}\r\n"), uint16(3))
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		at := int(split)
		if at > len(body) {
			at = len(body)
		}
		var s sseUsageScanner
		_, _ = s.Write(body[:at])
		_, _ = s.Write(body[at:])
		u, ok := s.Usage()
		wu, wok := bedrock.UsageFromSSE(body)
		if u != wu || ok != wok {
			t.Fatalf("scanner %+v %v, UsageFromSSE %+v %v", u, ok, wu, wok)
		}
	})
}
