package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Defaults for the token source.
const (
	DefaultTokenHeader   = "X-Warden-Token"
	DefaultTokenCacheTTL = 60 * time.Second
	DefaultTokenTimeout  = 5 * time.Second

	// tokenNegativeTTL is how long a token the API server rejected is
	// rejected without asking again, so a client retrying a bad token does
	// not turn into a TokenReview per request.
	tokenNegativeTTL = 5 * time.Second
	tokenCacheSize   = 65536
	maxTokenBytes    = 16 << 10

	// TokenReview's user.extra keys for a pod-bound token.
	extraPodName  = "authentication.kubernetes.io/pod-name"
	extraNodeName = "authentication.kubernetes.io/node-name"
)

// TokenConfig configures the token identity source: the caller presents a
// Kubernetes projected service-account token whose audience is Warden's in a
// header, and Warden verifies it with a TokenReview (or offline, with the
// cluster's JWKS). A token that is presented and fails verification denies
// the call (no fallback).
type TokenConfig struct {
	// Header carries the token (default X-Warden-Token), raw or as
	// "Bearer <token>". Never forwarded upstream.
	Header string `yaml:"header"`
	// Audience is Warden's audience: the projected token's
	// serviceAccountToken.audience, checked by the TokenReview. Required.
	Audience string `yaml:"audience"`
	// Kubeconfig is a kubeconfig file; empty means in-cluster. Warden needs
	// create on tokenreviews (ClusterRole system:auth-delegator).
	Kubeconfig string `yaml:"kubeconfig"`
	// CacheTTL bounds how long a verified token is trusted without asking
	// again (default 60s, never past the token's exp). A token revoked —
	// its pod or service account deleted — keeps working that long.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// Timeout bounds one TokenReview (default 5s).
	Timeout time.Duration `yaml:"timeout"`
	// JWKSURL and Issuer select offline verification instead of TokenReview:
	// RS256 signatures checked against the cluster's JWKS, and iss, aud, exp
	// and nbf against the config. JWKSURL is an https URL (the issuer's
	// public jwks_uri, e.g. on EKS) or a path on the API server reached with
	// the kubeconfig ("/openid/v1/jwks"). No API call per token, but a
	// token stays valid until its exp even after its pod or service account
	// is deleted (TokenReview refuses it at once).
	JWKSURL string `yaml:"jwks_url"`
	Issuer  string `yaml:"issuer"`
	// BindPodIP refuses a pod-bound token presented from an address the
	// kubernetes source's pod index gives to another pod (a stolen token
	// replayed from a pod of another workload), and a token bound to no
	// pod presented from a pod's address. Addresses the index does not
	// know, and nodes' addresses (hostNetwork pods, SNAT), are not checked.
	// Needs the kubernetes source in identity.sources.
	BindPodIP bool `yaml:"bind_pod_ip"`
	// LookupLimits bound TokenReviews for tokens not in the cache
	// (defaults: DefaultTokenLookupLimits). Offline (JWKS) verification
	// makes no API call and is not limited.
	LookupLimits LookupLimits `yaml:"lookup_limits"`
}

func (c TokenConfig) withDefaults() TokenConfig {
	if c.Header == "" {
		c.Header = DefaultTokenHeader
	}
	c.Header = http.CanonicalHeaderKey(c.Header)
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultTokenCacheTTL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTokenTimeout
	}
	return c
}

