package bedrock

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScanObject(t *testing.T) {
	ok := []string{
		`{}`, ` {"a":1} `, `{"a":{"b":[1,2,{"c":null}]},"d":"x\"y","e":-0.5e+10,"f":true,"g":false}`,
		`{"k\u0041":"v","":0}`, "{\n\t\"a\" : [ ] \r\n}",
	}
	for _, b := range ok {
		ms, closeAt, err := ScanObject([]byte(b))
		if err != nil {
			t.Errorf("%q: %v", b, err)
			continue
		}
		if b[closeAt] != '}' {
			t.Errorf("%q: closeAt %d is %q", b, closeAt, b[closeAt])
		}
		for _, m := range ms {
			if !json.Valid([]byte(b[m.ValueStart:m.ValueEnd])) {
				t.Errorf("%q: member %q value %q", b, m.Key, b[m.ValueStart:m.ValueEnd])
			}
		}
	}
	if ms, _, _ := ScanObject([]byte(`{"k\u0041":"v"}`)); len(ms) != 1 || ms[0].Key != "kA" {
		t.Errorf("escaped key not decoded: %+v", ms)
	}
	bad := []string{``, `[]`, `null`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":tru}`,
		`{"a":"\x01"}`, `{"a":"\q"}`, `{"a":"\u12"}`, `{} {}`, `{"a":[1,]}`, "{\"a\":\"\xff\"}", `{'a':1}`, `{"a":1}x`,
		`{"a":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`}
	for _, b := range bad {
		if _, _, err := ScanObject([]byte(b)); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
}

// ScanObject agrees with encoding/json on validity and on the members.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":[true,null,{"c":"d"}]}`, `{"a":"\u00e9\n"}`, `{"a":-1.5E-3}`, ` {"messages":[{"role":"user","content":[{"text":"hi"}]}],"requestMetadata":{"k":"v"}} `, `{"a":1,"a":2}`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, closeAt, err := ScanObject(b)
		trimmed := bytes.TrimLeft(b, " \t\r\n")
		// ScanObject also refuses invalid UTF-8, which encoding/json lets through.
		isObj := utf8.Valid(b) && json.Valid(b) && len(trimmed) > 0 && trimmed[0] == '{'
		if (err == nil) != isObj {
			// encoding/json allows deeper nesting than ScanObject.
			if err != nil && err == errJSONDepth {
				return
			}
			t.Fatalf("ScanObject err %v, encoding/json object %v, for %q", err, isObj, b)
		}
		if err != nil {
			return
		}
		if b[closeAt] != '}' {
			t.Fatalf("closeAt %d", closeAt)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		if tok, _ := dec.Token(); tok != json.Delim('{') {
			t.Fatal("not an object")
		}
		for i := 0; dec.More(); i++ {
			tok, _ := dec.Token()
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			if i >= len(ms) || ms[i].Key != tok.(string) || !bytes.Equal(bytes.TrimSpace(raw), b[ms[i].ValueStart:ms[i].ValueEnd]) {
				t.Fatalf("member %d differs: %+v vs %q %s", i, ms, tok, raw)
			}
		}
	})
}

func BenchmarkScanObject(b *testing.B) {
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"` + strings.Repeat("lorem ipsum ", 340) + `"}]}],"inferenceConfig":{"maxTokens":512}}`)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, _, err := ScanObject(body); err != nil {
			b.Fatal(err)
		}
	}
}
