package guard

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

func agentChunk(t testing.TB, text string) []byte {
	p, err := json.Marshal(map[string]any{"bytes": base64.StdEncoding.EncodeToString([]byte(text))})
	if err != nil {
		t.Fatal(err)
	}
	return bedrock.EncodeEvent("chunk", p)
}

// agentText is the text of the chunk events in out.
func agentText(t testing.TB, out []byte) string {
	var sb strings.Builder
	fr := bedrock.NewFrameReader(bytes.NewReader(out))
	for {
		f, err := fr.Next()
		if err != nil {
			return sb.String()
		}
		var p struct{ Bytes []byte }
		if err := json.Unmarshal(f.Message.Payload, &p); err != nil {
			t.Fatal(err)
		}
		sb.Write(p.Bytes)
	}
}

// An InvokeAgent answer's chunks (base64 text) cut in 2-byte pieces: the
// hold-back reads them as one text, so under block no 4 characters of the
// card leave and under mask the placeholder replaces all of it; an event
// type the agent stream does not have is unscannable.
func TestAgentStreamGuard(t *testing.T) {
	const card = "4111 1111 1111 1111"
	answer := "Your card is " + card + ", keep it safe."
	for _, c := range []struct {
		action  string
		blocked bool
	}{{"block", true}, {"mask", false}} {
		t.Run(c.action, func(t *testing.T) {
			g, err := compile("g", Config{PII: &PIIConfig{Types: []string{"CREDIT_DEBIT_CARD_NUMBER"}, Action: c.action}})
			if err != nil {
				t.Fatal(err)
			}
			sg := newStream(bedrock.OpInvokeAgent, bedrock.FamilyUnknown, []*compiled{g}, false)
			var out []byte
			var stopped *bedrock.APIError
			for i := 0; i < len(answer) && stopped == nil; i += 2 {
				f, err := bedrock.NewFrameReader(bytes.NewReader(agentChunk(t, answer[i:min(i+2, len(answer))]))).Next()
				if err != nil {
					t.Fatal(err)
				}
				b, e, _ := sg.Next(f)
				out, stopped = append(out, b...), e
			}
			if stopped == nil {
				b, e, _ := sg.End()
				out, stopped = append(out, b...), e
			}
			got := agentText(t, out)
			for i := 0; i+4 <= len(card); i++ {
				if strings.Contains(got, card[i:i+4]) {
					t.Fatalf("released %q holds %q of the card", got, card[i:i+4])
				}
			}
			if c.blocked != (stopped != nil) {
				t.Fatalf("stopped %v, want blocked %v (released %q)", stopped, c.blocked, got)
			}
			if !c.blocked && got != "Your card is {CREDIT_DEBIT_CARD_NUMBER}, keep it safe." {
				t.Fatalf("masked answer %q", got)
			}
		})
	}
	t.Run("unknown event", func(t *testing.T) {
		g, err := compile("g", Config{PII: &PIIConfig{Types: []string{"EMAIL"}, Action: "mask"}})
		if err != nil {
			t.Fatal(err)
		}
		sg := newStream(bedrock.OpInvokeAgent, bedrock.FamilyUnknown, []*compiled{g}, false)
		f, err := bedrock.NewFrameReader(bytes.NewReader(bedrock.EncodeEvent("memoryEvent", []byte(`{"text":"jo@example.com"}`)))).Next()
		if err != nil {
			t.Fatal(err)
		}
		out, e, rule := sg.Next(f)
		if e == nil || len(out) != 0 || rule != "guards.g" || !strings.Contains(e.Message, "memoryEvent event") {
			t.Fatalf("unknown event: out %q err %v rule %q; want a block naming it", out, e, rule)
		}
	})
}
