package sigv4

import (
	"errors"
	"net/http"
)

// Sentinel kinds. Every error returned by Verify is an *Error whose Kind is
// one of these, so callers can use errors.Is(err, sigv4.ErrSignatureMismatch)
// or read Code/Status/Message to answer with the shape AWS itself uses.
var (
	// ErrMissingAuth: no Authorization header at all.
	ErrMissingAuth = errors.New("sigv4: missing authentication")
	// ErrMalformed: an Authorization header that cannot be parsed, a missing
	// date, a required header not signed, an unsupported algorithm.
	ErrMalformed = errors.New("sigv4: incomplete or malformed signature")
	// ErrUnknownKey: the access key id is not known to the SecretLookup.
	ErrUnknownKey = errors.New("sigv4: unrecognized access key")
	// ErrSignatureMismatch: the recomputed signature differs.
	ErrSignatureMismatch = errors.New("sigv4: signature mismatch")
	// ErrExpired: the request time is outside Now ± MaxSkew.
	ErrExpired = errors.New("sigv4: signature expired or not yet current")
	// ErrScope: the credential scope names another date, region or service.
	ErrScope = errors.New("sigv4: credential scope mismatch")
	// ErrBodyHash: X-Amz-Content-Sha256 does not match the body.
	ErrBodyHash = errors.New("sigv4: payload hash mismatch")
	// ErrUnsignedPayload: UNSIGNED-PAYLOAD / STREAMING-* was used but
	// Options.AllowUnsignedPayload is false.
	ErrUnsignedPayload = errors.New("sigv4: unsigned payload not allowed")
)

// AWS error codes, as sent in X-Amzn-ErrorType by restJson services.
const (
	CodeMissingAuthenticationToken = "MissingAuthenticationTokenException"
	CodeIncompleteSignature        = "IncompleteSignatureException"
	CodeUnrecognizedClient         = "UnrecognizedClientException"
	CodeInvalidSignature           = "InvalidSignatureException"
)

// Messages AWS sends for the common cases.
const (
	MsgMissingAuthenticationToken = "Missing Authentication Token"
	MsgUnrecognizedClient         = "The security token included in the request is invalid."
	MsgInvalidSignature           = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// Error is the error type returned by Verify. Code, Status and Message are
// what an AWS endpoint would answer (X-Amzn-ErrorType, HTTP status, JSON
// "message"); Detail is for logs only and must not be sent to callers since
// it may describe the expected canonical request.
type Error struct {
	Kind    error  // one of the Err* sentinels
	Code    string // AWS error type
	Status  int    // HTTP status
	Message string // AWS-style message
	Detail  string // diagnostic detail (not for the wire)
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrXxx) work.
func (e *Error) Unwrap() error { return e.Kind }

func errMissing() *Error {
	return &Error{Kind: ErrMissingAuth, Code: CodeMissingAuthenticationToken, Status: http.StatusForbidden, Message: MsgMissingAuthenticationToken}
}

func errMalformed(msg string) *Error {
	return &Error{Kind: ErrMalformed, Code: CodeIncompleteSignature, Status: http.StatusBadRequest, Message: msg}
}

func errUnknownKey(akid string) *Error {
	return &Error{Kind: ErrUnknownKey, Code: CodeUnrecognizedClient, Status: http.StatusForbidden, Message: MsgUnrecognizedClient, Detail: "access key " + akid}
}

func errMismatch(detail string) *Error {
	return &Error{Kind: ErrSignatureMismatch, Code: CodeInvalidSignature, Status: http.StatusForbidden, Message: MsgInvalidSignature, Detail: detail}
}

func errInvalidSig(kind error, msg string) *Error {
	return &Error{Kind: kind, Code: CodeInvalidSignature, Status: http.StatusForbidden, Message: msg}
}
