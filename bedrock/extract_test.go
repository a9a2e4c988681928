package bedrock

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var updateExtract = flag.Bool("update-extract", false, "rewrite testdata/extract/golden")

// extractCase is one payload file in testdata/extract. kind is "request",
// "response", "stream" (JSON lines of {"event","payload"}: ConverseStream
// events) or "chunks" (JSON lines of model chunks, sent wrapped in
// InvokeModelWithResponseStream "chunk" events as {"bytes":b64,"p":…}).
type extractCase struct {
	file   string
	op     Operation
	family string
	kind   string
}

var extractCases = []extractCase{
	{"converse_request.json", OpConverse, FamilyUnknown, "request"},
	{"converse_request.json", OpConverseStream, FamilyAnthropic, "request"},
	{"converse_response.json", OpConverse, FamilyUnknown, "response"},
	{"converse_stream.jsonl", OpConverseStream, FamilyUnknown, "stream"},
	{"counttokens_converse.json", OpCountTokens, FamilyAnthropic, "request"},
	{"counttokens_invoke.json", OpCountTokens, FamilyAnthropic, "request"},
	{"counttokens_invoke_bad.json", OpCountTokens, FamilyAnthropic, "request"},
	{"anthropic_request.json", OpInvokeModel, FamilyAnthropic, "request"},
	{"anthropic_request_legacy.json", OpInvokeModelWithResponseStream, FamilyAnthropic, "request"},
	{"anthropic_response.json", OpInvokeModel, FamilyAnthropic, "response"},
	{"anthropic_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyAnthropic, "chunks"},
	{"titan_request.json", OpInvokeModel, FamilyTitanText, "request"},
	{"titan_response.json", OpInvokeModel, FamilyTitanText, "response"},
	{"titan_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyTitanText, "chunks"},
	{"nova_request.json", OpInvokeModel, FamilyNova, "request"},
	{"nova_response.json", OpInvokeModel, FamilyNova, "response"},
	{"nova_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyNova, "chunks"},
	{"llama_request.json", OpInvokeModel, FamilyLlama, "request"},
	{"llama_response.json", OpInvokeModel, FamilyLlama, "response"},
	{"llama_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyLlama, "chunks"},
	{"mistral_text_request.json", OpInvokeModel, FamilyMistral, "request"},
	{"mistral_text_response.json", OpInvokeModel, FamilyMistral, "response"},
	{"mistral_chat_request.json", OpInvokeModel, FamilyMistral, "request"},
	{"mistral_chat_response.json", OpInvokeModel, FamilyMistral, "response"},
	{"mistral_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyMistral, "chunks"},
	{"cohere_request.json", OpInvokeModel, FamilyCohereCommandR, "request"},
	{"cohere_response.json", OpInvokeModel, FamilyCohereCommandR, "response"},
	{"cohere_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyCohereCommandR, "chunks"},
	{"jamba_request.json", OpInvokeModel, FamilyJamba, "request"},
	{"jamba_response.json", OpInvokeModel, FamilyJamba, "response"},
	{"jamba_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyJamba, "chunks"},
	{"unknown_request.json", OpInvokeModel, FamilyUnknown, "request"},
	{"deepseek_response.json", OpInvokeModel, FamilyUnknown, "response"},
	{"anthropic_chunks.jsonl", OpInvokeModelWithResponseStream, FamilyUnknown, "chunks"},
	{"async_request.json", OpStartAsyncInvoke, FamilyUnknown, "request"},
	{"applyguardrail_request.json", OpApplyGuardrail, FamilyUnknown, "request"},
}

func (c extractCase) golden() string {
	name := strings.TrimSuffix(strings.TrimSuffix(c.file, ".json"), ".jsonl")
	return filepath.Join("testdata", "extract", "golden", fmt.Sprintf("%s.%s.%s.txt", name, c.op, familyName(c.family)))
}

func familyName(f string) string {
	if f == "" {
		return "unknown"
	}
	return f
}

// streamEvent is one event of a "stream" or "chunks" case.
type streamEvent struct {
	Type    string
	Payload []byte
}

func readEvents(t testing.TB, c extractCase, data []byte) []streamEvent {
	var evs []streamEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		switch c.kind {
		case "stream":
			var ev struct {
				Event   string
				Payload json.RawMessage
			}
			if err := json.Unmarshal(line, &ev); err != nil {
				t.Fatalf("%s: %v", c.file, err)
			}
			evs = append(evs, streamEvent{ev.Event, ev.Payload})
		case "chunks":
			evs = append(evs, streamEvent{"chunk", chunkPayload(line)})
		}
	}
	return evs
}

// chunkPayload wraps a model chunk the way InvokeModelWithResponseStream
// sends it.
func chunkPayload(chunk []byte) []byte {
	b, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(chunk), "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"})
	return b
}

func TestExtractGolden(t *testing.T) {
	for _, c := range extractCases {
		t.Run(c.golden(), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "extract", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			switch c.kind {
			case "request", "response":
				var ex Extracted
				if c.kind == "request" {
					ex, err = ExtractRequest(c.op, c.family, data)
				} else {
					ex, err = ExtractResponse(c.op, c.family, data)
				}
				if err != nil {
					t.Fatal(err)
				}
				checkExtracted(t, data, ex)
				renderExtracted(&got, ex)
			default:
				for i, ev := range readEvents(t, c, data) {
					ex, err := ExtractStreamEvent(c.op, c.family, ev.Type, ev.Payload)
					if err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
					checkExtracted(t, ev.Payload, ex)
					fmt.Fprintf(&got, "## event %d %s\n", i, ev.Type)
					renderExtracted(&got, ex)
				}
			}
			path := c.golden()
			if *updateExtract {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-extract)", err)
			}
			if got.String() != string(want) {
				t.Errorf("extraction differs from %s (run with -update-extract and review the diff):\n%s", path, got.String())
			}
		})
	}
}

func renderExtracted(w io.Writer, ex Extracted) {
	for _, s := range ex.Texts {
		src := ""
		if s.Src != 0 {
			src = fmt.Sprintf(" (decoded %d)", s.Src)
		}
		if s.Base64 {
			src += " (base64)"
		}
		fmt.Fprintf(w, "text %s%s %s\n", s.Path, src, strconv.Quote(s.Text))
	}
	for _, p := range ex.Unscannable {
		fmt.Fprintf(w, "unscannable %s\n", p)
	}
	if ex.MaxTokensPath != "" {
		fmt.Fprintf(w, "max_tokens %d at %s\n", ex.MaxTokens, ex.MaxTokensPath)
	}
	for _, d := range ex.Decoded {
		fmt.Fprintf(w, "decoded %s (%d bytes)\n", d.Path, len(d.Bytes))
	}
}

// checkExtracted verifies every offset: each span re-slices to a JSON string
// literal that decodes to its Text, each decoded body sits base64-encoded at
// its range, and the max-tokens range holds a JSON value.
func checkExtracted(t testing.TB, body []byte, ex Extracted) {
	t.Helper()
	for i, d := range ex.Decoded {
		if d.Start < 0 || d.End > len(body) || d.Start >= d.End {
			t.Fatalf("decoded %d %s: range [%d,%d) outside body of %d", i, d.Path, d.Start, d.End, len(body))
		}
		var s string
		if err := json.Unmarshal(body[d.Start:d.End], &s); err != nil {
			t.Fatalf("decoded %d %s: body[%d:%d] = %q: %v", i, d.Path, d.Start, d.End, body[d.Start:d.End], err)
		}
		got, err := decodeBase64([]byte(s))
		if err != nil || !bytes.Equal(got, d.Bytes) {
			t.Fatalf("decoded %d %s: the literal does not decode to Bytes (%v)", i, d.Path, err)
		}
	}
	for _, sp := range slices.Concat(ex.Texts, ex.IDs) {
		src := body
		if sp.Src != 0 {
			if sp.Src < 0 || sp.Src > len(ex.Decoded) {
				t.Fatalf("span %s: Src %d with %d decoded bodies", sp.Path, sp.Src, len(ex.Decoded))
			}
			src = ex.Decoded[sp.Src-1].Bytes
		}
		if sp.Start < 0 || sp.End > len(src) || sp.End-sp.Start < 2 {
			t.Fatalf("span %s: range [%d,%d) outside %d bytes", sp.Path, sp.Start, sp.End, len(src))
		}
		lit := src[sp.Start:sp.End]
		if lit[0] != '"' || lit[len(lit)-1] != '"' {
			t.Fatalf("span %s: %q is not a string literal", sp.Path, lit)
		}
		var s string
		if err := json.Unmarshal(lit, &s); err != nil {
			t.Fatalf("span %s: %q: %v", sp.Path, lit, err)
		}
		if sp.Base64 {
			b, err := decodeBase64([]byte(s))
			if err != nil {
				t.Fatalf("span %s: %q is not base64: %v", sp.Path, s, err)
			}
			s = string(b)
		}
		if s != sp.Text {
			t.Fatalf("span %s: literal %q decodes to %q, Text is %q", sp.Path, lit, s, sp.Text)
		}
		if sp.Text == "" {
			t.Fatalf("span %s: empty text reported", sp.Path)
		}
	}
	if ex.MaxTokensPath != "" {
		if ex.MaxTokensStart < 0 || ex.MaxTokensEnd > len(body) || ex.MaxTokensStart >= ex.MaxTokensEnd ||
			!json.Valid(body[ex.MaxTokensStart:ex.MaxTokensEnd]) {
			t.Fatalf("max tokens %s: bad range [%d,%d)", ex.MaxTokensPath, ex.MaxTokensStart, ex.MaxTokensEnd)
		}
	}
}

// spanMap is path → text, for asserting on a few values.
func spanMap(ex Extracted) map[string]string {
	m := make(map[string]string, len(ex.Texts))
	for _, s := range ex.Texts {
		m[s.Path] = s.Text
	}
	return m
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "extract", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExtractConverseRequest pins the facts the guards depend on, beyond the
// golden file.
func TestExtractConverseRequest(t *testing.T) {
	body := mustRead(t, "converse_request.json")
	ex, err := ExtractRequest(OpConverse, FamilyUnknown, body)
	if err != nil {
		t.Fatal(err)
	}
	m := spanMap(ex)
	want := map[string]string{
		"messages[0].content[0].text":                                "Hi, I'm Jane Doe (jane.doe@example.com, +1 206-555-0100).\nSummarise the attached contract 😀 and the policy below.",
		"messages[0].content[2].document.source.text":                "Refunds within 30 days. Contact billing@example.com.",
		"messages[0].content[2].document.name":                       "policy",
		"messages[0].content[5].document.source.content[0].text":     "Q: Who do I call? A: 555-0199",
		"messages[1].content[0].reasoningContent.reasoningText.text": "The user wants a summary; I should look up the account first.",
		"messages[1].content[2].toolUse.input.email":                 "jane.doe@example.com",
		"messages[1].content[2].toolUse.input.fields[0]":             "plan",
		"messages[2].content[0].toolResult.content[0].json.card":     "4111 1111 1111 1111",
		"messages[2].content[0].toolResult.content[1].text":          "Account holder: Jane Doe, SSN 123-45-6789",
		"messages[2].content[1].guardContent.text.text":              "Is my card 4111-1111-1111-1111 on file?",
		"system[0].text":                           "You are a billing assistant for Example Corp. Never reveal internal notes.",
		"system[1].guardContent.text.text":         "Internal escalation line: 555-0142",
		"toolConfig.tools[0].toolSpec.description": "Look up a customer account by e-mail address.",
		"toolConfig.tools[0].toolSpec.inputSchema.json.properties.email.description": "The customer's e-mail",
		"additionalModelRequestFields.custom_instructions":                           "Reply to j.smith@corp.example",
		"additionalModelRequestFields.nested[0].deep":                                "call 020 7946 0018",
		"promptVariables.customer.text":                                              "Jane Doe",
		`promptVariables["odd key.with dots"].text`:                                  "x",
		"inferenceConfig.stopSequences[0]":                                           "\n\nHuman:",
	}
	for p, w := range want {
		if m[p] != w {
			t.Errorf("%s = %q, want %q", p, m[p], w)
		}
	}
	for _, p := range []string{"messages[0].role", "messages[1].content[0].reasoningContent.reasoningText.signature",
		"messages[1].content[2].toolUse.toolUseId", "guardrailConfig.guardrailIdentifier", "performanceConfig.latency",
		"messages[0].content[1].image.source.bytes", "messages[0].content[7].cachePoint.type"} {
		if _, ok := m[p]; ok {
			t.Errorf("%s reported as text", p)
		}
	}
	wantUnsc := []string{
		"messages[0].content[1].image",
		"messages[0].content[3].document.source.bytes",
		"messages[0].content[4].document.source.s3Location",
		"messages[0].content[6].video",
		"messages[0].content[9].document.source.bytes",
		"messages[2].content[0].toolResult.content[2].image",
		"messages[2].content[2].guardContent.image",
	}
	if !slices.Equal(ex.Unscannable, wantUnsc) {
		t.Errorf("Unscannable = %q, want %q", ex.Unscannable, wantUnsc)
	}
	if ex.MaxTokens != 512 || ex.MaxTokensPath != "inferenceConfig.maxTokens" || string(body[ex.MaxTokensStart:ex.MaxTokensEnd]) != "512" {
		t.Errorf("max tokens %d at %q [%d,%d)", ex.MaxTokens, ex.MaxTokensPath, ex.MaxTokensStart, ex.MaxTokensEnd)
	}
}

func TestExtractMaxTokens(t *testing.T) {
	for _, c := range []struct {
		op     Operation
		family string
		body   string
		n      int64
		path   string
	}{
		{OpConverse, "", `{"inferenceConfig":{"maxTokens":2048}}`, 2048, "inferenceConfig.maxTokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":4096,"messages":[]}`, 4096, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens_to_sample":300,"prompt":"x"}`, 300, "max_tokens_to_sample"},
		{OpInvokeModel, FamilyTitanText, `{"inputText":"x","textGenerationConfig":{"maxTokenCount":3072}}`, 3072, "textGenerationConfig.maxTokenCount"},
		{OpInvokeModel, FamilyNova, `{"inferenceConfig":{"max_new_tokens":800}}`, 800, "inferenceConfig.max_new_tokens"},
		{OpInvokeModel, FamilyNova, `{"inferenceConfig":{"maxTokens":900}}`, 900, "inferenceConfig.maxTokens"},
		{OpInvokeModel, FamilyLlama, `{"prompt":"x","max_gen_len":512}`, 512, "max_gen_len"},
		{OpInvokeModel, FamilyMistral, `{"prompt":"x","max_tokens":200}`, 200, "max_tokens"},
		{OpInvokeModel, FamilyCohereCommandR, `{"message":"x","max_tokens":700}`, 700, "max_tokens"},
		{OpInvokeModel, FamilyJamba, `{"messages":[],"max_tokens":256}`, 256, "max_tokens"},
		{OpInvokeModel, FamilyUnknown, `{"max_tokens":10,"x":{"max_tokens":99}}`, 10, "max_tokens"},
		{OpInvokeModel, FamilyUnknown, `{"textGenerationConfig":{"maxTokenCount":77}}`, 77, "textGenerationConfig.maxTokenCount"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":100,"max_tokens":5000}`, 5000, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":5000,"max_tokens":100}`, 5000, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":1e3}`, 1000, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":10.2}`, 11, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":1e300}`, 1<<63 - 1, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":-5}`, -5, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":"4096"}`, -1, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"max_tokens":null}`, -1, "max_tokens"},
		{OpInvokeModel, FamilyAnthropic, `{"messages":[]}`, 0, ""},
		{OpCountTokens, FamilyAnthropic, `{"input":{"converse":{"inferenceConfig":{"maxTokens":5}}}}`, 5, "input.converse.inferenceConfig.maxTokens"},
	} {
		ex, err := ExtractRequest(c.op, c.family, []byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		checkExtracted(t, []byte(c.body), ex)
		if ex.MaxTokens != c.n || ex.MaxTokensPath != c.path {
			t.Errorf("%s %s: max tokens %d at %q, want %d at %q", c.family, c.body, ex.MaxTokens, ex.MaxTokensPath, c.n, c.path)
		}
	}
	for body, n := range map[string]int{
		`{"max_tokens":1}`: 1, `{"max_tokens":1,"max_tokens":2}`: 2, `{"prompt":"x"}`: 0,
		`{"max_tokens":1,"max_tokens_to_sample":"x"}`: 2,
	} {
		ex, err := ExtractRequest(OpInvokeModel, FamilyAnthropic, []byte(body))
		if err != nil || ex.MaxTokensCount != n {
			t.Errorf("%s: MaxTokensCount %d, want %d (%v)", body, ex.MaxTokensCount, n, err)
		}
	}
	// Responses and events never report one.
	ex, err := ExtractResponse(OpInvokeModel, FamilyAnthropic, []byte(`{"max_tokens":5}`))
	if err != nil || ex.MaxTokensPath != "" {
		t.Errorf("response: %v %q", err, ex.MaxTokensPath)
	}
}

func TestExtractEscapes(t *testing.T) {
	for _, lit := range []string{
		`"a\u0040b"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`,
		`"\ud83d\ud83d\ude00"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\u4e2d"`, `"é中😀"`, `"\u0000"`, `"x\\u0040"`,
		`"\uD83D\uDE00"`, `"\u2028\u200b"`,
	} {
		body := []byte(`{"prompt":` + lit + `}`)
		ex, err := ExtractRequest(OpInvokeModel, FamilyLlama, body)
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatal(err)
		}
		if len(ex.Texts) != 1 || ex.Texts[0].Text != want {
			t.Errorf("%s: got %+v, want %q", lit, ex.Texts, want)
		}
		checkExtracted(t, body, ex)
	}
	// Escaped keys are matched decoded: \u0074ext is "text", role is still skipped.
	body := []byte(`{"messages":[{"r\u006fle":"user","content":[{"\u0069mage":{"source":{"bytes":"AAAA"}}},{"\u0074ext":"hi"}]}]}`)
	ex, err := ExtractRequest(OpConverse, "", body)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ex.Unscannable, []string{"messages[0].content[0].image"}) || len(ex.Texts) != 1 || ex.Texts[0].Path != "messages[0].content[1].text" {
		t.Errorf("escaped keys: %+v", ex)
	}
}

