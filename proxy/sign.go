package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

const (
	amzDateFormat   = "20060102T150405Z"
	scopeDateFormat = "20060102"
	signingService  = "bedrock"
)

// signer is Warden's SigV4 signer for upstream requests. Warden builds those
// requests itself, so it knows the header set exactly and can skip the
// general signer's work (sorting, lowercasing and re-reading every header,
// deriving the signing key each time): it caches the day's signing key and
// pools its buffers. Its output is byte-identical to aws-sdk-go-v2's signer
// for the same request (tested), and every end-to-end test has the emulator's
// independent verifier check it.
type signer struct {
	region string

	mu  sync.Mutex
	key signingKey

	pool sync.Pool // *signBuf
}

type signingKey struct {
	secret, akid, date string
	key                []byte
	gen                uint64 // bumps on every new key, so pooled HMACs know they are stale
}

type signBuf struct {
	canon  []byte
	sts    []byte
	names  []string
	h      hash.Hash
	mac    hash.Hash // keyed with the signing key of generation macGen
	macGen uint64
}

func newSigner(region string) *signer {
	s := &signer{region: region}
	s.pool.New = func() any { return &signBuf{canon: make([]byte, 0, 1024), sts: make([]byte, 0, 256), h: sha256.New()} }
	return s
}

// signingKeyFor returns the derived key for creds on date and its
// generation, cached: it changes once a day or when the credentials rotate.
func (s *signer) signingKeyFor(creds aws.Credentials, date string) ([]byte, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key.date == date && s.key.secret == creds.SecretAccessKey && s.key.akid == creds.AccessKeyID {
		return s.key.key, s.key.gen
	}
	k := hmacSum([]byte("AWS4"+creds.SecretAccessKey), date)
	k = hmacSum(k, s.region)
	k = hmacSum(k, signingService)
	k = hmacSum(k, "aws4_request")
	s.key = signingKey{secret: creds.SecretAccessKey, akid: creds.AccessKeyID, date: date, key: k, gen: s.key.gen + 1}
	return k, s.key.gen
}

func hmacSum(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
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

// sign adds X-Amz-Date, X-Amz-Security-Token and Authorization to req.
// escapedPath is the exact path that goes on the wire, and req's headers hold
// only canonical (http.CanonicalHeaderKey) names.
func (s *signer) sign(req *http.Request, escapedPath, payloadHash string, creds aws.Credentials, now time.Time) error {
	now = now.UTC()
	amzDate := now.Format(amzDateFormat)
	date := amzDate[:8]
	req.Header["X-Amz-Date"] = []string{amzDate}
	if creds.SessionToken != "" {
		req.Header["X-Amz-Security-Token"] = []string{creds.SessionToken}
	}
	b := s.pool.Get().(*signBuf)
	defer s.pool.Put(b)

	// Signed header names, lowercased and sorted.
	names := b.names[:0]
	for k := range req.Header {
		if !unsignedHeader(k) {
			names = append(names, strings.ToLower(k))
		}
	}
	names = append(names, "host")
	if req.ContentLength > 0 {
		names = append(names, "content-length")
	}
	sort.Strings(names)
	b.names = names

	c := b.canon[:0]
	c = append(c, req.Method...)
	c = append(c, '\n')
	c = appendURIEncoded(c, escapedPath)
	c = append(c, '\n')
	if req.URL.RawQuery != "" {
		// Rare on the runtime API (ListAsyncInvokes): share the verifier's code.
		q, err := sigv4.CanonicalQuery(req.URL.RawQuery)
		if err != nil {
			return fmt.Errorf("canonical query of %q: %w", req.URL.RawQuery, err)
		}
		c = append(c, q...)
	}
	c = append(c, '\n')
	for _, n := range names {
		c = append(c, n...)
		c = append(c, ':')
		switch n {
		case "host":
			c = append(c, hostOf(req)...)
		case "content-length":
			c = strconv.AppendInt(c, req.ContentLength, 10)
		default:
			for i, v := range req.Header[http.CanonicalHeaderKey(n)] {
				if i > 0 {
					c = append(c, ',')
				}
				c = appendTrimmed(c, v)
			}
		}
		c = append(c, '\n')
	}
	c = append(c, '\n')
	signedStart := len(c)
	for i, n := range names {
		if i > 0 {
			c = append(c, ';')
		}
		c = append(c, n...)
	}
	signedHeaders := string(c[signedStart:])
	c = append(c, '\n')
	c = append(c, payloadHash...)
	b.canon = c

	b.h.Reset()
	b.h.Write(c)
	var sum [sha256.Size]byte
	canonHash := b.h.Sum(sum[:0])

	scope := date + "/" + s.region + "/" + signingService + "/aws4_request"
	st := b.sts[:0]
	st = append(st, "AWS4-HMAC-SHA256\n"...)
	st = append(st, amzDate...)
	st = append(st, '\n')
	st = append(st, scope...)
	st = append(st, '\n')
	st = hex.AppendEncode(st, canonHash)
	b.sts = st

	key, gen := s.signingKeyFor(creds, date)
	if b.mac == nil || b.macGen != gen {
		b.mac, b.macGen = hmac.New(sha256.New, key), gen
	} else {
		b.mac.Reset()
	}
	b.mac.Write(st)
	sig := b.mac.Sum(sum[:0])

	auth := make([]byte, 0, 64+len(creds.AccessKeyID)+len(scope)+len(signedHeaders)+64)
	auth = append(auth, "AWS4-HMAC-SHA256 Credential="...)
	auth = append(auth, creds.AccessKeyID...)
	auth = append(auth, '/')
	auth = append(auth, scope...)
	auth = append(auth, ", SignedHeaders="...)
	auth = append(auth, signedHeaders...)
	auth = append(auth, ", Signature="...)
	auth = hex.AppendEncode(auth, sig)
	req.Header["Authorization"] = []string{string(auth)}
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
