package bedrock

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// AsyncOutputURI reads outputDataConfig.s3OutputDataConfig.s3Uri from a
// StartAsyncInvoke body. Like AsyncInvokeModel it refuses duplicate keys and
// keys differing only in case along the path, where JSON parsers disagree on
// which value wins: the URI Warden checks must be the one Bedrock uses.
func AsyncOutputURI(body []byte) (string, error) {
	raw, err := strictPath(body, "outputDataConfig", "s3OutputDataConfig", "s3Uri")
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", Validation("StartAsyncInvoke body: outputDataConfig.s3OutputDataConfig.s3Uri is not a non-empty string")
	}
	return s, nil
}

// strictPath returns the raw JSON value at the object path, or a
// ValidationException naming what is missing or ambiguous.
func strictPath(body []byte, path ...string) (json.RawMessage, error) {
	if !utf8.Valid(body) {
		return nil, Validation("StartAsyncInvoke body is not valid UTF-8")
	}
	cur := json.RawMessage(body)
	for i, key := range path {
		where := strings.Join(path[:i+1], ".")
		dec := json.NewDecoder(bytes.NewReader(cur))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, Validation("StartAsyncInvoke body: %s is not inside a JSON object", where)
		}
		var found json.RawMessage
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, Validation("StartAsyncInvoke body: %v", err)
			}
			k, _ := tok.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, Validation("StartAsyncInvoke body: %v", err)
			}
			if !strings.EqualFold(k, key) {
				continue
			}
			if k != key || found != nil {
				return nil, Validation("StartAsyncInvoke body: %s is ambiguous (duplicate or differently cased key %q)", where, quoteTrunc(k))
			}
			found = v
		}
		if found == nil {
			return nil, Validation("StartAsyncInvoke body: %s is missing", where)
		}
		cur = found
	}
	return cur, nil
}
