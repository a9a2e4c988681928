package bedrock

// ParseModelID classifies a model identifier (already percent-decoded once).
// Unknown or malformed forms return a *APIError ValidationException.
func ParseModelID(s string) (ModelID, error) {
	panic("TODO")
}
