package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	exampleAKID   = "AKIDEXAMPLE"
	exampleSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func exampleLookup(id string) (string, bool) {
	if id == exampleAKID {
		return exampleSecret, true
	}
	return "", false
}

// parseRaw parses a test-suite request file. It is deliberately lenient and
// independent of net/http's parser: the request target may contain raw
// spaces and UTF-8 (get-space, get-utf8), and a folded header line is a
// further value of the previous header (get-header-value-multiline, as the
// suite interprets it).
func parseRaw(raw []byte) (*http.Request, []byte, error) {
	head, body, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		head, body = raw, nil
	}
	lines := strings.Split(string(head), "\n")
	first := lines[0]
	sp1 := strings.IndexByte(first, ' ')
	sp2 := strings.LastIndexByte(first, ' ')
	if sp1 <= 0 || sp2 <= sp1 {
		return nil, nil, fmt.Errorf("bad request line %q", first)
	}
	method, target := first[:sp1], first[sp1+1:sp2]
	if !strings.HasPrefix(target, "/") {
		return nil, nil, fmt.Errorf("bad target %q", target)
	}
	r := &http.Request{Method: method, RequestURI: target, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	p, q, _ := strings.Cut(target, "?")
	r.URL = &url.URL{Path: p, RawQuery: q}
	if u, err := url.ParseRequestURI(target); err == nil {
		r.URL = u
	}
	var last string
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if last == "" {
				return nil, nil, fmt.Errorf("continuation without header")
			}
			r.Header.Add(last, strings.TrimSpace(l))
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, nil, fmt.Errorf("bad header line %q", l)
		}
		if strings.EqualFold(k, "host") {
			r.Host = strings.TrimSpace(v)
			last = ""
			continue
		}
		r.Header.Add(k, v)
		last = k
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return r, body, nil
}

type vector struct {
	name string
	raw  []byte // signed request
	creq string // expected canonical request, if known
	now  time.Time
	opts Options
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	var vs []vector
	t2015 := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	files, _ := filepath.Glob("testdata/v4-2015/*.signed.txt")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".signed.txt")
		vs = append(vs, vector{name: "2015/" + name, raw: raw, now: t2015, opts: Options{
			Now: t2015, Service: "service", Region: "us-east-1",
			DisablePathNormalization: strings.HasSuffix(name, "-unnormalized"),
		}})
	}
	t2011 := time.Date(2011, 9, 9, 23, 36, 0, 0, time.UTC)
	files, _ = filepath.Glob("testdata/v4-2011/*.req")
	for _, f := range files {
		base := strings.TrimSuffix(f, ".req")
		req, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		authz, err := os.ReadFile(base + ".authz")
		if err != nil {
			t.Fatal(err)
		}
		creq, err := os.ReadFile(base + ".creq")
		if err != nil {
			t.Fatal(err)
		}
		// Insert the Authorization header after the request line.
		head, rest, _ := bytes.Cut(req, []byte("\n"))
		raw := append(append(append([]byte{}, head...), []byte("\nAuthorization:"+string(authz)+"\n")...), rest...)
		vs = append(vs, vector{name: "2011/" + filepath.Base(base), raw: raw, creq: string(creq), now: t2011,
			opts: Options{Now: t2011, Service: "host", Region: "us-east-1"}})
	}
	if len(vs) < 25 {
		t.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

func TestSuiteVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			r, body, err := parseRaw(v.raw)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Verify(r, body, exampleLookup, v.opts)
			if err != nil {
				t.Fatalf("valid vector rejected: %v", err)
			}
			if res.AccessKeyID != exampleAKID || res.Region != "us-east-1" {
				t.Errorf("result %+v", res)
			}
			if strings.Contains(v.name, "session-token") && res.SessionToken == "" {
				t.Errorf("session token not reported")
			}
			if v.creq != "" {
				a, _ := ParseAuthorization(r.Header.Get("Authorization"))
				ph, _ := PayloadHash(r, body, false)
				got, err := CanonicalRequest(r, a.SignedHeaders, ph, v.opts)
				if err != nil || got != v.creq {
					t.Errorf("canonical request:\n got %q\nwant %q (%v)", got, v.creq, err)
				}
			}
		})
	}
}

