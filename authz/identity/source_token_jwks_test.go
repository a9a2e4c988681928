package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warden-egress/warden/internal/kubetest"
)

// TestTokenSourceOfflineAPIServer verifies real kube-apiserver tokens against
// its own JWKS (/openid/v1/jwks), without a TokenReview.
func TestTokenSourceOfflineAPIServer(t *testing.T) {
	kc := kubetest.Shared(t)
	ns := kc.Namespace(t)
	kc.ServiceAccount(t, ns, "chatbot")
	pod := kc.RunningPod(t, kubetest.PodSpec{Namespace: ns, Name: "chatbot-1", ServiceAccount: "chatbot", IP: "10.9.1.1"})
	s, err := NewTokenSource(TokenConfig{Audience: tokenAudience, JWKSURL: "/openid/v1/jwks", Issuer: kubetest.Issuer}, kc.Client, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := kc.Token(t, ns, "chatbot", tokenAudience, pod)
	id, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, tok))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{TagK8sNamespace: ns, TagK8sServiceAccount: "chatbot", TagK8sPod: "chatbot-1"} {
		if got := id.Tags[k]; got.Value != v || !got.Strong {
			t.Errorf("tag %s = %+v, want strong %q", k, got, v)
		}
	}
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.ReplaceAll(string(payload), `"chatbot"`, `"admin"`))) + "." + parts[2]
	for name, bad := range map[string]string{
		"wrong audience": kc.Token(t, ns, "chatbot", "sts.amazonaws.com", pod),
		"forged":         forged,
		"garbage":        "garbage",
	} {
		if _, err := s.Resolve(ctx, tokenConn(DefaultTokenHeader, bad)); !errors.Is(err, errTokenRejected) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestJWKSVerifierClaims checks every claim rule with a key of the test's own.
func TestJWKSVerifierClaims(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	const iss = "https://issuer.example"
	now := time.Unix(1_800_000_000, 0)
	var fetches atomic.Int32
	jwks := jwksOf(map[string]*rsa.PublicKey{"k1": &key.PublicKey})
	v := newJWKSVerifier("https://issuer.example/keys", iss, tokenAudience, nil)
	v.now = func() time.Time { return now }
	v.fetch = func(context.Context) ([]byte, error) { fetches.Add(1); return jwks, nil }

	claims := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{
			"iss": iss, "sub": "system:serviceaccount:team-a:chatbot", "aud": []string{tokenAudience},
			"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Minute).Unix(),
			"kubernetes.io": map[string]any{"namespace": "team-a", "serviceaccount": map[string]any{"name": "chatbot", "uid": "u"},
				"pod": map[string]any{"name": "chatbot-0", "uid": "p"}, "node": map[string]any{"name": "n1", "uid": "x"}},
		}
		if mod != nil {
			mod(m)
		}
		return m
	}
	id, exp, err := v.verify(context.Background(), signJWT(t, key, "RS256", "k1", claims(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if id.Tags[TagK8sNamespace].Value != "team-a" || id.Tags[TagK8sPod].Value != "chatbot-0" || id.Tags[TagK8sNode].Value != "n1" || !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("identity %v exp %v", id.Tags, exp)
	}
	// aud as a plain string is valid JWT too.
	if _, _, err := v.verify(context.Background(), signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { m["aud"] = tokenAudience }))); err != nil {
		t.Errorf("string aud: %v", err)
	}
	for name, tok := range map[string]string{
		"other key":      signJWT(t, other, "RS256", "k1", claims(nil)),
		"alg none":       signJWT(t, key, "none", "k1", claims(nil)),
		"HS256":          signJWT(t, key, "HS256", "k1", claims(nil)),
		"wrong issuer":   signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { m["iss"] = "https://evil" })),
		"wrong audience": signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { m["aud"] = []string{"sts.amazonaws.com"} })),
		"expired":        signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { m["exp"] = now.Add(-time.Minute).Unix() })),
		"no exp":         signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { delete(m, "exp") })),
		"not yet":        signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() })),
		"not an SA":      signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { m["sub"] = "alice" })),
		"sub mismatch": signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) {
			m["sub"] = "system:serviceaccount:team-b:chatbot"
		})),
		"unknown kid": signJWT(t, key, "RS256", "k2", claims(nil)),
	} {
		if _, _, err := v.verify(context.Background(), tok); !errors.Is(err, errTokenRejected) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Unknown kids refetch the JWKS at most once per jwksRefreshMin.
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d JWKS fetches, want 1", n)
	}
	now = now.Add(jwksRefreshMin)
	jwks = jwksOf(map[string]*rsa.PublicKey{"k1": &key.PublicKey, "k2": &key.PublicKey})
	if _, _, err := v.verify(context.Background(), signJWT(t, key, "RS256", "k2", claims(nil))); err != nil || fetches.Load() != 2 {
		t.Errorf("rotated key: %v, %d fetches", err, fetches.Load())
	}
	// A JWKS outage keeps the known keys.
	now = now.Add(2 * jwksMaxAge)
	v.fetch = func(context.Context) ([]byte, error) { return nil, errors.New("unreachable") }
	if _, _, err := v.verify(context.Background(), signJWT(t, key, "RS256", "k1", claims(func(m map[string]any) { m["exp"] = now.Add(time.Hour).Unix() }))); err != nil {
		t.Errorf("JWKS outage: %v", err)
	}
}

func jwksOf(keys map[string]*rsa.PublicKey) []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	for kid, k := range keys {
		set.Keys = append(set.Keys, jwk{Kty: "RSA", Kid: kid, Use: "sig", Alg: "RS256",
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
	}
	b, _ := json.Marshal(set)
	return b
}

func signJWT(t *testing.T, key *rsa.PrivateKey, alg, kid string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid})
	c, _ := json.Marshal(claims)
	signing := enc(h) + "." + enc(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(fmt.Errorf("sign: %w", err))
	}
	return signing + "." + enc(sig)
}
