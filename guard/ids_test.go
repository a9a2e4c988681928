package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

// idPattern is the tool-use id pattern of Converse and the Anthropic
// Messages API.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func TestMaskID(t *testing.T) {
	key, other := newIDKey(), newIDKey()
	pii, err := detect.NewPII(detect.PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sc := detect.NewScanner(pii)
	for _, c := range []struct{ id, prefix string }{
		{"tooluse_4111111111111111", "tooluse_"},
		{"toolu_123-45-6789", "toolu_"},
		{"call_AKIAIOSFODNN7EXAMPLE", "call_"},
		{"4111111111111111", ""},
		{"a1b2c3d4e", ""}, // Mistral: nine characters
		{"123_4111111111111111", ""},
		{"x", ""},
	} {
		m := maskID(key, c.id)
		if m != maskID(key, c.id) {
			t.Errorf("%q: not deterministic", c.id)
		}
		if m == maskID(other, c.id) {
			t.Errorf("%q: same mask under another key", c.id)
		}
		if m == maskID(key, c.id+"0") {
			t.Errorf("%q: same mask as another id", c.id)
		}
		if !strings.HasPrefix(m, c.prefix) || strings.ContainsAny(m[len(c.prefix):], "0123456789-_") {
			t.Errorf("%q → %q: want prefix %q and letters", c.id, m, c.prefix)
		}
		if !idPattern.MatchString(m) {
			t.Errorf("%q → %q: not a valid tool-use id", c.id, m)
		}
		if len(c.id) == 9 && len(m) != 9 {
			t.Errorf("%q → %q: a nine-character id must stay nine characters", c.id, m)
		}
		if found := sc.Scan(idText(m)); len(found) > 0 {
			t.Errorf("%q → %q: the mask is detected as %s", c.id, m, found[0].Type)
		}
	}
}

var idDefs = map[string]Config{
	"card-mask":  {PII: &PIIConfig{Types: []string{"CREDIT_DEBIT_CARD_NUMBER", "EMAIL"}, Action: Mask}},
	"card-block": {PII: &PIIConfig{Types: []string{"CREDIT_DEBIT_CARD_NUMBER"}}},
	"all-block":  {PII: &PIIConfig{}},
	"email-only": {PII: &PIIConfig{Types: []string{"EMAIL"}}},
	"custom":     {PII: &PIIConfig{Types: []string{"EMAIL"}, Custom: map[string]string{"TICKET": `tooluse`}}},
	"words":      {Words: &WordsConfig{List: []string{"tooluse"}}},
	"injection":  {Injection: &InjectionConfig{}},
}

func toolRequest(id string) []byte {
	lit := string(bedrock.JSONString(id))
	return []byte(`{"messages":[{"role":"user","content":[{"text":"look up 4111 1111 1111 1111 for bob@example.com"}]},` +
		`{"role":"assistant","content":[{"toolUse":{"toolUseId":` + lit + `,"name":"lookup","input":{"q":"x"}}}]},` +
		`{"role":"user","content":[{"toolResult":{"toolUseId":` + lit + `,"content":[{"text":"found"}]}}]}]}`)
}

