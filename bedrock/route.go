package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxPathLen bounds the escaped request path (and the query of ListAsyncInvokes).
const MaxPathLen = 2048

// ParseRoute maps a request's method, escaped path (r.URL.EscapedPath(), never
// the decoded path) and raw query to an operation. It rejects anything it
// does not recognise with an *APIError (ValidationException for malformed
// paths, AccessDeniedException for unsupported operations) whose message names
// the offending input.
//
// The split is deliberate: a path that is malformed in itself (too long, a
// character or escape outside the allowed set, "." or ".." segments, "//", a
// trailing slash, a double-encoded '%', an invalid model id, a query on a route
// that takes none) is a 400 ValidationException; a well-formed path that names
// no operation Warden knows, or a known path with the wrong method (methods
// are case-sensitive), is a 403 AccessDeniedException "unknown operation".
//
// A model id may arrive percent-encoded by an SDK ("arn%3Aaws%3A…%2Fabc") or
// raw from a hand-written client ("arn:aws:…/abc"); both decode to the same
// RawModel. Because a raw '/' may sit inside an ARN, a model route is
// "/model/" + id + "/" + known operation suffix, and the id in between must
// pass ParseModelID, so nothing ambiguous is guessed. InvokeModelWithBidirectionalStream
// is recognised and returned without error so the caller can deny it by name.
func ParseRoute(method, escapedPath, rawQuery string) (Route, error) {
	p := escapedPath
	if err := checkPath(p); err != nil {
		return Route{}, err
	}
	switch {
	case strings.HasPrefix(p, "/model/"):
		return routeModel(method, p, rawQuery)
	case strings.HasPrefix(p, "/guardrail/"):
		return routeGuardrail(method, p, rawQuery)
	case p == "/guardrail-checks/invoke":
		if method != "POST" {
			return Route{}, wrongMethod(method, p, OpInvokeGuardrailChecks)
		}
		if err := noQuery(rawQuery, OpInvokeGuardrailChecks); err != nil {
			return Route{}, err
		}
		return Route{Op: OpInvokeGuardrailChecks}, nil
	case p == "/async-invoke":
		switch method {
		case "POST":
			if err := noQuery(rawQuery, OpStartAsyncInvoke); err != nil {
				return Route{}, err
			}
			return Route{Op: OpStartAsyncInvoke}, nil
		case "GET":
			if err := checkListQuery(rawQuery); err != nil {
				return Route{}, err
			}
			return Route{Op: OpListAsyncInvokes}, nil
		}
		return Route{}, wrongMethod(method, p, OpStartAsyncInvoke+" or "+OpListAsyncInvokes)
	case strings.HasPrefix(p, "/async-invoke/"):
		return routeGetAsync(method, p, rawQuery)
	case strings.HasPrefix(p, "/openai/"):
		return routeRuntimeOpenAI(method, p, rawQuery)
	case strings.HasPrefix(p, "/anthropic/"):
		return Route{}, AccessDenied("unknown operation: %q %q: Warden does not serve bedrock-runtime's Anthropic Messages API (/anthropic/v1/messages); "+
			"use InvokeModel (Anthropic's Bedrock SDK does) or bedrock-mantle's /anthropic/v1/messages", quoteTrunc(method), quoteTrunc(p))
	}
	return Route{}, unknownOp(method, p)
}

// modelOp maps the last path segment of a /model/ route to its operation.
func modelOp(seg string) (Operation, bool) {
	switch seg {
	case "invoke":
		return OpInvokeModel, true
	case "invoke-with-response-stream":
		return OpInvokeModelWithResponseStream, true
	case "converse":
		return OpConverse, true
	case "converse-stream":
		return OpConverseStream, true
	case "count-tokens":
		return OpCountTokens, true
	case "invoke-with-bidirectional-stream":
		return OpInvokeModelWithBidirectionalStream, true
	}
	return "", false
}

