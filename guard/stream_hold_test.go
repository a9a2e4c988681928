package guard

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

func toolFrame(t testing.TB, input string) []byte {
	p, err := json.Marshal(map[string]any{"contentBlockIndex": 1, "delta": map[string]any{"toolUse": map[string]any{"input": input}}})
	if err != nil {
		t.Fatal(err)
	}
	return bedrock.EncodeEvent("contentBlockDelta", p)
}

// toolInputs returns the toolUse input fragments in out.
func toolInputs(t testing.TB, out []byte) string {
	var sb strings.Builder
	fr := bedrock.NewFrameReader(bytes.NewReader(out))
	for {
		f, err := fr.Next()
		if err != nil {
			return sb.String()
		}
		var p struct {
			Delta struct {
				ToolUse struct{ Input string } `json:"toolUse"`
			} `json:"delta"`
		}
		if err := json.Unmarshal(f.Message.Payload, &p); err != nil {
			t.Fatal(err)
		}
		sb.WriteString(p.Delta.ToolUse.Input)
	}
}

// A toolUse input is a fragment of JSON: an escape split across events is
// decoded across the boundary, and a mask removes the escape's first half.
func TestStreamGuardToolInputEscapes(t *testing.T) {
	parts := []string{`{"n":"\u00`, `34111 1111`, ` 1111 1111", "m": "jo@ex\u0040mple.com"}`}
	for _, c := range []struct {
		action, want string
		blocked      bool
	}{
		{"block", ``, true},
		{"mask", `{"n":"{CREDIT_DEBIT_CARD_NUMBER}", "m": "jo@ex\u0040mple.com"}`, false},
	} {
		t.Run(c.action, func(t *testing.T) {
			sg := testStreamGuard(t, c.action, "CREDIT_DEBIT_CARD_NUMBER")
			var got []byte
			var apiErr *bedrock.APIError
			for _, p := range parts {
				f, err := bedrock.NewFrameReader(bytes.NewReader(toolFrame(t, p))).Next()
				if err != nil {
					t.Fatal(err)
				}
				out, e, _ := sg.Next(f)
				if apiErr = e; e != nil {
					break
				}
				got = append(got, out...)
			}
			if apiErr == nil {
				out, e, _ := sg.End()
				apiErr = e
				got = append(got, out...)
			}
			if (apiErr != nil) != c.blocked {
				t.Fatalf("error %v", apiErr)
			}
			if s := toolInputs(t, got); s != c.want {
				t.Errorf("client received %q, want %q", s, c.want)
			}
		})
	}
}

