package bedrock

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

var fuzzOps = []Operation{
	OpConverse, OpConverseStream, OpCountTokens, OpInvokeModel, OpInvokeModelWithResponseStream,
	OpStartAsyncInvoke, OpApplyGuardrail, OpGetAsyncInvoke,
	OpOpenAIChatCompletions, OpMantleChatCompletions, OpMantleMessages, OpOpenAIResponses,
	OpInvokeAgent, OpInvokeInlineAgent, OpRetrieveAndGenerate, OpRetrieveAndGenerateStream, OpInvokeFlow, OpGetInvocationStep,
}

var fuzzFamilies = []string{
	FamilyUnknown, FamilyAnthropic, FamilyTitanText, FamilyNova, FamilyLlama, FamilyMistral, FamilyCohereCommandR, FamilyJamba,
}

func fuzzPick(op, fam uint8) (Operation, string) {
	return fuzzOps[int(op)%len(fuzzOps)], fuzzFamilies[int(fam)%len(fuzzFamilies)]
}

func indexOf[T comparable](s []T, v T) uint8 { return uint8(slices.Index(s, v)) }

// seedBodies adds every request or response sample, and a few hand-made
// edge cases, to a fuzz corpus.
func seedBodies(f *testing.F, kind string) {
	for _, c := range extractCases {
		if c.kind != kind {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", "extract", c.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(indexOf(fuzzOps, c.op), indexOf(fuzzFamilies, c.family), b)
	}
	for _, s := range []string{
		`{"messages":[{"role":"user","content":[{"text":"a\u0040b \ud83d\ude00 \ud83d"}]}]}`,
		`{"system":"x","messages":[{"content":[{"type":"document","source":{"type":"text","type":"base64","data":"x"}}]}]}`,
		`{"input":{"invokeModel":{"body":"eyJwcm9tcHQiOiJoaSJ9"}}}`,
		`{"max_tokens":1e400,"max_gen_len":-0.5,"inferenceConfig":{"maxTokens":"9"}}`,
		`{"k\u0065y":[[[{"\"":"\\"}]]]}`, `[]`, `"str"`, `null`, `{}`, `{"a":[1,2,{"b":"c"}]}`,
	} {
		for op := range fuzzOps {
			f.Add(uint8(op), uint8(op*3), []byte(s))
		}
	}
}

// checkAgainstEncodingJSON: the extractor accepts what encoding/json
// accepts (UTF-8 only, nesting within 1000), every span it reports is a
// string value of the body, and the unknown shape reports all of them.
func checkAgainstEncodingJSON(t *testing.T, body []byte, ex Extracted, err error) {
	valid := json.Valid(body) && utf8.Valid(body)
	if err == nil && !valid {
		t.Fatalf("accepted invalid JSON %q", body)
	}
	if err != nil {
		if valid && len(body) <= 2000 { // deeper nesting needs more bytes
			t.Fatalf("rejected valid JSON %q: %v", body, err)
		}
		return
	}
	checkExtracted(t, body, ex)
	all := allStrings(t, body)
	for _, s := range slices.Concat(ex.Texts, ex.IDs) {
		if s.Src == 0 && !s.Base64 && !slices.Contains(all, s.Text) {
			t.Fatalf("span %s %q is not a string value of the body", s.Path, s.Text)
		}
	}
	unk, err := ExtractRequest(OpGetAsyncInvoke, FamilyUnknown, body)
	if err != nil {
		t.Fatalf("unknown shape rejected what a known one accepted: %v", err)
	}
	if got := texts(unk); !slices.Equal(got, all) {
		t.Fatalf("unknown shape: texts %q, want %q", got, all)
	}
}

func FuzzExtractRequest(f *testing.F) {
	seedBodies(f, "request")
	f.Fuzz(func(t *testing.T, opi, fami uint8, body []byte) {
		op, fam := fuzzPick(opi, fami)
		ex, err := ExtractRequest(op, fam, body)
		checkAgainstEncodingJSON(t, body, ex, err)
	})
}

func FuzzExtractResponse(f *testing.F) {
	seedBodies(f, "response")
	f.Fuzz(func(t *testing.T, opi, fami uint8, body []byte) {
		op, fam := fuzzPick(opi, fami)
		ex, err := ExtractResponse(op, fam, body)
		if op.Streaming() || op.AgentStreaming() {
			if err == nil {
				t.Fatal("a streaming response was extracted")
			}
			return
		}
		checkAgainstEncodingJSON(t, body, ex, err)
		if ex.MaxTokensPath != "" {
			t.Fatal("max tokens reported for a response")
		}
	})
}

// FuzzExtractStreamEvent fuzzes event payloads; with wrap the input is a
// model chunk, sent base64-encoded in a "chunk" event as Bedrock does, so
// the fuzzer reaches the chunk readers.
func FuzzExtractStreamEvent(f *testing.F) {
	for _, c := range extractCases {
		if c.kind != "stream" && c.kind != "chunks" {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", "extract", c.file))
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if c.kind == "chunks" {
				f.Add(indexOf(fuzzOps, c.op), indexOf(fuzzFamilies, c.family), "chunk", true, line)
				continue
			}
			var ev struct {
				Event   string
				Payload json.RawMessage
			}
			if err := json.Unmarshal(line, &ev); err != nil {
				f.Fatal(err)
			}
			f.Add(indexOf(fuzzOps, c.op), uint8(0), ev.Event, false, []byte(ev.Payload))
		}
	}
	f.Add(uint8(4), uint8(1), "chunk", false, []byte(`{"bytes":"eyJ0ZXh0IjoiaGkifQ==","p":"ab"}`))
	f.Fuzz(func(t *testing.T, opi, fami uint8, eventType string, wrap bool, payload []byte) {
		op, fam := fuzzPick(opi, fami)
		if wrap {
			op, eventType, payload = OpInvokeModelWithResponseStream, "chunk", chunkPayload(payload)
		}
		ex, err := ExtractStreamEvent(op, fam, eventType, payload)
		checkAgainstEncodingJSON(t, payload, ex, err)
		// An EventExtractor reusing an earlier event's memory reads the same.
		var x EventExtractor
		var dst Extracted
		eventExtractorPrime(t, &x, &dst)
		if xerr := x.Extract(&dst, op, fam, eventType, payload); (xerr == nil) != (err == nil) || !sameExtracted(dst, ex) {
			t.Fatalf("EventExtractor: %+v, %v; ExtractStreamEvent: %+v, %v", dst, xerr, ex, err)
		}
		if ex.MaxTokensPath != "" {
			t.Fatal("max tokens reported for an event")
		}
		for _, d := range ex.Decoded {
			if !json.Valid(d.Bytes) {
				t.Fatalf("decoded body %s is not JSON", d.Path)
			}
		}
	})
}