// mutations returns named variants of a valid signed request that must all be
// rejected.
func mutations(t *testing.T, raw []byte) map[string]func() (*http.Request, []byte) {
	t.Helper()
	m := map[string]func() (*http.Request, []byte){}
	parse := func() (*http.Request, []byte) {
		r, b, err := parseRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		return r, b
	}
	m["body+byte"] = func() (*http.Request, []byte) { r, b := parse(); return r, append(append([]byte{}, b...), 'x') }
	m["body-flip"] = func() (*http.Request, []byte) {
		r, b := parse()
		if len(b) == 0 {
			return r, []byte{0}
		}
		b = append([]byte{}, b...)
		b[len(b)/2] ^= 1
		return r, b
	}
	m["signature"] = func() (*http.Request, []byte) {
		r, b := parse()
		a := r.Header.Get("Authorization")
		i := strings.Index(a, "Signature=") + len("Signature=") + 5
		c := byte('0')
		if a[i] == '0' {
			c = '1'
		}
		r.Header.Set("Authorization", a[:i]+string(c)+a[i+1:])
		return r, b
	}
	m["method"] = func() (*http.Request, []byte) {
		r, b := parse()
		if r.Method == "GET" {
			r.Method = "PUT"
		} else {
			r.Method = "GET"
		}
		return r, b
	}
	m["path"] = func() (*http.Request, []byte) {
		r, b := parse()
		p, q, _ := strings.Cut(r.RequestURI, "?")
		r.RequestURI = p + "x"
		if q != "" {
			r.RequestURI += "?" + q
		}
		return r, b
	}
	m["query"] = func() (*http.Request, []byte) {
		r, b := parse()
		if strings.Contains(r.RequestURI, "?") {
			r.RequestURI += "x"
		} else {
			r.RequestURI += "?x=y"
		}
		return r, b
	}
	r0, _ := parse()
	a, err := ParseAuthorization(r0.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range a.SignedHeaders {
		h := h
		m["header:"+h] = func() (*http.Request, []byte) {
			r, b := parse()
			if h == "host" {
				r.Host += "x"
				return r, b
			}
			vals := r.Header.Values(h)
			if len(vals) == 0 {
				r.Header.Set(h, "x")
				return r, b
			}
			nv := append([]string{}, vals...)
			nv[0] += "x"
			r.Header[http.CanonicalHeaderKey(h)] = nv
			return r, b
		}
	}
	m["unsigned-header-added-is-ok"] = nil // marker: see below
	return m
}

func TestSuiteVectorsTampered(t *testing.T) {
	for _, v := range loadVectors(t) {
		for name, mk := range mutations(t, v.raw) {
			if mk == nil {
				continue
			}
			t.Run(v.name+"/"+name, func(t *testing.T) {
				r, body := mk()
				if _, err := Verify(r, body, exampleLookup, v.opts); err == nil {
					t.Fatalf("tampered request (%s) accepted", name)
				}
			})
		}
		t.Run(v.name+"/extra-unsigned-header", func(t *testing.T) {
			r, body, _ := parseRaw(v.raw)
			r.Header.Set("User-Agent", "added-after-signing")
			if _, err := Verify(r, body, exampleLookup, v.opts); err != nil {
				t.Fatalf("unsigned header should not matter: %v", err)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	raw, err := os.ReadFile("testdata/v4-2015/post-vanilla.signed.txt")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	base := Options{Now: t0, Service: "service", Region: "us-east-1"}
	tests := []struct {
		name   string
		mut    func(r *http.Request)
		opts   Options
		lookup SecretLookup
		kind   error
		code   string
		status int
		msg    string
	}{
		{name: "missing", mut: func(r *http.Request) { r.Header.Del("Authorization") }, kind: ErrMissingAuth, code: CodeMissingAuthenticationToken, status: 403, msg: MsgMissingAuthenticationToken},
		{name: "unknown key", lookup: func(string) (string, bool) { return "", false }, kind: ErrUnknownKey, code: CodeUnrecognizedClient, status: 403, msg: MsgUnrecognizedClient},
		{name: "wrong secret", lookup: func(string) (string, bool) { return "nope", true }, kind: ErrSignatureMismatch, code: CodeInvalidSignature, status: 403, msg: MsgInvalidSignature},
		{name: "expired", opts: Options{Now: t0.Add(6 * time.Minute)}, kind: ErrExpired, code: CodeInvalidSignature, status: 403,
			msg: "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T124200Z - 5 min.)"},
		{name: "future", opts: Options{Now: t0.Add(-6 * time.Minute)}, kind: ErrExpired, code: CodeInvalidSignature, status: 403,
			msg: "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z (20150830T123000Z + 5 min.)"},
		{name: "skew disabled", opts: Options{Now: t0.Add(240 * time.Hour), MaxSkew: -1}},
		{name: "wider skew", opts: Options{Now: t0.Add(time.Hour), MaxSkew: 2 * time.Hour}},
		{name: "wrong service", opts: Options{Now: t0, Service: "bedrock"}, kind: ErrScope, code: CodeInvalidSignature, status: 403},
		{name: "wrong region", opts: Options{Now: t0, Region: "eu-west-1"}, kind: ErrScope, code: CodeInvalidSignature, status: 403},
		{name: "any region/service", opts: Options{Now: t0}},
		{name: "scope date", mut: func(r *http.Request) { r.Header.Set("X-Amz-Date", "20150831T000100Z") }, opts: Options{Now: t0.Add(11*time.Hour + 25*time.Minute)}, kind: ErrScope, code: CodeInvalidSignature, status: 403},
		{name: "bad date", mut: func(r *http.Request) { r.Header.Set("X-Amz-Date", "2015-08-30T12:36:00Z") }, kind: ErrMalformed, code: CodeIncompleteSignature, status: 400},
		{name: "no date", mut: func(r *http.Request) { r.Header.Del("X-Amz-Date") }, kind: ErrMalformed, code: CodeIncompleteSignature, status: 400,
			msg: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."},
		{name: "host unsigned", mut: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date", 1))
		}, kind: ErrMalformed, code: CodeIncompleteSignature, status: 400},
		{name: "date unsigned", mut: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=host;x-amz-date", "SignedHeaders=host", 1))
		}, kind: ErrMalformed, code: CodeIncompleteSignature, status: 400},
		{name: "two authorization headers", mut: func(r *http.Request) { r.Header.Add("Authorization", r.Header.Get("Authorization")) }, kind: ErrMalformed, code: CodeIncompleteSignature, status: 400},
		{name: "bearer", mut: func(r *http.Request) { r.Header.Set("Authorization", "Bearer ABSKxyz") }, kind: ErrMalformed, code: CodeIncompleteSignature, status: 400},
		{name: "content sha mismatch", mut: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64))
		}, kind: ErrBodyHash, code: CodeInvalidSignature, status: 403},
		{name: "unsigned payload refused", mut: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD") }, kind: ErrUnsignedPayload, code: CodeInvalidSignature, status: 403},
		{name: "streaming refused", mut: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-EVENTS")
		}, kind: ErrUnsignedPayload, code: CodeInvalidSignature, status: 403},
		// The header is not signed in post-vanilla, and it equals sha256(""): the signature still holds.
		{name: "matching unsigned content sha", mut: func(r *http.Request) {
			r.Header.Set("X-Amz-Content-Sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, body, err := parseRaw(raw)
			if err != nil {
				t.Fatal(err)
			}
			if tc.mut != nil {
				tc.mut(r)
			}
			opts := base
			if !tc.opts.Now.IsZero() {
				opts = tc.opts
			}
			lookup := tc.lookup
			if lookup == nil {
				lookup = exampleLookup
			}
			_, err = Verify(r, body, lookup, opts)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want kind %v", err, tc.kind)
			}
			if e.Code != tc.code || e.Status != tc.status || (tc.msg != "" && e.Message != tc.msg) {
				t.Fatalf("got %s %d %q", e.Code, e.Status, e.Message)
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	good := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	a, err := ParseAuthorization(good)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKeyID != "AKIDEXAMPLE" || a.Date != "20150830" || a.Region != "us-east-1" || a.Service != "service" ||
		strings.Join(a.SignedHeaders, ";") != "host;x-amz-date" || a.Scope() != "20150830/us-east-1/service/aws4_request" {
		t.Fatalf("%+v", a)
	}
	// Components without spaces and in another order are accepted.
	if _, err := ParseAuthorization("AWS4-HMAC-SHA256 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31,SignedHeaders=host;x-amz-date,Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"empty":            "",
		"alg":              strings.Replace(good, "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1", 1),
		"sigv4a":           strings.Replace(good, "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1),
		"no equal":         strings.Replace(good, "Credential=", "Credential ", 1),
		"missing sig":      good[:strings.Index(good, ", Signature")], //nolint:gocritic // good is a signed header: it has ", Signature"
		"dup":              good + ", Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
		"unknown":          good + ", Foo=bar",
		"scope 4":          strings.Replace(good, "/aws4_request", "", 1),
		"terminator":       strings.Replace(good, "aws4_request", "aws4_requesx", 1),
		"date":             strings.Replace(good, "20150830", "2015083x", 1),
		"date invalid":     strings.Replace(good, "20150830", "20151340", 1),
		"empty akid":       strings.Replace(good, "AKIDEXAMPLE", "", 1),
		"upper header":     strings.Replace(good, "host;", "Host;", 1),
		"empty header":     strings.Replace(good, "host;", "host;;", 1),
		"dup header":       strings.Replace(good, "host;", "host;host;", 1),
		"short sig":        good[:len(good)-1],
		"upper sig":        strings.Replace(good, "5fa00fa", "5FA00FA", 1),
		"trailing comma":   good + ",",
		"empty signed hdr": strings.Replace(good, "host;x-amz-date", "", 1),
	}
	for name, v := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseAuthorization(v); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%q: got %v", v, err)
			}
		})
	}
}

func TestCanonicalURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc/invoke",
			"/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253Aapplication-inference-profile%252Fabc/invoke"},
		{"/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse", "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"},
		{"/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", "/model/anthropic.claude-3-5-haiku-20241022-v1%253A0/converse"},
		{"//example//", "/example/"},
		{"/a/b/..", "/a"},
		{"/a/./b/../c/", "/a/c/"},
		{"/../..", "/"},
		{"/%2E%2E/x", "/%252E%252E/x"}, // encoded dots are not dot segments
	}
	for _, tc := range tests {
		if got := CanonicalURI(tc.in, true); got != tc.want {
			t.Errorf("CanonicalURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := CanonicalURI("//a/./b", false); got != "//a/./b" {
		t.Errorf("unnormalized: %q", got)
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"b=2&a=1", "a=1&b=2"},
		{"a=2&a=1", "a=1&a=2"},
		{"a", "a="},
		{"statusEquals=InProgress&maxResults=10", "maxResults=10&statusEquals=InProgress"},
		{"nextToken=ab%2Bc%2F%3D", "nextToken=ab%2Bc%2F%3D"},
		{"a=b+c", "a=b%20c"},
		{"Param=y&%E1%88%B4=x", "%E1%88%B4=x&Param=y"},
	}
	for _, tc := range tests {
		got, err := CanonicalQuery(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalQuery(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := CanonicalQuery("a=%zz"); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad escape: %v", err)
	}
}

// --- (b) requests signed by the real aws-sdk-go-v2 signer ------------------

var bedrockPaths = []string{
	"/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke",
	"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456/converse",
	"/model/us.amazon.nova-lite-v1%3A0/converse-stream",
	"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fmeta.llama3-8b-instruct-v1%3A0/invoke-with-response-stream",
	"/guardrail/gr-123/version/DRAFT/apply",
	"/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aasync-invoke%2Fabc",
	"/async-invoke?maxResults=10&statusEquals=InProgress&nextToken=ab%2Bc%2F%3D",
}

// capture runs a real HTTP server that verifies what it receives, so the
// verifier sees the request exactly as net/http parses it off the wire.
func capture(t *testing.T, opts Options, lookup SecretLookup) (*httptest.Server, chan error) {
	t.Helper()
	errc := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, err := Verify(r, body, lookup, opts)
		errc <- err
	}))
	t.Cleanup(srv.Close)
	return srv, errc
}

