package bedrock

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConstructors(t *testing.T) {
	tests := []struct {
		e      *APIError
		status int
		typ    string
		lower  string
	}{
		{AccessDenied("no %s", "x"), 403, "AccessDeniedException", "accessDeniedException"},
		{Validation("bad"), 400, "ValidationException", "validationException"},
		{Throttling("slow"), 429, "ThrottlingException", "throttlingException"},
		{InternalServer("oops"), 500, "InternalServerException", "internalServerException"},
		{ServiceUnavailable("down"), 503, "ServiceUnavailableException", "serviceUnavailableException"},
		{ServiceQuotaExceeded("q"), 400, "ServiceQuotaExceededException", "serviceQuotaExceededException"},
		{ResourceNotFound("r"), 404, "ResourceNotFoundException", "resourceNotFoundException"},
		{ModelTimeout("t"), 408, "ModelTimeoutException", "modelTimeoutException"},
		{ModelNotReady("n"), 429, "ModelNotReadyException", "modelNotReadyException"},
		{ModelError("m"), 424, "ModelErrorException", "modelErrorException"},
		{ModelStreamError("s"), 424, "ModelStreamErrorException", "modelStreamErrorException"},
		{New(418, "TeapotException", "short and %s", "stout"), 418, "TeapotException", "teapotException"},
	}
	for _, tt := range tests {
		if tt.e.Status != tt.status || tt.e.Type != tt.typ || tt.e.ExceptionType() != tt.lower {
			t.Errorf("%+v: want %d %s %s, ExceptionType %s", tt.e, tt.status, tt.typ, tt.lower, tt.e.ExceptionType())
		}
		got := ParseError(tt.e.Status, tt.e.Type, tt.e.Body())
		if *got != *tt.e {
			t.Errorf("round trip %+v -> %+v", tt.e, got)
		}
	}
	if e := AccessDenied("no %s", "x"); e.Message != "no x" || e.Error() != "AccessDeniedException: no x" {
		t.Errorf("formatting: %+v %q", e, e.Error())
	}
	if AccessDenied("x").Retryable() || Validation("x").Retryable() || !Throttling("x").Retryable() || !InternalServer("x").Retryable() {
		t.Error("Retryable disagrees with reference §5")
	}
}

func TestBody(t *testing.T) {
	e := Validation("quote \" and <tag> and \n and \u2028 and \xff")
	var got map[string]string
	if err := json.Unmarshal(e.Body(), &got); err != nil {
		t.Fatalf("Body %s: %v", e.Body(), err)
	}
	if len(got) != 1 || !strings.HasPrefix(got["message"], "quote \" and <tag> and \n") {
		t.Errorf("Body decoded to %q", got)
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header string
		body   string
		typ    string
		msg    string
	}{
		{"header", 403, "AccessDeniedException", `{"message":"nope"}`, "AccessDeniedException", "nope"},
		{"header with suffix", 400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/", `{"message":"bad"}`, "ValidationException", "bad"},
		{"header beats body", 429, "ThrottlingException", `{"__type":"ValidationException","message":"slow"}`, "ThrottlingException", "slow"},
		{"__type", 400, "", `{"__type":"com.amazon.coral.validate#ValidationException","message":"x"}`, "ValidationException", "x"},
		{"code", 404, "", `{"code":"ResourceNotFoundException","Message":"gone"}`, "ResourceNotFoundException", "gone"},
		{"Message", 500, "", `{"__type":"InternalServerException","Message":"M"}`, "InternalServerException", "M"},
		{"message beats Message", 500, "", `{"__type":"InternalServerException","Message":"M","message":"m"}`, "InternalServerException", "m"},
		{"no type", 502, "", `{"message":"bad gateway"}`, TypeUnknown, "bad gateway"},
		{"not json", 502, "", "<html>Bad Gateway</html>", TypeUnknown, "<html>Bad Gateway</html>"},
		{"empty", 503, "", "", TypeUnknown, ""},
		{"hostile type", 400, "Evil\r\nX-Injected: 1", `{}`, TypeUnknown, ""},
		{"spaces", 400, "  ThrottlingException  ", `{}`, "ThrottlingException", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ParseError(tt.status, tt.header, []byte(tt.body))
			if e.Status != tt.status || e.Type != tt.typ || e.Message != tt.msg {
				t.Errorf("got %+v, want %d %s %q", e, tt.status, tt.typ, tt.msg)
			}
		})
	}
	long := ParseError(500, "", []byte(strings.Repeat("é", 5000)))
	if len(long.Message) > maxParsedMessage || !strings.HasSuffix(long.Message, "…") {
		t.Errorf("long body not truncated: %d bytes", len(long.Message))
	}
}
