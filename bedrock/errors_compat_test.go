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
