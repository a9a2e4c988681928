package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
)

// Every model-bearing operation, through Warden, over HTTP/1.1 and h2c, with
// the real Go SDK; the emulator checks each forwarded call carried a valid
// signature by Warden's key (the app's key would be refused).
func TestEndpointOperationsWithGoSDK(t *testing.T) {
	for _, proto := range []string{"http1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			e := startEnv(t)
			var hc *http.Client
			if proto == "h2c" {
				hc = h2cClient()
			}
			c := e.client(t, hc)
			ctx := context.Background()

			exerciseAllOps(t, ctx, c)

			calls := e.emu.Calls()
			wantOps := allOps
			if len(calls) != len(wantOps) {
				t.Fatalf("emulator saw %d calls, want %d", len(calls), len(wantOps))
			}
			for i, call := range calls {
				if call.Op != wantOps[i] || !call.SignatureOK || call.AccessKeyID != wardenKey {
					t.Errorf("call %d: op %s signatureOK %v key %s (%s), want %s signed by Warden", i, call.Op, call.SignatureOK, call.AccessKeyID, call.AuthError, wantOps[i])
				}
				if call.Header.Get("X-Amz-Security-Token") != "" {
					t.Errorf("call %d carried a session token Warden does not have", i)
				}
			}
			recs := e.audit.wait(t, len(wantOps))
			for i, r := range recs {
				if r.Decision != "allow" || r.App != "chatbot-prod" || r.Status != 200 || r.Operation != wantOps[i] ||
					r.UpstreamRequestID == "" || r.RequestID == "" || r.Latency <= 0 || r.Tags["app"] != "chatbot" {
					t.Errorf("audit record %d: %+v", i, r)
				}
			}
		})
	}
}

// Denials reach the SDK as typed AccessDeniedException naming app,
// operation and model; nothing reaches the upstream.
func TestEndpointDenials(t *testing.T) {
	const otherWorkload = `
version: 1
listen: {endpoint: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true}
identity: {sources: [static], static: {app: reporting, env: prod}}
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow: {models: ["*"], operations: ["*"]}
`
	cases := []struct {
		name, policy, op, model string
		want                    []string
	}{
		{"model outside allowlist", basePolicy, "Converse", "anthropic.claude-3-opus-20240229-v1:0",
			[]string{"app chatbot-prod", "Converse", "anthropic.claude-3-opus-20240229-v1:0", "allow.models"}},
		{"operation outside allowlist", basePolicy, "ApplyGuardrail", "",
			[]string{"app chatbot-prod", "ApplyGuardrail", "allow.operations"}},
		{"system profile of a denied model", basePolicy, "Converse", "us.anthropic.claude-3-opus-20240229-v1:0",
			[]string{"app chatbot-prod", "us.anthropic.claude-3-opus-20240229-v1:0"}},
		{"no app matches", otherWorkload, "Converse", haiku,
			[]string{"no app matches", "Converse", haiku}},
		{"bidirectional stream unsupported", basePolicy, "Bidi", haiku,
			[]string{"InvokeModelWithBidirectionalStream", "not supported"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, withPolicy(tc.policy))
			c := e.client(t, nil)
			var err error
			switch tc.op {
			case "Converse":
				_, err = c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(tc.model), Messages: userMsg("hi")})
			case "ApplyGuardrail":
				_, err = c.ApplyGuardrail(context.Background(), &bedrockruntime.ApplyGuardrailInput{
					GuardrailIdentifier: aws.String("gr1"), GuardrailVersion: aws.String("1"), Source: types.GuardrailContentSourceInput,
					Content: []types.GuardrailContentBlock{&types.GuardrailContentBlockMemberText{Value: types.GuardrailTextBlock{Text: aws.String("x")}}}})
			case "Bidi":
				err = rawCall(t, e.endpoint, "POST", "/model/"+haiku+"/invoke-with-bidirectional-stream", "{}")
			}
			var ade *types.AccessDeniedException
			var apiErr smithy.APIError
			switch {
			case errors.As(err, &ade):
				for _, w := range tc.want {
					if !strings.Contains(ade.ErrorMessage(), w) {
						t.Errorf("message %q does not mention %q", ade.ErrorMessage(), w)
					}
				}
			case tc.op == "Bidi" && errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDeniedException":
				for _, w := range tc.want {
					if !strings.Contains(apiErr.ErrorMessage(), w) {
						t.Errorf("message %q does not mention %q", apiErr.ErrorMessage(), w)
					}
				}
			default:
				t.Fatalf("want AccessDeniedException, got %T %v", err, err)
			}
			if n := len(e.emu.Calls()); n != 0 {
				t.Fatalf("upstream saw %d calls for a denied request", n)
			}
			recs := e.audit.wait(t, 1)
			if recs[0].Decision != "deny" || recs[0].Status != 403 || recs[0].Reason == "" {
				t.Errorf("audit record: %+v", recs[0])
			}
		})
	}
}

// rawCall sends a hand-written request and returns an smithy.APIError-like
// error for non-2xx answers.
func rawCall(t *testing.T, endpoint, method, path, body string) error {
	t.Helper()
	req, err := http.NewRequest(method, endpoint+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 {
		return nil
	}
	msg := string(b)
	if i := strings.Index(msg, `"message":"`); i >= 0 {
		msg = strings.TrimSuffix(msg[i+len(`"message":"`):], `"}`)
	}
	return &smithy.GenericAPIError{Code: resp.Header.Get("X-Amzn-ErrorType"), Message: fmt.Sprintf("%s (HTTP %d)", msg, resp.StatusCode)}
}
