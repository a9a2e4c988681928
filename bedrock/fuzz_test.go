package bedrock

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/smithy-go/eventstream"
)

func mustAPIError(t *testing.T, err error, what string) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: error %T %v is not *APIError", what, err, err)
	}
	if ae.Type != TypeValidation && ae.Type != TypeAccessDenied {
		t.Fatalf("%s: unexpected type %s", what, ae.Type)
	}
	return ae
}

func FuzzParseRoute(f *testing.F) {
	for _, m := range modelSamples {
		f.Add("POST", "/model/"+m+"/invoke", "")
		f.Add("POST", "/model/"+sdkEscape(m)+"/converse-stream", "")
	}
	f.Add("POST", "/guardrail/abc123/version/1/apply", "")
	f.Add("POST", "/guardrail/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aguardrail%2Fabc/version/DRAFT/apply", "")
	f.Add("POST", "/guardrail-checks/invoke", "")
	f.Add("POST", "/async-invoke", "")
	f.Add("GET", "/async-invoke", "statusEquals=Completed&maxResults=5")
	f.Add("GET", "/async-invoke/arn:aws:bedrock:us-east-1:123456789012:async-invoke/abc123def456", "")
	f.Add("GET", "/model/a.b/converse", "")
	f.Add("POST", "/model/a.b%2F..%2Fc/invoke", "")
	f.Add("POST", "/model/a.b%252F/invoke", "")
	f.Add("POST", "/openai/v1/chat/completions", "")
	f.Add("POST", "/openai/v1/responses", "")
	f.Add("GET", "/openai/v1/responses/resp_1", "")
	f.Add("POST", "/anthropic/v1/messages", "")
	f.Fuzz(func(t *testing.T, method, path, query string) {
		r, err := ParseRoute(method, path, query)
		if err != nil {
			ae := mustAPIError(t, err, "ParseRoute")
			if !utf8.ValidString(ae.Message) {
				t.Fatalf("message is not valid UTF-8: %q", ae.Message)
			}
			if r != (Route{}) {
				t.Fatalf("route %+v with error", r)
			}
			return
		}
		if r.Op == "" {
			t.Fatal("success without an operation")
		}
		if r.OnService() != ServiceRuntime || r.Path != "" {
			t.Fatalf("the runtime's router returned %+v", r)
		}
		for _, v := range []string{r.RawModel, r.GuardrailID, r.GuardrailVersion, r.InvocationARN} {
			if hasControl(v) || strings.ContainsAny(v, "%?#;\\ ") {
				t.Fatalf("decoded field %q has a forbidden character", v)
			}
		}
		if method != "POST" && method != "GET" {
			t.Fatalf("method %q accepted", method)
		}
		if r.RawModel == "" {
			return
		}
		m, err := ParseModelID(r.RawModel)
		if err != nil || m != r.Model {
			t.Fatalf("RawModel %q: ParseModelID = %+v, %v; route has %+v", r.RawModel, m, err, r.Model)
		}
		// SDK-style encoding and raw form route identically.
		suffix := path[strings.LastIndexByte(path, '/'):]
		for _, p := range []string{"/model/" + sdkEscape(r.RawModel) + suffix, "/model/" + r.RawModel + suffix} {
			r2, err := ParseRoute(method, p, query)
			if err != nil || r2 != r {
				t.Fatalf("re-encoded %q routes to %+v, %v; want %+v", p, r2, err, r)
			}
		}
	})
}

