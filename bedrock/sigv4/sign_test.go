package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Warden's upstream signer produces exactly what aws-sdk-go-v2's signer
// produces for the same request.
func TestSignerMatchesSDK(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 5, 6, 0, time.UTC)
	cases := []struct {
		name, method, escPath, query string
		header                       http.Header
		body                         string
		creds                        aws.Credentials
	}{
		{"converse", "POST", "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse", "",
			http.Header{"Content-Type": {"application/json"}, "Amz-Sdk-Invocation-Id": {"abc"}, "Amz-Sdk-Request": {"attempt=1; max=3"}},
			`{"messages":[]}`, aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}},
		{"arn with session token", "POST", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456/invoke", "",
			http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}, "X-Amzn-Bedrock-Trace": {"  ENABLED  "},
				"X-Amzn-Bedrock-Guardrailidentifier": {"gr-1"}, "User-Agent": {"aws-sdk-go-v2/1.0"}, "X-Amzn-Trace-Id": {"Root=1"}},
			`{"prompt":"hi"}`, aws.Credentials{AccessKeyID: "ASIA", SecretAccessKey: "s2", SessionToken: "token/with+chars=="}},
		{"list with query", "GET", "/async-invoke", "statusEquals=InProgress&maxResults=10&submitTimeAfter=2026-01-01T00%3A00%3A00Z",
			http.Header{"Amz-Sdk-Request": {"attempt=1;   max=3"}}, "", aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}},
		{"multi-valued header", "POST", "/guardrail/gr1/version/1/apply", "",
			http.Header{"Content-Type": {"application/json"}, "Accept": {"a", "b"}}, `{}`, aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}},
	}
	s := NewSigner("us-east-1")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mk := func() *http.Request {
				dec, _ := url.PathUnescape(tc.escPath)
				u := &url.URL{Scheme: "https", Host: "bedrock-runtime.us-east-1.amazonaws.com", Path: dec, RawPath: tc.escPath, RawQuery: tc.query}
				r := &http.Request{Method: tc.method, URL: u, Host: u.Host, Header: tc.header.Clone()}
				if tc.body != "" {
					r.Body = http.NoBody
					r.ContentLength = int64(len(tc.body))
				}
				return r
			}
			sum := sha256.Sum256([]byte(tc.body))
			hash := hex.EncodeToString(sum[:])
			mine, sdk := mk(), mk()
			s.Sign(mine, tc.escPath, hash, tc.creds, now)
			s.Sign(mine, tc.escPath, hash, tc.creds, now) // a second call hits the key cache and must agree
			if err := v4.NewSigner().SignHTTP(context.Background(), tc.creds, sdk, hash, "bedrock", "us-east-1", now); err != nil {
				t.Fatal(err)
			}
			if got, want := mine.Header.Get("Authorization"), sdk.Header.Get("Authorization"); got != want {
				t.Errorf("Authorization\n got %s\nwant %s", got, want)
			}
			for _, h := range []string{"X-Amz-Date", "X-Amz-Security-Token"} {
				if mine.Header.Get(h) != sdk.Header.Get(h) {
					t.Errorf("%s: %q vs %q", h, mine.Header.Get(h), sdk.Header.Get(h))
				}
			}
		})
	}
	// Rotated credentials get a new key.
	a, b := &http.Request{Method: "POST", URL: &url.URL{Path: "/x"}, Host: "h", Header: http.Header{}}, &http.Request{Method: "POST", URL: &url.URL{Path: "/x"}, Host: "h", Header: http.Header{}}
	s.Sign(a, "/x", "e3b0", aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "one"}, now)
	s.Sign(b, "/x", "e3b0", aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "two"}, now)
	if bytes.Equal([]byte(a.Header.Get("Authorization")), []byte(b.Header.Get("Authorization"))) {
		t.Error("signing key was not re-derived after the secret changed")
	}
}

// A signer for another service name (bedrock-mantle) matches the SDK's
// signer for that name.
func TestServiceSignerMatchesSDK(t *testing.T) {
	now := time.Date(2026, 11, 22, 4, 5, 6, 0, time.UTC)
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}
	mk := func() *http.Request {
		u := &url.URL{Scheme: "https", Host: "bedrock-mantle.us-east-1.api.aws", Path: "/v1/chat/completions"}
		return &http.Request{Method: "POST", URL: u, Host: u.Host, Body: http.NoBody, ContentLength: 2,
			Header: http.Header{"Content-Type": {"application/json"}, "Anthropic-Version": {"2023-06-01"}}}
	}
	sum := sha256.Sum256([]byte("{}"))
	hash := hex.EncodeToString(sum[:])
	mine, sdk := mk(), mk()
	if err := NewServiceSigner("us-east-1", "bedrock-mantle").Sign(mine, "/v1/chat/completions", hash, creds, now); err != nil {
		t.Fatal(err)
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, sdk, hash, "bedrock-mantle", "us-east-1", now); err != nil {
		t.Fatal(err)
	}
	if got, want := mine.Header.Get("Authorization"), sdk.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization\n got %s\nwant %s", got, want)
	}
}

func BenchmarkSign(b *testing.B) {
	s := NewSigner("us-east-1")
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "tok"}
	u := &url.URL{Scheme: "https", Host: "bedrock-runtime.us-east-1.amazonaws.com", Path: "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse", RawPath: "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"}
	hdr := http.Header{"Content-Type": {"application/json"}, "Amz-Sdk-Invocation-Id": {"abc"}, "Amz-Sdk-Request": {"attempt=1; max=3"}, "User-Agent": {"x"}}
	now := time.Now()
	b.Run("warden", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := &http.Request{Method: "POST", URL: u, Host: u.Host, Header: hdr.Clone(), ContentLength: 4096}
			s.Sign(r, u.RawPath, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", creds, now)
		}
	})
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		sg := v4.NewSigner()
		for i := 0; i < b.N; i++ {
			r := &http.Request{Method: "POST", URL: u, Host: u.Host, Header: hdr.Clone(), ContentLength: 4096}
			_ = sg.SignHTTP(context.Background(), creds, r, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "bedrock", "us-east-1", now)
		}
	})
}
