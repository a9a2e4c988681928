package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readAllSSE(s string) ([]sseEvent, error) {
	br := bufio.NewReaderSize(strings.NewReader(s), 64)
	var out []sseEvent
	for {
		var ev sseEvent
		err := readSSEEvent(br, &ev)
		if err != nil {
			return out, err
		}
		out = append(out, sseEvent{raw: bytes.Clone(ev.raw), name: ev.name, data: bytes.Clone(ev.data)})
	}
}

func TestReadSSEEvent(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string // name|data per event
	}{
		{"openai", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{"|{\"a\":1}", "|[DONE]"}},
		{"named crlf", "event: message_start\r\ndata: {}\r\n\r\nevent: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n", []string{"message_start|{}", "ping|{\"type\":\"ping\"}"}},
		{"multi data", "data: {\ndata: }\n\n", []string{"|{\n}"}},
		{"no space", "event:x\ndata:y\n\n", []string{"x|y"}},
		{"comment", ": keep-alive\n\ndata: z\n\n", []string{"|", "|z"}},
		{"unterminated", "data: tail", []string{"|tail"}},
		{"empty", "", nil},
	}
	for _, tc := range cases {
		evs, err := readAllSSE(tc.in)
		if err != io.EOF {
			t.Errorf("%s: end %v", tc.name, err)
		}
		var got []string
		var raw strings.Builder
		for _, ev := range evs {
			got = append(got, ev.name+"|"+string(ev.data))
			raw.Write(ev.raw)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: events %q, want %q", tc.name, got, tc.want)
		}
		if raw.String() != tc.in {
			t.Errorf("%s: raw bytes %q, want the input %q", tc.name, raw.String(), tc.in)
		}
	}
	if _, err := readAllSSE("data: " + strings.Repeat("x", maxSSEEvent+10) + "\n\n"); !errors.Is(err, errSSEEventTooLong) {
		t.Errorf("oversize event: %v", err)
	}
}

// Whatever the upstream sends, the events' raw bytes are the stream as
// sent, in order (nothing dropped or added on the unguarded path).
func FuzzReadSSEEvent(f *testing.F) {
	for _, s := range []string{"data: {}\n\n", "event: a\r\ndata: b\r\n\r\n", "\n\n\n", ":c\ndata\n\n", "data: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		evs, err := readAllSSE(s)
		if err != io.EOF {
			if errors.Is(err, errSSEEventTooLong) {
				return
			}
			t.Fatalf("end %v", err)
		}
		var raw strings.Builder
		for _, ev := range evs {
			if len(ev.raw) == 0 {
				t.Fatal("an empty event")
			}
			raw.Write(ev.raw)
		}
		if raw.String() != s {
			t.Fatalf("raw %q, want %q", raw.String(), s)
		}
	})
}
