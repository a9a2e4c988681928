// Package sigv4 verifies AWS Signature Version 4 (header form) on incoming
// HTTP requests. It is pure: no I/O, no clock unless Options.Now is zero, no
// package state. Warden uses it to check the callers' signatures (the local
// Bedrock emulator in bedrocktest, and Warden-issued keys); it is written
// independently of any signer so that it can be used to test signers.
//
// What exactly is verified (non-S3 rules, as AWS's published test suite and
// the Bedrock runtime use them):
//
//   - Authorization: "AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request,
//     SignedHeaders=a;b;c, Signature=<64 lowercase hex>", each component exactly once.
//   - host and the date header (x-amz-date, or date when X-Amz-Date is absent)
//     must be signed; the credential scope date must equal the request date.
//   - Canonical URI: the path exactly as it was sent on the wire
//     (r.RequestURI when it is an origin-form path, else r.URL.RawPath when it
//     is a valid encoding of r.URL.Path, else r.URL.EscapedPath()), with dot
//     segments removed and repeated slashes collapsed (Options.DisablePathNormalization
//     turns that off), then URI-encoded once more, byte by byte: every byte
//     except A-Z a-z 0-9 - . _ ~ and / becomes %XX. That is the "double
//     encoding" of non-S3 services: the SDKs send /model/arn%3Aaws... and sign
//     /model/arn%253Aaws...; a client that sends a raw ':' signs %3A.
//   - Canonical query: the raw query split on '&', each key and value decoded
//     (form rules: '+' is a space, as the AWS SDKs treat it), re-encoded with
//     the same byte rule as the path (space is %20), sorted by key then value.
//   - Canonical headers: the signed names in the order given, each
//     "name:value" with values trimmed, runs of whitespace collapsed to one
//     space and repeated header lines joined with ','. host comes from r.Host.
//   - Payload: sha256(body), always. X-Amz-Content-Sha256, when present, must
//     equal it (and is then used verbatim); UNSIGNED-PAYLOAD and STREAMING-*
//     are refused unless Options.AllowUnsignedPayload is set.
//   - The signature is compared in constant time.
//
// Every failure is an *Error carrying the AWS error code, status and message
// a restJson service answers with, and a Kind usable with errors.Is.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

const (
	amzDateFormat   = "20060102T150405Z"
	scopeDateFormat = "20060102"
	terminator      = "aws4_request"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	streamingPrefix = "STREAMING-"
)

// DefaultMaxSkew is the clock skew AWS tolerates.
const DefaultMaxSkew = 5 * time.Minute

// SecretLookup returns the secret access key of an access key id.
type SecretLookup func(accessKeyID string) (secret string, ok bool)

// Options tune Verify.
type Options struct {
	Now     time.Time     // zero: time.Now()
	MaxSkew time.Duration // zero: DefaultMaxSkew; negative: no skew check
	Service string        // required signing name in the scope, e.g. "bedrock"; "" = any
	Region  string        // required region in the scope; "" = any

	// DisablePathNormalization keeps "." / ".." segments and repeated
	// slashes as sent (S3 rules; the test suite's *-unnormalized vectors).
	DisablePathNormalization bool
	// AllowUnsignedPayload accepts X-Amz-Content-Sha256: UNSIGNED-PAYLOAD or
	// STREAMING-*; the body is then NOT covered by the signature.
	AllowUnsignedPayload bool
}

// Result describes a verified request.
type Result struct {
	AccessKeyID   string
	Region        string
	Service       string
	Date          time.Time // the request time (X-Amz-Date or Date), UTC
	SignedHeaders []string
	SessionToken  string // X-Amz-Security-Token, if any (not checked here)
	PayloadHash   string // the payload hash line of the canonical request
}

// Authorization is a parsed "AWS4-HMAC-SHA256 ..." header.
type Authorization struct {
	AccessKeyID   string
	Date          string // scope date, YYYYMMDD
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string // 64 lowercase hex digits
}

// Scope returns "DATE/REGION/SERVICE/aws4_request".
func (a *Authorization) Scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/" + terminator
}

