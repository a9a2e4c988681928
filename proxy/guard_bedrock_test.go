package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// The bedrocktest emulator's ApplyGuardrail checks the request (signature,
// source, content) and always answers NONE. bedrockTrigger makes it
// intervene: the emulator's answer is replaced by a GUARDRAIL_INTERVENED
// one with a denied topic and a PII entity whose match must never reach
// the audit.
const (
	bedrockTrigger = "tell me which stocks to buy"
	bedrockPIIVal  = "jo@example.com"
)

// interveningEmulator serves emu's handler, intervening as above.
func interveningEmulator(t *testing.T, emu *bedrocktest.Server) string {
	h := emu.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/apply") {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != 200 || !bytes.Contains(body, []byte(bedrockTrigger)) {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"action":  "GUARDRAIL_INTERVENED",
			"outputs": []any{map[string]any{"text": "Sorry, I cannot help with that."}},
			"assessments": []any{map[string]any{
				"topicPolicy": map[string]any{"topics": []any{map[string]any{"name": "Investments", "type": "DENY", "action": "BLOCKED"}}},
				"sensitiveInformationPolicy": map[string]any{"piiEntities": []any{
					map[string]any{"match": bedrockPIIVal, "type": "EMAIL", "action": "ANONYMIZED"}}},
			}},
			"usage": map[string]any{"topicPolicyUnits": 1},
		})
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

const bedrockGuardPolicy = basePolicy + `    guards: [managed]
guards:
  managed: {bedrock: {id: abc123, version: DRAFT, ${OPTS}}, applies_to: [input]}
`

// bedrockGuardEnv runs Warden in front of the intervening emulator with
// the managed guard configured by opts (inner keys of bedrock:).
func bedrockGuardEnv(t *testing.T, opts string) *env {
	t.Helper()
	e := &env{emu: newEmulator(t), cp: newControlPlane(t), audit: newRecorder()}
	p := strings.Replace(bedrockGuardPolicy, "${OPTS}", opts, 1)
	p = strings.ReplaceAll(p, "${UPSTREAM}", interveningEmulator(t, e.emu))
	p = strings.ReplaceAll(p, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)
	return e
}

func callsOf(e *env, op string) []bedrocktest.Call {
	var out []bedrocktest.Call
	for _, c := range e.emu.Calls() {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

func TestBedrockGuardBlocks(t *testing.T) {
	e := bedrockGuardEnv(t, "action: block")
	c := e.client(t, nil)
	_, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String(haiku), Messages: userMsg("please " + bedrockTrigger + " today, mail " + bedrockPIIVal),
		System: []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "be brief"}},
	})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) {
		t.Fatalf("Converse: %v, want AccessDeniedException", err)
	}
	msg := ade.ErrorMessage()
	if !strings.Contains(msg, "guard managed") || !strings.Contains(msg, "BEDROCK_GUARDRAIL") || !strings.Contains(msg, "TOPIC:Investments") ||
		strings.Contains(msg, bedrockPIIVal) {
		t.Errorf("message %q: want the guard and BEDROCK_GUARDRAIL, never a value", msg)
	}
	if n := len(callsOf(e, "Converse")); n != 0 {
		t.Fatalf("upstream saw %d Converse calls", n)
	}
	ag := callsOf(e, bedrocktest.OpApplyGuardrail)
	if len(ag) != 1 {
		t.Fatalf("ApplyGuardrail calls: %d", len(ag))
	}
	a := ag[0]
	if !a.SignatureOK || a.AccessKeyID != wardenKey || !strings.Contains(a.EscapedPath, "/guardrail/abc123/version/DRAFT/apply") {
		t.Errorf("ApplyGuardrail call: sig %v key %s path %s (%s)", a.SignatureOK, a.AccessKeyID, a.EscapedPath, a.AuthError)
	}
	var in struct {
		Source  string `json:"source"`
		Content []struct {
			Text struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(a.Body, &in); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, b := range in.Content {
		texts = append(texts, b.Text.Text)
	}
	if in.Source != "INPUT" || !strings.Contains(strings.Join(texts, "|"), bedrockTrigger) || !strings.Contains(strings.Join(texts, "|"), "be brief") {
		t.Errorf("ApplyGuardrail body: source %q texts %q", in.Source, texts)
	}
	r := e.audit.wait(t, 1)[0]
	if r.Decision != "deny" || r.Status != 403 || r.Rule != "guards.managed" || strings.Contains(r.Reason, bedrockPIIVal) {
		t.Errorf("record: decision %q status %d rule %q reason %q", r.Decision, r.Status, r.Rule, r.Reason)
	}
	fs := findingsOf(r, "managed")
	got := map[string]string{}
	for _, f := range fs {
		got[f.Type] = f.Action
		if strings.Contains(f.Type, bedrockPIIVal) {
			t.Errorf("finding %+v holds the value", f)
		}
	}
	if got["BEDROCK_GUARDRAIL"] != "block" || got["TOPIC:Investments"] != "block" || got["PII:EMAIL"] != "block" {
		t.Errorf("findings %+v", fs)
	}

	// A prompt the guardrail lets through reaches the model.
	out, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg("hello there")})
	if err != nil || out == nil {
		t.Fatalf("benign Converse: %v", err)
	}
	if n := len(callsOf(e, bedrocktest.OpApplyGuardrail)); n != 2 {
		t.Errorf("ApplyGuardrail calls: %d, want 2", n)
	}
}

