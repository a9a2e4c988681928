package proxy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
)

// Warden writes the caller's app and identity into Bedrock's request
// metadata, overwriting whatever the caller claimed, so Bedrock's own
// invocation logs name the app.
func TestRequestMetadataStamped(t *testing.T) {
	e := startEnv(t)
	c := e.client(t, nil)
	ctx := context.Background()
	forged := map[string]string{"warden_app": "payroll", "Warden_Identity_Source": "keys", "team": "search"}
	if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{
		ModelId: aws.String(haiku), Messages: userMsg("hi"), RequestMetadata: forged,
	}); err != nil {
		t.Fatalf("Converse: %v", err)
	}
	if _, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
		ModelId:         aws.String(haiku),
		ContentType:     aws.String("application/json"),
		Body:            []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`),
		RequestMetadata: aws.String(`{"warden_app":"payroll","team":"search"}`),
	}); err != nil {
		t.Fatalf("InvokeModel: %v", err)
	}
	// Without caller metadata the stamp is still written.
	if _, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(haiku),
		Body:    []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`),
	}); err != nil {
		t.Fatalf("InvokeModel without metadata: %v", err)
	}
	recs := e.audit.wait(t, 3)
	calls := e.emu.Calls()
	if len(calls) != 3 {
		t.Fatalf("emulator saw %d calls", len(calls))
	}
	check := func(name string, raw []byte, reqID string, wantTeam bool) {
		t.Helper()
		var meta map[string]string
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatalf("%s: metadata %q: %v", name, raw, err)
		}
		want := map[string]string{"warden_app": "chatbot-prod", "warden_identity_source": "static", "warden_request_id": reqID}
		if wantTeam {
			want["team"] = "search"
		}
		if len(meta) != len(want) {
			t.Errorf("%s: metadata %v, want %v", name, meta, want)
		}
		for k, v := range want {
			if meta[k] != v {
				t.Errorf("%s: metadata[%s] = %q, want %q (all: %v)", name, k, meta[k], v, meta)
			}
		}
	}
	var body struct {
		RequestMetadata json.RawMessage `json:"requestMetadata"`
		Messages        []any           `json:"messages"`
	}
	if err := json.Unmarshal(calls[0].Body, &body); err != nil || len(body.Messages) != 1 {
		t.Fatalf("forwarded Converse body %q: %v", calls[0].Body, err)
	}
	check("Converse body", body.RequestMetadata, recs[0].RequestID, true)
	check("InvokeModel header", []byte(calls[1].Header.Get("X-Amzn-Bedrock-Request-Metadata")), recs[1].RequestID, true)
	check("InvokeModel header, none sent", []byte(calls[2].Header.Get("X-Amzn-Bedrock-Request-Metadata")), recs[2].RequestID, false)
	if string(calls[1].Body) != `{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}` {
		t.Errorf("InvokeModel body changed: %s", calls[1].Body)
	}
	for i, call := range calls {
		if !call.SignatureOK {
			t.Errorf("call %d: signature not valid after the rewrite: %s", i, call.AuthError)
		}
	}
}

// A Converse body repeating a top-level key could shadow the stamp for a
// lenient parser: it is refused and nothing is forwarded.
func TestRequestMetadataDuplicateKeyRefused(t *testing.T) {
	e := startEnv(t)
	err := rawCall(t, e.endpoint, "POST", "/model/"+haiku+"/converse",
		`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"requestMetadata":{},"requestMetadata":{"warden_app":"payroll"}}`)
	if err == nil || !strings.Contains(err.Error(), "ValidationException") || !strings.Contains(err.Error(), "repeats the top-level key") {
		t.Fatalf("duplicate key: %v", err)
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("emulator saw %d calls", n)
	}
	if r := e.audit.wait(t, 1)[0]; r.Decision != "deny" || r.Rule != "request-metadata" || r.Status != 400 {
		t.Errorf("record: %+v", r)
	}
}