func routeModel(method, p, rawQuery string) (Route, error) {
	rest := p[len("/model/"):]
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return Route{}, unknownOp(method, p)
	}
	op, ok := modelOp(rest[i+1:])
	if !ok {
		return Route{}, unknownOp(method, p)
	}
	if method != "POST" {
		return Route{}, wrongMethod(method, p, op)
	}
	if err := noQuery(rawQuery, op); err != nil {
		return Route{}, err
	}
	raw := unescape(rest[:i])
	if err := checkDecoded(raw, "model identifier"); err != nil {
		return Route{}, err
	}
	m, err := ParseModelID(raw)
	if err != nil {
		return Route{}, err
	}
	return Route{Op: op, RawModel: raw, Model: m}, nil
}

func routeGuardrail(method, p, rawQuery string) (Route, error) {
	// /guardrail/{id}/version/{version}/apply, where id may be a raw ARN with a '/'.
	rest, ok := strings.CutSuffix(p[len("/guardrail/"):], "/apply")
	if !ok {
		return Route{}, unknownOp(method, p)
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return Route{}, unknownOp(method, p)
	}
	version := rest[i+1:]
	id, ok := strings.CutSuffix(rest[:i], "/version")
	if !ok {
		return Route{}, unknownOp(method, p)
	}
	if method != "POST" {
		return Route{}, wrongMethod(method, p, OpApplyGuardrail)
	}
	if err := noQuery(rawQuery, OpApplyGuardrail); err != nil {
		return Route{}, err
	}
	if !validGuardrailVersion(version) {
		return Route{}, Validation("invalid guardrail version %q: want DRAFT or 1-99999999", quoteTrunc(version))
	}
	gid := unescape(id)
	if err := checkDecoded(gid, "guardrail identifier"); err != nil {
		return Route{}, err
	}
	if why := checkGuardrailID(gid); why != "" {
		return Route{}, Validation("invalid guardrail identifier %q: %s", quoteTrunc(gid), why)
	}
	return Route{Op: OpApplyGuardrail, GuardrailID: gid, GuardrailVersion: version}, nil
}

func routeGetAsync(method, p, rawQuery string) (Route, error) {
	if method != "GET" {
		return Route{}, wrongMethod(method, p, OpGetAsyncInvoke)
	}
	if err := noQuery(rawQuery, OpGetAsyncInvoke); err != nil {
		return Route{}, err
	}
	a := unescape(p[len("/async-invoke/"):])
	if err := checkDecoded(a, "invocation ARN"); err != nil {
		return Route{}, err
	}
	if why := checkInvocationARN(a); why != "" {
		return Route{}, Validation("invalid invocation ARN %q: %s", quoteTrunc(a), why)
	}
	return Route{Op: OpGetAsyncInvoke, InvocationARN: a}, nil
}

func unknownOp(method, p string) *APIError {
	return AccessDenied("unknown operation: %q %q is not a Bedrock runtime operation Warden recognises", quoteTrunc(method), quoteTrunc(p))
}

func wrongMethod(method, p string, op Operation) *APIError {
	return AccessDenied("unknown operation: method %q is not allowed on %q (%s)", quoteTrunc(method), quoteTrunc(p), op)
}

func noQuery(rawQuery string, op Operation) error {
	if rawQuery != "" {
		return Validation("unexpected query string %q: %s takes no query parameters", quoteTrunc(rawQuery), op)
	}
	return nil
}

