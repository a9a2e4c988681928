package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// outputGuards are output-only guards on the answer.
const outputGuards = `  out-mask: {pii: {types: [EMAIL, CREDIT_DEBIT_CARD_NUMBER], action: mask}, applies_to: [output], unscannable: allow}
  out-block: {pii: {types: [EMAIL, CREDIT_DEBIT_CARD_NUMBER], action: block}, applies_to: [output]}
  out-record: {pii: {types: [EMAIL, CREDIT_DEBIT_CARD_NUMBER], action: record}, applies_to: [output], unscannable: allow}
`

// outputEnv runs Warden with the app's guards in front of an emulator whose
// model answers reply, streamed as the given deltas (nil: the default cut).
func outputEnv(t *testing.T, guards, reply string, deltas []string) *env {
	t.Helper()
	emu := bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{wardenKey: wardenSecret},
		Profiles:    map[string]string{appProfile: haiku},
		Reply:       func(_, _, _ string) string { return reply },
		Deltas:      func(_, _ string) []string { return deltas },
	})
	t.Cleanup(emu.Close)
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	p := strings.Replace(guardPolicy+outputGuards, "${GUARDS}", guards, 1)
	p = strings.ReplaceAll(p, "${UPSTREAM}", emu.URL)
	p = strings.ReplaceAll(p, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)
	return e
}

func converseText(t *testing.T, out *bedrockruntime.ConverseOutput) string {
	t.Helper()
	m, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok || len(m.Value.Content) == 0 {
		t.Fatalf("output %#v", out.Output)
	}
	tb, ok := m.Value.Content[0].(*types.ContentBlockMemberText)
	if !ok {
		t.Fatalf("content %#v", m.Value.Content[0])
	}
	return tb.Value
}

const emailReply = "Sure: write to jo.smith@example.com, they answer fast."

func TestOutputGuardMasksConverse(t *testing.T) {
	e := outputEnv(t, "[out-mask]", emailReply, nil)
	out, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("who do I ask?")})
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	if got, want := converseText(t, out), "Sure: write to {EMAIL}, they answer fast."; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	if out.Usage == nil || out.StopReason != types.StopReasonEndTurn {
		t.Errorf("the rest of the answer was lost: %+v", out)
	}
	r := e.audit.wait(t, 1)[0]
	want := []audit.Finding{{Guard: "out-mask", Detector: "pii", Type: "EMAIL", Count: 1, Action: "mask", Phase: "output"}}
	if r.Decision != "allow" || r.Status != 200 || !slices.Equal(r.Findings, want) {
		t.Errorf("record: decision %q status %d findings %+v", r.Decision, r.Status, r.Findings)
	}
}

func TestOutputGuardBlocksConverse(t *testing.T) {
	e := outputEnv(t, "[out-block]", emailReply, nil)
	_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("who do I ask?")})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) {
		t.Fatalf("Converse: %v, want AccessDeniedException", err)
	}
	if msg := ade.ErrorMessage(); !strings.Contains(msg, "guard out-block: the response holds EMAIL") || strings.Contains(msg, "jo.smith") {
		t.Errorf("message %q: want the guard and the type, never the value", msg)
	}
	if n := len(e.emu.Calls()); n != 1 {
		t.Errorf("emulator saw %d calls, want the call forwarded (the answer is what is blocked)", n)
	}
	r := e.audit.wait(t, 1)[0]
	want := []audit.Finding{{Guard: "out-block", Detector: "pii", Type: "EMAIL", Count: 1, Action: "block", Phase: "output"}}
	if r.Decision != "deny" || r.Status != 403 || r.Rule != "guards.out-block" || !slices.Equal(r.Findings, want) {
		t.Errorf("record: decision %q status %d rule %q findings %+v", r.Decision, r.Status, r.Rule, r.Findings)
	}
}

