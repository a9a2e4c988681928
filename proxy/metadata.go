package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
)

// Request metadata stamping. In re-sign mode Warden writes who is calling
// into Bedrock's request metadata, which Bedrock copies into its own model
// invocation logs: Converse and ConverseStream carry it in the JSON body's
// requestMetadata map, InvokeModel and InvokeModelWithResponseStream in the
// X-Amzn-Bedrock-Request-Metadata header (a JSON object as a string).
//
// Every key starting "warden_" (any case) belongs to Warden: a caller's
// such keys are removed and Warden's written, so the logs cannot be forged;
// the caller's other keys are kept.
//
// AWS's limits (Bedrock API reference; the filter shapes that query these
// logs document the same ones): keys 1–256 characters, values 0–256, both
// from [a-zA-Z0-9 whitespace . _ : / = + $ @ -]; at most 16 entries
// (the entry count is from the Converse reference, UNCONFIRMED against the
// live service); the header is at most 8,500 bytes. Warden's values are
// made to fit (other characters become '_', long values are cut); a caller
// whose own keys leave no room for Warden's gets a ValidationException.
const (
	metaKeyApp            = "warden_app"
	metaKeyIdentitySource = "warden_identity_source"
	metaKeyRequestID      = "warden_request_id"
	metaReservedPrefix    = "warden_"

	maxMetadataEntries = 16
	maxMetadataValue   = 256
	maxMetadataHeader  = 8500

	metadataHeader = "X-Amzn-Bedrock-Request-Metadata"
)

// stamp is what Warden writes into a call's request metadata.
type stamp struct {
	App, IdentitySource, RequestID string
}

func (st stamp) entries() [3][2]string {
	return [3][2]string{
		{metaKeyApp, metadataValue(st.App)},
		{metaKeyIdentitySource, metadataValue(st.IdentitySource)},
		{metaKeyRequestID, metadataValue(st.RequestID)},
	}
}

// metadataValue makes v fit AWS's value pattern and length. A value that
// already fits (the usual case) is returned as is.
func metadataValue(v string) string {
	fits := len(v) <= maxMetadataValue
	for i := 0; fits && i < len(v); i++ {
		fits = metadataByte(v[i])
	}
	if fits {
		return v
	}
	b := []byte(v)
	for i, c := range b {
		if !metadataByte(c) {
			b[i] = '_'
		}
	}
	if len(b) > maxMetadataValue {
		b = b[:maxMetadataValue]
	}
	return string(b)
}

func metadataByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte(" ._:/=+$@-", c) >= 0
}

func reservedMetadataKey(k string) bool {
	return len(k) >= len(metaReservedPrefix) && strings.EqualFold(k[:len(metaReservedPrefix)], metaReservedPrefix)
}

// appendMetadata appends the caller's metadata without its reserved keys,
// merged with Warden's stamp, as a JSON object with sorted keys (what
// json.Marshal writes for the merged map).
func appendMetadata(dst []byte, caller map[string]string, st stamp) ([]byte, error) {
	var keyArr [maxMetadataEntries]string
	keys := keyArr[:0]
	for k := range caller {
		if !reservedMetadataKey(k) {
			keys = append(keys, k)
		}
	}
	if n := len(keys); n > maxMetadataEntries-3 {
		return nil, bedrock.Validation("warden: requestMetadata has %d entries of the caller's; Bedrock allows %d and Warden adds 3 (warden_app, warden_identity_source, warden_request_id), so send at most %d",
			n, maxMetadataEntries, maxMetadataEntries-3)
	}
	slices.Sort(keys)
	// Warden's keys are in order, and no caller key equals one of them
	// (reserved keys were dropped): merge the two sorted lists.
	ours := st.entries()
	dst = append(dst, '{')
	for i, j := 0, 0; i < len(keys) || j < len(ours); {
		if i+j > 0 {
			dst = append(dst, ',')
		}
		var k, v string
		if j == len(ours) || i < len(keys) && keys[i] < ours[j][0] {
			k, v = keys[i], caller[keys[i]]
			i++
		} else {
			k, v = ours[j][0], ours[j][1]
			j++
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, v)
	}
	return append(dst, '}'), nil
}

// appendJSONString appends s as json.Marshal encodes it: directly when no
// byte needs escaping (printable ASCII other than '"', '\\' and the HTML
// characters json.Marshal escapes), through json.Marshal otherwise.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // strings always marshal
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// decodeMetadata reads a requestMetadata object: string keys to string
// values; null is no metadata.
func decodeMetadata(raw []byte, what string) (map[string]string, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var m map[string]*string
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, bedrock.Validation("warden: %s must be a JSON object of string keys to string values", what)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v == nil {
			return nil, bedrock.Validation("warden: %s value of %q must be a string", what, k)
		}
		out[k] = *v
	}
	return out, nil
}

