package identity

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
	// VerifyAfter, with a VerifyFunc, bounds how long an answer is believed
	// without checking that its holder still holds the key: an address can
	// change hands well within TTL (AWS lets anyone with the permission
	// request a specific free private IP). An entry last verified longer
	// ago is not fresh: it is looked up again, and served only marked
	// Stale if that fails. A background sweep (RunVerifier) re-verifies
	// the entries in use in batches, so callers rarely wait. 0: entries
	// are fresh for TTL.
	VerifyAfter time.Duration
	// Admit, if set, is asked before each lookup; an error refuses the
	// lookup (not cached: it says nothing about key), and a stale-eligible
	// identity is served instead if there is one. release is called when
	// the lookup is done.
	Admit func(key string) (release func(), err error)
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

// VerifyFunc reports, for each key, whether ids[i] (what the cache holds
// for keys[i]) still holds it: ok[i] false drops the entry. An error leaves
// every entry unverified.
type VerifyFunc func(ctx context.Context, keys []string, ids []Identity) (ok []bool, err error)

// verifyBatch is how many keys one VerifyFunc call checks.
const verifyBatch = 100

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
	Verified     uint64 // entries a sweep confirmed still hold their key
	Invalidated  uint64 // entries a sweep dropped: the key changed hands
	Entries      int    // positive entries held (fresh or stale-eligible)
}

// IdentityCache is a bounded cache of identities by key (a source IP) for
// sources that ask an API: fresh answers for TTL, definitive misses for
// NegativeTTL, one lookup per key at a time (singleflight), and, while the
// API fails, the last good identity for up to StaleTTL after it was
// fetched, marked Identity.Stale. A definitive miss or refusal drops the
// last good identity, so it is never served stale. Between lookups an
// address can still change hands: without VerifyAfter the previous
// holder's identity is served fresh for up to TTL; with it, for up to
// VerifyAfter.
type IdentityCache struct {
	opts   CacheOptions
	lookup LookupFunc
	verify VerifyFunc
	pos    *expirable.LRU[string, *cacheEntry]
	neg    *expirable.LRU[string, error] // ErrNoIdentity or a *RefusedError
	sf     singleflight.Group
	now    func() time.Time

	hits, negHits, lookups, shared, lookupErrs, stale, verified, invalidated atomic.Uint64
}

type cacheEntry struct {
	id      Identity // as looked up (Stale false)
	fetched time.Time
	// verifiedAt is when the holder was last confirmed (unix nanoseconds;
	// the lookup's time at first).
	verifiedAt atomic.Int64
	// used is set when the entry is served, cleared by each sweep: only
	// entries in use are re-verified in the background.
	used atomic.Bool
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
		neg:    expirable.NewLRU[string, error](o.Size, nil, o.NegativeTTL),
		now:    time.Now,
	}
}

// NewVerifiedIdentityCache is NewIdentityCache with a VerifyFunc: with
// o.VerifyAfter > 0 an answer is fresh only while verified that recently.
func NewVerifiedIdentityCache(lookup LookupFunc, verify VerifyFunc, o CacheOptions) *IdentityCache {
	c := NewIdentityCache(lookup, o)
	c.verify = verify
	return c
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
		if now.Sub(e.fetched) < c.opts.TTL && c.verifiedRecently(e, now) {
			if !e.used.Load() {
				e.used.Store(true)
			}
			c.hits.Add(1)
			return e.id, nil
		}
		if now.UnixNano() < e.retryAt.Load() && now.Sub(e.fetched) < c.opts.StaleTTL {
			c.stale.Add(1)
			return staleCopy(e.id), nil
		}
	}
	if err, ok := c.neg.Get(key); ok {
		c.negHits.Add(1)
		return Identity{}, err
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
	if c.opts.Admit != nil {
		release, err := c.opts.Admit(key)
		if err != nil {
			if e, ok := c.pos.Peek(key); ok && c.now().Sub(e.fetched) < c.opts.StaleTTL {
				return cacheResult{id: e.id, stale: true}, nil
			}
			return cacheResult{}, err
		}
		defer release()
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LookupTimeout)
	defer cancel()
	c.lookups.Add(1)
	id, err := c.lookup(lctx, key)
	now := c.now()
	switch {
	case err == nil:
		id.Stale = false
		e := &cacheEntry{id: id, fetched: now}
		e.verifiedAt.Store(now.UnixNano())
		e.used.Store(true)
		c.pos.Add(key, e)
		c.neg.Remove(key)
		return cacheResult{id: id}, nil
	case errors.Is(err, ErrNoIdentity), errors.As(err, new(*RefusedError)):
		// Definitive: the address belongs to nobody we know now, or to
		// nobody we may name. Forget the last good identity so it can
		// never be served stale.
		c.pos.Remove(key)
		c.neg.Add(key, err)
		return cacheResult{}, err
	}
	c.lookupErrs.Add(1)
	if e, ok := c.pos.Peek(key); ok && now.Sub(e.fetched) < c.opts.StaleTTL {
		e.retryAt.Store(now.Add(c.opts.NegativeTTL).UnixNano())
		return cacheResult{id: e.id, stale: true}, nil
	}
	return cacheResult{}, fmt.Errorf("identity lookup failed and no identity fresh enough to serve stale: %w", err)
}

