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
	for _, s := range []string{`{}`, `{"a":1,"b":[true,null,{"c":"d"}]}`, `{"a":"\u00e9\n"}`, `{"a":-1.5E-3}`, ` {"messages":[{"role":"user","content":[{"text":"hi"}]}],"requestMetadata":{"k":"v"}} `, `{"a":1,"a":2}`, `[1]`,
		`{"a":"héllo wörld, 日本語のテキスト 😀 and more ASCII text after it"}`, "{\"a\":\"" + strings.Repeat("x", 40) + "\xed\xa0\x80\"}",
		"{\"a\":\"\xc0\xaf\"}", "{\"a\":\"" + strings.Repeat("y", 31) + "\xe6\x97\"}", "{\"\xe6\x97\xa5\":1}", "{\"a\":1}\xc2\xa0"} {
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

// skipPlain stops exactly at the first byte that needs attention, wherever
// it sits in a word, whatever surrounds it.
func TestSkipPlainStopsAtFirst(t *testing.T) {
	needs := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	backgrounds := []byte{'a', ' ', '!', '#', ']', '~', 0x7f, 0x21, 0x5d}
	for n := 1; n <= 80; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				for _, bg := range backgrounds {
					b := bytes.Repeat([]byte{bg}, n)
					b[pos] = byte(c)
					// A second flagged byte after the first must not matter.
					if pos+1 < n {
						b[n-1] = 0x01
					}
					s := jsonScanner{b: b}
					s.skipPlain()
					want := pos
					if !needs(byte(c)) {
						want = n - 1
						if pos == n-1 {
							want = n
						}
					}
					// skipPlain leaves the last partial word to its caller.
					if s.i != want && !(s.i < want && s.i == n-n%8) {
						t.Fatalf("n=%d pos=%d c=%#x bg=%q: stopped at %d, want %d", n, pos, c, bg, s.i, want)
					}
				}
			}
		}
	}
}

func TestScanObjectUTF8(t *testing.T) {
	for _, b := range []string{`{"a":"é"}`, `{"日本":"語"}`, "{\"a\":\"" + strings.Repeat("x", 37) + "😀\"}", `{"a":"\ufffd�"}`} {
		if _, _, err := ScanObject([]byte(b)); err != nil {
			t.Errorf("%q: %v", b, err)
		}
	}
	for _, b := range []string{"{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xe6\x97\"}",
		"{\"a\":1}\xff", "\xef\xbb\xbf{}", "{\"a\":\xc3\xa9}", "{\"" + strings.Repeat("k", 40) + "\xf8\x88\x80\x80\x80\":1}"} {
		_, _, err := ScanObject([]byte(b))
		if err == nil || !utf8.ValidString(b) && err != ErrNotUTF8 {
			t.Errorf("%q: %v, want an error (ErrNotUTF8 when the body is not UTF-8)", b, err)
		}
	}
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