func TestBedrockGuardRecords(t *testing.T) {
	e := bedrockGuardEnv(t, "action: record")
	_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String(haiku), Messages: userMsg(bedrockTrigger)})
	if err != nil {
		t.Fatalf("Converse under record: %v", err)
	}
	if n := len(callsOf(e, "Converse")); n != 1 {
		t.Fatalf("upstream saw %d Converse calls", n)
	}
	r := e.audit.wait(t, 1)[0]
	if r.Decision != "allow" || r.Status != 200 {
		t.Errorf("record: decision %q status %d", r.Decision, r.Status)
	}
	found := false
	for _, f := range findingsOf(r, "managed") {
		if f.Type == "BEDROCK_GUARDRAIL" && f.Action == "record" && f.Detector == "bedrock" && f.Count == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("findings %+v: want BEDROCK_GUARDRAIL recorded", r.Findings)
	}
}

func TestBedrockGuardOnError(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		fault      bedrocktest.Fault
		allow      bool
		want       string
	}{
		{"5xx blocks", "on_error: block", bedrocktest.Fault{Op: bedrocktest.OpApplyGuardrail, Status: 500}, false, "InternalServerException"},
		{"5xx default blocks", "", bedrocktest.Fault{Op: bedrocktest.OpApplyGuardrail, Status: 503}, false, "ServiceUnavailableException"},
		{"timeout blocks", "timeout: 100ms", bedrocktest.Fault{Op: bedrocktest.OpApplyGuardrail, Delay: 2 * time.Second, Status: 500}, false, "timed out"},
		{"5xx allowed", "on_error: allow", bedrocktest.Fault{Op: bedrocktest.OpApplyGuardrail, Status: 500}, true, ""},
		{"throttled allowed", "on_error: allow", bedrocktest.Fault{Op: bedrocktest.OpApplyGuardrail, Status: 429}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := bedrockGuardEnv(t, tc.opts)
			e.emu.Inject(tc.fault)
			_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{
				ModelId: aws.String(haiku), Messages: userMsg(bedrockTrigger)})
			r := e.audit.wait(t, 1)[0]
			act := ""
			for _, f := range findingsOf(r, "managed") {
				if f.Type == "BEDROCK_GUARDRAIL_ERROR" {
					act = f.Action
				}
			}
			if tc.allow {
				if err != nil {
					t.Fatalf("Converse with on_error allow: %v", err)
				}
				if n := len(callsOf(e, "Converse")); n != 1 || act != "allow" {
					t.Errorf("upstream Converse calls %d, error finding %q", n, act)
				}
				return
			}
			var ade *types.AccessDeniedException
			if !errors.As(err, &ade) {
				t.Fatalf("Converse: %v, want AccessDeniedException", err)
			}
			msg := ade.ErrorMessage()
			if !strings.Contains(msg, "guard managed") || !strings.Contains(msg, "guardrail abc123 (version DRAFT) could not be applied") || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q", msg)
			}
			if n := len(callsOf(e, "Converse")); n != 0 || act != "block" || r.Status != 403 {
				t.Errorf("upstream Converse calls %d, error finding %q, status %d", n, act, r.Status)
			}
		})
	}
}

