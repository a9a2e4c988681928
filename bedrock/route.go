package bedrock

// ParseRoute maps a request's method, escaped path (r.URL.EscapedPath(), never
// the decoded path) and raw query to an operation. It rejects anything it
// does not recognise with an *APIError (ValidationException for malformed
// paths, AccessDeniedException for unsupported operations) whose message names
// the offending input.
func ParseRoute(method, escapedPath, rawQuery string) (Route, error) {
	panic("TODO")
}

// AsyncInvokeModel reads modelId from a StartAsyncInvoke JSON body.
func AsyncInvokeModel(body []byte) (string, error) {
	panic("TODO")
}
