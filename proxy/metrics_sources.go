package proxy

import (
	"time"

	"github.com/warden-egress/warden/authz/identity"

	"github.com/prometheus/client_golang/prometheus"
)

// sourceCollector exports the identity sources' and the model resolver's
// own counters at scrape time: how often they answered from cache, looked
// up, failed, and served stale answers during an outage of the API they
// read (the number security teams watch: stale answers are decisions made
// on data that may be out of date, within the configured bound).
type sourceCollector struct {
	s *Server
}

var (
	descIDCacheHits = prometheus.NewDesc("warden_identity_cache_hits_total",
		"Identities answered fresh from a source's cache, by source.", []string{"source"}, nil)
	descIDCacheNegative = prometheus.NewDesc("warden_identity_cache_negative_hits_total",
		"Cached \"no identity here\" answers, by source.", []string{"source"}, nil)
	descIDCacheLookups = prometheus.NewDesc("warden_identity_cache_lookups_total",
		"Lookups a source made against its API (cache misses and refreshes), by source.", []string{"source"}, nil)
	descIDCacheShared = prometheus.NewDesc("warden_identity_cache_shared_lookups_total",
		"Callers that waited for another caller's in-flight lookup of the same key, by source.", []string{"source"}, nil)
	descIDCacheErrors = prometheus.NewDesc("warden_identity_cache_lookup_errors_total",
		"Lookups that failed (the API was unreachable or refused), by source.", []string{"source"}, nil)
	descIDCacheStale = prometheus.NewDesc("warden_identity_cache_stale_total",
		"Identities served stale from a source's cache because its API failed, by source.", []string{"source"}, nil)
	descIDCacheVerified = prometheus.NewDesc("warden_identity_cache_verified_total",
		"Cached identities a background check confirmed still hold their address, by source.", []string{"source"}, nil)
	descIDCacheInvalidated = prometheus.NewDesc("warden_identity_cache_invalidated_total",
		"Cached identities dropped because their address changed hands, by source.", []string{"source"}, nil)
	descIDRefusals = prometheus.NewDesc("warden_identity_refusals_total",
		"Calls denied because a source knew the address but would not name a workload for it (no_pod, reused, shared, host_network), by source and reason.", []string{"source", "reason"}, nil)
	descIDCacheEntries = prometheus.NewDesc("warden_identity_cache_entries",
		"Identities a source's cache holds, by source.", []string{"source"}, nil)
	descIDRefreshFailures = prometheus.NewDesc("warden_identity_refresh_failures_total",
		"Background refreshes of a sidecar source's identity that failed (the last good identity is served), by source.", []string{"source"}, nil)
	descIDLookupsLimited = prometheus.NewDesc("warden_identity_lookups_limited_total",
		"Lookups of uncached callers a source refused under its lookup_limits (the call got 429), by source.", []string{"source"}, nil)
	descIDStaleness = prometheus.NewDesc("warden_identity_source_stale_seconds",
		"How long a watching source has been unable to reach its API (0 while healthy), by source.", []string{"source"}, nil)

	descModelHits = prometheus.NewDesc("warden_model_resolution_hits_total",
		"Indirect model ids resolved fresh from the cache.", nil, nil)
	descModelMisses = prometheus.NewDesc("warden_model_resolution_misses_total",
		"Indirect model id resolutions that were not in the cache.", nil, nil)
	descModelLookups = prometheus.NewDesc("warden_model_resolution_lookups_total",
		"Control-plane lookups made to resolve indirect model ids.", nil, nil)
	descModelFailures = prometheus.NewDesc("warden_model_resolution_failures_total",
		"Indirect model id resolutions that failed (the call is denied).", nil, nil)
	descModelStale = prometheus.NewDesc("warden_model_resolution_stale_total",
		"Indirect model ids answered from a stale cache entry because the control plane failed.", nil, nil)
)

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIDCacheHits, descIDCacheNegative, descIDCacheLookups, descIDCacheShared,
		descIDCacheErrors, descIDCacheStale, descIDCacheVerified, descIDCacheInvalidated, descIDRefusals, descIDCacheEntries, descIDRefreshFailures, descIDStaleness, descIDLookupsLimited,
		descModelHits, descModelMisses, descModelLookups, descModelFailures, descModelStale} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.s.identity != nil {
		for _, src := range c.s.identity.Sources() {
			name := src.Name()
			if cs, ok := src.(interface{ CacheStats() identity.CacheStats }); ok {
				st := cs.CacheStats()
				counter(descIDCacheHits, st.Hits, name)
				counter(descIDCacheNegative, st.NegativeHits, name)
				counter(descIDCacheLookups, st.Lookups, name)
				counter(descIDCacheShared, st.Shared, name)
				counter(descIDCacheErrors, st.LookupErrors, name)
				counter(descIDCacheStale, st.StaleServes, name)
				counter(descIDCacheVerified, st.Verified, name)
				counter(descIDCacheInvalidated, st.Invalidated, name)
				ch <- prometheus.MustNewConstMetric(descIDCacheEntries, prometheus.GaugeValue, float64(st.Entries), name)
			}
			if rs, ok := src.(interface{ Refusals() map[string]uint64 }); ok {
				for reason, n := range rs.Refusals() {
					counter(descIDRefusals, n, name, reason)
				}
			}
			if ll, ok := src.(interface{ LookupsLimited() uint64 }); ok {
				counter(descIDLookupsLimited, ll.LookupsLimited(), name)
			}
			if rf, ok := src.(interface{ RefreshFailures() uint64 }); ok {
				counter(descIDRefreshFailures, rf.RefreshFailures(), name)
			}
			if sd, ok := src.(interface{ Stale() time.Duration }); ok {
				ch <- prometheus.MustNewConstMetric(descIDStaleness, prometheus.GaugeValue, sd.Stale().Seconds(), name)
			}
		}
	}
	if c.s.models != nil {
		st := c.s.models.Stats()
		counter(descModelHits, st.Hits)
		counter(descModelMisses, st.Misses)
		counter(descModelLookups, st.Lookups)
		counter(descModelFailures, st.Failures)
		counter(descModelStale, st.Stale)
	}
}