// stampConverseBody returns body with requestMetadata holding Warden's
// stamp. Everything else in the body is kept byte for byte: only the
// requestMetadata value is replaced (or the member added before the closing
// brace). A body that is not a single UTF-8 JSON object, or that repeats a
// top-level key, even in another case (which could shadow the stamp for a
// lenient parser), is a ValidationException.
func stampConverseBody(body []byte, st stamp) ([]byte, error) {
	out, _, err := stampConverseBodyAt(body, st, false)
	return out, err
}

// maxInPlaceTail bounds the bytes a stamp in place moves: the stamp edits
// near the end of a body, and one that would move more is copied instead.
const maxInPlaceTail = 4 << 10

// stampConverseBodyAt is stampConverseBody that also says how many leading
// bytes the result shares with body. With inPlace it may write the result
// into body's own array (when the edit is near the end and the array has
// room): body's bytes past the shared prefix are then gone.
func stampConverseBodyAt(body []byte, st stamp, inPlace bool) ([]byte, int, error) {
	// One validating pass over the body, UTF-8 included (encoding/json's
	// Valid plus a Decoder walk cost ~50 µs for a 4 KB prompt; this ~1 µs).
	var memberArr [16]bedrock.Member
	members, closeAt, err := bedrock.ScanObjectInto(memberArr[:0], body)
	return stampScanned(body, st, inPlace, members, closeAt, err)
}

// stampScanned is stampConverseBodyAt given bedrock.ScanObject's results
// for body (taken beside the guards by a prescan).
func stampScanned(body []byte, st stamp, inPlace bool, members []bedrock.Member, closeAt int, err error) ([]byte, int, error) {
	if errors.Is(err, bedrock.ErrNotUTF8) {
		return nil, 0, bedrock.Validation("warden: the request body is not valid UTF-8")
	}
	if err != nil {
		return nil, 0, bedrock.Validation("warden: the request body must be a single valid JSON object (%v)", err)
	}
	open := bytes.IndexByte(body, '{') + 1 // just past '{'
	var metaStart, metaEnd = -1, -1
	var caller map[string]string
	// Keys differing only in case are refused too: a case-insensitive reader
	// (Go's encoding/json is one) would see them as one. Real bodies have a
	// handful of keys; a map only for hostile ones, to stay linear.
	var seen map[string]bool
	if len(members) > 16 {
		seen = make(map[string]bool, len(members))
	}
	for i, m := range members {
		dup := false
		if seen != nil {
			folded := strings.ToLower(m.Key)
			dup, seen[folded] = seen[folded], true
		} else {
			for _, prev := range members[:i] {
				dup = dup || strings.EqualFold(prev.Key, m.Key)
			}
		}
		if dup {
			return nil, 0, bedrock.Validation("warden: the request body repeats the top-level key %q (keys are compared ignoring case)", m.Key)
		}
		if strings.EqualFold(m.Key, "requestMetadata") {
			if m.Key != "requestMetadata" {
				return nil, 0, bedrock.Validation("warden: the request body has the key %q; spell it requestMetadata", m.Key)
			}
			metaStart, metaEnd = m.ValueStart, m.ValueEnd
			if caller, err = decodeMetadata(body[metaStart:metaEnd], "requestMetadata"); err != nil {
				return nil, 0, err
			}
		}
	}
	// The result is body[:cut] + ins + body[resume:], where ins is the new
	// requestMetadata value, or a whole new member added after the last one
	// (or as the only one).
	var insArr [256]byte
	ins := insArr[:0]
	cut, resume := metaStart, metaEnd
	if metaStart < 0 {
		cut = closeAt
		if len(members) > 0 {
			// Put the comma right after the last value, before trailing space.
			cut = open + len(bytes.TrimRight(body[open:closeAt], " \t\r\n"))
			ins = append(ins, ',')
		}
		resume = cut
		ins = append(ins, `"requestMetadata":`...)
	}
	if ins, err = appendMetadata(ins, caller, st); err != nil {
		return nil, 0, err
	}
	n := cut + len(ins) + len(body) - resume
	if inPlace && n <= cap(body) && len(body)-resume <= maxInPlaceTail {
		// copy moves overlapping bytes as memmove does.
		out := body[:n]
		copy(out[cut+len(ins):], body[resume:])
		copy(out[cut:], ins)
		return out, cut, nil
	}
	out := make([]byte, n)
	copy(out, body[:cut])
	copy(out[cut:], ins)
	copy(out[cut+len(ins):], body[resume:])
	return out, cut, nil
}