// ParseAuthorization parses an Authorization header value strictly. Errors
// are *Error with Kind ErrMalformed.
func ParseAuthorization(v string) (*Authorization, error) {
	alg, rest, ok := strings.Cut(v, " ")
	if !ok || alg != Algorithm {
		if alg == "" {
			return nil, errMalformed("Authorization header is empty.")
		}
		return nil, errMalformed(fmt.Sprintf("Unsupported authorization type or algorithm: '%s'.", truncate(alg, 64)))
	}
	var cred, signed, sig string
	var have [3]bool
	for _, part := range strings.Split(rest, ",") {
		part = strings.Trim(part, " ")
		if part == "" {
			return nil, errMalformed("Authorization header has an empty component.")
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, errMalformed(fmt.Sprintf("'%s' not a valid key=value pair (missing equal-sign) in Authorization header: '%s'.", truncate(part, 128), truncate(v, 256)))
		}
		var idx int
		switch k {
		case "Credential":
			idx, cred = 0, val
		case "SignedHeaders":
			idx, signed = 1, val
		case "Signature":
			idx, sig = 2, val
		default:
			return nil, errMalformed(fmt.Sprintf("Unknown Authorization header component '%s'.", truncate(k, 64)))
		}
		if have[idx] {
			return nil, errMalformed(fmt.Sprintf("Authorization header has a duplicate '%s' parameter.", k))
		}
		have[idx] = true
	}
	var missing []string
	for i, name := range []string{"Credential", "Signature", "SignedHeaders"} {
		j := [3]int{0, 2, 1}[i]
		if !have[j] {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", name))
		}
	}
	if len(missing) > 0 {
		return nil, errMalformed(strings.Join(missing, " "))
	}

	a := &Authorization{}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return nil, errMalformed(fmt.Sprintf("Credential should be of the form ACCESSKEYID/YYYYMMDD/REGION/SERVICE/aws4_request, got '%s'.", truncate(cred, 256)))
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = parts[0], parts[1], parts[2], parts[3]
	if parts[4] != terminator {
		return nil, errMalformed(fmt.Sprintf("Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.", truncate(parts[4], 64)))
	}
	if a.AccessKeyID == "" || a.Region == "" || a.Service == "" {
		return nil, errMalformed("Credential has an empty access key, region or service.")
	}
	if len(a.Date) != 8 || !allDigits(a.Date) {
		return nil, errMalformed(fmt.Sprintf("Credential date '%s' is not of the form YYYYMMDD.", truncate(a.Date, 32)))
	}
	if _, err := time.Parse(scopeDateFormat, a.Date); err != nil {
		return nil, errMalformed(fmt.Sprintf("Credential date '%s' is not a valid date.", a.Date))
	}

	if signed == "" {
		return nil, errMalformed("SignedHeaders is empty.")
	}
	a.SignedHeaders = strings.Split(signed, ";")
	seen := make(map[string]bool, len(a.SignedHeaders))
	for _, h := range a.SignedHeaders {
		// ":authority" is what the JS SDK signs instead of host over HTTP/2.
		if h == "" || (!isLowerToken(h) && h != ":authority") {
			return nil, errMalformed(fmt.Sprintf("SignedHeaders has an invalid header name '%s'.", truncate(h, 64)))
		}
		if seen[h] {
			return nil, errMalformed(fmt.Sprintf("SignedHeaders names '%s' twice.", h))
		}
		seen[h] = true
	}

	if len(sig) != 64 || !isLowerHex(sig) {
		return nil, errMalformed("Signature should be 64 lowercase hexadecimal characters.")
	}
	a.Signature = sig
	return a, nil
}