// bedrockOutputEnv is bedrockGuardEnv with the managed guard on answers
// only and a model that answers reply.
func bedrockOutputEnv(t *testing.T, opts, reply string) *env {
	t.Helper()
	emu := bedrocktest.NewServer(bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{wardenKey: wardenSecret},
		Profiles:    map[string]string{appProfile: haiku},
		Reply:       func(_, _, _ string) string { return reply },
	})
	t.Cleanup(emu.Close)
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	p := strings.Replace(bedrockGuardPolicy, "${OPTS}", opts, 1)
	p = strings.Replace(p, "applies_to: [input]", "applies_to: [output]", 1)
	p = strings.ReplaceAll(p, "${UPSTREAM}", interveningEmulator(t, e.emu))
	p = strings.ReplaceAll(p, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)
	return e
}

const bedrockReply = "Sure, I will " + bedrockTrigger + ": write to " + bedrockPIIVal

func guardrailSource(t *testing.T, c bedrocktest.Call) (string, string) {
	t.Helper()
	var in struct {
		Source  string `json:"source"`
		Content []struct {
			Text struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(c.Body, &in); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, b := range in.Content {
		texts = append(texts, b.Text.Text)
	}
	return in.Source, strings.Join(texts, "|")
}

func TestBedrockGuardBlocksAnswer(t *testing.T) {
	e := bedrockOutputEnv(t, "action: block", bedrockReply)
	_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String(haiku), Messages: userMsg("any advice?")})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) {
		t.Fatalf("Converse: %v, want AccessDeniedException", err)
	}
	msg := ade.ErrorMessage()
	if !strings.Contains(msg, "guard managed") || !strings.Contains(msg, "BEDROCK_GUARDRAIL") || !strings.Contains(msg, "TOPIC:Investments") ||
		strings.Contains(msg, bedrockPIIVal) || strings.Contains(msg, bedrockTrigger) {
		t.Errorf("message %q: want the guard and BEDROCK_GUARDRAIL, never the answer", msg)
	}
	if n := len(callsOf(e, "Converse")); n != 1 {
		t.Errorf("upstream saw %d Converse calls, want 1 (the answer is what is blocked)", n)
	}
	ag := callsOf(e, bedrocktest.OpApplyGuardrail)
	if len(ag) != 1 {
		t.Fatalf("ApplyGuardrail calls: %d, want 1 (output only)", len(ag))
	}
	if src, texts := guardrailSource(t, ag[0]); src != "OUTPUT" || !strings.Contains(texts, bedrockTrigger) || !ag[0].SignatureOK {
		t.Errorf("ApplyGuardrail: source %q texts %q sig %v", src, texts, ag[0].SignatureOK)
	}
	r := e.audit.wait(t, 1)[0]
	if r.Decision != "deny" || r.Status != 403 || r.Rule != "guards.managed" || strings.Contains(r.Reason, bedrockPIIVal) {
		t.Errorf("record: decision %q status %d rule %q reason %q", r.Decision, r.Status, r.Rule, r.Reason)
	}
	got := map[string]string{}
	for _, f := range findingsOf(r, "managed") {
		if f.Phase != "output" || f.Detector != "bedrock" {
			t.Errorf("finding %+v: want phase output, detector bedrock", f)
		}
		got[f.Type] = f.Action
	}
	if got["BEDROCK_GUARDRAIL"] != "block" || got["TOPIC:Investments"] != "block" || got["PII:EMAIL"] != "block" {
		t.Errorf("findings %+v", r.Findings)
	}
}

