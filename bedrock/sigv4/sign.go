package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// signingService is the service name in Bedrock runtime scopes.
const signingService = "bedrock"

// Signer is Warden's SigV4 signer for upstream requests. Warden builds those
// requests itself, so it knows the header set exactly and can skip the
// general Signer's work (sorting, lowercasing and re-reading every header,
// deriving the signing key each time): it caches the day's signing key and
// pools its buffers. Its output is byte-identical to aws-sdk-go-v2's Signer
// for the same request (tested), and every end-to-end test has the emulator's
// independent verifier check it.
type Signer struct {
	region  string
	service string // the scope's service name: "bedrock" unless NewServiceSigner says otherwise

	mu  sync.Mutex
	key signingKey

	date atomic.Pointer[dateCache]

	pool sync.Pool // *signBuf
}

type signingKey struct {
	secret, akid, date string
	scope              string // date/region/bedrock/aws4_request
	key                []byte
	gen                uint64 // bumps on every new key, so pooled HMACs know they are stale
}

type signBuf struct {
	canon  []byte
	sts    []byte
	auth   []byte
	names  []headerName
	h      hash.Hash
	mac    hash.Hash // keyed with the signing key of generation macGen
	macGen uint64
	// The last SignedHeaders list, as bytes and as a string: consecutive
	// requests nearly always sign the same headers.
	signed    []byte
	signedStr string
}

// headerName is a header to sign: its SigV4 (lowercase) name and its key in
// req.Header ("" for host and content-length, which are not there).
type headerName struct{ lower, key string }

// dateCache is a formatted X-Amz-Date and the second it names.
type dateCache struct {
	unix int64
	s    string
}

// NewSigner signs for the Bedrock runtime (service name "bedrock").
func NewSigner(region string) *Signer { return NewServiceSigner(region, signingService) }

// NewServiceSigner signs for another SigV4 service name (bedrock-mantle's
// is "bedrock-mantle").
func NewServiceSigner(region, service string) *Signer {
	s := &Signer{region: region, service: service}
	s.pool.New = func() any {
		return &signBuf{canon: make([]byte, 0, 1024), sts: make([]byte, 0, 256), auth: make([]byte, 0, 256), h: sha256.New()}
	}
	return s
}

// signingKeyFor returns the derived key for creds on date, its generation
// and the credential scope, cached: they change once a day or when the
// credentials rotate.
func (s *Signer) signingKeyFor(creds aws.Credentials, date string) ([]byte, uint64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key.date == date && s.key.secret == creds.SecretAccessKey && s.key.akid == creds.AccessKeyID {
		return s.key.key, s.key.gen, s.key.scope
	}
	k := hmacSum([]byte("AWS4"+creds.SecretAccessKey), date)
	k = hmacSum(k, s.region)
	k = hmacSum(k, s.service)
	k = hmacSum(k, "aws4_request")
	scope := date + "/" + s.region + "/" + s.service + "/aws4_request"
	s.key = signingKey{secret: creds.SecretAccessKey, akid: creds.AccessKeyID, date: date, scope: scope, key: k, gen: s.key.gen + 1}
	return k, s.key.gen, scope
}

