package proxy_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
)

// captureLines keeps what Warden captures.
type captureLines struct {
	mu    sync.Mutex
	lines []string
}

func (c *captureLines) WriteLine(_ string, _ time.Time, obj []byte) {
	c.mu.Lock()
	c.lines = append(c.lines, string(obj))
	c.mu.Unlock()
}

// Payload capture is off unless audit.capture names the app; then the raw
// request and response go to the capture writer, never into the record.
func TestCaptureKeepsPayloadsOutOfRecords(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "captured", false: "not captured"}[on], func(t *testing.T) {
			policy := basePolicy
			if on {
				policy += "audit: {spool: {dir: none}, capture: {apps: [chatbot-prod], sinks: [{stdout: {}}], max_bytes: 100000}}\n"
			}
			capt := &captureLines{}
			emu := newEmulator(t)
			e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder(), capture: capt}
			p := strings.ReplaceAll(strings.ReplaceAll(policy, "${UPSTREAM}", emu.URL), "${CONTROL_PLANE}", e.cp.URL)
			e.start(t, p, "", nil)
			c := e.client(t, nil)
			ctx := context.Background()
			const secret = "the merger closes on friday"
			if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg(secret)}); err != nil {
				t.Fatal(err)
			}
			out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg(secret + " (streamed)")})
			if err != nil {
				t.Fatal(err)
			}
			for range out.GetStream().Events() {
			}
			if err := out.GetStream().Close(); err != nil {
				t.Fatal(err)
			}
			recs := e.audit.wait(t, 2)
			for _, r := range recs {
				if b, _ := json.Marshal(r); strings.Contains(string(b), "merger") {
					t.Errorf("a record holds the prompt: %s", b)
				}
			}
			capt.mu.Lock()
			defer capt.mu.Unlock()
			if !on {
				if len(capt.lines) != 0 {
					t.Fatalf("captured without audit.capture: %v", capt.lines)
				}
				return
			}
			if len(capt.lines) != 2 {
				t.Fatalf("%d capture lines, want 2", len(capt.lines))
			}
			for i, l := range capt.lines {
				var m struct {
					Kind      string `json:"kind"`
					RequestID string `json:"request_id"`
					App       string `json:"app"`
					Operation string `json:"operation"`
					Req       []byte `json:"request_b64"`
					Resp      []byte `json:"response_b64"`
				}
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatal(err)
				}
				if m.Kind != "capture" || m.App != "chatbot-prod" || m.RequestID != recs[i].RequestID || m.Operation != recs[i].Operation {
					t.Errorf("capture line %d: %s", i, l)
				}
				if !strings.Contains(string(m.Req), secret) {
					t.Errorf("capture %d request lacks the prompt: %q", i, m.Req)
				}
				if !strings.Contains(string(m.Resp), "Hello from the bedrocktest") { // a stream's first delta
					t.Errorf("capture %d response lacks the answer: %q", i, m.Resp)
				}
			}
		})
	}
}