// verifiedRecently reports whether e's holder was confirmed within
// VerifyAfter (always true without verification).
func (c *IdentityCache) verifiedRecently(e *cacheEntry, now time.Time) bool {
	return c.verify == nil || c.opts.VerifyAfter <= 0 || now.UnixNano()-e.verifiedAt.Load() < int64(c.opts.VerifyAfter)
}

// RunVerifier re-verifies the entries in use every VerifyAfter/2 until ctx
// ends, so that they stay fresh without callers waiting for a lookup. It
// returns at once without a VerifyFunc or VerifyAfter.
func (c *IdentityCache) RunVerifier(ctx context.Context) {
	if c.verify == nil || c.opts.VerifyAfter <= 0 {
		return
	}
	t := time.NewTicker(c.opts.VerifyAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A failed sweep leaves entries unverified: callers then look
			// up (and, during an outage, get identities marked stale).
			_ = c.Verify(ctx)
		}
	}
}

// Verify runs one sweep: every entry served since the last sweep, and not
// yet due for a full lookup, is checked with the VerifyFunc in batches;
// confirmed entries are fresh for another VerifyAfter, the others are
// dropped (the next call looks the key up and names its new holder).
func (c *IdentityCache) Verify(ctx context.Context) error {
	if c.verify == nil {
		return nil
	}
	start := c.now()
	var (
		keys    []string
		entries []*cacheEntry
	)
	for _, k := range c.pos.Keys() {
		e, ok := c.pos.Peek(k)
		if !ok || !e.used.Load() || start.Sub(e.fetched) >= c.opts.TTL {
			continue // idle entries are verified when next used
		}
		keys, entries = append(keys, k), append(entries, e)
	}
	var errs []error
	for i := 0; i < len(keys); i += verifyBatch {
		j := min(i+verifyBatch, len(keys))
		ids := make([]Identity, j-i)
		for n, e := range entries[i:j] {
			ids[n] = e.id
		}
		vctx, cancel := context.WithTimeout(ctx, c.opts.LookupTimeout)
		ok, err := c.verify(vctx, keys[i:j], ids)
		cancel()
		if err == nil && len(ok) != j-i {
			err = fmt.Errorf("verify answered %d results for %d keys", len(ok), j-i)
		}
		if err != nil {
			c.lookupErrs.Add(1)
			errs = append(errs, err)
			continue
		}
		for n, e := range entries[i:j] {
			if ok[n] {
				// The holder was confirmed by an answer requested after
				// start: fresh from then.
				e.verifiedAt.Store(start.UnixNano())
				e.used.Store(false)
				c.verified.Add(1)
				continue
			}
			if cur, held := c.pos.Peek(keys[i+n]); held && cur == e {
				c.pos.Remove(keys[i+n])
			}
			c.invalidated.Add(1)
		}
	}
	return errors.Join(errs...)
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
		Verified:     c.verified.Load(),
		Invalidated:  c.invalidated.Load(),
		Entries:      c.pos.Len(),
	}
}

// Forget drops everything known about key.
func (c *IdentityCache) Forget(key string) {
	c.pos.Remove(key)
	c.neg.Remove(key)
}