func sdkSign(t *testing.T, req *http.Request, body []byte, now time.Time, secret string) {
	t.Helper()
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: "AKIDWARDEN", SecretAccessKey: secret, SessionToken: "tok"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", now); err != nil {
		t.Fatal(err)
	}
}

func TestAWSSDKSigner(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	lookup := func(id string) (string, bool) { return "s3cr3t", id == "AKIDWARDEN" }
	opts := Options{Now: now.Add(time.Minute), Service: "bedrock", Region: "us-east-1"}
	for _, p := range bedrockPaths {
		for _, tamper := range []string{"", "body", "path", "secret"} {
			t.Run(p+"/"+tamper, func(t *testing.T) {
				srv, errc := capture(t, opts, lookup)
				body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
				method := http.MethodPost
				if strings.HasPrefix(p, "/async-invoke") {
					method, body = http.MethodGet, nil
				}
				req, err := http.NewRequest(method, srv.URL+p, bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				secret := "s3cr3t"
				if tamper == "secret" {
					secret = "other"
				}
				sdkSign(t, req, body, now, secret)
				// Direct check on the client-side request too.
				if tamper == "" {
					if _, err := Verify(req, body, lookup, opts); err != nil {
						t.Fatalf("client-side request: %v", err)
					}
				}
				switch tamper {
				case "body":
					body = append([]byte{}, body...)
					body = append(body, ' ')
					req.Body = io.NopCloser(bytes.NewReader(body))
					req.ContentLength = int64(len(body))
					req.Header.Del("Content-Length")
				case "path":
					req.URL.RawPath = strings.Replace(req.URL.EscapedPath(), "%3A", ":", 1)
					req.URL.Path, _ = url.PathUnescape(req.URL.RawPath)
					if !strings.Contains(p, "%3A") {
						req.URL.RawPath, req.URL.Path = req.URL.Path+"x", req.URL.Path+"x"
					}
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				err = <-errc
				if tamper == "" && err != nil {
					t.Fatalf("SDK-signed request rejected: %v", err)
				}
				if tamper != "" && err == nil {
					t.Fatalf("tampered (%s) SDK-signed request accepted", tamper)
				}
			})
		}
	}
}

// --- (c) a botocore-style signer, written here independently -----------------

// botoSign signs like botocore does for bedrock-runtime when called by hand:
// only host and x-amz-date signed, no X-Amz-Content-Sha256 header, the path
// as given (raw ':' allowed) escaped once more for the canonical request.
func botoSign(method, host, path, query string, body []byte, akid, secret, region string, now time.Time) (authz, amzDate string) {
	enc := func(s string, slash bool) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
				b.WriteByte(c)
			case c == '/' && !slash:
				b.WriteByte(c)
			default:
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	var qs []string
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			k, _ = url.QueryUnescape(k)
			v, _ = url.QueryUnescape(v)
			qs = append(qs, enc(k, true)+"="+enc(v, true))
		}
		sort.Strings(qs)
	}
	amzDate = now.UTC().Format("20060102T150405Z")
	h := sha256.Sum256(body)
	creq := strings.Join([]string{method, enc(path, false), strings.Join(qs, "&"),
		"host:" + host, "x-amz-date:" + amzDate, "", "host;x-amz-date", hex.EncodeToString(h[:])}, "\n")
	scope := amzDate[:8] + "/" + region + "/bedrock/aws4_request"
	ch := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	key := []byte("AWS4" + secret)
	for _, s := range []string{amzDate[:8], region, "bedrock", "aws4_request", sts} {
		key = hmacSHA256(key, s)
	}
	return "AWS4-HMAC-SHA256 Credential=" + akid + "/" + scope + ", SignedHeaders=host;x-amz-date, Signature=" + hex.EncodeToString(key), amzDate
}

