package proxy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
)

// Application-inference-profile ARNs and system profile ids route and match
// the same whether the client percent-encodes ':' and '/' (the SDKs) or sends
// them raw (hand-written clients); the upstream always sees the SDK encoding.
func TestProfileIDsEncodedAndRaw(t *testing.T) {
	e := startEnv(t)
	c := e.client(t, nil)
	for _, model := range []string{appProfile, usHaiku} {
		if _, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("hi")}); err != nil {
			t.Fatalf("SDK Converse %s: %v", model, err)
		}
		if err := rawCall(t, e.endpoint, "POST", "/model/"+model+"/converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`); err != nil {
			t.Fatalf("raw Converse %s: %v", model, err)
		}
	}
	calls := e.emu.Calls()
	if len(calls) != 4 {
		t.Fatalf("emulator saw %d calls, want 4", len(calls))
	}
	for i, call := range calls {
		want := []string{appProfile, appProfile, usHaiku, usHaiku}[i]
		if call.ModelID != want || !call.SignatureOK {
			t.Errorf("call %d: model %q signatureOK %v (%s), want %q", i, call.ModelID, call.SignatureOK, call.AuthError, want)
		}
		if strings.Contains(strings.TrimPrefix(call.EscapedPath, "/model/"), ":") {
			t.Errorf("call %d: upstream path %q is not in the SDK encoding", i, call.EscapedPath)
		}
	}
	recs := e.audit.wait(t, 4)
	if recs[0].ModelCanonical != appProfile || recs[2].ModelCanonical != usHaiku {
		t.Errorf("canonical ids: %q, %q", recs[0].ModelCanonical, recs[2].ModelCanonical)
	}
}

// Path tricks are rejected by Warden and never reach the upstream.
func TestPathTricksRejected(t *testing.T) {
	e := startEnv(t)
	for _, p := range []string{
		"/model/" + haiku + "/../converse",
		"/model//converse",
		"/model/anthropic.claude-3-5-haiku-20241022-v1%253A0/converse",
		"/model/" + haiku + "%00/converse",
		"/model/" + haiku + ";x/converse",
		"/model/" + haiku + "/converse/extra",
		"/model/" + haiku + "/unknown-op",
		"/admin",
	} {
		err := rawCall(t, e.endpoint, "POST", p, `{"messages":[]}`)
		if err == nil || !(strings.Contains(err.Error(), "ValidationException") || strings.Contains(err.Error(), "AccessDeniedException")) {
			t.Errorf("%s: want a typed rejection, got %v", p, err)
		}
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("upstream saw %d calls", n)
	}
}

// The client gets the first stream event while the upstream still holds the
// rest: the emulator waits on a gate that the test opens only after the first
// event arrived through Warden.
func TestStreamRelayedEventByEvent(t *testing.T) {
	for _, op := range []string{"ConverseStream", "InvokeModelWithResponseStream"} {
		t.Run(op, func(t *testing.T) {
			e := startEnv(t)
			gate := make(chan struct{})
			e.emu.Inject(faultGate(op, gate))
			c := e.client(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var events <-chan any
			var errf func() error
			if op == "ConverseStream" {
				out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg("hi")})
				if err != nil {
					t.Fatal(err)
				}
				events, errf = adapt(out.GetStream().Events()), out.GetStream().Err
			} else {
				out, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(haiku),
					Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)})
				if err != nil {
					t.Fatal(err)
				}
				events, errf = adapt(out.GetStream().Events()), out.GetStream().Err
			}
			select {
			case _, ok := <-events:
				if !ok {
					t.Fatalf("stream ended before the first event: %v", errf())
				}
			case <-ctx.Done():
				t.Fatal("first event never arrived while the upstream held the rest: Warden buffers streams")
			}
			close(gate)
			n := 1
			for range events {
				n++
			}
			if err := errf(); err != nil || n < 3 {
				t.Fatalf("after the gate: %d events, err %v", n, err)
			}
		})
	}
}

func adapt[T any](in <-chan T) <-chan any {
	out := make(chan any)
	go func() {
		defer close(out)
		for v := range in {
			out <- v
		}
	}()
	return out
}

// A botocore-style signed request (raw ':' in the path, minimal signed
// headers) to Warden works too: Warden ignores the caller's signature and
// re-signs.
func TestRawColonClientSignature(t *testing.T) {
	e := startEnv(t)
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	req, _ := http.NewRequest("POST", e.endpoint+"/model/"+haiku+"/converse", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: appKey, SecretAccessKey: appSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
