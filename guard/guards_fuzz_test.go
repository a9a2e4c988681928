package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

// Seeded PII the mask guard must rewrite wherever the fuzzer puts text
// around it. Each seed sits between words ("card: … ok") so fuzzer digits
// next to it do not make a longer number the detectors rightly ignore
// ("00 4111 1111 1111 1111" fails Luhn).
var fuzzSeeds = []string{"jo@example.com", "123-45-6789", "4111 1111 1111 1111"}

// FuzzMaskRewrite runs the request-side mask rewrite (CheckInput) over
// Converse-like bodies holding fuzzer text around seeded PII and checks that
// the result is valid JSON that encoding/json parses, that every byte
// outside the rewritten string literals is unchanged, and that no seeded
// value survives.
func FuzzMaskRewrite(f *testing.F) {
	f.Add("hello", "world", "be brief", "tool says hi", uint8(0))
	f.Add("", "", "", "", uint8(3))
	f.Add("mail \"me\" at", "<b>now</b> & then", "ｆｕｌｌ width １２３", "line\nbreak\t\u2028", uint8(1))
	f.Add("zero\u200bwidth", "emoji 😀 \\ slash", "x@y", "{EMAIL}", uint8(2))
	f.Add("\xff\xfe invalid", "a\u0000b", "🙂", "ssn:", uint8(7))
	g, err := compile("pii-mask", Config{
		PII:         &PIIConfig{Types: []string{"EMAIL", "US_SOCIAL_SECURITY_NUMBER", "CREDIT_DEBIT_CARD_NUMBER"}, Action: Mask},
		Unscannable: Allow,
	})
	if err != nil {
		f.Fatal(err)
	}
	ag := &Guards{input: []*compiled{g}}
	f.Fuzz(func(t *testing.T, a, b, sys, tool string, mode uint8) {
		for _, s := range []string{a, b, sys, tool} {
			for _, v := range fuzzSeeds {
				if strings.Contains(s, v) {
					return // the fuzzer's text holds a seeded value: nothing to check
				}
			}
		}
		msg := map[string]any{
			"messages": []any{
				map[string]any{"role": "user", "content": []any{
					map[string]any{"text": a + " mail: " + fuzzSeeds[0] + " ok " + b},
					map[string]any{"toolResult": map[string]any{"toolUseId": "t1", "content": []any{map[string]any{"text": tool + " card: " + fuzzSeeds[2] + " ok"}}}},
				}},
				map[string]any{"role": "assistant", "content": []any{map[string]any{"text": b}}},
				map[string]any{"role": "user", "content": []any{map[string]any{"text": "ssn: " + fuzzSeeds[1] + " ok " + a}}},
			},
			"system":          []any{map[string]any{"text": sys}},
			"inferenceConfig": map[string]any{"maxTokens": 100, "temperature": 0.5},
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(mode&1 != 0)
		if mode&4 != 0 {
			enc.SetIndent("", "  ")
		}
		if err := enc.Encode(msg); err != nil {
			t.Fatalf("encoding a map of strings: %v", err)
		}
		body := buf.Bytes()
		if mode&2 != 0 { // '@' only occurs inside string literals here
			body = bytes.ReplaceAll(body, []byte("@"), []byte(`\u0040`))
		}
		ex, exErr := bedrock.ExtractRequest(bedrock.OpConverse, bedrock.FamilyUnknown, body)
		out := ag.CheckInput(context.Background(), Request{Body: body, Extracted: ex, ExtractErr: exErr}, nil)
		if out.Blocked() {
			t.Fatalf("a mask guard blocked: %v", out.Message)
		}
		if out.Body == nil {
			t.Fatalf("nothing masked in %s", body)
		}
		if !json.Valid(out.Body) {
			t.Fatalf("masked body is not valid JSON:\n%s", out.Body)
		}
		var parsed map[string]any
		if err := json.Unmarshal(out.Body, &parsed); err != nil {
			t.Fatalf("masked body does not parse: %v\n%s", err, out.Body)
		}

		// Outside the string literals the extractor found, the bytes are
		// the original ones; each literal is replaced by a JSON string.
		if exErr != nil {
			t.Fatal(exErr)
		}
		spans := slices.Clone(ex.Texts)
		slices.SortFunc(spans, func(x, y bedrock.TextSpan) int { return x.Start - y.Start })
		pin, pout := 0, 0
		for _, sp := range spans {
			if sp.Src != 0 {
				continue
			}
			gap := body[pin:sp.Start]
			if !bytes.HasPrefix(out.Body[pout:], gap) {
				t.Fatalf("bytes before %s changed:\nin  %q\nout %q", sp.Path, gap, out.Body[pout:min(len(out.Body), pout+len(gap))])
			}
			pout += len(gap)
			n := stringLiteralLen(out.Body[pout:])
			if n < 0 {
				t.Fatalf("no string literal at %s in %s", sp.Path, out.Body[pout:])
			}
			lit := out.Body[pout : pout+n]
			if !bytes.Equal(lit, body[sp.Start:sp.End]) {
				var s string
				if err := json.Unmarshal(lit, &s); err != nil {
					t.Fatalf("rewritten %s %q: %v", sp.Path, lit, err)
				}
			}
			pout += n
			pin = sp.End
		}
		if !bytes.Equal(out.Body[pout:], body[pin:]) {
			t.Fatalf("tail changed:\nin  %q\nout %q", body[pin:], out.Body[pout:])
		}

		// No seeded value, nor its digits, remains in any string.
		var strs []string
		collectStrings(parsed, &strs)
		all := strings.Join(strs, "\n")
		for _, v := range fuzzSeeds {
			if strings.Contains(all, v) {
				t.Fatalf("%q survived masking:\n%s", v, out.Body)
			}
		}
		if strings.Contains(all, "example.com") || strings.Contains(all, "6789") || strings.Contains(all, "1111 1111") {
			if !strings.Contains(a+b+sys+tool, "example.com") && !strings.Contains(a+b+sys+tool, "6789") && !strings.Contains(a+b+sys+tool, "1111") {
				t.Fatalf("part of a seeded value survived masking:\n%s", out.Body)
			}
		}
	})
}

// stringLiteralLen is the length of the JSON string literal b starts with,
// quotes included, or -1.
func stringLiteralLen(b []byte) int {
	if len(b) == 0 || b[0] != '"' {
		return -1
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

func collectStrings(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		*out = append(*out, v)
	case []any:
		for _, e := range v {
			collectStrings(e, out)
		}
	case map[string]any:
		for k, e := range v {
			*out = append(*out, k)
			collectStrings(e, out)
		}
	}
}
