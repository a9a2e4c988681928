package bedrock

import (
	"encoding/json"
	"testing"
)

func TestErrorBodyFor(t *testing.T) {
	e := AccessDenied("warden: app a may not call %s", "x")
	cases := []struct {
		op   Operation
		want string
	}{
		{OpConverse, `{"message":"warden: app a may not call x"}`},
		{OpOpenAIChatCompletions, `{"error":{"code":"AccessDeniedException","message":"warden: app a may not call x","param":null,"type":"permission_denied_error"}}`},
		{OpMantleResponses, `{"error":{"code":"AccessDeniedException","message":"warden: app a may not call x","param":null,"type":"permission_denied_error"}}`},
		{OpMantleMessages, `{"error":{"message":"warden: app a may not call x","type":"permission_error"},"type":"error"}`},
		{OpAnthropicSessions, `{"error":{"message":"warden: app a may not call x","type":"permission_error"},"type":"error"}`},
	}
	for _, tc := range cases {
		got := e.BodyFor(tc.op.ErrorShape())
		if string(got) != tc.want || !json.Valid(got) {
			t.Errorf("%s: body %s, want %s", tc.op, got, tc.want)
		}
	}
}

func TestPathErrorShape(t *testing.T) {
	cases := []struct {
		svc  Service
		path string
		want ErrorAPI
	}{
		{ServiceRuntime, "/model/x/converse", ErrorAWS},
		{ServiceRuntime, "/openai/v1/models", ErrorOpenAI},
		{ServiceRuntime, "/anthropic/v1/messages", ErrorAnthropic},
		{ServiceRuntime, "/bedrock-mantle/v1/models", ErrorOpenAI},
		{ServiceRuntime, "/bedrock-mantle/anthropic/v1/models", ErrorAnthropic},
		{ServiceRuntime, "/bedrock-mantlex/v1/models", ErrorAWS},
		{ServiceRuntime, "/v1/agents/x/y", ErrorAnthropic},
		{ServiceMantle, "/v1/files", ErrorOpenAI},
		{ServiceMantle, "/anthropic/v1/models", ErrorAnthropic},
		{ServiceBedrock, "/foundation-models", ErrorAnthropic},
	}
	for _, tc := range cases {
		if got := PathErrorShape(tc.svc, tc.path); got != tc.want {
			t.Errorf("PathErrorShape(%s, %q) = %d, want %d", tc.svc, tc.path, got, tc.want)
		}
	}
}