func (c TokenConfig) validate() error {
	var errs []error
	if strings.TrimSpace(c.Audience) == "" {
		errs = append(errs, errors.New("token.audience is required (the audience of the projected service-account token apps present)"))
	}
	if c.Header != "" {
		if err := validTokenHeader(c.Header); err != nil {
			errs = append(errs, fmt.Errorf("token.header: %w", err))
		}
	}
	if c.CacheTTL < 0 {
		errs = append(errs, errors.New("token.cache_ttl must not be negative"))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("token.timeout must not be negative"))
	}
	if err := c.LookupLimits.validate("token.lookup_limits"); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.JWKSURL == "" && c.Issuer == "":
	case c.JWKSURL == "" || c.Issuer == "":
		errs = append(errs, errors.New("token.jwks_url and token.issuer go together (offline verification); leave both out to verify by TokenReview"))
	case !strings.HasPrefix(c.JWKSURL, "/") && !strings.HasPrefix(c.JWKSURL, "https://"):
		errs = append(errs, fmt.Errorf("token.jwks_url: %q is neither an https URL nor an API server path like /openid/v1/jwks", c.JWKSURL))
	}
	return errors.Join(errs...)
}

// validTokenHeader refuses header names that are not HTTP tokens or that
// mean something else: Authorization and X-Amz-* carry the caller's SigV4
// signature, and the names Warden forwards upstream would leak the token.
func validTokenHeader(h string) error {
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%q is not a header name", h)
		}
	}
	ch := http.CanonicalHeaderKey(h)
	switch {
	case ch == "Authorization", ch == "Host", ch == "Content-Type", ch == "Content-Length", ch == "Accept", ch == "User-Agent",
		strings.HasPrefix(ch, "X-Amz-"), strings.HasPrefix(ch, "X-Amzn-"), strings.HasPrefix(ch, "Amz-Sdk-"):
		return fmt.Errorf("%q is used by the AWS SDKs or forwarded to Bedrock; pick a name of Warden's own, like %s", h, DefaultTokenHeader)
	}
	return nil
}

func newTokenSource(ctx context.Context, cfg TokenConfig, deps Deps) (Source, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var client kubernetes.Interface
	// Offline verification against a public JWKS URL needs no API server.
	if !strings.HasPrefix(cfg.JWKSURL, "https://") || cfg.Kubeconfig != "" {
		rc, err := kubeRESTConfig(cfg.Kubeconfig)
		if err != nil {
			return nil, err
		}
		rc = rest.CopyConfig(rc)
		rc.UserAgent = "warden"
		if client, err = kubernetes.NewForConfig(rc); err != nil {
			return nil, err
		}
	}
	return NewTokenSource(cfg, client, deps.Logger)
}

// TokenSource verifies presented service-account tokens with TokenReview,
// or offline with the cluster's JWKS.
type TokenSource struct {
	cfg    TokenConfig
	client kubernetes.Interface
	jwks   *jwksVerifier // nil: TokenReview
	log    *zap.Logger
	now    func() time.Time

	// ok holds verified tokens, bad rejected ones, by SHA-256 of the token;
	// each entry carries its own expiry (a plain LRU: no janitor goroutine
	// to outlive a reloaded config).
	ok     *lru.Cache[[sha256.Size]byte, tokenEntry]
	bad    *lru.Cache[[sha256.Size]byte, tokenEntry]
	flight singleflight.Group

	limiter *lookupLimiter
	// pods is the kubernetes source's pod index, for bind_pod_ip (set by
	// NewResolver; nil: not checked).
	pods podIndex
}

type tokenEntry struct {
	id      Identity
	why     string // for rejections
	expires time.Time
}

