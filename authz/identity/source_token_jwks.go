package identity

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Offline verification of projected service-account tokens: RS256 JWTs
// checked against the cluster's JWKS (the API server's /openid/v1/jwks, or
// the issuer's public discovery document's jwks_uri on EKS). No API call per
// token, but a token stays valid until its exp even after its pod or
// service account is deleted — TokenReview (the default) catches that.

const (
	jwksRefreshMin = 30 * time.Second // at most one refetch for an unknown kid per this
	jwksMaxAge     = 1 * time.Hour    // keys are refetched at least this often
	jwtLeeway      = 30 * time.Second // clock skew allowed on exp and nbf
	maxJWKSBytes   = 1 << 20
)

type jwksVerifier struct {
	url      string
	issuer   string
	audience string
	fetch    func(ctx context.Context) ([]byte, error)
	now      func() time.Time

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey // kid → key
	fetched time.Time
}

// newJWKSVerifier fetches from url: a path ("/openid/v1/jwks") goes through
// the Kubernetes client (its credentials and CA), an https URL through
// plain HTTPS.
func newJWKSVerifier(url, issuer, audience string, client kubernetes.Interface) *jwksVerifier {
	v := &jwksVerifier{url: url, issuer: issuer, audience: audience, now: time.Now}
	if strings.HasPrefix(url, "/") && client != nil {
		v.fetch = func(ctx context.Context) ([]byte, error) {
			return client.Discovery().RESTClient().Get().AbsPath(url).DoRaw(ctx)
		}
	} else {
		hc := &http.Client{Timeout: 10 * time.Second}
		v.fetch = func(ctx context.Context) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return nil, err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			return io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
		}
	}
	return v
}

// key returns the key for kid, fetching the JWKS when it is unknown (rate
// limited) or old.
func (v *jwksVerifier) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	k, ok := v.keys[kid]
	if ok && now.Sub(v.fetched) < jwksMaxAge {
		return k, nil
	}
	if v.keys == nil || now.Sub(v.fetched) >= jwksRefreshMin {
		raw, err := v.fetch(ctx)
		if err != nil {
			if ok { // keep the known key through a JWKS outage
				return k, nil
			}
			return nil, fmt.Errorf("fetch JWKS %s: %w", v.url, err)
		}
		keys, err := parseJWKS(raw)
		if err != nil {
			return nil, fmt.Errorf("JWKS %s: %w", v.url, err)
		}
		v.keys, v.fetched = keys, now
		k, ok = v.keys[kid]
	}
	if !ok {
		return nil, fmt.Errorf("%w: signing key %q is not in the JWKS", errTokenRejected, kid)
	}
	return k, nil
}

func parseJWKS(raw []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Use, Alg, N, E string
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		pk := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pk.N.BitLen() < 2048 {
			continue
		}
		keys[k.Kid] = pk
	}
	if len(keys) == 0 {
		return nil, errors.New("no RS256 signing keys")
	}
	return keys, nil
}

// saClaims are the claims of a projected service-account token.
type saClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"` // a string or an array
	Exp *float64        `json:"exp"`
	Nbf *float64        `json:"nbf"`
	K8s struct {
		Namespace string `json:"namespace"`
		Node      *struct {
			Name string `json:"name"`
		} `json:"node"`
		Pod *struct {
			Name string `json:"name"`
		} `json:"pod"`
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

// verify checks the token's signature and claims and returns the identity,
// the token's expiry, or an error wrapping errTokenRejected for a token that
// is not acceptable.
func (v *jwksVerifier) verify(ctx context.Context, tok string) (Identity, time.Time, error) {
	reject := func(format string, args ...any) (Identity, time.Time, error) {
		return Identity{}, time.Time{}, fmt.Errorf("%w: %s", errTokenRejected, fmt.Sprintf(format, args...))
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return reject("not a JWT")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return reject("malformed JWT header")
	}
	var hdr struct{ Alg, Kid, Crit string }
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return reject("malformed JWT header")
	}
	if hdr.Alg != "RS256" {
		return reject("JWT algorithm %q is not RS256", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return reject("malformed JWT signature")
	}
	key, err := v.key(ctx, hdr.Kid)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return reject("bad signature")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return reject("malformed JWT payload")
	}
	var c saClaims
	if err := json.Unmarshal(pb, &c); err != nil {
		return reject("malformed JWT claims")
	}
	if c.Iss != v.issuer {
		return reject("issuer %q is not %q", c.Iss, v.issuer)
	}
	var auds []string
	if err := json.Unmarshal(c.Aud, &auds); err != nil {
		var one string
		if json.Unmarshal(c.Aud, &one) != nil {
			return reject("malformed aud claim")
		}
		auds = []string{one}
	}
	if !slices.Contains(auds, v.audience) {
		return reject("token is not for audience %q (it is for %q)", v.audience, auds)
	}
	now := v.now()
	if c.Exp == nil {
		return reject("token has no exp")
	}
	exp := time.Unix(int64(*c.Exp), 0)
	if now.After(exp.Add(jwtLeeway)) {
		return reject("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if c.Nbf != nil && now.Add(jwtLeeway).Before(time.Unix(int64(*c.Nbf), 0)) {
		return reject("token not valid yet")
	}
	ns, sa, ok := parseServiceAccountUser(c.Sub)
	if !ok || ns != c.K8s.Namespace || sa != c.K8s.ServiceAccount.Name {
		return reject("subject %q is not a service account matching its kubernetes.io claims", c.Sub)
	}
	tags := map[string]Tag{
		TagK8sNamespace:      StrongTag(SourceToken, ns),
		TagK8sServiceAccount: StrongTag(SourceToken, sa),
	}
	if c.K8s.Pod != nil && c.K8s.Pod.Name != "" {
		tags[TagK8sPod] = StrongTag(SourceToken, c.K8s.Pod.Name)
	}
	if c.K8s.Node != nil && c.K8s.Node.Name != "" {
		tags[TagK8sNode] = StrongTag(SourceToken, c.K8s.Node.Name)
	}
	id := Identity{Source: SourceToken, Tags: tags}
	id.precompute()
	return id, exp, nil
}
