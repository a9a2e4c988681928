package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/warden-egress/warden/internal/kubetest"
)

const tokenAudience = "warden.example.com"

func tokenConn(header, value string) *Conn {
	r, _ := http.NewRequest(http.MethodPost, "http://warden/model/x/converse", nil)
	if header != "" {
		r.Header[http.CanonicalHeaderKey(header)] = []string{value}
	}
	return &Conn{Request: r}
}

// TestTokenSourceAPIServer verifies tokens issued by a real kube-apiserver
// (TokenRequest) through TokenReview.
func TestTokenSourceAPIServer(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	pod := kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "chatbot-7d9f", ServiceAccount: "chatbot", IP: "10.9.0.1"})

	s, err := NewTokenSource(TokenConfig{Audience: tokenAudience, CacheTTL: time.Nanosecond}, kc.Client, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("pod-bound token", func(t *testing.T) {
		tok := kc.Token(t, ns, "chatbot", tokenAudience, pod)
		c := tokenConn(DefaultTokenHeader, tok)
		if !s.Presents(c) {
			t.Fatal("Presents = false")
		}
		id, err := s.Resolve(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{TagK8sNamespace: ns, TagK8sServiceAccount: "chatbot", TagK8sPod: "chatbot-7d9f"} {
			if got := id.Tags[k]; got.Value != v || !got.Strong || got.Source != SourceToken {
				t.Errorf("tag %s = %+v, want strong %q", k, got, v)
			}
		}
		if id.Source != SourceToken {
			t.Errorf("source %q", id.Source)
		}
		// "Bearer " prefix accepted.
		if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, "Bearer "+tok)); err != nil {
			t.Errorf("bearer form: %v", err)
		}
	})
	t.Run("unbound token", func(t *testing.T) {
		id, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, kc.Token(t, ns, "chatbot", tokenAudience, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := id.Tags[TagK8sPod]; ok || id.Tags[TagK8sServiceAccount].Value != "chatbot" {
			t.Errorf("tags %v", id.Tags)
		}
	})
	t.Run("wrong audience", func(t *testing.T) {
		_, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, kc.Token(t, ns, "chatbot", "sts.amazonaws.com", pod)))
		if err == nil || errors.Is(err, ErrNoIdentity) {
			t.Fatalf("wrong audience: %v", err)
		}
		t.Logf("wrong audience: %v", err)
	})
	t.Run("garbage", func(t *testing.T) {
		for _, tok := range []string{"garbage", "a.b.c", ""} {
			_, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, tok))
			if err == nil || errors.Is(err, ErrNoIdentity) {
				t.Errorf("token %q: %v", tok, err)
			}
		}
	})
	t.Run("forged signature", func(t *testing.T) {
		tok := kc.Token(t, ns, "chatbot", tokenAudience, pod)
		parts := strings.Split(tok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"chatbot"`, `"admin"`, 1))
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, forged)); err == nil {
			t.Fatal("forged token accepted")
		}
	})
	t.Run("deleted pod", func(t *testing.T) {
		p2 := kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "short-lived", ServiceAccount: "chatbot", IP: "10.9.0.2"})
		tok := kc.Token(t, ns, "chatbot", tokenAudience, p2)
		if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, tok)); err != nil {
			t.Fatal(err)
		}
		kc.DeletePod(t, ns, "short-lived")
		// The API server checks the bound pod still exists (the cache TTL
		// here is 1ns, so this asks again).
		k8sEventually(t, "token of a deleted pod", func() string {
			if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, tok)); err == nil {
				return "still accepted"
			}
			return ""
		})
	})
}

// TestTokenSourceThroughResolver: a presented token decides alone; a bad one
// denies even when a weaker source would have answered.
func TestTokenSourceThroughResolver(t *testing.T) {
	fc, reviews := fakeReviewer(func(tok string) authenticationv1.TokenReviewStatus {
		if tok == "good" {
			return saStatus("team-a", "chatbot", "pod-1")
		}
		return authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
	})
	ts, err := NewTokenSource(TokenConfig{Audience: tokenAudience}, fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	static := NewStaticSource(map[string]string{"app": "fallback"})
	r := &Resolver{presented: []presentedSource{{ts, ts}}, sources: []Source{static}}
	loop := func(header, tok string) *Conn {
		c := tokenConn(header, tok)
		c.Remote = k8sConn("127.0.0.1").Remote
		return c
	}
	id, err := r.Resolve(context.Background(), loop(DefaultTokenHeader, "good"))
	if err != nil || id.Source != SourceToken || id.Tags[TagK8sNamespace].Value != "team-a" {
		t.Fatalf("good: %v %v", id, err)
	}
	if _, err := r.Resolve(context.Background(), loop(DefaultTokenHeader, "bad")); err == nil {
		t.Fatal("bad token fell back to static")
	}
	if _, err := r.Resolve(context.Background(), loop(DefaultTokenHeader, "")); err == nil {
		t.Fatal("empty token header fell back to static")
	}
	id, err = r.Resolve(context.Background(), loop("", ""))
	if err != nil || id.Source != "static" {
		t.Fatalf("no token: %v %v", id, err)
	}
	if n := reviews.Load(); n != 2 {
		t.Errorf("%d TokenReviews, want 2 (empty tokens are refused without one)", n)
	}
}

// TestTokenSourceCache: verified tokens are cached by hash until
// min(cache_ttl, exp); rejections briefly; API errors not at all; concurrent
// first uses share one review.
func TestTokenSourceCache(t *testing.T) {
	var fail atomic.Bool
	fc, reviews := fakeReviewer(func(tok string) authenticationv1.TokenReviewStatus {
		if strings.HasPrefix(tok, "bad") {
			return authenticationv1.TokenReviewStatus{Error: "invalid"}
		}
		return saStatus("ns", "sa", "")
	})
	fc.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail.Load() {
			return true, nil, fmt.Errorf("connection refused")
		}
		return false, nil, nil
	})
	s, err := NewTokenSource(TokenConfig{Audience: tokenAudience, CacheTTL: time.Hour}, fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()

	// A JWT-shaped token expiring in 10 minutes: cached 10 minutes, not an hour.
	tok := fakeJWT(now.Add(10 * time.Minute))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, tok)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := reviews.Load(); n != 1 {
		t.Fatalf("%d reviews for 20 concurrent first uses, want 1", n)
	}
	advance(9 * time.Minute)
	if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, tok)); err != nil || reviews.Load() != 1 {
		t.Fatalf("within exp: %v, %d reviews", err, reviews.Load())
	}
	advance(2 * time.Minute)
	if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, tok)); err != nil || reviews.Load() != 2 {
		t.Fatalf("past exp: %v, %d reviews (want a new review)", err, reviews.Load())
	}

	// Rejections are remembered, briefly.
	for range 3 {
		if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, "bad-1")); !errors.Is(err, errTokenRejected) {
			t.Fatalf("bad: %v", err)
		}
	}
	if n := reviews.Load(); n != 3 {
		t.Fatalf("%d reviews, want 3 (one for the rejected token)", n)
	}
	advance(tokenNegativeTTL)
	if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, "bad-1")); !errors.Is(err, errTokenRejected) || reviews.Load() != 4 {
		t.Fatalf("bad after negative TTL: %v, %d reviews (want a new review)", err, reviews.Load())
	}

	// An API outage denies and caches nothing.
	fail.Store(true)
	if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, "new-token")); err == nil || errors.Is(err, errTokenRejected) {
		t.Fatalf("outage: %v", err)
	}
	fail.Store(false)
	if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, "new-token")); err != nil {
		t.Fatalf("after outage: %v", err)
	}
}

func TestTokenSourceVerdicts(t *testing.T) {
	s, _ := NewTokenSource(TokenConfig{Audience: tokenAudience}, fake.NewClientset(), nil)
	for name, st := range map[string]authenticationv1.TokenReviewStatus{
		"unauthenticated": {Error: "token expired"},
		"no audiences":    {Authenticated: true, User: authenticationv1.UserInfo{Username: "system:serviceaccount:a:b"}},
		"other audience":  {Authenticated: true, Audiences: []string{"other"}, User: authenticationv1.UserInfo{Username: "system:serviceaccount:a:b"}},
		"not an SA":       {Authenticated: true, Audiences: []string{tokenAudience}, User: authenticationv1.UserInfo{Username: "alice"}},
		"malformed SA":    {Authenticated: true, Audiences: []string{tokenAudience}, User: authenticationv1.UserInfo{Username: "system:serviceaccount:a"}},
	} {
		if _, why := s.identityOf(st); why == "" {
			t.Errorf("%s: accepted", name)
		}
	}
	id, why := s.identityOf(saStatus("a", "b", "p"))
	if why != "" || id.Tags[TagK8sPod].Value != "p" || id.Tags[TagK8sNode].Value != "node-1" {
		t.Errorf("valid: %v %q", id.Tags, why)
	}
}

func TestTokenConfigValidate(t *testing.T) {
	for name, c := range map[string]TokenConfig{
		"no audience":     {},
		"sigv4 header":    {Audience: "a", Header: "Authorization"},
		"forwarded":       {Audience: "a", Header: "X-Amzn-Bedrock-Token"},
		"amz":             {Audience: "a", Header: "x-amz-security-token"},
		"not a name":      {Audience: "a", Header: "X Token"},
		"jwks no issuer":  {Audience: "a", JWKSURL: "https://k/openid/v1/jwks"},
		"issuer no jwks":  {Audience: "a", Issuer: "https://k"},
		"jwks plain http": {Audience: "a", JWKSURL: "http://k/openid/v1/jwks", Issuer: "https://k"},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, c := range []TokenConfig{
		{Audience: "a", Header: "x-my-token"},
		{Audience: "a", JWKSURL: "/openid/v1/jwks", Issuer: "https://kubernetes.default.svc"},
		{Audience: "a", JWKSURL: "https://oidc.example.com/id/ABC/keys", Issuer: "https://oidc.example.com/id/ABC"},
	} {
		if err := c.validate(); err != nil {
			t.Errorf("valid %+v: %v", c, err)
		}
	}
	s, _ := NewTokenSource(TokenConfig{Audience: "a", Header: "x-my-token"}, fake.NewClientset(), nil)
	if s.Header() != "X-My-Token" || !s.Presents(tokenConn("X-MY-TOKEN", "")) || s.Presents(tokenConn("", "")) {
		t.Error("header canonicalisation")
	}
	// More than one token is refused.
	c := tokenConn("x-my-token", "a")
	c.Request.Header.Add("X-My-Token", "b")
	if _, err := s.Resolve(context.Background(), c); err == nil {
		t.Error("two tokens accepted")
	}
}

func saStatus(ns, sa, pod string) authenticationv1.TokenReviewStatus {
	st := authenticationv1.TokenReviewStatus{
		Authenticated: true,
		Audiences:     []string{tokenAudience},
		User:          authenticationv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + sa},
	}
	if pod != "" {
		st.User.Extra = map[string]authenticationv1.ExtraValue{extraPodName: {pod}, extraNodeName: {"node-1"}}
	}
	return st
}

// fakeReviewer is a fake clientset answering TokenReviews with verdict.
func fakeReviewer(verdict func(tok string) authenticationv1.TokenReviewStatus) (*fake.Clientset, *atomic.Int64) {
	fc := fake.NewClientset()
	var n atomic.Int64
	fc.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if len(tr.Spec.Audiences) != 1 || tr.Spec.Audiences[0] != tokenAudience {
			return true, nil, fmt.Errorf("review without Warden's audience: %v", tr.Spec.Audiences)
		}
		tr.Status = verdict(tr.Spec.Token)
		return true, tr, nil
	})
	return fc, &n
}

func fakeJWT(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".c2ln"
}