func TestBotocoreStyleSigner(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	lookup := func(id string) (string, bool) { return "b0t0", id == "AKIDBOTO" }
	opts := Options{Now: now, Service: "bedrock", Region: "us-west-2"}
	paths := []string{
		"/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
		"/model/arn:aws:bedrock:us-west-2:123456789012:application-inference-profile%2Fabc/converse",
		"/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse",
	}
	for _, p := range paths {
		for _, tamper := range []string{"", "body", "host", "date", "region"} {
			t.Run(p+"/"+tamper, func(t *testing.T) {
				srv, errc := capture(t, opts, lookup)
				u, _ := url.Parse(srv.URL)
				body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
				region := "us-west-2"
				if tamper == "region" {
					region = "us-east-1"
				}
				authz, amzDate := botoSign("POST", u.Host, p, "", body, "AKIDBOTO", "b0t0", region, now)
				conn := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nX-Amz-Date: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
					p, u.Host, amzDate, authz, len(body), body)
				switch tamper {
				case "body":
					conn = strings.Replace(conn, `"hi"`, `"ho"`, 1)
				case "host":
					conn = strings.Replace(conn, "Host: "+u.Host, "Host: bedrock-runtime.us-west-2.amazonaws.com", 1)
				case "date":
					conn = strings.Replace(conn, "X-Amz-Date: "+amzDate, "X-Amz-Date: "+now.Add(time.Second).Format("20060102T150405Z"), 1)
				}
				rawHTTP(t, u.Host, conn)
				err := <-errc
				if tamper == "" && err != nil {
					t.Fatalf("botocore-style request rejected: %v", err)
				}
				if tamper != "" && err == nil {
					t.Fatalf("tampered (%s) request accepted", tamper)
				}
			})
		}
	}
}

func rawHTTP(t *testing.T, host, req string) {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(c)
}

// Over HTTP/2 the JS SDK signs ":authority" in place of host; no other
// pseudo-header is a valid signed header.
func TestParseAuthorizationAuthority(t *testing.T) {
	const prefix = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders="
	const sig = ", Signature=0000000000000000000000000000000000000000000000000000000000000000"
	if _, err := ParseAuthorization(prefix + ":authority;x-amz-date" + sig); err != nil {
		t.Errorf(":authority rejected: %v", err)
	}
	for _, bad := range []string{":path;x-amz-date", ":authority;:authority;x-amz-date", "Host;x-amz-date"} {
		if _, err := ParseAuthorization(prefix + bad + sig); err == nil {
			t.Errorf("SignedHeaders=%s accepted", bad)
		}
	}
}
