package identity

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// LookupLimits bound how often a source asks its remote API about callers
// it has not cached: unknown source IPs cost an ec2:DescribeNetworkInterfaces
// (throttled account-wide) and unknown tokens a TokenReview, so without a
// bound any client could spend Warden's (and the account's) API budget.
// Cached answers, positive and negative, never touch the limits.
//
//	identity:
//	  ec2:   {lookup_limits: {rate: 5, burst: 20, concurrency: 4, per_client_rate: 1, per_client_burst: 5}}
//	  token: {lookup_limits: {rate: 20, burst: 50, concurrency: 8, per_client_rate: 1, per_client_burst: 5}}
//
// A lookup over a limit is not made: the call gets 429 ThrottlingException
// (the AWS SDKs retry it with backoff), or, for an ec2 identity past its TTL
// but within stale_ttl, the stale identity.
type LookupLimits struct {
	// Rate and Burst bound lookups per second from all callers together.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// Concurrency bounds lookups in flight: a slow API does not pile up
	// waiting requests.
	Concurrency int `yaml:"concurrency"`
	// PerClientRate and PerClientBurst bound lookups on behalf of one
	// client address (IPv6: one /64), so a single client cannot spend the
	// whole budget.
	PerClientRate  float64 `yaml:"per_client_rate"`
	PerClientBurst int     `yaml:"per_client_burst"`
}

// DefaultEC2LookupLimits are the ec2 source's limits for a shared proxy:
// EC2's non-mutating calls share one bucket per account and region
// (refilled at about 20/s), so Warden takes a quarter of it.
func DefaultEC2LookupLimits() LookupLimits {
	return LookupLimits{Rate: 5, Burst: 20, Concurrency: 4, PerClientRate: 1, PerClientBurst: 5}
}

// DefaultTokenLookupLimits are the token source's limits: a TokenReview is
// cheap for the API server, and a rollout presents many new tokens at once.
func DefaultTokenLookupLimits() LookupLimits {
	return LookupLimits{Rate: 20, Burst: 50, Concurrency: 8, PerClientRate: 1, PerClientBurst: 5}
}

// lookupClients bounds how many per-client buckets are kept; an evicted
// client starts again with a full bucket, and the global limit still holds.
const lookupClients = 65536

func (l LookupLimits) withDefaults(d LookupLimits) LookupLimits {
	if l.Rate == 0 {
		l.Rate = d.Rate
	}
	if l.Burst == 0 {
		l.Burst = d.Burst
	}
	if l.Concurrency == 0 {
		l.Concurrency = d.Concurrency
	}
	if l.PerClientRate == 0 {
		l.PerClientRate = d.PerClientRate
	}
	if l.PerClientBurst == 0 {
		l.PerClientBurst = d.PerClientBurst
	}
	return l
}

func (l LookupLimits) validate(key string) error {
	var errs []error
	for name, v := range map[string]float64{"rate": l.Rate, "burst": float64(l.Burst), "concurrency": float64(l.Concurrency),
		"per_client_rate": l.PerClientRate, "per_client_burst": float64(l.PerClientBurst)} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must not be negative (0 means the default)", key, name))
		}
	}
	return errors.Join(errs...)
}

// LookupLimitedError is the denial when a lookup is over a limit: it is not
// an answer about the caller, so it is never cached.
type LookupLimitedError struct {
	Source string // the identity source
	Client string // the client address (IPv6: its /64)
	Limit  string // which limit: per-client, concurrency, rate
}

func (e *LookupLimitedError) Error() string {
	return fmt.Sprintf("%s identity lookups are limited (%s limit, client %s); retry later", e.Source, e.Limit, e.Client)
}

// lookupLimiter applies LookupLimits. It never waits: a lookup is admitted
// at once or refused, so callers over the limit queue nowhere and cached
// callers are never behind them.
type lookupLimiter struct {
	source    string
	limits    LookupLimits
	global    *rate.Limiter
	inFlight  chan struct{}
	clients   *lru.Cache[string, *rate.Limiter]
	limited   atomic.Uint64
	perClient rate.Limit
}

func newLookupLimiter(source string, l LookupLimits) *lookupLimiter {
	clients, err := lru.New[string, *rate.Limiter](lookupClients)
	if err != nil { // only for a non-positive size
		panic(err)
	}
	return &lookupLimiter{
		source:    source,
		limits:    l,
		global:    rate.NewLimiter(rate.Limit(l.Rate), l.Burst),
		inFlight:  make(chan struct{}, l.Concurrency),
		clients:   clients,
		perClient: rate.Limit(l.PerClientRate),
	}
}

// clientKey is the bucket a client address falls in: the address without
// zone or IPv4 mapping, or for IPv6 its /64 (one host usually holds a whole
// /64, so per-address buckets would be free to multiply).
func clientKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// admit asks for one lookup on behalf of client. On success the caller must
// call release when the lookup is done.
func (l *lookupLimiter) admit(client netip.Addr) (release func(), err error) {
	return l.admitScoped("", client)
}

// admitScoped is admit for a client address scoped by the VPC endpoint it
// came through: spokes behind one endpoint service may share addresses,
// and each gets its own bucket.
func (l *lookupLimiter) admitScoped(scope string, client netip.Addr) (release func(), err error) {
	key := clientKey(client)
	if scope != "" {
		key = scope + "/" + key
	}
	if client.IsValid() {
		if err := l.admitClient(key); err != nil {
			return nil, err
		}
	}
	select {
	case l.inFlight <- struct{}{}:
	default:
		return nil, l.refuse(key, "concurrency")
	}
	if !l.global.Allow() {
		<-l.inFlight
		return nil, l.refuse(key, "rate")
	}
	return func() { <-l.inFlight }, nil
}

// admitClient takes a token from the client's own bucket. Callers without
// an address (none reach a source in practice) are bound by the global
// limits alone.
func (l *lookupLimiter) admitClient(key string) error {
	b, ok := l.clients.Get(key)
	if !ok {
		// PeekOrAdd: two first lookups of one client share one bucket.
		nb := rate.NewLimiter(l.perClient, l.limits.PerClientBurst)
		if prev, found, _ := l.clients.PeekOrAdd(key, nb); found {
			b = prev
		} else {
			b = nb
		}
	}
	if !b.Allow() {
		return l.refuse(key, "per-client")
	}
	return nil
}

func (l *lookupLimiter) refuse(key, limit string) error {
	l.limited.Add(1)
	return &LookupLimitedError{Source: l.source, Client: key, Limit: limit}
}

// Limited counts lookups refused since the limiter was built.
func (l *lookupLimiter) Limited() uint64 { return l.limited.Load() }
