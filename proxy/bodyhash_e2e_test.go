package proxy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
)

// TestLongPromptPayloadHash: long prompts (past the prompt digest's
// checkpoints) go through Warden with the real SDK plainly, with caller
// metadata (the stamp replaces a member inside the body), and under a mask
// (a rewrite that must not reuse the prompt's digest). The emulator checks
// every signature against sha256 of the body it got, so a payload hash
// continued from the wrong state fails the call; the record's prompt hash
// is the SDK's body's.
func TestLongPromptPayloadHash(t *testing.T) {
	long := strings.Repeat("The quarterly review covered capacity, incidents and the release train. ", 300<<10/72)
	for _, tc := range []struct {
		name, policy string
		meta         map[string]string
		text         string
	}{
		{"plain", basePolicy, nil, long},
		{"caller metadata", basePolicy, map[string]string{"team": "search"}, long},
		{"masked", basePolicy + "    guards: [mask]\nguards:\n  mask: {words: {list: [incidents], action: mask}, applies_to: [input]}\n", nil, long},
		{"masked near the end", basePolicy + "    guards: [mask]\nguards:\n  mask: {words: {list: [zebra], action: mask}, applies_to: [input]}\n", nil, long + " zebra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, withPolicy(tc.policy))
			tap := &wireTap{base: http.DefaultTransport}
			c := e.client(t, &http.Client{Transport: tap})
			ctx := context.Background()
			if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg(tc.text), RequestMetadata: tc.meta}); err != nil {
				t.Fatalf("Converse: %v", err)
			}
			sent, _ := tap.last()
			out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg(tc.text), RequestMetadata: tc.meta})
			if err != nil {
				t.Fatalf("ConverseStream: %v", err)
			}
			for range out.GetStream().Events() {
			}
			if err := out.GetStream().Err(); err != nil {
				t.Fatalf("ConverseStream: %v", err)
			}
			recs := e.audit.wait(t, 2)
			calls := e.emu.Calls()
			if len(calls) != 2 {
				t.Fatalf("emulator saw %d calls", len(calls))
			}
			for i, call := range calls {
				if !call.SignatureOK {
					t.Errorf("call %d: the signature does not verify: %s", i, call.AuthError)
				}
				if len(call.Body) < 300<<10 {
					t.Errorf("call %d: forwarded %d bytes", i, len(call.Body))
				}
				if strings.HasPrefix(tc.name, "masked") == strings.Contains(string(call.Body), "{DENIED_WORDS}") {
					continue
				}
				t.Errorf("call %d: masked %v", i, strings.Contains(string(call.Body), "{DENIED_WORDS}"))
			}
			if recs[0].PromptSHA256 != sent {
				t.Errorf("prompt_sha256 %s; the SDK sent %s", recs[0].PromptSHA256, sent)
			}
			fwd := sha256.Sum256(calls[0].Body)
			if recs[0].PromptSHA256 == hex.EncodeToString(fwd[:]) {
				t.Error("the prompt hash is the forwarded body's, not the app's")
			}
		})
	}
}