// prescan is a Converse body's bedrock.ScanObject, taken ahead.
type prescan struct {
	body    []byte
	members []bedrock.Member
	closeAt int
	err     error
	done    chan struct{}
}

// startPrescan starts the stamp's scan of a long Converse body that will
// be stamped (every call Warden signs).
func (c *call) startPrescan() {
	if c.passthrough || len(c.body) < longBody || (c.route.Op != bedrock.OpConverse && c.route.Op != bedrock.OpConverseStream) {
		return
	}
	ps := &prescan{body: c.body, done: make(chan struct{})}
	c.prescan = ps
	go func() {
		ps.members, ps.closeAt, ps.err = bedrock.ScanObjectInto(make([]bedrock.Member, 0, 16), ps.body)
		close(ps.done)
	}()
}

// awaitPrescan waits for the prescan, if one runs, and returns it: after
// it nothing reads the body's buffer but the call.
func (c *call) awaitPrescan() *prescan {
	if c.prescan != nil {
		<-c.prescan.done
	}
	return c.prescan
}

// stampMetadataHeader returns the X-Amzn-Bedrock-Request-Metadata value
// for a call whose client sent values (nil when none).
func stampMetadataHeader(values []string, st stamp) (string, error) {
	var caller map[string]string
	switch len(values) {
	case 0:
	case 1:
		var err error
		if caller, err = decodeMetadata([]byte(values[0]), metadataHeader); err != nil {
			return "", err
		}
	default:
		return "", bedrock.Validation("warden: %s appears more than once", metadataHeader)
	}
	h, err := appendMetadata(nil, caller, st)
	if err != nil {
		return "", err
	}
	if len(h) > maxMetadataHeader {
		return "", bedrock.Validation("warden: %s would be %d bytes with Warden's entries; Bedrock allows %d", metadataHeader, len(h), maxMetadataHeader)
	}
	return string(h), nil
}

// stampMetadata writes Warden's stamp into an authorised call's request
// metadata. Every call Warden signs is stamped (endpoint calls are re-signed
// even under upstream.signing: passthrough); the pipeline skips passthrough
// calls, whose signature covers body and headers as the client sent them.
func (s *Server) stampMetadata(r *http.Request, c *call, app, identitySource string) error {
	if c.passthrough {
		return nil
	}
	st := stamp{App: app, IdentitySource: identitySource, RequestID: c.requestID}
	switch c.route.Op {
	case bedrock.OpConverse, bedrock.OpConverseStream:
		// A body forwarded out of the call's buffer (bodybuf.go) is
		// stamped there, not copied, once the prompt digest no longer
		// reads it.
		inPlace := c.buf != nil && sharesArray(c.body, c.buf.Bytes()) && s.shareBody(c, len(c.body))
		if inPlace {
			c.awaitPromptHash()
		}
		var body []byte
		var prefix int
		var err error
		if ps := c.awaitPrescan(); ps != nil && sameBytes(ps.body, c.body) {
			body, prefix, err = stampScanned(c.body, st, inPlace, ps.members, ps.closeAt, ps.err)
		} else {
			body, prefix, err = stampConverseBodyAt(c.body, st, inPlace)
		}
		if err != nil {
			return err
		}
		if sameBytes(c.body, c.hashed) {
			c.prefixOf, c.prefixLen = body, prefix
		}
		if inPlace && sharesArray(body, c.body) {
			// The app's bytes past the prefix are rewritten: nothing may
			// take body for them any more.
			if c.digest != nil {
				c.digest.edited = true
			}
			c.hashed, c.extracted, c.extractedOf = nil, nil, nil
		}
		c.body = body
	case bedrock.OpInvokeModel, bedrock.OpInvokeModelWithResponseStream:
		h, err := stampMetadataHeader(r.Header.Values(metadataHeader), st)
		if err != nil {
			return err
		}
		c.metaHeader = h
	}
	return nil
}

// recordEndUser puts the end-user identifier an OpenAI-compatible or
// Messages body states into the record, as audit.end_user says: nothing
// (off, the default), its SHA-256, or the value. Warden does not verify it
// and does not change it on the wire: Bedrock documents no attribution
// field of its own on these APIs, and the record's app is the attribution
// Warden vouches for (see docs/audit.md, "End users").
func (s *Server) recordEndUser(c *call) {
	if s.endUser == "" || s.endUser == audit.EndUserOff || !c.route.Op.BodyModel() {
		return
	}
	v := bedrock.CompatEndUser(c.route.Op, c.body)
	if v == "" {
		return
	}
	if s.endUser == audit.EndUserSHA256 {
		v = "sha256:" + sha256Hex([]byte(v))
	}
	c.rec.EndUser = v
}