func hmacSum(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// amzDateOf formats now (UTC) as X-Amz-Date, reusing the string of the
// last call within the same second.
func (s *Signer) amzDateOf(now time.Time) string {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.unix == sec {
		return d.s
	}
	var b [len(amzDateFormat)]byte
	d := &dateCache{unix: sec, s: string(now.UTC().AppendFormat(b[:0], amzDateFormat))}
	s.date.Store(d)
	return d.s
}

// unsignedHeaders are forwarded but, as in the AWS SDKs, not signed:
// intermediaries may legitimately rewrite them.
func unsignedHeader(name string) bool {
	switch name {
	case "Authorization", "User-Agent", "X-Amzn-Trace-Id", "Expect", "Transfer-Encoding":
		return true
	}
	return false
}

// lowerHeader is strings.ToLower for a canonical header name, without an
// allocation for the names Warden forwards.
func lowerHeader(k string) string {
	switch k {
	case "Content-Type":
		return "content-type"
	case "Accept":
		return "accept"
	case "X-Amz-User-Agent":
		return "x-amz-user-agent"
	case "Amz-Sdk-Invocation-Id":
		return "amz-sdk-invocation-id"
	case "Amz-Sdk-Request":
		return "amz-sdk-request"
	case "X-Amz-Date":
		return "x-amz-date"
	case "X-Amz-Security-Token":
		return "x-amz-security-token"
	case "X-Amzn-Bedrock-Request-Metadata":
		return "x-amzn-bedrock-request-metadata"
	}
	return strings.ToLower(k)
}

// sign adds X-Amz-Date, X-Amz-Security-Token and Authorization to req.
// escapedPath is the exact path that goes on the wire, and req's headers hold
// only canonical (http.CanonicalHeaderKey) names.
func (s *Signer) Sign(req *http.Request, escapedPath, payloadHash string, creds aws.Credentials, now time.Time) error {
	dateCache := s.amzDateOf(now)
	date := dateCache[:8]
	// One allocation for the values of the headers sign sets; each gets a
	// full slice so an append to one cannot reach the next.
	vals := new([3]string)
	vals[0] = dateCache
	req.Header["X-Amz-Date"] = vals[0:1:1]
	if creds.SessionToken != "" {
		vals[1] = creds.SessionToken
		req.Header["X-Amz-Security-Token"] = vals[1:2:2]
	}
	b := s.pool.Get().(*signBuf)
	defer s.pool.Put(b)

	// Signed header names, lowercased and sorted (insertion sort: a
	// dozen names at most).
	names := b.names[:0]
	for k := range req.Header {
		if !unsignedHeader(k) {
			names = append(names, headerName{lowerHeader(k), k})
		}
	}
	names = append(names, headerName{lower: "host"})
	if req.ContentLength > 0 {
		names = append(names, headerName{lower: "content-length"})
	}
	for i := 1; i < len(names); i++ {
		for j := i; j > 0 && names[j].lower < names[j-1].lower; j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
	b.names = names

	c := b.canon[:0]
	c = append(c, req.Method...)
	c = append(c, '\n')
	c = appendURIEncoded(c, escapedPath)
	c = append(c, '\n')
	if req.URL.RawQuery != "" {
		// Rare on the runtime API (ListAsyncInvokes): share the verifier's code.
		q, err := CanonicalQuery(req.URL.RawQuery)
		if err != nil {
			return fmt.Errorf("canonical query of %q: %w", req.URL.RawQuery, err)
		}
		c = append(c, q...)
	}
	c = append(c, '\n')
	for _, n := range names {
		c = append(c, n.lower...)
		c = append(c, ':')
		switch {
		case n.key != "":
			for i, v := range req.Header[n.key] {
				if i > 0 {
					c = append(c, ',')
				}
				c = appendTrimmed(c, v)
			}
		case n.lower == "host":
			c = append(c, hostOf(req)...)
		default: // content-length
			c = strconv.AppendInt(c, req.ContentLength, 10)
		}
		c = append(c, '\n')
	}
	c = append(c, '\n')
	signedStart := len(c)
	for i, n := range names {
		if i > 0 {
			c = append(c, ';')
		}
		c = append(c, n.lower...)
	}
	if !bytes.Equal(c[signedStart:], b.signed) {
		b.signed = append(b.signed[:0], c[signedStart:]...)
		b.signedStr = string(b.signed)
	}
	signedHeaders := b.signedStr
	c = append(c, '\n')
	c = append(c, payloadHash...)
	b.canon = c

	b.h.Reset()
	b.h.Write(c)
	var sum [sha256.Size]byte
	canonHash := b.h.Sum(sum[:0])

	key, gen, scope := s.signingKeyFor(creds, date)
	st := b.sts[:0]
	st = append(st, "AWS4-HMAC-SHA256\n"...)
	st = append(st, dateCache...)
	st = append(st, '\n')
	st = append(st, scope...)
	st = append(st, '\n')
	st = hex.AppendEncode(st, canonHash)
	b.sts = st

	if b.mac == nil || b.macGen != gen {
		b.mac, b.macGen = hmac.New(sha256.New, key), gen
	} else {
		b.mac.Reset()
	}
	b.mac.Write(st)
	sig := b.mac.Sum(sum[:0])

	auth := b.auth[:0]
	auth = append(auth, "AWS4-HMAC-SHA256 Credential="...)
	auth = append(auth, creds.AccessKeyID...)
	auth = append(auth, '/')
	auth = append(auth, scope...)
	auth = append(auth, ", SignedHeaders="...)
	auth = append(auth, signedHeaders...)
	auth = append(auth, ", Signature="...)
	auth = hex.AppendEncode(auth, sig)
	b.auth = auth
	vals[2] = string(auth)
	req.Header["Authorization"] = vals[2:3:3]
	return nil
}

func hostOf(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return r.URL.Host
}

// appendURIEncoded escapes the wire path once more, as SigV4 requires for
// every service but S3: each byte outside A-Z a-z 0-9 - . _ ~ / is
// percent-encoded, so the SDK's "%3A" becomes "%253A".
func appendURIEncoded(dst []byte, p string) []byte {
	const hexDigits = "0123456789ABCDEF"
	if p == "" {
		return append(dst, '/')
	}
	for i := 0; i < len(p); i++ {
		ch := p[i]
		if ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/' {
			dst = append(dst, ch)
			continue
		}
		dst = append(dst, '%', hexDigits[ch>>4], hexDigits[ch&15])
	}
	return dst
}

// appendTrimmed appends v trimmed, with runs of spaces collapsed to one.
func appendTrimmed(dst []byte, v string) []byte {
	v = strings.TrimSpace(v)
	space := false
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch == ' ' || ch == '\t' {
			space = true
			continue
		}
		if space {
			dst = append(dst, ' ')
			space = false
		}
		dst = append(dst, ch)
	}
	return dst
}