// Verify checks the SigV4 Authorization header of r against body (the full
// request body; nil means empty). It returns the verified identity, or an
// *Error (see the Err* kinds).
func Verify(r *http.Request, body []byte, lookup SecretLookup, opts Options) (*Result, error) {
	authz := r.Header.Values("Authorization")
	if len(authz) == 0 || (len(authz) == 1 && strings.TrimSpace(authz[0]) == "") {
		return nil, errMissing()
	}
	if len(authz) > 1 {
		return nil, errMalformed("Request has more than one Authorization header.")
	}
	a, err := ParseAuthorization(authz[0])
	if err != nil {
		return nil, err
	}

	// Request time and the headers that must be signed.
	if !contains(a.SignedHeaders, "host") && !contains(a.SignedHeaders, ":authority") {
		return nil, errMalformed("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	reqTime, dateHeader, err := requestTime(r)
	if err != nil {
		return nil, err
	}
	if !contains(a.SignedHeaders, dateHeader) {
		name := map[string]string{"x-amz-date": "X-Amz-Date", "date": "Date"}[dateHeader]
		return nil, errMalformed(fmt.Sprintf("'%s' must be a 'SignedHeader' in the AWS Authorization.", name))
	}
	amzDate := reqTime.Format(amzDateFormat)
	if a.Date != amzDate[:8] {
		return nil, errInvalidSig(ErrScope, fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", a.Date, amzDate[:8], amzDate))
	}
	if opts.Service != "" && a.Service != opts.Service {
		return nil, errInvalidSig(ErrScope, fmt.Sprintf("Credential should be scoped to correct service: '%s'.", opts.Service))
	}
	if opts.Region != "" && a.Region != opts.Region {
		return nil, errInvalidSig(ErrScope, fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", truncate(a.Region, 64)))
	}

	// Clock skew.
	if opts.MaxSkew >= 0 {
		skew := opts.MaxSkew
		if skew == 0 {
			skew = DefaultMaxSkew
		}
		now := opts.Now
		if now.IsZero() {
			now = time.Now()
		}
		now = now.UTC()
		mins := strconv.FormatInt(int64(skew/time.Minute), 10)
		if reqTime.Before(now.Add(-skew)) {
			return nil, errInvalidSig(ErrExpired, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s min.)",
				amzDate, now.Add(-skew).Format(amzDateFormat), now.Format(amzDateFormat), mins))
		}
		if reqTime.After(now.Add(skew)) {
			return nil, errInvalidSig(ErrExpired, fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %s min.)",
				amzDate, now.Add(skew).Format(amzDateFormat), now.Format(amzDateFormat), mins))
		}
	}

	secret, ok := lookup(a.AccessKeyID)
	if !ok {
		return nil, errUnknownKey(a.AccessKeyID)
	}

	payloadHash, err := PayloadHash(r, body, opts.AllowUnsignedPayload)
	if err != nil {
		return nil, err
	}
	creq, err := CanonicalRequest(r, a.SignedHeaders, payloadHash, opts)
	if err != nil {
		return nil, err
	}
	sts := StringToSign(amzDate, a.Scope(), creq)
	want := Sign(SigningKey(secret, a.Date, a.Region, a.Service), sts)
	got, _ := hex.DecodeString(a.Signature) // validated by ParseAuthorization
	if !hmac.Equal(want, got) {
		return nil, errMismatch("canonical request:\n" + creq + "\nstring to sign:\n" + sts)
	}

	tok := r.Header.Values("X-Amz-Security-Token")
	res := &Result{
		AccessKeyID:   a.AccessKeyID,
		Region:        a.Region,
		Service:       a.Service,
		Date:          reqTime,
		SignedHeaders: a.SignedHeaders,
		PayloadHash:   payloadHash,
	}
	if len(tok) > 0 {
		res.SessionToken = tok[0]
	}
	return res, nil
}