func TestDecodeFragment(t *testing.T) {
	for _, c := range []struct{ in, dec, rest string }{
		{`plain`, `plain`, ``},
		{`a\"b\\c\/d\n`, "a\"b\\c/d\n", ``},
		{`x\u0034`, `x4`, ``},
		{`x\u00`, `x`, `\u00`},
		{`x\`, `x`, `\`},
		{`x\ud83d`, `x`, `\ud83d`},
		{`x\ud83d\ude00y`, "x\U0001F600y", ``},
		{`x\ud83d\u`, `x`, `\ud83d\u`},
		{`x\uZZZZ`, `x\uZZZZ`, ``},
	} {
		dec, at, rest := decodeFragment(c.in)
		if dec != c.dec || rest != c.rest || len(at) != len(dec)+1 {
			t.Errorf("decodeFragment(%q) = %q, %v, %q; want %q, %q", c.in, dec, at, rest, c.dec, c.rest)
		}
	}
}

// FuzzStreamGuard cuts a text holding values at random points: under block
// no value (nor 4 characters of it) ever leaves; under mask the
// concatenated output is the whole text masked, as the unary guard masks
// it; when nothing matches, the output is the input.
func FuzzStreamGuard(f *testing.F) {
	values := []string{"4111 1111 1111 1111", "123-45-6789", "jo.smith@example.com", "AKIAIOSFODNN7EXAMPLE", "DE89 3704 0044 0532 0130 00"}
	f.Add("Here it is: %s. Anything else?", uint8(0), uint64(1))
	f.Add("%s", uint8(1), uint64(7))
	f.Add("a %s b %s c", uint8(2), uint64(42))
	f.Add("no value at all, version 1.2.3 on 2024-05-01", uint8(3), uint64(3))
	f.Add("card\n%s\ttab", uint8(4), uint64(9))
	types := []string{"CREDIT_DEBIT_CARD_NUMBER", "US_SOCIAL_SECURITY_NUMBER", "EMAIL", "AWS_ACCESS_KEY", "INTERNATIONAL_BANK_ACCOUNT_NUMBER"}
	f.Fuzz(func(t *testing.T, tmpl string, vi uint8, seed uint64) {
		if !strings.Contains(tmpl, "%s") || len(tmpl) > 400 || strings.Count(tmpl, "%") != strings.Count(tmpl, "%s") {
			return
		}
		v := values[int(vi)%len(values)]
		text := strings.ReplaceAll(tmpl, "%s", v)
		if !utf8.ValidString(text) {
			return // events carry JSON strings: valid UTF-8
		}
		r := rand.New(rand.NewPCG(seed, seed^0x9e37))
		var parts []string
		for rest := text; rest != ""; {
			n := 1 + r.IntN(4)
			for n < len(rest) && !isRuneStart(rest[n]) {
				n++
			}
			n = min(n, len(rest))
			parts = append(parts, rest[:n])
			rest = rest[n:]
		}
		var frames [][]byte
		for _, p := range parts {
			frames = append(frames, deltaFrame(t, p))
		}
		g, err := compile("g", Config{PII: &PIIConfig{Types: types, Action: Mask}, Unscannable: Allow})
		if err != nil {
			t.Fatal(err)
		}
		norm, found := g.scanner.ScanAppend(nil, text)
		// mask
		got, apiErr := feed(t, newStream(bedrock.OpConverseStream, bedrock.FamilyUnknown, []*compiled{g}, false), frames...)
		if apiErr != nil {
			t.Fatal(apiErr)
		}
		out := join(got)
		want := detect.Mask(norm, found)
		// Events without a mask leave as they came, masked ones normalised:
		// compare normalised.
		if detect.Normalize(out) != want {
			t.Errorf("mask: %q cut %q gave %q, want %q", text, parts, out, want)
		}
		if len(found) == 0 && out != text && out != norm {
			t.Errorf("nothing found in %q, output %q", text, out)
		}
		// block
		gb, err := compile("g", Config{PII: &PIIConfig{Types: types, Action: Block}, Unscannable: Allow})
		if err != nil {
			t.Fatal(err)
		}
		got, apiErr = feed(t, newStream(bedrock.OpConverseStream, bedrock.FamilyUnknown, []*compiled{gb}, false), frames...)
		out = join(got)
		if len(found) > 0 {
			if apiErr == nil {
				t.Errorf("block: %q cut %q not blocked", text, parts)
			}
			for _, fd := range found {
				val := norm[fd.Start:fd.End]
				for i := 0; i+4 <= len(val); i++ {
					if strings.Contains(out, val[i:i+4]) && !strings.Contains(norm[:fd.Start], val[i:i+4]) {
						t.Errorf("block: %q cut %q leaked %q of %q: %q", text, parts, val[i:i+4], val, out)
						break
					}
				}
			}
		} else if apiErr != nil || out != text && out != norm {
			t.Errorf("block: nothing found in %q, output %q, error %v", text, out, apiErr)
		}
	})
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func join(got [][]string) string {
	var sb strings.Builder
	for _, r := range got {
		for _, s := range r {
			if !strings.HasPrefix(s, "<") || !strings.HasSuffix(s, ">") {
				sb.WriteString(s)
			}
		}
	}
	return sb.String()
}