func TestExtractErrors(t *testing.T) {
	bad := []string{
		``, ` `, `{`, `{"messages":[}`, `{"a":1}x`, `{"a":1}{}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}",
		"{\"a\":\"\xff\"}", `{"a":tru}`, `{"a":01}`, `{"a":1.}`, `{'a':1}`, `{"a" 1}`, `{"a":1,}`, `[1,]`,
		`{"prompt":"x"`, strings.Repeat("[", 1001) + strings.Repeat("]", 1001),
	}
	ops := []struct {
		op Operation
		f  string
	}{{OpConverse, ""}, {OpInvokeModel, FamilyAnthropic}, {OpInvokeModel, FamilyLlama}, {OpInvokeModel, ""}, {OpCountTokens, FamilyTitanText}}
	for _, b := range bad {
		for _, o := range ops {
			if _, err := ExtractRequest(o.op, o.f, []byte(b)); err == nil {
				t.Errorf("%s %s: %q accepted", o.op, o.f, b)
			}
			if _, err := ExtractResponse(o.op, o.f, []byte(b)); err == nil {
				t.Errorf("%s %s response: %q accepted", o.op, o.f, b)
			}
		}
		if _, err := ExtractStreamEvent(OpConverseStream, "", "contentBlockDelta", []byte(b)); err == nil {
			t.Errorf("event: %q accepted", b)
		}
	}
	if _, err := ExtractResponse(OpConverseStream, "", []byte(`{}`)); err == nil {
		t.Error("ExtractResponse accepted a streaming operation")
	}
	if _, err := ExtractRequest(OpConverse, "", []byte("{\"a\":\"\xff\"}")); err == nil || !strings.Contains(err.Error(), ErrNotUTF8.Error()) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	// Valid JSON that is not an object is still scanned.
	ex, err := ExtractRequest(OpInvokeModel, "", []byte(` ["a", {"b": "c"}] `))
	if err != nil || len(ex.Texts) != 2 {
		t.Errorf("array body: %v %+v", err, ex)
	}
}

// allStrings returns every non-empty string value (not key) in a JSON text,
// in order, by encoding/json's tokenizer.
func allStrings(t testing.TB, body []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct{ obj, wantKey bool }
	var stack []frame
	var out []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		isKey := len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].wantKey
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].wantKey = true
				}
				stack = append(stack, frame{obj: v == '{', wantKey: true})
			} else {
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if !isKey && v != "" {
				out = append(out, v)
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = !isKey
		}
	}
}

func texts(ex Extracted) []string {
	var out []string
	for _, s := range ex.Texts {
		out = append(out, s.Text)
	}
	return out
}

// TestExtractUnknownScansEverything: an unknown family, an unknown operation
// and unknown events read every string value.
func TestExtractUnknownScansEverything(t *testing.T) {
	for _, c := range extractCases {
		if c.kind != "request" && c.kind != "response" {
			continue
		}
		body := mustRead(t, c.file)
		want := allStrings(t, body)
		for _, ex := range []func() (Extracted, error){
			func() (Extracted, error) { return ExtractRequest(OpInvokeModel, "", body) },
			func() (Extracted, error) { return ExtractRequest(OpListAsyncInvokes, FamilyAnthropic, body) },
			func() (Extracted, error) { return ExtractResponse(OpInvokeModel, "", body) },
			func() (Extracted, error) {
				return ExtractStreamEvent(OpInvokeModelWithResponseStream, "", "internalServerException", body)
			},
			func() (Extracted, error) {
				return ExtractStreamEvent(OpInvokeModelWithBidirectionalStream, "", "chunk", body)
			},
		} {
			got, err := ex()
			if err != nil {
				t.Fatal(err)
			}
			checkExtracted(t, body, got)
			if !slices.Equal(texts(got), want) || len(got.Unscannable) != 0 {
				t.Errorf("%s: unknown shape not scanned fully:\ngot  %q\nwant %q", c.file, texts(got), want)
			}
		}
	}
}

// TestExtractKnownShapesLoseNothing: in every known shape, a string value is
// either text, unscannable (inside an unscannable path) or one of the
// enumerations, identifiers and signatures the rules pass over.
func TestExtractKnownShapesLoseNothing(t *testing.T) {
	skipped := map[string]bool{}
	for _, c := range extractCases {
		if c.kind != "request" && c.kind != "response" {
			continue
		}
		body := mustRead(t, c.file)
		var ex Extracted
		var err error
		if c.kind == "request" {
			ex, err = ExtractRequest(c.op, c.family, body)
		} else {
			ex, err = ExtractResponse(c.op, c.family, body)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ex.Decoded) > 0 {
			continue // the base64 literal is not text by design
		}
		var got []string
		for _, s := range ex.Texts {
			if !s.Base64 {
				got = append(got, s.Text)
			}
		}
		for _, s := range allStrings(t, body) {
			if i := slices.Index(got, s); i >= 0 {
				got = slices.Delete(got, i, i+1)
				continue
			}
			skipped[s] = true
		}
	}
	// Every string passed over, across all the samples: review this list when
	// it changes.
	var list []string
	for s := range skipped {
		list = append(list, s)
	}
	slices.Sort(list)
	for _, s := range list {
		if len(s) > 40 && !strings.HasPrefix(s, "ErcB") && !strings.HasPrefix(s, "EqQB") && !strings.HasPrefix(s, "Emw") {
			// Long strings skipped must be binary content reported unscannable.
			if !isBase64ish(s) {
				t.Errorf("long string passed over: %q", s)
			}
		}
	}
	t.Logf("strings passed over: %q", list)
}

func isBase64ish(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil || strings.HasPrefix(s, "s3://") || strings.HasPrefix(s, "data:") || strings.HasPrefix(s, "https://")
}

func TestExtractCountTokensInvoke(t *testing.T) {
	body := mustRead(t, "counttokens_invoke.json")
	ex, err := ExtractRequest(OpCountTokens, FamilyAnthropic, body)
	if err != nil {
		t.Fatal(err)
	}
	checkExtracted(t, body, ex)
	if len(ex.Decoded) != 1 || ex.Decoded[0].Path != "input.invokeModel.body" {
		t.Fatalf("Decoded = %+v", ex.Decoded)
	}
	m := spanMap(ex)
	if m["input.invokeModel.body/messages[0].content"] != "Count me: heidi@example.com" || m["input.invokeModel.body/system"] != "Be brief." {
		t.Errorf("texts %q", m)
	}
	if !slices.Equal(ex.Unscannable, []string{"input.invokeModel.body/messages[1].content[0].source"}) {
		t.Errorf("Unscannable = %q", ex.Unscannable)
	}
	if ex.MaxTokensPath != "" {
		t.Errorf("max tokens read from a nested body: %q", ex.MaxTokensPath)
	}
	// Not base64, or base64 of something that is not JSON: unscannable.
	for _, b := range []string{`{"input":{"invokeModel":{"body":"%%%"}}}`, `{"input":{"invokeModel":{"body":"bm90IGpzb24="}}}`,
		`{"input":{"invokeModel":{"body":"` + base64.StdEncoding.EncodeToString([]byte(`{"prompt":"x"`)) + `"}}}`} {
		ex, err := ExtractRequest(OpCountTokens, FamilyLlama, []byte(b))
		if err != nil || !slices.Equal(ex.Unscannable, []string{"input.invokeModel.body"}) || len(ex.Texts) != 0 || len(ex.Decoded) != 0 {
			t.Errorf("%s: %v %+v", b, err, ex)
		}
	}
	// Escaped '/' in the base64 and unpadded base64 decode.
	inner := []byte(`{"prompt":"??>?"}`) // base64 has '/' and '+'
	enc := base64.RawStdEncoding.EncodeToString(inner)
	b := []byte(`{"input":{"invokeModel":{"body":"` + strings.ReplaceAll(enc, "/", `\/`) + `"}}}`)
	ex, err = ExtractRequest(OpCountTokens, FamilyLlama, b)
	if err != nil || len(ex.Texts) != 1 || ex.Texts[0].Text != "??>?" || ex.Texts[0].Path != "input.invokeModel.body/prompt" {
		t.Errorf("%s: %v %+v", b, err, ex)
	}
	checkExtracted(t, b, ex)
}

func TestExtractChunkErrors(t *testing.T) {
	for _, c := range []struct{ payload, unsc string }{
		{`{"bytes":"%%%","p":"abc"}`, "bytes"},
		{`{"bytes":"bm90IGpzb24=","p":"abc"}`, "bytes"},
	} {
		ex, err := ExtractStreamEvent(OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", []byte(c.payload))
		if err != nil || !slices.Equal(ex.Unscannable, []string{c.unsc}) {
			t.Errorf("%s: %v %+v", c.payload, err, ex)
		}
	}
	// A chunk without bytes has its strings scanned; "p" is padding.
	ex, err := ExtractStreamEvent(OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", []byte(`{"other":"x","p":"abc"}`))
	if err != nil || len(ex.Texts) != 1 || ex.Texts[0].Text != "x" {
		t.Errorf("%v %+v", err, ex)
	}
}

func TestModelFamily(t *testing.T) {
	for id, want := range map[string]string{
		"anthropic.claude-3-5-haiku-20241022-v1:0":                          FamilyAnthropic,
		"us.anthropic.claude-3-5-haiku-20241022-v1:0":                       FamilyAnthropic,
		"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2:1": FamilyAnthropic,
		"amazon.titan-text-express-v1":                                      FamilyTitanText,
		"amazon.titan-text-premier-v1:0":                                    FamilyTitanText,
		"amazon.titan-tg1-large":                                            FamilyTitanText,
		"amazon.titan-embed-text-v2:0":                                      FamilyUnknown,
		"amazon.nova-lite-v1:0":                                             FamilyNova,
		"eu.amazon.nova-pro-v1:0":                                           FamilyNova,
		"amazon.nova-2-lite-v1:0":                                           FamilyNova,
		"amazon.nova-canvas-v1:0":                                           FamilyUnknown,
		"amazon.nova-reel-v1:1":                                             FamilyUnknown,
		"meta.llama3-1-70b-instruct-v1:0":                                   FamilyLlama,
		"us.meta.llama3-2-11b-instruct-v1:0":                                FamilyLlama,
		"mistral.mistral-7b-instruct-v0:2":                                  FamilyMistral,
		"mistral.mistral-large-2407-v1:0":                                   FamilyMistral,
		"cohere.command-r-plus-v1:0":                                        FamilyCohereCommandR,
		"cohere.command-text-v14":                                           FamilyUnknown,
		"cohere.embed-english-v3":                                           FamilyUnknown,
		"ai21.jamba-1-5-large-v1:0":                                         FamilyJamba,
		"ai21.j2-ultra-v1":                                                  FamilyUnknown,
		"stability.sd3-large-v1:0":                                          FamilyUnknown,
		"arn:aws:bedrock:us-east-1:123456789012:custom-model/meta.llama3-8b-instruct-v1:0/abcdef123456": FamilyLlama,
		"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456":             FamilyUnknown,
		"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.mistral.pixtral-large-2502-v1:0":   FamilyMistral,
		"arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234:2":                                    FamilyUnknown,
	} {
		m, err := ParseModelID(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if got := m.Family(); got != want {
			t.Errorf("%s: family %q, want %q", id, got, want)
		}
	}
}

// benchConverse4K is a Converse body of about 4 KB: a system prompt and a
// few turns of prose with the escapes real clients send.
func benchConverse4K() []byte {
	para := "Our refund policy allows returns within 30 days of purchase.\nItems must be unused and in the original packaging; " +
		"contact support@example.com or call +1 206-555-0100 with your order number. " +
		"Refunds go back to the original payment method within 5\u20137 business days. "
	msg := func(role, text string) map[string]any {
		return map[string]any{"role": role, "content": []any{map[string]any{"text": text}}}
	}
	body := map[string]any{
		"system": []any{map[string]any{"text": "You are a helpful customer-service assistant for Example Corp. " + para}},
		"messages": []any{
			msg("user", "Hi, I bought a kettle last week and it's broken. "+para+para),
			msg("assistant", "I'm sorry to hear that! "+para+para),
			msg("user", "Order #55123, \"kettle\" model K-2. "+para+para),
			msg("assistant", "Thanks. "+para+para),
			msg("user", "Please refund to my card. "+para+para),
			msg("assistant", "Done! "+para+para),
		},
		"inferenceConfig": map[string]any{"maxTokens": 1024, "temperature": 0.3, "topP": 0.9},
	}
	b, _ := json.Marshal(body)
	return b
}

func BenchmarkExtractRequest(b *testing.B) {
	for _, c := range []struct {
		name   string
		op     Operation
		family string
		body   []byte
	}{
		{"converse-4KB", OpConverse, "", benchConverse4K()},
		{"converse-mixed", OpConverse, "", mustRead(b, "converse_request.json")},
		{"anthropic", OpInvokeModel, FamilyAnthropic, mustRead(b, "anthropic_request.json")},
	} {
		b.Run(fmt.Sprintf("%s-%dB", c.name, len(c.body)), func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ExtractRequest(c.op, c.family, c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkExtractStreamEvent(b *testing.B) {
	conv := []byte(`{"contentBlockIndex":1,"delta":{"text":"Your card ending 4111 1111 is on file."},"p":"abcdefghijk"}`)
	chunk := chunkPayload([]byte(`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Card: 4111 1111 is on file."}}`))
	b.Run("converse-delta", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ExtractStreamEvent(OpConverseStream, "", "contentBlockDelta", conv); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("anthropic-chunk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ExtractStreamEvent(OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", chunk); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// replaceSpans rewrites every span of src (spans of one Src, in order) with
// the JSON encoding of f(text), base64-encoded first for Base64 spans: what
// a masking guard does.
func replaceSpans(src []byte, spans []TextSpan, f func(string) string) []byte {
	var out []byte
	last := 0
	for _, s := range spans {
		v := f(s.Text)
		if s.Base64 {
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		enc, _ := json.Marshal(v)
		out = append(append(out, src[last:s.Start]...), enc...)
		last = s.End
	}
	return append(out, src[last:]...)
}

// TestExtractMaskRoundTrip rewrites spans through their offsets, for a body
// and for a chunk's decoded bytes, and reads the result back.
func TestExtractMaskRoundTrip(t *testing.T) {
	mask := func(s string) string { return strings.ReplaceAll(s, "@", "{EMAIL}") }
	body := mustRead(t, "converse_request.json")
	ex, err := ExtractRequest(OpConverse, "", body)
	if err != nil {
		t.Fatal(err)
	}
	masked := replaceSpans(body, ex.Texts, mask)
	ex2, err := ExtractRequest(OpConverse, "", masked)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex2.Texts) != len(ex.Texts) {
		t.Fatalf("%d spans after masking, %d before", len(ex2.Texts), len(ex.Texts))
	}
	for i := range ex.Texts {
		if ex2.Texts[i].Text != mask(ex.Texts[i].Text) || ex2.Texts[i].Path != ex.Texts[i].Path {
			t.Errorf("%s: %q after masking", ex.Texts[i].Path, ex2.Texts[i].Text)
		}
	}

	payload := chunkPayload([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"mail a\u0040b.co"}}`))
	ex, err = ExtractStreamEvent(OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", payload)
	if err != nil || len(ex.Decoded) != 1 || len(ex.Texts) != 1 {
		t.Fatalf("%v %+v", err, ex)
	}
	d := ex.Decoded[0]
	inner := replaceSpans(d.Bytes, ex.Texts, mask)
	lit, _ := json.Marshal(base64.StdEncoding.EncodeToString(inner))
	payload2 := append(append(append([]byte(nil), payload[:d.Start]...), lit...), payload[d.End:]...)
	ex2, err = ExtractStreamEvent(OpInvokeModelWithResponseStream, FamilyAnthropic, "chunk", payload2)
	if err != nil || len(ex2.Texts) != 1 || ex2.Texts[0].Text != "mail a{EMAIL}b.co" {
		t.Fatalf("%v %+v", err, ex2)
	}
}

// TestExtractIDs checks that tool-use ids land in IDs, never in Texts, in
// every shape that carries one (issue 13).
func TestExtractIDs(t *testing.T) {
	for _, c := range []struct {
		name    string
		extract func() (Extracted, []byte, error)
		want    []string // "path=text"
		src     int
	}{
		{"converse request", func() (Extracted, []byte, error) {
			return withBody(ExtractRequest, OpConverse, "", (`{"messages":[
				{"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_4111111111111111","name":"lookup","input":{"q":"x"}}}]},
				{"role":"user","content":[{"toolResult":{"toolUseId":"tooluse_4111111111111111","content":[{"text":"ok"}],"status":"success"}}]}]}`))
		}, []string{"messages[0].content[0].toolUse.toolUseId=tooluse_4111111111111111", "messages[1].content[0].toolResult.toolUseId=tooluse_4111111111111111"}, 0},
		{"converse response", func() (Extracted, []byte, error) {
			return withBody(ExtractResponse, OpConverse, "", (`{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"SSN123-45-6789","name":"n","input":{}}}]}},"stopReason":"tool_use"}`))
		}, []string{"output.message.content[0].toolUse.toolUseId=SSN123-45-6789"}, 0},
		{"converse stream contentBlockStart", func() (Extracted, []byte, error) {
			return withBody(eventExtractor("contentBlockStart"), OpConverseStream, "", (`{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_\u0041KIAIOSFODNN7EXAMPLE","name":"lookup"}},"p":"abc"}`))
		}, []string{"start.toolUse.toolUseId=tooluse_AKIAIOSFODNN7EXAMPLE"}, 0},
		{"anthropic request", func() (Extracted, []byte, error) {
			return withBody(ExtractRequest, OpInvokeModel, FamilyAnthropic, (`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[
				{"role":"assistant","content":[{"type":"tool_use","id":"toolu_123-45-6789","name":"n","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_123-45-6789","content":"done"}]}]}`))
		}, []string{"messages[0].content[0].id=toolu_123-45-6789", "messages[1].content[0].tool_use_id=toolu_123-45-6789"}, 0},
		{"anthropic stream chunk", func() (Extracted, []byte, error) {
			return withBody(eventExtractor("chunk"), OpInvokeModelWithResponseStream, FamilyAnthropic,
				string(chunkPayload([]byte(`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_4111 1111 1111 1111","name":"n","input":{}}}`))))
		}, []string{"bytes/content_block.id=toolu_4111 1111 1111 1111"}, 1},
		{"mistral tool message", func() (Extracted, []byte, error) {
			return withBody(ExtractRequest, OpInvokeModel, FamilyMistral, (`{"messages":[{"role":"tool","tool_call_id":"call_5500000000000004","content":"42"}]}`))
		}, []string{"messages[0].tool_call_id=call_5500000000000004"}, 0},
		{"empty and non-string ids", func() (Extracted, []byte, error) {
			return withBody(ExtractRequest, OpConverse, "", (`{"messages":[{"role":"user","content":[{"toolResult":{"toolUseId":"","content":[]}},{"toolResult":{"toolUseId":7,"content":[]}}]}]}`))
		}, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ex, body, err := c.extract()
			if err != nil {
				t.Fatal(err)
			}
			checkExtracted(t, body, ex) // literals decode to the texts
			var got []string
			for _, sp := range ex.IDs {
				got = append(got, sp.Path+"="+sp.Text)
				if sp.Src != c.src {
					t.Errorf("%s: Src %d, want %d", sp.Path, sp.Src, c.src)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("IDs = %q, want %q", got, c.want)
			}
			for _, sp := range ex.Texts {
				for _, id := range ex.IDs {
					if sp.Path == id.Path {
						t.Errorf("%s is in Texts too", sp.Path)
					}
				}
			}
		})
	}
}

func withBody(f func(Operation, string, []byte) (Extracted, error), op Operation, family, body string) (Extracted, []byte, error) {
	ex, err := f(op, family, []byte(body))
	return ex, []byte(body), err
}

func eventExtractor(eventType string) func(Operation, string, []byte) (Extracted, error) {
	return func(op Operation, family string, payload []byte) (Extracted, error) {
		return ExtractStreamEvent(op, family, eventType, payload)
	}
}

func TestExtractedTextBytes(t *testing.T) {
	for _, tc := range []struct {
		texts []string
		want  int64
	}{
		{nil, 0},
		{[]string{"héllo"}, 6},
		{[]string{"ab", "", "cde"}, 5},
	} {
		var x Extracted
		for _, s := range tc.texts {
			x.Texts = append(x.Texts, TextSpan{Text: s})
		}
		if got := x.TextBytes(); got != tc.want {
			t.Errorf("TextBytes of %q = %d, want %d", tc.texts, got, tc.want)
		}
	}
}
