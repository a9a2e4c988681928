package bedrock

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// sameExtracted reports whether a and b hold the same (empty and nil
// slices alike).
func sameExtracted(a, b Extracted) bool {
	norm := func(e Extracted) Extracted {
		if len(e.Texts) == 0 {
			e.Texts = nil
		}
		if len(e.IDs) == 0 {
			e.IDs = nil
		}
		if len(e.Unscannable) == 0 {
			e.Unscannable = nil
		}
		if len(e.Decoded) == 0 {
			e.Decoded = nil
		}
		return e
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// eventExtractorPrime leaves x and dst as an earlier event does: spans, ids,
// a decoded chunk body and unscannable paths whose memory the next Extract
// reuses.
func eventExtractorPrime(t testing.TB, x *EventExtractor, dst *Extracted) {
	t.Helper()
	chunk := chunkPayload([]byte(`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":"some longer text that fills the buffer","b":"more"}}}`))
	if err := x.Extract(dst, OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", chunk); err != nil {
		t.Fatal(err)
	}
	if len(dst.Decoded) == 0 {
		t.Fatal("the priming chunk decoded no body")
	}
}

// Every event of the stream corpora (and events that are not JSON), read by
// one EventExtractor into one reused Extracted one after another, gives what
// ExtractStreamEvent gives.
func TestEventExtractorMatchesExtractStreamEvent(t *testing.T) {
	var x EventExtractor
	var dst Extracted
	eventExtractorPrime(t, &x, &dst)
	n := 0
	check := func(name string, op Operation, family, eventType string, payload []byte) {
		t.Helper()
		want, wantErr := ExtractStreamEvent(op, family, eventType, payload)
		gotErr := x.Extract(&dst, op, family, eventType, payload)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("%s: error %v, want %v", name, gotErr, wantErr)
		}
		if !sameExtracted(dst, want) {
			t.Fatalf("%s: got %+v\nwant %+v", name, dst, want)
		}
		n++
	}
	for _, c := range extractCases {
		if c.kind != "stream" && c.kind != "chunks" {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", "extract", c.file))
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range readEvents(t, c, data) {
			check(c.file+" event "+ev.Type, c.op, c.family, ev.Type, ev.Payload)
			if i == 0 {
				// an event that is not JSON between two that are
				check(c.file+" broken", c.op, c.family, ev.Type, ev.Payload[:len(ev.Payload)/2])
			}
		}
	}
	check("unknown agent event", OpInvokeAgent, FamilyUnknown, "newEvent", []byte(`{"a":"b"}`))
	check("agent event not JSON", OpInvokeAgent, FamilyUnknown, "newEvent", []byte(`{"a":`))
	check("chunk not base64", OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", []byte(`{"bytes":"%%%"}`))
	if n < 20 {
		t.Fatalf("only %d events checked", n)
	}
	if len(x.paths) > maxInternedPaths {
		t.Fatalf("%d interned paths", len(x.paths))
	}
}

// A running stream's token costs the extraction one allocation: the text.
func TestEventExtractorAllocs(t *testing.T) {
	var x EventExtractor
	var dst Extracted
	payload := []byte(`{"contentBlockIndex":0,"delta":{"text":"Hello there"},"p":"abcdefghijklmnopqrstuvwxyz"}`)
	if err := x.Extract(&dst, OpConverseStream, FamilyUnknown, "contentBlockDelta", payload); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		_ = x.Extract(&dst, OpConverseStream, FamilyUnknown, "contentBlockDelta", payload)
	}); n != 1 {
		t.Errorf("%v allocations per event, want 1 (the text)", n)
	}
	chunk := chunkPayload([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`))
	if err := x.Extract(&dst, OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", chunk); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		_ = x.Extract(&dst, OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", chunk)
	}); n != 1 {
		t.Errorf("%v allocations per chunk event, want 1 (the text)", n)
	}
	if len(dst.Texts) != 1 || dst.Texts[0].Text != "Hello" || !bytes.Contains(dst.Decoded[0].Bytes, []byte("text_delta")) {
		t.Fatalf("chunk read as %+v", dst)
	}
}