func TestBedrockGuardRecordsAnswer(t *testing.T) {
	e := bedrockOutputEnv(t, "action: record", bedrockReply)
	out, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String(haiku), Messages: userMsg("any advice?")})
	if err != nil {
		t.Fatalf("Converse under record: %v", err)
	}
	if got := converseText(t, out); got != bedrockReply {
		t.Errorf("answer %q, want it unchanged", got)
	}
	r := e.audit.wait(t, 1)[0]
	if r.Decision != "allow" || r.Status != 200 {
		t.Errorf("record: decision %q status %d", r.Decision, r.Status)
	}
	found := false
	for _, f := range findingsOf(r, "managed") {
		if f.Type == "BEDROCK_GUARDRAIL" && f.Action == "record" && f.Detector == "bedrock" && f.Phase == "output" && f.Count == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("findings %+v: want BEDROCK_GUARDRAIL recorded in phase output", r.Findings)
	}
}

func TestBedrockGuardAnswerOnError(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		allow      bool
	}{
		{"block", "on_error: block", false},
		{"allow", "on_error: allow", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := bedrockOutputEnv(t, tc.opts, bedrockReply)
			e.emu.Inject(bedrocktest.Fault{Op: bedrocktest.OpApplyGuardrail, Status: 500})
			_, err := e.client(t, nil).Converse(context.Background(), &bedrockruntime.ConverseInput{
				ModelId: aws.String(haiku), Messages: userMsg("any advice?")})
			r := e.audit.wait(t, 1)[0]
			var errFinding *audit.Finding
			for _, f := range findingsOf(r, "managed") {
				if f.Type == "BEDROCK_GUARDRAIL_ERROR" {
					errFinding = &f
				}
			}
			if errFinding == nil || errFinding.Phase != "output" {
				t.Fatalf("findings %+v: want BEDROCK_GUARDRAIL_ERROR in phase output", r.Findings)
			}
			if tc.allow {
				if err != nil || errFinding.Action != "allow" || r.Status != 200 {
					t.Errorf("Converse with on_error allow: %v, finding %+v, status %d", err, *errFinding, r.Status)
				}
				return
			}
			var ade *types.AccessDeniedException
			if !errors.As(err, &ade) {
				t.Fatalf("Converse: %v, want AccessDeniedException", err)
			}
			msg := ade.ErrorMessage()
			if !strings.Contains(msg, "guard managed") || !strings.Contains(msg, "guardrail abc123 (version DRAFT) could not be applied") {
				t.Errorf("message %q", msg)
			}
			if errFinding.Action != "block" || r.Status != 403 || r.Rule != "guards.managed" {
				t.Errorf("finding %+v, status %d, rule %q", *errFinding, r.Status, r.Rule)
			}
		})
	}
}

// A streamed answer is not sent to ApplyGuardrail (apps attach the
// guardrail with apps[].bedrock_guardrail for streams).
func TestBedrockGuardSkipsStreams(t *testing.T) {
	e := bedrockOutputEnv(t, "action: block", bedrockReply)
	out, err := e.client(t, nil).ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
		ModelId: aws.String(haiku), Messages: userMsg("any advice?")})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	st := out.GetStream()
	var text strings.Builder
	for ev := range st.Events() {
		if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
			if tx, ok := d.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
				text.WriteString(tx.Value)
			}
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	_ = st.Close()
	if text.String() != bedrockReply {
		t.Errorf("streamed %q, want %q", text.String(), bedrockReply)
	}
	e.audit.wait(t, 1)
	if n := len(callsOf(e, bedrocktest.OpApplyGuardrail)); n != 0 {
		t.Errorf("ApplyGuardrail calls: %d, want none for a stream", n)
	}
}