// A native answer is masked in place; the SDK reads the new Content-Length.
func TestOutputGuardMasksInvokeModel(t *testing.T) {
	e := outputEnv(t, "[out-mask, out-record]", emailReply, nil)
	out, err := e.client(t, nil).InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"who?"}]}`),
	})
	if err != nil {
		t.Fatalf("InvokeModel: %v", err)
	}
	var resp struct {
		Content []struct{ Text string } `json:"content"`
	}
	if err := json.Unmarshal(out.Body, &resp); err != nil || len(resp.Content) != 1 {
		t.Fatalf("body %s: %v", out.Body, err)
	}
	if got, want := resp.Content[0].Text, "Sure: write to {EMAIL}, they answer fast."; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	r := e.audit.wait(t, 1)[0]
	if f := findingsOf(r, "out-record"); len(f) != 1 || f[0].Action != "record" || f[0].Phase != "output" {
		t.Errorf("findings %+v", r.Findings)
	}
}

// The card number is split across two events: "4111 1111" | " 1111 1111".
var cardDeltas = []string{"Your card is ", "4111 1111", " 1111 1111", ", thanks."}

func cardReply() string { return strings.Join(cardDeltas, "") }

// converseStream returns the text deltas the SDK delivered and the
// stream's error.
func converseStream(t *testing.T, e *env) (texts []string, err error) {
	t.Helper()
	out, err := e.client(t, nil).ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("my card?")})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	st := out.GetStream()
	defer st.Close()
	for ev := range st.Events() {
		if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
			if tx, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				texts = append(texts, tx.Value)
			}
		}
	}
	return texts, st.Err()
}

func TestOutputGuardBlocksSplitCardInStream(t *testing.T) {
	e := outputEnv(t, "[out-block]", cardReply(), cardDeltas)
	texts, err := converseStream(t, e)
	var mse *types.ModelStreamErrorException
	if !errors.As(err, &mse) {
		t.Fatalf("stream error %v, want ModelStreamErrorException", err)
	}
	if msg := mse.ErrorMessage(); !strings.Contains(msg, "guard out-block: the response holds CREDIT_DEBIT_CARD_NUMBER") || strings.Contains(msg, "4111") {
		t.Errorf("message %q", msg)
	}
	// Neither half of the number left Warden: only the text before it.
	if got := strings.Join(texts, ""); got != "Your card is " {
		t.Errorf("client received %q", got)
	}
	r := e.audit.wait(t, 1)[0]
	want := []audit.Finding{{Guard: "out-block", Detector: "pii", Type: "CREDIT_DEBIT_CARD_NUMBER", Count: 1, Action: "block", Phase: "output"}}
	if r.Decision != "deny" || r.Rule != "guards.out-block" || r.ErrorType != "ModelStreamErrorException" || !slices.Equal(r.Findings, want) {
		t.Errorf("record: decision %q rule %q error %q findings %+v", r.Decision, r.Rule, r.ErrorType, r.Findings)
	}
}

func TestOutputGuardRecordsSplitCardInStream(t *testing.T) {
	e := outputEnv(t, "[out-record]", cardReply(), cardDeltas)
	texts, err := converseStream(t, e)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if !slices.Equal(texts, cardDeltas) {
		t.Errorf("client received %q, want every event unchanged %q", texts, cardDeltas)
	}
	r := e.audit.wait(t, 1)[0]
	want := []audit.Finding{{Guard: "out-record", Detector: "pii", Type: "CREDIT_DEBIT_CARD_NUMBER", Count: 1, Action: "record", Phase: "output"}}
	if r.Decision != "allow" || !slices.Equal(r.Findings, want) {
		t.Errorf("record: decision %q findings %+v", r.Decision, r.Findings)
	}
}

func TestOutputGuardMasksSplitCardInStream(t *testing.T) {
	e := outputEnv(t, "[out-mask]", cardReply(), cardDeltas)
	texts, err := converseStream(t, e)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if got, want := strings.Join(texts, ""), "Your card is {CREDIT_DEBIT_CARD_NUMBER}, thanks."; got != want {
		t.Errorf("client received %q (%q), want %q", got, texts, want)
	}
	if len(texts) != len(cardDeltas) {
		t.Errorf("got %d text events, want %d (events are rewritten, never merged or dropped)", len(texts), len(cardDeltas))
	}
	r := e.audit.wait(t, 1)[0]
	want := []audit.Finding{{Guard: "out-mask", Detector: "pii", Type: "CREDIT_DEBIT_CARD_NUMBER", Count: 1, Action: "mask", Phase: "output"}}
	if !slices.Equal(r.Findings, want) {
		t.Errorf("findings %+v", r.Findings)
	}
}

// InvokeModelWithResponseStream chunks carry the model's JSON in base64:
// masked chunks are re-encoded.
func TestOutputGuardMasksInvokeModelStream(t *testing.T) {
	e := outputEnv(t, "[out-mask]", cardReply(), cardDeltas)
	out, err := e.client(t, nil).InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(haiku), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"card?"}]}`),
	})
	if err != nil {
		t.Fatalf("InvokeModelWithResponseStream: %v", err)
	}
	st := out.GetStream()
	defer st.Close()
	var sb strings.Builder
	for ev := range st.Events() {
		c, ok := ev.(*types.ResponseStreamMemberChunk)
		if !ok {
			continue
		}
		var m struct {
			Type  string `json:"type"`
			Delta struct {
				Text string `json:"text"`
			} `json:"delta"`
		}
		if err := json.Unmarshal(c.Value.Bytes, &m); err != nil {
			t.Fatalf("chunk %s: %v", c.Value.Bytes, err)
		}
		if m.Type == "content_block_delta" {
			sb.WriteString(m.Delta.Text)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if got, want := sb.String(), "Your card is {CREDIT_DEBIT_CARD_NUMBER}, thanks."; got != want {
		t.Errorf("client received %q, want %q", got, want)
	}
}

// A dry-run app's output block is recorded and the answer passes.
func TestOutputGuardDryRun(t *testing.T) {
	e := outputEnv(t, "[out-block]\n    mode: dry-run", emailReply, nil)
	out, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("who?")})
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	if got := converseText(t, out); got != emailReply {
		t.Errorf("answer %q", got)
	}
	r := e.audit.wait(t, 1)[0]
	if r.Decision != "dry-run-deny" || r.Rule != "guards.out-block" || len(r.Findings) != 1 || r.Findings[0].Action != "record" {
		t.Errorf("record: decision %q rule %q findings %+v", r.Decision, r.Rule, r.Findings)
	}
}