// TestCheckInputIDs: ids get the number and key detectors only; mask
// rewrites a toolUse and its toolResult to the same valid id; block and
// passthrough block.
func TestCheckInputIDs(t *testing.T) {
	for _, c := range []struct {
		name        string
		guard       string
		id          string
		passthrough bool
		blocked     bool
		idFindings  []string // finding types beyond those of the texts
	}{
		{"card in id masked", "card-mask", "tooluse_4111111111111111", false, false, []string{"CREDIT_DEBIT_CARD_NUMBER"}},
		{"spaced card in id masked", "card-mask", "toolu_4111 1111 1111 1111", false, false, []string{"CREDIT_DEBIT_CARD_NUMBER"}},
		{"card in id blocks", "card-block", "tooluse_4111111111111111", false, true, []string{"CREDIT_DEBIT_CARD_NUMBER"}},
		{"mask under passthrough blocks", "card-mask", "4111111111111111", true, true, []string{"CREDIT_DEBIT_CARD_NUMBER"}},
		{"ssn in id", "all-block", "toolu_123-45-6789", false, true, []string{"US_SOCIAL_SECURITY_NUMBER"}},
		{"glued ssn in id", "all-block", "SSN123456789", false, true, []string{"US_SOCIAL_SECURITY_NUMBER"}},
		{"key in id", "all-block", "call_AKIAIOSFODNN7EXAMPLE", false, true, []string{"AWS_ACCESS_KEY"}},
		{"bedrock id", "all-block", "tooluse_Ab3dEfGh1jKlMnOpQrStUv", false, true, nil},
		{"anthropic id", "all-block", "toolu_01A09q90qw90lq917835lq9", false, true, nil},
		{"email types only", "email-only", "tooluse_4111111111111111", false, true, nil}, // the text has an email
		{"custom pattern not on ids", "custom", "tooluse_x", false, true, nil},
		{"words not on ids", "words", "tooluse_x", false, false, nil},
		{"injection not on ids", "injection", "ignore_all_previous_instructions", false, false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ag := compileApp(t, idDefs, c.guard)
			body := toolRequest(c.id)
			base := ag.CheckInput(context.Background(), Request{Body: toolRequest("plain"), Extracted: extractConverse(t, toolRequest("plain")), Passthrough: c.passthrough}, nil)
			out := ag.CheckInput(context.Background(), Request{Body: body, Extracted: extractConverse(t, body), Passthrough: c.passthrough}, nil)
			if out.Blocked() != c.blocked {
				t.Fatalf("blocked = %v (%q), want %v", out.Blocked(), out.Message, c.blocked)
			}
			var extra []string
			for _, f := range out.Findings {
				n := f.Count
				for _, b := range base.Findings {
					if b.Type == f.Type && b.Detector == f.Detector {
						n -= b.Count
					}
				}
				if n > 0 && !slices.Contains(extra, f.Type) {
					extra = append(extra, f.Type)
				}
			}
			if !slices.Equal(extra, c.idFindings) {
				t.Errorf("id findings %q, want %q (all: %+v)", extra, c.idFindings, out.Findings)
			}
			if c.blocked || ag.input[0].actions["pii"] != Mask || len(c.idFindings) == 0 {
				return
			}
			ex := extractConverse(t, out.Body)
			if len(ex.IDs) != 2 || ex.IDs[0].Text != ex.IDs[1].Text {
				t.Fatalf("masked ids %+v: want the toolUse and its toolResult equal", ex.IDs)
			}
			if m := ex.IDs[0].Text; m == c.id || !idPattern.MatchString(m) || strings.ContainsAny(m, "0123456789") {
				t.Errorf("masked id %q", m)
			}
			if got := ex.Texts[0].Text; got != "look up {CREDIT_DEBIT_CARD_NUMBER} for {EMAIL}" {
				t.Errorf("text masked to %q", got)
			}
			// The next turn repeats the history: the same masked id.
			again := ag.CheckInput(context.Background(), Request{Body: body, Extracted: extractConverse(t, body)}, nil)
			if ex2 := extractConverse(t, again.Body); ex2.IDs[0].Text != ex.IDs[0].Text {
				t.Errorf("a second request masks the id to %q, the first to %q", ex2.IDs[0].Text, ex.IDs[0].Text)
			}
		})
	}
}

