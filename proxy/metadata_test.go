package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

var testStamp = stamp{App: "chatbot-prod", IdentitySource: "static", RequestID: "0f8fad5b-d9cb-469f-a165-70867728950e"}

// Golden files: real Converse bodies (as the Go SDK and boto3 send them)
// and what Warden forwards.
func TestStampConverseBodyGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/metadata/*.in.json")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := stampConverseBody(body, testStamp)
			if err != nil {
				t.Fatalf("stamp: %v", err)
			}
			golden := strings.TrimSuffix(in, ".in.json") + ".golden.json"
			if *updateGolden {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("got\n%s\nwant\n%s", out, want)
			}
			checkStamped(t, body, out)
		})
	}
}

// checkStamped asserts the invariants of a rewrite: valid JSON, Warden's
// stamp present, the caller's own keys kept, no caller warden_ key left,
// every other top-level member unchanged byte for byte.
func checkStamped(t testing.TB, in, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %q", out)
	}
	var before, after map[string]json.RawMessage
	if err := json.Unmarshal(in, &before); err != nil {
		t.Fatalf("input: %v", err)
	}
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatalf("output: %v", err)
	}
	for k, v := range before {
		if k == "requestMetadata" {
			continue
		}
		if !bytes.Equal(after[k], v) {
			t.Errorf("member %q changed: %s → %s", k, v, after[k])
		}
	}
	if len(after) != len(before) && !(len(after) == len(before)+1 && before["requestMetadata"] == nil) {
		t.Errorf("members: %d before, %d after", len(before), len(after))
	}
	var meta map[string]string
	if err := json.Unmarshal(after["requestMetadata"], &meta); err != nil {
		t.Fatalf("requestMetadata: %v", err)
	}
	for _, e := range testStamp.entries() {
		if meta[e[0]] != e[1] {
			t.Errorf("requestMetadata[%s] = %q, want %q", e[0], meta[e[0]], e[1])
		}
	}
	var callerMeta map[string]string
	_ = json.Unmarshal(before["requestMetadata"], &callerMeta)
	for k, v := range callerMeta {
		if reservedMetadataKey(k) {
			continue
		}
		if meta[k] != v {
			t.Errorf("caller key %q: %q, want %q kept", k, meta[k], v)
		}
	}
	for k := range meta {
		if reservedMetadataKey(k) && k != metaKeyApp && k != metaKeyIdentitySource && k != metaKeyRequestID {
			t.Errorf("caller's reserved key %q survived", k)
		}
	}
}

func TestStampConverseBodyRefuses(t *testing.T) {
	many := map[string]string{}
	for i := range 14 {
		many[string(rune('a'+i))] = "v"
	}
	manyJSON, _ := json.Marshal(map[string]any{"messages": []any{}, "requestMetadata": many})
	for name, body := range map[string]string{
		"duplicate top-level key":       `{"messages":[],"requestMetadata":{"warden_app":"x"},"requestMetadata":{}}`,
		"duplicate other key":           `{"messages":[],"messages":[]}`,
		"duplicate key in another case": `{"messages":[],"Messages":[]}`,
		"metadata in another case":      `{"messages":[],"RequestMetadata":{"warden_app":"x"}}`,
		"invalid UTF-8":                 "{\"messages\":[],\"x\":\"\xff\"}",
		"not an object":                 `[{"messages":[]}]`,
		"string":                        `"hi"`,
		"invalid":                       `{"messages":[}`,
		"trailing data":                 `{"messages":[]} {}`,
		"empty":                         ``,
		"metadata not an object":        `{"requestMetadata":"warden_app=x"}`,
		"metadata value not a string":   `{"requestMetadata":{"a":1}}`,
		"metadata value null":           `{"requestMetadata":{"a":null}}`,
		"too many caller metadata keys": string(manyJSON),
	} {
		t.Run(name, func(t *testing.T) {
			out, err := stampConverseBody([]byte(body), testStamp)
			var apiErr *bedrock.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Type != "ValidationException" {
				t.Fatalf("got %q, %v; want a ValidationException", out, err)
			}
		})
	}
	// 13 caller keys plus Warden's 3 fit exactly.
	delete(many, "a")
	ok, _ := json.Marshal(map[string]any{"requestMetadata": many})
	if _, err := stampConverseBody(ok, testStamp); err != nil {
		t.Errorf("13 caller keys: %v", err)
	}
}

func TestStampValuesFitAWSLimits(t *testing.T) {
	st := stamp{App: strings.Repeat("é", 200) + "a\"b\n{}", IdentitySource: "kubernetes", RequestID: "r"}
	out, err := stampConverseBody([]byte(`{}`), st)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ RequestMetadata map[string]string }
	if err := json.Unmarshal(out, &body); err != nil {
		t.Fatal(err)
	}
	v := body.RequestMetadata[metaKeyApp]
	if len(v) != maxMetadataValue {
		t.Errorf("value length %d, want cut to %d", len(v), maxMetadataValue)
	}
	for i := 0; i < len(v); i++ {
		if !metadataByte(v[i]) {
			t.Fatalf("value %q has byte %q outside AWS's pattern", v, v[i])
		}
	}
}

func TestStampMetadataHeader(t *testing.T) {
	h, err := stampMetadataHeader([]string{`{"team":"search","warden_app":"payroll","Warden_Request_Id":"x"}`}, testStamp)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"team":"search","warden_app":"chatbot-prod","warden_identity_source":"static","warden_request_id":"0f8fad5b-d9cb-469f-a165-70867728950e"}`
	if h != want {
		t.Errorf("header\n%s\nwant\n%s", h, want)
	}
	if h, err = stampMetadataHeader(nil, testStamp); err != nil || !strings.Contains(h, `"warden_app":"chatbot-prod"`) {
		t.Errorf("no caller header: %q, %v", h, err)
	}
	for name, vals := range map[string][]string{
		"not JSON": {"team=search"},
		"twice":    {`{}`, `{}`},
		"too big": {func() string {
			m := map[string]string{}
			for i := range 13 {
				m[strings.Repeat(string(rune('a'+i)), 256)] = strings.Repeat("v", 400)
			}
			b, _ := json.Marshal(m)
			return string(b)
		}()},
	} {
		if _, err := stampMetadataHeader(vals, testStamp); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzStampConverseBody: the rewrite never panics; whatever it accepts
// comes out as valid JSON with the stamp, the caller's non-reserved
// metadata and every other top-level member unchanged.
func FuzzStampConverseBody(f *testing.F) {
	ins, _ := filepath.Glob("testdata/metadata/*.in.json")
	for _, in := range ins {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{`{}`, `{"a":1}`, ` { "a" : [1,2] , "b":{} } `, `{"requestMetadata":{}}`, `{"a":1,"a":2}`,
		`{"requestMetadata":{"warden_app":"x","k":"v"}, "x":"\u0000"}`, `[]`, `null`, `{"a":"\xff"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := stampConverseBody(body, testStamp)
		if err != nil {
			var apiErr *bedrock.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 400 {
				t.Fatalf("error is not a 400 APIError: %v", err)
			}
			return
		}
		checkStamped(t, body, out)
		// Stamping is idempotent up to the request id it writes.
		again, err := stampConverseBody(out, testStamp)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("restamping changed the body: %v\n%s\n%s", err, out, again)
		}
	})
}

// BenchmarkStampConverseBody: the rewrite of a 4 KB Converse body as the Go
// SDK sends it (no requestMetadata of the caller's).
func BenchmarkStampConverseBody(b *testing.B) {
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"` + strings.Repeat("Please summarise the quarterly review. ", 105) + `"}]}],"inferenceConfig":{"maxTokens":512}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := stampConverseBody(body, testStamp); err != nil {
			b.Fatal(err)
		}
	}
}

// The merged metadata is what json.Marshal writes for the merged map
// (sorted keys, its escaping), whatever the caller's keys and values hold.
func TestAppendMetadataMatchesJSONMarshal(t *testing.T) {
	for _, caller := range []map[string]string{
		nil,
		{},
		{"team": "search", "WARDEN_app": "forged"},
		{"a<b>&c": "\"quoted\"\\", "é": "\u2028\u2029\x01", "Z": "", "warden_b": "x", "wardenz": "y", "x y": "tab\there"},
	} {
		got, err := appendMetadata([]byte("prefix"), caller, testStamp)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for k, v := range caller {
			if !reservedMetadataKey(k) {
				want[k] = v
			}
		}
		for _, e := range testStamp.entries() {
			want[e[0]] = e[1]
		}
		wb, _ := json.Marshal(want)
		if string(got) != "prefix"+string(wb) {
			t.Errorf("got  %s\nwant prefix%s", got, wb)
		}
	}
}