// requestTime returns the request time from X-Amz-Date (basic ISO-8601) or,
// when that is absent, from Date (HTTP date), and the header it came from.
func requestTime(r *http.Request) (time.Time, string, error) {
	if v := r.Header.Values("X-Amz-Date"); len(v) > 0 {
		if len(v) > 1 {
			return time.Time{}, "", errMalformed("Request has more than one X-Amz-Date header.")
		}
		t, err := time.Parse(amzDateFormat, v[0])
		if err != nil || len(v[0]) != len(amzDateFormat) {
			return time.Time{}, "", errMalformed(fmt.Sprintf("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", truncate(v[0], 64)))
		}
		return t.UTC(), "x-amz-date", nil
	}
	if v := r.Header.Values("Date"); len(v) > 0 {
		if len(v) > 1 {
			return time.Time{}, "", errMalformed("Request has more than one Date header.")
		}
		t, err := http.ParseTime(v[0])
		if err != nil {
			return time.Time{}, "", errMalformed(fmt.Sprintf("Date header '%s' is not a valid HTTP date.", truncate(v[0], 64)))
		}
		return t.UTC(), "date", nil
	}
	return time.Time{}, "", errMalformed("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
}

// PayloadHash returns the payload hash line of the canonical request:
// hex(sha256(body)), checked against X-Amz-Content-Sha256 when the header is
// present. With allowUnsigned, UNSIGNED-PAYLOAD and STREAMING-* are returned
// as they are.
func PayloadHash(r *http.Request, body []byte, allowUnsigned bool) (string, error) {
	sum := sha256.Sum256(body)
	computed := hex.EncodeToString(sum[:])
	v := r.Header.Values("X-Amz-Content-Sha256")
	if len(v) == 0 {
		return computed, nil
	}
	if len(v) > 1 {
		return "", errMalformed("Request has more than one X-Amz-Content-Sha256 header.")
	}
	h := v[0]
	if h == unsignedPayload || strings.HasPrefix(h, streamingPrefix) {
		if !allowUnsigned {
			return "", errInvalidSig(ErrUnsignedPayload, fmt.Sprintf("x-amz-content-sha256 '%s' is not accepted: the payload must be signed.", truncate(h, 64)))
		}
		return h, nil
	}
	if !strings.EqualFold(h, computed) {
		return "", errInvalidSig(ErrBodyHash, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	return h, nil
}

// CanonicalRequest builds the SigV4 canonical request of r for the given
// signed header names and payload hash line (see the package comment for
// the exact rules). Only opts.DisablePathNormalization is used.
func CanonicalRequest(r *http.Request, signedHeaders []string, payloadHash string, opts Options) (string, error) {
	rawPath, rawQuery := wirePathQuery(r)
	query, err := CanonicalQuery(rawQuery)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(CanonicalURI(rawPath, !opts.DisablePathNormalization))
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for _, name := range signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), nil
}

// wirePathQuery returns the path and raw query as the client sent them.
func wirePathQuery(r *http.Request) (path, query string) {
	if u := r.RequestURI; strings.HasPrefix(u, "/") {
		path, query, _ = strings.Cut(u, "?")
		return path, query
	}
	if r.URL == nil {
		return "/", ""
	}
	query = r.URL.RawQuery
	if rp := r.URL.RawPath; rp != "" {
		if p, err := url.PathUnescape(rp); err == nil && p == r.URL.Path {
			return rp, query
		}
	}
	return r.URL.EscapedPath(), query
}

// CanonicalURI returns the canonical URI of a path given as sent on the wire
// (already escaped by the client): optionally normalised (dot segments
// removed, repeated slashes collapsed), then every byte other than
// A-Z a-z 0-9 - . _ ~ / percent-encoded (so "%3A" becomes "%253A").
func CanonicalURI(wirePath string, normalize bool) string {
	if wirePath == "" {
		wirePath = "/"
	}
	if normalize {
		wirePath = normalizePath(wirePath)
	}
	return uriEncode(wirePath, false)
}

// normalizePath removes "." and ".." segments and empty segments (repeated
// slashes), keeping a leading slash and a trailing slash when the input had
// one and something remains (the rules of the AWS test suite / botocore).
func normalizePath(p string) string {
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	s := "/" + strings.Join(out, "/")
	if strings.HasSuffix(p, "/") && len(out) > 0 {
		s += "/"
	}
	return s
}

// CanonicalQuery returns the canonical query string of a raw query.
func CanonicalQuery(rawQuery string) (string, error) {
	if rawQuery == "" {
		return "", nil
	}
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return "", errMalformed(fmt.Sprintf("Query string has an invalid escape in '%s'.", truncate(k, 64)))
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return "", errMalformed(fmt.Sprintf("Query string has an invalid escape in '%s'.", truncate(v, 64)))
		}
		pairs = append(pairs, kv{uriEncode(dk, true), uriEncode(dv, true)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String(), nil
}

// canonicalHeaderValue returns the canonical value of one signed header.
func canonicalHeaderValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host", ":authority":
		h := r.Host
		if h == "" && r.URL != nil {
			h = r.URL.Host
		}
		vals = []string{h}
	default:
		vals = append([]string(nil), r.Header.Values(name)...)
		if len(vals) == 0 {
			vals = append(vals, r.Header[name]...) // non-canonical key stored by hand
		}
		if len(vals) == 0 && name == "content-length" && r.ContentLength > 0 && r.RequestURI == "" {
			// Outgoing requests built with http.NewRequest keep the length
			// out of the header map.
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	}
	for i, v := range vals {
		vals[i] = collapseSpaces(v)
	}
	return strings.Join(vals, ",")
}

// collapseSpaces trims a header value and turns each run of whitespace into
// one space.
func collapseSpaces(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(c)
	}
	return b.String()
}

// StringToSign builds the SigV4 string to sign.
func StringToSign(amzDate, scope, canonicalRequest string) string {
	h := sha256.Sum256([]byte(canonicalRequest))
	return Algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
}

// SigningKey derives the SigV4 signing key.
func SigningKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, terminator)
}

// Sign returns the raw signature of a string to sign.
func Sign(key []byte, stringToSign string) []byte {
	return hmacSHA256(key, stringToSign)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

const upperHex = "0123456789ABCDEF"

// uriEncode percent-encodes every byte except the unreserved set; '/' is
// kept unless encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isLowerToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