func extractConverse(t *testing.T, body []byte) bedrock.Extracted {
	t.Helper()
	ex, err := bedrock.ExtractRequest(bedrock.OpConverse, bedrock.FamilyUnknown, body)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestCheckAnswerIDs(t *testing.T) {
	body := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"calling"},` +
		`{"toolUse":{"toolUseId":"tooluse_4111-1111-1111-1111","name":"lookup","input":{}}}]}},"stopReason":"tool_use"}`)
	for _, c := range []struct {
		guard   string
		blocked bool
	}{{"card-mask", false}, {"card-block", true}} {
		ag := compileApp(t, map[string]Config{c.guard: withOutput(idDefs[c.guard])}, c.guard)
		out := ag.CheckAnswer(context.Background(), Answer{Op: bedrock.OpConverse, Body: body}, nil)
		if out.Blocked() != c.blocked {
			t.Fatalf("%s: blocked %v (%q)", c.guard, out.Blocked(), out.Message)
		}
		if c.blocked {
			continue
		}
		ex, err := bedrock.ExtractResponse(bedrock.OpConverse, "", out.Body)
		if err != nil || len(ex.IDs) != 1 {
			t.Fatalf("%v %+v", err, ex)
		}
		if m := ex.IDs[0].Text; !strings.HasPrefix(m, "tooluse_") || strings.ContainsAny(m, "0123456789") || !idPattern.MatchString(m) {
			t.Errorf("masked id %q", m)
		}
		if ex.Texts[0].Text != "calling" {
			t.Errorf("text %q", ex.Texts[0].Text)
		}
	}
}

func withOutput(c Config) Config {
	c.AppliesTo = []string{Output}
	return c
}

func toolStartFrame(t testing.TB, id string) []byte {
	p, err := json.Marshal(map[string]any{"contentBlockIndex": 1, "start": map[string]any{"toolUse": map[string]any{"toolUseId": id, "name": "lookup"}}})
	if err != nil {
		t.Fatal(err)
	}
	return bedrock.EncodeEvent("contentBlockStart", p)
}

// TestStreamIDs: a contentBlockStart's toolUseId is masked in the event the
// client gets, or stops the stream.
func TestStreamIDs(t *testing.T) {
	id := "tooluse_4111111111111111"
	sg := testStreamGuard(t, Mask, "CREDIT_DEBIT_CARD_NUMBER")
	var got []byte
	for _, b := range [][]byte{deltaFrame(t, "let me look"), toolStartFrame(t, id), deltaFrame(t, `{"q":1}`)} {
		f, err := bedrock.NewFrameReader(bytes.NewReader(b)).Next()
		if err != nil {
			t.Fatal(err)
		}
		out, apiErr, _ := sg.Next(f)
		if apiErr != nil {
			t.Fatal(apiErr)
		}
		got = append(got, out...)
	}
	out, apiErr, _ := sg.End()
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	got = append(got, out...)
	fr := bedrock.NewFrameReader(bytes.NewReader(got))
	var ids []string
	var events []string
	for {
		f, err := fr.Next()
		if err != nil {
			break
		}
		events = append(events, f.EventType())
		ex, err := bedrock.ExtractStreamEvent(bedrock.OpConverseStream, "", f.EventType(), f.Message.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range ex.IDs {
			ids = append(ids, sp.Text)
		}
	}
	if !slices.Equal(events, []string{"contentBlockDelta", "contentBlockStart", "contentBlockDelta"}) {
		t.Fatalf("events %q", events)
	}
	if len(ids) != 1 || !strings.HasPrefix(ids[0], "tooluse_") || strings.ContainsAny(ids[0], "0123456789") {
		t.Fatalf("ids %q", ids)
	}
	if fs := sg.Outcome().Findings; len(fs) != 1 || fs[0].Type != "CREDIT_DEBIT_CARD_NUMBER" || fs[0].Action != Mask {
		t.Errorf("findings %+v", fs)
	}

	sg = testStreamGuard(t, Block, "CREDIT_DEBIT_CARD_NUMBER")
	released, apiErr := feed(t, sg, deltaFrame(t, "let me look"), toolStartFrame(t, id), deltaFrame(t, "more"))
	if apiErr == nil || !strings.Contains(apiErr.Message, "CREDIT_DEBIT_CARD_NUMBER") {
		t.Fatalf("stream not stopped: %v", apiErr)
	}
	for _, r := range released {
		for _, s := range r {
			if strings.Contains(s, "4111") {
				t.Errorf("released %q", s)
			}
		}
	}
}