// pathByte is the set of characters allowed in a path, raw or decoded:
// RFC 3986 unreserved plus ':' and '/'. Everything a model id, guardrail id
// or ARN needs, and nothing that path normalisers or parsers disagree on
// (';', '\\', '?', '#', '%', spaces, controls, non-ASCII).
func pathByte(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '/'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// checkPath validates the escaped path as a whole, before any routing, so
// that every route sees only well-formed input.
func checkPath(p string) error {
	if len(p) > MaxPathLen {
		return Validation("request path is longer than %d bytes (%q)", MaxPathLen, quoteTrunc(p))
	}
	if p == "" || p[0] != '/' {
		return Validation("request path %q does not start with '/'", quoteTrunc(p))
	}
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			switch p[segStart:i] {
			case "":
				return Validation("request path %q has an empty segment ('//' or a trailing '/')", quoteTrunc(p))
			case ".", "..":
				return Validation("request path %q has a '.' or '..' segment", quoteTrunc(p))
			}
			segStart = i + 1
			continue
		}
		c := p[i]
		if c != '%' {
			if !pathByte(c) {
				return Validation("request path %q contains the forbidden character %q", quoteTrunc(p), string(rune(c)))
			}
			continue
		}
		if i+2 >= len(p) {
			return Validation("request path %q has a truncated percent-escape", quoteTrunc(p))
		}
		hi, ok1 := unhex(p[i+1])
		lo, ok2 := unhex(p[i+2])
		if !ok1 || !ok2 {
			return Validation("request path %q has an invalid percent-escape %q", quoteTrunc(p), p[i:i+3])
		}
		switch d := hi<<4 | lo; {
		case d == '%':
			return Validation("request path %q is double-encoded (%%25)", quoteTrunc(p))
		case !pathByte(d):
			return Validation("request path %q encodes the forbidden character %q (%s)", quoteTrunc(p), string(rune(d)), p[i:i+3])
		}
		i += 2
	}
	return nil
}

