package bedrock

import (
	"bytes"
	"encoding/json"
	"slices"
)

// ApplyEdits returns b with each [start,end) replaced by its literal; the
// ranges do not overlap. Guards' masks and the policy's clamps edit bodies
// with it.
func ApplyEdits[E any](b []byte, edits []E, at func(E) (int, int, []byte)) []byte {
	slices.SortFunc(edits, func(x, y E) int { a, _, _ := at(x); b, _, _ := at(y); return a - b })
	out := make([]byte, 0, len(b)+64*len(edits))
	pos := 0
	for _, e := range edits {
		s, end, lit := at(e)
		out = append(out, b[pos:s]...)
		out = append(out, lit...)
		pos = end
	}
	return append(out, b[pos:]...)
}

// JSONString encodes s as a JSON string literal (HTML characters as they are).
func JSONString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string: cannot fail
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
