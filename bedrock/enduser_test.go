package bedrock

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCompatEndUser(t *testing.T) {
	long := strings.Repeat("é", MaxEndUser) // 2 bytes a rune
	for _, tc := range []struct {
		name string
		op   Operation
		body string
		want string
	}{
		{"chat user", OpOpenAIChatCompletions, `{"model":"m","user":"u-1"}`, "u-1"},
		{"chat safety_identifier wins", OpMantleChatCompletions, `{"user":"u-1","safety_identifier":"s-1"}`, "s-1"},
		{"responses safety_identifier", OpOpenAIResponses, `{"safety_identifier":"s-2","input":"hi"}`, "s-2"},
		{"empty safety_identifier falls back", OpMantleResponses, `{"safety_identifier":"","user":"u-3"}`, "u-3"},
		{"not a string", OpOpenAIChatCompletions, `{"user":{"id":1}}`, ""},
		{"escaped", OpOpenAIChatCompletions, `{"user":"a\u0000b\nc"}`, "a_b_c"},
		{"messages", OpMantleMessages, `{"model":"m","metadata":{"user_id":"abc-123"}}`, "abc-123"},
		{"messages metadata not an object", OpMantleMessages, `{"metadata":"x"}`, ""},
		{"messages no user_id", OpMantleMessages, `{"metadata":{}}`, ""},
		{"messages top-level user ignored", OpMantleMessages, `{"user":"u"}`, ""},
		{"converse not read", OpConverse, `{"user":"u"}`, ""},
		{"not json", OpOpenAIChatCompletions, `{"user":`, ""},
		{"long cut at a rune", OpOpenAIChatCompletions, `{"user":"` + long + `"}`, long[:MaxEndUser]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CompatEndUser(tc.op, []byte(tc.body)); got != tc.want {
				t.Errorf("CompatEndUser(%s, %s) = %q, want %q", tc.op, tc.body, got, tc.want)
			}
		})
	}
}

// FuzzCompatEndUser: any body, any compat operation: no panic, and the
// value is bounded, valid UTF-8 without control characters.
func FuzzCompatEndUser(f *testing.F) {
	for _, s := range []string{`{"user":"u"}`, `{"safety_identifier":"s","user":"u"}`, `{"metadata":{"user_id":"x"}}`, `{"user":"\ud800"}`, `{}`, `[]`} {
		f.Add([]byte(s))
	}
	ops := []Operation{OpOpenAIChatCompletions, OpOpenAIResponses, OpMantleChatCompletions, OpMantleResponses, OpMantleMessages}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, op := range ops {
			v := CompatEndUser(op, body)
			if len(v) > MaxEndUser || !utf8.ValidString(v) || strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
				t.Fatalf("%s: %q", op, v)
			}
		}
	})
}