// NewTokenSource builds the source on a clientset (which may be nil only
// for offline verification against an https JWKS URL).
func NewTokenSource(cfg TokenConfig, client kubernetes.Interface, log *zap.Logger) (*TokenSource, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if client == nil && !strings.HasPrefix(cfg.JWKSURL, "https://") {
		return nil, errors.New("token: no Kubernetes client")
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	ok, err := lru.New[[sha256.Size]byte, tokenEntry](tokenCacheSize)
	if err != nil {
		return nil, err
	}
	bad, err := lru.New[[sha256.Size]byte, tokenEntry](tokenCacheSize)
	if err != nil {
		return nil, err
	}
	s := &TokenSource{
		cfg:    cfg,
		client: client,
		log:    log.With(zap.String("source", SourceToken)),
		now:    time.Now,
		ok:     ok,
		bad:    bad,

		limiter: newLookupLimiter(SourceToken, cfg.LookupLimits.withDefaults(DefaultTokenLookupLimits())),
	}
	if cfg.JWKSURL != "" {
		s.jwks = newJWKSVerifier(cfg.JWKSURL, cfg.Issuer, cfg.Audience, client)
	}
	return s, nil
}

// Name implements Source.
func (s *TokenSource) Name() string { return SourceToken }

// Header is the (canonical) header the token is read from.
func (s *TokenSource) Header() string { return s.cfg.Header }

// Presents implements Presenter: the header is there, even empty (an empty
// token fails verification, and so denies).
func (s *TokenSource) Presents(c *Conn) bool {
	if c == nil || c.Request == nil {
		return false
	}
	_, ok := c.Request.Header[s.cfg.Header]
	return ok
}

// errTokenRejected marks a definitive answer: the token is not valid.
var errTokenRejected = errors.New("token rejected")

// Resolve implements Source. Any failure is an error (the caller presented
// a credential; it does not fall back to another source).
func (s *TokenSource) Resolve(ctx context.Context, c *Conn) (Identity, error) {
	if c == nil || c.Request == nil {
		return Identity{}, ErrNoIdentity
	}
	vals := c.Request.Header[s.cfg.Header]
	if len(vals) == 0 {
		return Identity{}, ErrNoIdentity
	}
	if len(vals) > 1 {
		return Identity{}, fmt.Errorf("%s: more than one token presented", s.cfg.Header)
	}
	tok := strings.TrimSpace(vals[0])
	if len(tok) > 7 && strings.EqualFold(tok[:7], "bearer ") {
		tok = strings.TrimSpace(tok[7:])
	}
	switch {
	case tok == "":
		return Identity{}, fmt.Errorf("%s: empty token", s.cfg.Header)
	case len(tok) > maxTokenBytes:
		return Identity{}, fmt.Errorf("%s: token longer than %d bytes", s.cfg.Header, maxTokenBytes)
	}
	key := sha256.Sum256([]byte(tok))
	now := s.now()
	if e, ok := s.ok.Get(key); ok {
		if now.Before(e.expires) {
			return s.bound(c, e.id)
		}
		s.ok.Remove(key)
	}
	if e, ok := s.bad.Get(key); ok {
		if now.Before(e.expires) {
			return Identity{}, fmt.Errorf("%w: %s", errTokenRejected, e.why)
		}
		s.bad.Remove(key)
	}
	v, err, _ := s.flight.Do(string(key[:]), func() (any, error) {
		// A flight that finished between the cache check above and Do has
		// cached its verdict: use it rather than review the token again.
		if e, ok := s.ok.Get(key); ok && s.now().Before(e.expires) {
			return e.id, nil
		}
		if e, ok := s.bad.Get(key); ok && s.now().Before(e.expires) {
			return nil, fmt.Errorf("%w: %s", errTokenRejected, e.why)
		}
		if s.jwks == nil {
			// A TokenReview for a token nobody has shown yet: bounded per
			// client and in all, so random tokens cannot flood the API
			// server. Refusals are not verdicts and are not cached.
			release, err := s.limiter.admit(c.Remote.Addr())
			if err != nil {
				return nil, err
			}
			defer release()
		}
		// Independent of the first caller's context: the others wait too.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
		defer cancel()
		return s.review(rctx, key, tok)
	})
	if err != nil {
		return Identity{}, err
	}
	return s.bound(c, v.(Identity))
}

// LookupsLimited counts TokenReviews refused by token.lookup_limits.
func (s *TokenSource) LookupsLimited() uint64 { return s.limiter.Limited() }

func (s *TokenSource) review(ctx context.Context, key [sha256.Size]byte, tok string) (Identity, error) {
	if s.jwks != nil {
		return s.verifyOffline(ctx, key, tok)
	}
	tr, err := s.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: []string{s.cfg.Audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		// The API server did not answer: not a verdict on the token, so
		// nothing is cached, and the call is denied.
		return Identity{}, fmt.Errorf("TokenReview failed: %w", err)
	}
	id, why := s.identityOf(tr.Status)
	if why != "" {
		s.bad.Add(key, tokenEntry{why: why, expires: s.now().Add(tokenNegativeTTL)})
		s.log.Info("token: rejected", zap.String("reason", why))
		return Identity{}, fmt.Errorf("%w: %s", errTokenRejected, why)
	}
	exp := s.now().Add(s.cfg.CacheTTL)
	if te, ok := jwtExpiry(tok); ok && te.Before(exp) {
		exp = te
	}
	if s.now().Before(exp) {
		s.ok.Add(key, tokenEntry{id: id, expires: exp})
	}
	return id, nil
}

func (s *TokenSource) verifyOffline(ctx context.Context, key [sha256.Size]byte, tok string) (Identity, error) {
	id, exp, err := s.jwks.verify(ctx, tok)
	if errors.Is(err, errTokenRejected) {
		s.bad.Add(key, tokenEntry{why: strings.TrimPrefix(err.Error(), errTokenRejected.Error()+": "), expires: s.now().Add(tokenNegativeTTL)})
		s.log.Info("token: rejected", zap.Error(err))
		return Identity{}, err
	}
	if err != nil {
		return Identity{}, err
	}
	until := s.now().Add(s.cfg.CacheTTL)
	if exp.Before(until) {
		until = exp
	}
	if s.now().Before(until) {
		s.ok.Add(key, tokenEntry{id: id, expires: until})
	}
	return id, nil
}

// identityOf checks a TokenReview status and builds the identity, or says
// why the token is not acceptable.
func (s *TokenSource) identityOf(st authenticationv1.TokenReviewStatus) (Identity, string) {
	if !st.Authenticated {
		if st.Error != "" {
			return Identity{}, "not authenticated: " + st.Error
		}
		return Identity{}, "not authenticated"
	}
	// The API server answers with the audiences the token is valid for
	// among those asked; an authenticator that ignores audiences answers
	// none, which is not good enough.
	if !slices.Contains(st.Audiences, s.cfg.Audience) {
		return Identity{}, fmt.Sprintf("token is not for audience %q (valid for %q)", s.cfg.Audience, st.Audiences)
	}
	ns, sa, ok := parseServiceAccountUser(st.User.Username)
	if !ok {
		return Identity{}, fmt.Sprintf("%q is not a service account", st.User.Username)
	}
	tags := map[string]Tag{
		TagK8sNamespace:      StrongTag(SourceToken, ns),
		TagK8sServiceAccount: StrongTag(SourceToken, sa),
	}
	if v := st.User.Extra[extraPodName]; len(v) == 1 && v[0] != "" {
		tags[TagK8sPod] = StrongTag(SourceToken, v[0])
	}
	if v := st.User.Extra[extraNodeName]; len(v) == 1 && v[0] != "" {
		tags[TagK8sNode] = StrongTag(SourceToken, v[0])
	}
	id := Identity{Source: SourceToken, Tags: tags}
	id.precompute()
	return id, ""
}

// parseServiceAccountUser splits "system:serviceaccount:NS:NAME".
func parseServiceAccountUser(u string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(u, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return ns, name, true
}

// jwtExpiry reads the exp claim of a JWT without verifying it: it is only
// used to bound the cache of a token the API server has just verified.
func jwtExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	sec, err := claims.Exp.Int64()
	if err != nil {
		f, ferr := claims.Exp.Float64()
		if ferr != nil {
			return time.Time{}, false
		}
		sec = int64(f)
	}
	return time.Unix(sec, 0), true
}
