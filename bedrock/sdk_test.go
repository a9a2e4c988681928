package bedrock_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/warden-egress/warden/bedrock"
)

// sdkClient is a real bedrockruntime client pointed at a local server.
func sdkClient(t *testing.T, h http.HandlerFunc) *bedrockruntime.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return bedrockruntime.New(bedrockruntime.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

const appProfile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"

// TestSDKStreamException: an exception frame built by EncodeException is
// decoded by the real SDK into the typed error, and the SDK's encoded path
// routes to the model the caller named.
func TestSDKStreamException(t *testing.T) {
	var route bedrock.Route
	var routeErr error
	client := sdkClient(t, func(w http.ResponseWriter, r *http.Request) {
		route, routeErr = bedrock.ParseRoute(r.Method, r.URL.EscapedPath(), r.URL.RawQuery)
		w.Header().Set("Content-Type", bedrock.ContentTypeEventStream)
		w.WriteHeader(200)
		w.Write(bedrock.EncodeEvent("messageStart", []byte(`{"role":"assistant"}`)))
		w.Write(bedrock.EncodeException(bedrock.Throttling("slow down")))
	})
	out, err := client.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
		ModelId: aws.String(appProfile),
		Messages: []types.Message{{Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}},
	})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	stream := out.GetStream()
	defer stream.Close()
	var events []types.ConverseStreamOutput
	for ev := range stream.Events() {
		events = append(events, ev)
	}
	if len(events) != 1 {
		t.Errorf("got %d events, want messageStart only", len(events))
	} else if ms, ok := events[0].(*types.ConverseStreamOutputMemberMessageStart); !ok || ms.Value.Role != types.ConversationRoleAssistant {
		t.Errorf("first event %#v", events[0])
	}
	var te *types.ThrottlingException
	if !errors.As(stream.Err(), &te) || te.ErrorMessage() != "slow down" {
		t.Fatalf("stream.Err() = %T %v, want *types.ThrottlingException", stream.Err(), stream.Err())
	}

	if routeErr != nil {
		t.Fatalf("ParseRoute of the SDK's request: %v", routeErr)
	}
	if route.Op != bedrock.OpConverseStream || route.RawModel != appProfile || route.Model.Kind != bedrock.KindApplicationInferenceProfile {
		t.Errorf("route %+v", route)
	}
}

// TestSDKErrorResponse: an error response built from Body and Type is
// decoded by the real SDK into the typed error.
func TestSDKErrorResponse(t *testing.T) {
	deny := bedrock.AccessDenied("model %q is not allowed for app %q", "anthropic.claude-v2", "payments")
	client := sdkClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(bedrock.HeaderErrorType, deny.Type)
		w.Header().Set("Content-Type", bedrock.ContentTypeJSON)
		w.WriteHeader(deny.Status)
		w.Write(deny.Body())
	})
	_, err := client.Converse(context.Background(), &bedrockruntime.ConverseInput{
		ModelId: aws.String("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
		Messages: []types.Message{{Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}},
	})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) || ade.ErrorMessage() != deny.Message {
		t.Fatalf("err = %T %v, want *types.AccessDeniedException", err, err)
	}

	// And the other way: ParseError reads what an upstream sends.
	got := bedrock.ParseError(403, "AccessDeniedException:http://internal.amazon.com/", deny.Body())
	if got.Type != deny.Type || got.Message != deny.Message {
		t.Errorf("ParseError = %+v", got)
	}
	if !strings.Contains(deny.Message, `"payments"`) {
		t.Errorf("message %q", deny.Message)
	}
}
