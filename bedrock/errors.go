package bedrock

// APIError is an AWS-shaped error: an HTTP status, an X-Amzn-ErrorType and a message.
type APIError struct {
	Status  int
	Type    string // e.g. "AccessDeniedException"
	Message string
}

func (e *APIError) Error() string { return e.Type + ": " + e.Message }

// Constructors for the error types Warden produces.
func AccessDenied(format string, args ...any) *APIError       { panic("TODO") }
func Validation(format string, args ...any) *APIError         { panic("TODO") }
func Throttling(format string, args ...any) *APIError         { panic("TODO") }
func InternalServer(format string, args ...any) *APIError     { panic("TODO") }
func ServiceUnavailable(format string, args ...any) *APIError { panic("TODO") }

// Body returns the JSON body `{"message":"..."}` for the error.
func (e *APIError) Body() []byte { panic("TODO") }

// ParseError reads an AWS error response (X-Amzn-ErrorType header, else body
// __type, else code, cut at the first ':'; message from body "message" or "Message").
func ParseError(status int, errorTypeHeader string, body []byte) *APIError { panic("TODO") }

// ExceptionType returns the lowerCamel :exception-type used in event streams
// for this error ("throttlingException", …).
func (e *APIError) ExceptionType() string { panic("TODO") }