// unescape decodes a label of a path that checkPath accepted; without escapes
// it returns s itself, so the common SDK-free case does not allocate.
func unescape(s string) string {
	n := strings.Count(s, "%")
	if n == 0 {
		return s
	}
	var b strings.Builder // one allocation: String does not copy
	b.Grow(len(s) - 2*n)
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, _ := unhex(s[i+1])
			lo, _ := unhex(s[i+2])
			b.WriteByte(hi<<4 | lo)
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkDecoded rejects empty and dot segments that only appear once %2F and
// %2E are decoded ("a%2F..%2Fb"), which upstream normalisers might resolve.
func checkDecoded(v, what string) error {
	if v == "" {
		return Validation("%s is empty", what)
	}
	for seg := range strings.SplitSeq(v, "/") {
		switch seg {
		case "":
			return Validation("%s %q has an empty segment", what, quoteTrunc(v))
		case ".", "..":
			return Validation("%s %q has a '.' or '..' segment", what, quoteTrunc(v))
		}
	}
	return nil
}

// validGuardrailVersion: DRAFT or [1-9][0-9]{0,7}, the API's pattern.
func validGuardrailVersion(v string) bool {
	if v == "DRAFT" {
		return true
	}
	if len(v) < 1 || len(v) > 8 || v[0] == '0' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// validLowerID: [a-z0-9]{1,max}.
func validLowerID(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerAlnum(s[i]) {
			return false
		}
	}
	return true
}

// checkGuardrailID: [a-z0-9]+ or arn:…:bedrock:REGION:ACCOUNT:guardrail/[a-z0-9]+.
func checkGuardrailID(s string) string {
	if !strings.HasPrefix(s, "arn:") {
		if !validLowerID(s, 128) {
			return "want [a-z0-9]+ or a guardrail ARN"
		}
		return ""
	}
	a, why := parseARN(s)
	if why != "" {
		return why
	}
	id, ok := strings.CutPrefix(a.Resource, "guardrail/")
	if a.Service != "bedrock" || a.Account == "" || !ok || !validLowerID(id, 128) {
		return "want arn:PARTITION:bedrock:REGION:ACCOUNT:guardrail/ID"
	}
	return ""
}

// checkInvocationARN: arn:…:bedrock:REGION:ACCOUNT:async-invoke/[a-z0-9]+.
func checkInvocationARN(s string) string {
	a, why := parseARN(s)
	if why != "" {
		return why
	}
	id, ok := strings.CutPrefix(a.Resource, "async-invoke/")
	if a.Service != "bedrock" || a.Account == "" || !ok || !validLowerID(id, 64) {
		return "want arn:PARTITION:bedrock:REGION:ACCOUNT:async-invoke/ID"
	}
	return ""
}

// listParams are the query parameters of ListAsyncInvokes (its only
// query-bound input in the SDK model), each with a bit for duplicate checks.
func listParam(k string) uint8 {
	switch k {
	case "submitTimeAfter":
		return 1 << 0
	case "submitTimeBefore":
		return 1 << 1
	case "statusEquals":
		return 1 << 2
	case "maxResults":
		return 1 << 3
	case "nextToken":
		return 1 << 4
	case "sortBy":
		return 1 << 5
	case "sortOrder":
		return 1 << 6
	}
	return 0
}

// checkListQuery accepts only the known parameters, each at most once
// (parameter pollution is resolved differently by different servers), with
// well-formed escapes and no control characters.
func checkListQuery(q string) error {
	if q == "" {
		return nil
	}
	if len(q) > MaxPathLen {
		return Validation("query string is longer than %d bytes", MaxPathLen)
	}
	var seen uint8
	for pair := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(pair, "=")
		bit := listParam(k)
		if bit == 0 {
			return Validation("unknown query parameter %q in %q for %s", quoteTrunc(k), quoteTrunc(q), OpListAsyncInvokes)
		}
		if seen&bit != 0 {
			return Validation("repeated query parameter %q in %q", k, quoteTrunc(q))
		}
		seen |= bit
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f || c == ';' || c == '#' {
				return Validation("query parameter %q has the forbidden character %q", k, string(rune(c)))
			}
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return Validation("query parameter %q has an invalid escape: %q", k, quoteTrunc(v))
		}
		if hasControl(dv) || !utf8.ValidString(dv) {
			return Validation("query parameter %q decodes to a control character or invalid UTF-8", k)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// AsyncInvokeModel reads modelId from a StartAsyncInvoke JSON body (see
// topString for what is refused).
func AsyncInvokeModel(body []byte) (string, error) {
	return topString(body, "modelId", "StartAsyncInvoke body")
}

// BodyModel reads the model of an operation that names it in its JSON body
// ("model"; Operation.BodyModel), under the same rules as AsyncInvokeModel.
func BodyModel(op Operation, body []byte) (string, error) {
	return topString(body, "model", string(op)+" body")
}

// topString reads the string value of key from a JSON object body.
//
// The body must be one valid-UTF-8 JSON object with exactly one key holding
// a non-empty string. Duplicate keys, keys that differ from key only in case,
// invalid UTF-8 and trailing data are rejected: encoding/json would resolve
// each of them silently (last key wins, case-insensitive match, U+FFFD), and
// Bedrock might resolve them differently, letting a caller be authorised for
// one model and run another.
func topString(body []byte, key, what string) (string, error) {
	if !utf8.Valid(body) {
		return "", Validation("%s is not valid UTF-8", what)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", Validation("%s is not a JSON object", what)
	}
	var val string
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", Validation("%s: %v", what, err)
		}
		k, _ := tok.(string)
		if k != key {
			if strings.EqualFold(k, key) {
				return "", Validation("%s has the ambiguous key %q (want %q)", what, quoteTrunc(k), key)
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", Validation("%s: %v", what, err)
			}
			continue
		}
		if found {
			return "", Validation("%s has more than one %q", what, key)
		}
		found = true
		v, err := dec.Token()
		if err != nil {
			return "", Validation("%s: %v", what, err)
		}
		s, ok := v.(string)
		if !ok {
			return "", Validation("%s: %q is not a string", what, key)
		}
		val = s
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return "", Validation("%s: %v", what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", Validation("%s has data after the JSON object", what)
	}
	if !found {
		return "", Validation("%s has no %q", what, key)
	}
	if val == "" {
		return "", Validation("%s has an empty %q", what, key)
	}
	return val, nil
}