func FuzzParseModelID(f *testing.F) {
	for _, m := range modelSamples {
		f.Add(m)
	}
	f.Add("ca.amazon.nova-lite-v1:0")
	f.Add("arn:aws:bedrock:us-east-1:123456789012:custom-model/a.b/../abcdef123456")
	f.Add("arn:aws:bedrock:us-gov-west-1::foundation-model/a.b")
	f.Add("a.b:c:d:e")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseModelID(s)
		if err != nil {
			ae := mustAPIError(t, err, "ParseModelID")
			if ae.Type != TypeValidation {
				t.Fatalf("type %s", ae.Type)
			}
			return
		}
		if m.Raw != s || m.Kind == "" || m.Canonical == "" || m.Resource == "" {
			t.Fatalf("incomplete %+v", m)
		}
		for i := 0; i < len(s); i++ {
			if !pathByte(s[i]) {
				t.Fatalf("accepted byte %q in %q", s[i], s)
			}
		}
		if (m.Kind == KindFoundationModel || m.Kind == KindInferenceProfile) == m.Indirect() {
			t.Fatalf("Foundation %q for kind %s", m.Foundation, m.Kind)
		}
		if m.Scope != "" && m.Canonical != m.Scope+"."+m.Foundation {
			t.Fatalf("profile canonical %q", m.Canonical)
		}
		if m.Indirect() && m.Canonical != s {
			t.Fatalf("indirect canonical %q", m.Canonical)
		}
		// Canonical forms are fixed points.
		c, err := ParseModelID(m.Canonical)
		if err != nil || c.Canonical != m.Canonical || c.Kind != m.Kind || c.Foundation != m.Foundation {
			t.Fatalf("canonical %q reparses to %+v, %v", m.Canonical, c, err)
		}
		// Every model id routes, raw and encoded.
		for _, p := range []string{"/model/" + s + "/converse", "/model/" + sdkEscape(s) + "/converse"} {
			r, err := ParseRoute("POST", p, "")
			if err != nil || r.RawModel != s {
				t.Fatalf("%q: %+v, %v", p, r, err)
			}
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	f.Add(EncodeEvent("messageStart", []byte(`{"role":"assistant"}`)))
	f.Add(EncodeException(Throttling("slow down")))
	f.Add(append(EncodeEvent("chunk", []byte(`{"bytes":"e30="}`)), EncodeEvent("messageStop", nil)...))
	f.Add(frame([]byte{2, 't', 's', 8, 0, 0, 1, 0, 0, 0, 0, 0}, []byte("x")))
	f.Add(frame(append(strHeader("a", "b"), strHeader("a", "c")...), nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data))
		consumed := 0
		for {
			fm, err := fr.Next()
			if err != nil {
				if err == io.EOF && consumed != len(data) {
					t.Fatalf("io.EOF after %d of %d bytes", consumed, len(data))
				}
				return
			}
			if !bytes.Equal(fm.Raw, data[consumed:consumed+len(fm.Raw)]) {
				t.Fatal("Raw is not the input")
			}
			consumed += len(fm.Raw)
			again, err := EncodeMessage(fm.Message)
			if err != nil || !bytes.Equal(again, fm.Raw) {
				t.Fatalf("re-encoding differs (%v)", err)
			}
			// The SDK's decoder agrees with what was returned.
			sdk, err := eventstream.NewDecoder().Decode(bytes.NewReader(fm.Raw), nil)
			if err != nil || len(sdk.Headers) != len(fm.Message.Headers) || !bytes.Equal(sdk.Payload, fm.Message.Payload) {
				t.Fatalf("SDK decoder disagrees: %v", err)
			}
			for i, h := range sdk.Headers {
				if h.Name != fm.Message.Headers[i].Name || h.Value.String() != fm.Message.Headers[i].Value.String() {
					t.Fatalf("header %d: SDK %s=%s, reader %s=%s", i, h.Name, h.Value, fm.Message.Headers[i].Name, fm.Message.Headers[i].Value)
				}
			}
		}
	})
}

func FuzzAsyncInvokeModel(f *testing.F) {
	f.Add([]byte(`{"modelId":"amazon.nova-reel-v1:0","modelInput":{"taskType":"TEXT_VIDEO"},"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://b/p"}}}`))
	f.Add([]byte(`{"modelId":"a.b","modelId":"c.d"}`))
	f.Add([]byte(`{"MODELID":"a.b"}`))
	f.Add([]byte(`{"model\u0049d":"a.b"}`))
	f.Add([]byte(`{"modelId":"a.b"} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := AsyncInvokeModel(body)
		if err != nil {
			if ae := mustAPIError(t, err, "AsyncInvokeModel"); ae.Type != TypeValidation {
				t.Fatalf("type %s", ae.Type)
			}
			if m != "" {
				t.Fatalf("model %q with error", m)
			}
			return
		}
		if m == "" || !utf8.Valid(body) {
			t.Fatalf("accepted %q from %q", m, body)
		}
		// Whatever encoding/json takes for "modelId" must agree.
		var v struct {
			ModelID *string `json:"modelId"`
		}
		if err := jsonUnmarshal(body, &v); err != nil || v.ModelID == nil || *v.ModelID != m {
			t.Fatalf("encoding/json disagrees on %q: %v", body, err)
		}
	})
}

func FuzzParseError(f *testing.F) {
	f.Add(403, "AccessDeniedException", []byte(`{"message":"no"}`))
	f.Add(400, "", []byte(`{"__type":"com.amazon.coral.validate#ValidationException","message":"x"}`))
	f.Add(404, "", []byte(`{"code":"ResourceNotFoundException:x","Message":"gone"}`))
	f.Add(502, "", []byte(`<html>`))
	f.Add(500, "a#b:c", []byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, status int, header string, body []byte) {
		e := ParseError(status, header, body)
		if e == nil || e.Status != status || !validErrorType(e.Type) && e.Type != TypeUnknown {
			t.Fatalf("ParseError = %+v", e)
		}
		if !utf8.ValidString(e.Message) || len(e.Message) > maxParsedMessage {
			t.Fatalf("message %q", e.Message)
		}
		// What Warden parsed, it can re-emit both ways.
		back := ParseError(e.Status, e.Type, e.Body())
		if *back != *e {
			t.Fatalf("round trip %+v -> %+v", e, back)
		}
		fm, err := NewFrameReader(bytes.NewReader(EncodeException(e))).Next()
		if err != nil || fm.ExceptionType() != e.ExceptionType() {
			t.Fatalf("exception frame: %v", err)
		}
	})
}
