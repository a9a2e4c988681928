package bedrock

import (
	"encoding/json"
	"strings"
)

// ErrorAPI names the error body shape a route's callers' SDKs parse.
type ErrorAPI int

const (
	ErrorAWS       ErrorAPI = iota // {"message":"…"} with X-Amzn-ErrorType
	ErrorOpenAI                    // {"error":{"message","type","param","code"}}
	ErrorAnthropic                 // {"type":"error","error":{"type","message"}}
)

// ErrorShape returns the error body shape the operation's clients expect:
// the OpenAI SDKs raise their typed errors from OpenAI's shape, Anthropic's
// from Anthropic's; the AWS SDKs read AWS's.
func (o Operation) ErrorShape() ErrorAPI {
	switch o {
	case OpOpenAIChatCompletions, OpOpenAIResponses, OpMantleChatCompletions, OpMantleResponses:
		return ErrorOpenAI
	case OpMantleMessages, OpAnthropicAgents, OpAnthropicSessions, OpAnthropicMemoryStores:
		return ErrorAnthropic
	}
	return ErrorAWS
}

// BodyFor returns the error's body in the given shape. The AWS error type
// travels as OpenAI's "code" (so a client can tell an AccessDeniedException
// from a ValidationException); Anthropic's type is the one its SDKs map the
// status to.
func (e *APIError) BodyFor(api ErrorAPI) []byte {
	var v any
	switch api {
	case ErrorOpenAI:
		v = map[string]any{"error": map[string]any{"message": e.Message, "type": openAIErrorType(e.Status), "param": nil, "code": e.Type}}
	case ErrorAnthropic:
		v = map[string]any{"type": "error", "error": map[string]any{"type": anthropicErrorType(e.Status), "message": e.Message}}
	default:
		return e.Body()
	}
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for maps of strings
		return e.Body()
	}
	return b
}

func openAIErrorType(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_denied_error"
	case status == 404:
		return "not_found_error"
	case status == 429:
		return "rate_limit_exceeded"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func anthropicErrorType(status int) string {
	switch {
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 413:
		return "request_too_large"
	case status == 429:
		return "rate_limit_error"
	case status == 503, status == 529:
		return "overloaded_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

// SSEEvent returns the error as the server-sent event that ends a stream
// of the given API with an error its SDK raises: Anthropic's "error" event
// ({"type":"error","error":{type,message}}); for OpenAI's, an "error" event
// whose data is both Responses' error event (type, code, message, param)
// and, under "error", the object the OpenAI SDKs raise from any stream.
func (e *APIError) SSEEvent(api ErrorAPI) []byte {
	var v any
	switch api {
	case ErrorAnthropic:
		v = map[string]any{"type": "error", "error": map[string]any{"type": anthropicErrorType(e.Status), "message": e.Message}}
	default:
		v = map[string]any{"type": "error", "code": e.Type, "message": e.Message, "param": nil,
			"error": map[string]any{"message": e.Message, "type": openAIErrorType(e.Status), "param": nil, "code": e.Type}}
	}
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"type":"error"}`)
	}
	out := append([]byte("event: error\ndata: "), b...)
	return append(out, "\n\n"...)
}

// PathErrorShape is the error shape for a request Warden could not
// classify, judged by its service (ServiceRuntime for the endpoint
// listener) and path: the OpenAI SDKs' under /openai/ and on bedrock-mantle
// (the endpoint's /bedrock-mantle/ prefix included), Anthropic's under
// /anthropic/ there and on the bedrock host, AWS's elsewhere.
func PathErrorShape(svc Service, escapedPath string) ErrorAPI {
	p := escapedPath
	if svc == ServiceRuntime {
		if rest, ok := strings.CutPrefix(p, EndpointMantlePrefix+"/"); ok {
			svc, p = ServiceMantle, "/"+rest
		} else if anthropicBedrockOnly(p) {
			return ErrorAnthropic
		}
	}
	switch {
	case svc == ServiceBedrock, strings.HasPrefix(p, "/anthropic/"):
		return ErrorAnthropic
	case svc == ServiceMantle, strings.HasPrefix(p, "/openai/"):
		return ErrorOpenAI
	}
	return ErrorAWS
}
