package bedrock

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Wire names shared by error responses and event streams.
const (
	// HeaderErrorType carries the exception name; the SDKs read it before the body.
	HeaderErrorType = "X-Amzn-ErrorType"
	// ContentTypeJSON is the Content-Type of error bodies and exception payloads.
	ContentTypeJSON = "application/json"
	// ContentTypeEventStream is the Content-Type of streaming responses.
	ContentTypeEventStream = "application/vnd.amazon.eventstream"
)

// Exception names from the bedrock-runtime model (reference §5).
const (
	TypeAccessDenied         = "AccessDeniedException"
	TypeValidation           = "ValidationException"
	TypeServiceQuotaExceeded = "ServiceQuotaExceededException"
	TypeResourceNotFound     = "ResourceNotFoundException"
	TypeModelTimeout         = "ModelTimeoutException"
	TypeThrottling           = "ThrottlingException"
	TypeModelNotReady        = "ModelNotReadyException"
	TypeModelError           = "ModelErrorException"
	TypeModelStreamError     = "ModelStreamErrorException"
	TypeInternalServer       = "InternalServerException"
	TypeServiceUnavailable   = "ServiceUnavailableException"
	// TypeUnknown is what ParseError reports when a response names no type.
	TypeUnknown = "UnknownError"
)

// APIError is an AWS-shaped error: an HTTP status, an X-Amzn-ErrorType and a message.
type APIError struct {
	Status  int
	Type    string // e.g. "AccessDeniedException"
	Message string
}

func (e *APIError) Error() string { return e.Type + ": " + e.Message }

// New builds an APIError of any status and type; prefer the named constructors.
func New(status int, typ, format string, args ...any) *APIError {
	return &APIError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// Constructors for the error types Warden produces. A policy or guardrail deny
// must be AccessDenied (403) or Validation (400): the SDKs retry 5xx and
// ThrottlingException, so a deny with those would be retried forever.
func AccessDenied(format string, args ...any) *APIError {
	return &APIError{Status: 403, Type: TypeAccessDenied, Message: fmt.Sprintf(format, args...)}
}

func Validation(format string, args ...any) *APIError {
	return &APIError{Status: 400, Type: TypeValidation, Message: fmt.Sprintf(format, args...)}
}

func Throttling(format string, args ...any) *APIError {
	return &APIError{Status: 429, Type: TypeThrottling, Message: fmt.Sprintf(format, args...)}
}

func InternalServer(format string, args ...any) *APIError {
	return &APIError{Status: 500, Type: TypeInternalServer, Message: fmt.Sprintf(format, args...)}
}

func ServiceUnavailable(format string, args ...any) *APIError {
	return &APIError{Status: 503, Type: TypeServiceUnavailable, Message: fmt.Sprintf(format, args...)}
}

func ServiceQuotaExceeded(format string, args ...any) *APIError {
	return &APIError{Status: 400, Type: TypeServiceQuotaExceeded, Message: fmt.Sprintf(format, args...)}
}

func ResourceNotFound(format string, args ...any) *APIError {
	return &APIError{Status: 404, Type: TypeResourceNotFound, Message: fmt.Sprintf(format, args...)}
}

func ModelTimeout(format string, args ...any) *APIError {
	return &APIError{Status: 408, Type: TypeModelTimeout, Message: fmt.Sprintf(format, args...)}
}

func ModelNotReady(format string, args ...any) *APIError {
	return &APIError{Status: 429, Type: TypeModelNotReady, Message: fmt.Sprintf(format, args...)}
}

func ModelError(format string, args ...any) *APIError {
	return &APIError{Status: 424, Type: TypeModelError, Message: fmt.Sprintf(format, args...)}
}

// ModelStreamError is only meaningful as an exception frame inside a stream.
func ModelStreamError(format string, args ...any) *APIError {
	return &APIError{Status: 424, Type: TypeModelStreamError, Message: fmt.Sprintf(format, args...)}
}

// Retryable reports whether the AWS SDKs retry this error by default
// (reference §5), which a deny must never be.
func (e *APIError) Retryable() bool {
	switch e.Status {
	case 500, 502, 503, 504:
		return true
	}
	return e.Type == TypeThrottling
}

type errorBody struct {
	Message string `json:"message"`
}

// Body returns the JSON body `{"message":"..."}` for the error.
func (e *APIError) Body() []byte {
	b, err := json.Marshal(errorBody{Message: e.Message})
	if err != nil { // cannot happen for a struct of one string
		return []byte(`{"message":""}`)
	}
	return b
}

// maxParsedMessage bounds what ParseError keeps from an upstream body, since
// the result ends up in logs and audit records.
const maxParsedMessage = 4096

// ParseError reads an AWS error response (X-Amzn-ErrorType header, else body
// __type, else code, cut at the first ':'; message from body "message" or "Message").
// A "namespace#" prefix on the type is dropped as the SDKs do. When no type is
// found the result has Type TypeUnknown; a body that is not JSON becomes the
// message (truncated), so nothing the upstream said is lost.
func ParseError(status int, errorTypeHeader string, body []byte) *APIError {
	var fields struct {
		Type     string `json:"__type"`
		Code     string `json:"code"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	jsonErr := json.Unmarshal(body, &fields)

	typ := strings.TrimSpace(errorTypeHeader)
	if typ == "" {
		typ = fields.Type
	}
	if typ == "" {
		typ = fields.Code
	}
	typ = sanitizeErrorType(typ)
	if !validErrorType(typ) {
		typ = TypeUnknown
	}

	msg := fields.Message
	if msg == "" {
		msg = fields.Message2
	}
	if jsonErr != nil && msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	return &APIError{Status: status, Type: typ, Message: truncateUTF8(msg, maxParsedMessage)}
}

// sanitizeErrorType mirrors the SDKs: cut at ':' then keep what follows '#'.
func sanitizeErrorType(s string) string {
	s, _, _ = strings.Cut(s, ":")
	if _, after, ok := strings.Cut(s, "#"); ok {
		s = after
	}
	return strings.TrimSpace(s)
}

// validErrorType bounds what an upstream may put in a type: it is echoed into
// headers, event-stream frames and logs.
func validErrorType(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isAlnum(c) || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// truncateUTF8 cuts s to at most n bytes (n ≥ 3) without splitting a rune and
// replaces invalid UTF-8, so the result is always valid to log or marshal.
func truncateUTF8(s string, n int) string {
	if len(s) > n {
		cut := n - len("…") // the result, ellipsis included, fits in n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// ExceptionType returns the lowerCamel :exception-type used in event streams
// for this error ("throttlingException", …).
func (e *APIError) ExceptionType() string {
	t := e.Type
	if t == "" {
		return ""
	}
	if c := t[0]; 'A' <= c && c <= 'Z' {
		return string(c+'a'-'A') + t[1:]
	}
	return t
}
