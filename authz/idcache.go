package authz

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// CacheOptions configure an IdentityCache.
type CacheOptions struct {
	// Size bounds each of the positive and negative caches (default 65,536).
	Size int
	// TTL is how long a resolved identity is served without asking again
	// (default 60s).
	TTL time.Duration
	// NegativeTTL is how long "nothing here" is remembered (default 5s), and
	// how often, during an outage, a stale entry's key is retried.
	NegativeTTL time.Duration
	// StaleTTL bounds the age of an identity served while the API it came
	// from fails: an entry fetched at t is served fresh until t+TTL and,
	// only if lookups fail, stale until t+StaleTTL. StaleTTL <= TTL disables
	// stale serving. Default 5m.
	StaleTTL time.Duration
	// LookupTimeout bounds one lookup, independently of the callers waiting
	// for it (default 5s).
	LookupTimeout time.Duration
}

// Cache defaults.
const (
	DefaultCacheSize     = 65536
	DefaultCacheTTL      = 60 * time.Second
	DefaultNegativeTTL   = 5 * time.Second
	DefaultStaleTTL      = 5 * time.Minute
	DefaultLookupTimeout = 5 * time.Second
)

func (o CacheOptions) withDefaults() CacheOptions {
	if o.Size <= 0 {
		o.Size = DefaultCacheSize
	}
	if o.TTL <= 0 {
		o.TTL = DefaultCacheTTL
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.StaleTTL <= 0 {
		o.StaleTTL = DefaultStaleTTL
	}
	if o.StaleTTL < o.TTL {
		o.StaleTTL = o.TTL
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = DefaultLookupTimeout
	}
	return o
}

// LookupFunc resolves a key. It returns ErrNoIdentity (possibly wrapped) for
// a definitive "nothing here", cached for NegativeTTL; any other error is
// treated as the API being unavailable.
type LookupFunc func(ctx context.Context, key string) (Identity, error)

// CacheStats are an IdentityCache's counters since it was built (for
// metrics; every field only grows except Entries).
type CacheStats struct {
	Hits         uint64 // fresh positive answers from the cache
	NegativeHits uint64 // cached "nothing here"
	Lookups      uint64 // calls of the lookup function
	Shared       uint64 // callers that waited for another caller's lookup
	LookupErrors uint64 // lookups that failed (not counting "nothing here")
	StaleServes  uint64 // identities served stale because lookups failed
	Entries      int    // positive entries held (fresh or stale-eligible)
}

// IdentityCache is a bounded cache of identities by key (a source IP) for
// sources that ask an API: fresh answers for TTL, definitive misses for
// NegativeTTL, one lookup per key at a time (singleflight), and, while the
// API fails, the last good identity for up to StaleTTL after it was
// fetched, marked Identity.Stale. A definitive miss drops the last good
// identity, so an address that was released is never served stale.
type IdentityCache struct {
	opts   CacheOptions
	lookup LookupFunc
	pos    *expirable.LRU[string, *cacheEntry]
	neg    *expirable.LRU[string, struct{}]
	sf     singleflight.Group
	now    func() time.Time

	hits, negHits, lookups, shared, lookupErrs, stale atomic.Uint64
}

type cacheEntry struct {
	id      Identity // as looked up (Stale false)
	fetched time.Time
	// retryAt is set after a failed refresh: until then the stale identity
	// is served without asking the failing API again.
	retryAt atomic.Int64 // unix nanoseconds
}

type cacheResult struct {
	id    Identity
	stale bool
}

// NewIdentityCache builds a cache around lookup. Note that each expirable
// LRU runs a cleanup goroutine for the life of the process.
func NewIdentityCache(lookup LookupFunc, o CacheOptions) *IdentityCache {
	o = o.withDefaults()
	return &IdentityCache{
		opts:   o,
		lookup: lookup,
		pos:    expirable.NewLRU[string, *cacheEntry](o.Size, nil, o.StaleTTL),
		neg:    expirable.NewLRU[string, struct{}](o.Size, nil, o.NegativeTTL),
		now:    time.Now,
	}
}

// Options returns the options in effect (defaults applied).
func (c *IdentityCache) Options() CacheOptions { return c.opts }

// Get returns the identity for key: from the cache when fresh, else from one
// shared lookup. It returns ErrNoIdentity for a definitive miss, and an
// error when the lookup failed and no identity young enough to serve stale
// is held.
func (c *IdentityCache) Get(ctx context.Context, key string) (Identity, error) {
	now := c.now()
	e, ok := c.pos.Get(key)
	if ok {
		if now.Sub(e.fetched) < c.opts.TTL {
			c.hits.Add(1)
			return e.id, nil
		}
		if now.UnixNano() < e.retryAt.Load() && now.Sub(e.fetched) < c.opts.StaleTTL {
			c.stale.Add(1)
			return staleCopy(e.id), nil
		}
	}
	if c.neg.Contains(key) {
		c.negHits.Add(1)
		return Identity{}, ErrNoIdentity
	}
	ch := c.sf.DoChan(key, func() (any, error) { return c.refresh(ctx, key) })
	select {
	case r := <-ch:
		if r.Shared {
			c.shared.Add(1)
		}
		if r.Err != nil {
			return Identity{}, r.Err
		}
		res := r.Val.(cacheResult)
		if res.stale {
			c.stale.Add(1)
			return staleCopy(res.id), nil
		}
		return res.id, nil
	case <-ctx.Done():
		return Identity{}, ctx.Err()
	}
}

// refresh runs one lookup for key on behalf of every waiting caller: it is
// not cancelled when the first caller gives up.
func (c *IdentityCache) refresh(ctx context.Context, key string) (cacheResult, error) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LookupTimeout)
	defer cancel()
	c.lookups.Add(1)
	id, err := c.lookup(lctx, key)
	now := c.now()
	switch {
	case err == nil:
		id.Stale = false
		c.pos.Add(key, &cacheEntry{id: id, fetched: now})
		c.neg.Remove(key)
		return cacheResult{id: id}, nil
	case errors.Is(err, ErrNoIdentity):
		// Definitive: the address belongs to nobody we know now. Forget
		// the last good identity so it can never be served stale.
		c.pos.Remove(key)
		c.neg.Add(key, struct{}{})
		return cacheResult{}, err
	}
	c.lookupErrs.Add(1)
	if e, ok := c.pos.Peek(key); ok && now.Sub(e.fetched) < c.opts.StaleTTL {
		e.retryAt.Store(now.Add(c.opts.NegativeTTL).UnixNano())
		return cacheResult{id: e.id, stale: true}, nil
	}
	return cacheResult{}, fmt.Errorf("identity lookup failed and no identity fresh enough to serve stale: %w", err)
}

func staleCopy(id Identity) Identity {
	id.Stale = true
	return id
}

// Stats returns the counters.
func (c *IdentityCache) Stats() CacheStats {
	return CacheStats{
		Hits:         c.hits.Load(),
		NegativeHits: c.negHits.Load(),
		Lookups:      c.lookups.Load(),
		Shared:       c.shared.Load(),
		LookupErrors: c.lookupErrs.Load(),
		StaleServes:  c.stale.Load(),
		Entries:      c.pos.Len(),
	}
}

// Forget drops everything known about key.
func (c *IdentityCache) Forget(key string) {
	c.pos.Remove(key)
	c.neg.Remove(key)
}
