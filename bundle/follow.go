package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// CacheFile is the last good bundle's name in the cache directory.
const CacheFile = "last-good.json"

// ApplyFunc puts a verified bundle's policy into effect; an error (the
// policy does not validate) refuses the bundle and keeps the running one.
type ApplyFunc func(ctx context.Context, v *Verified) error

// FollowerOptions configure a Follower.
type FollowerOptions struct {
	// URL is the bundle service's base URL (https); or, instead, Store is
	// where the bundles are published (an S3 prefix), read directly and
	// polled every Retry.
	URL    string
	Store  Store
	Client *http.Client // with the service's CA; nil: http.DefaultClient
	Trust  Trust
	Target Target
	// CacheDir keeps the last good bundle across restarts ("": none).
	CacheDir string
	// Wait is the long-poll wait asked of the service (0: short polling
	// every Retry).
	Wait time.Duration
	// Retry is the pause after a failed fetch, and between short polls.
	Retry    time.Duration
	Apply    ApplyFunc
	Logger   *zap.Logger
	Registry prometheus.Registerer // nil: no metrics
	Now      func() time.Time
}

// Follower keeps a Warden on the newest bundle the service has for it.
type Follower struct {
	o       FollowerOptions
	metrics *followerMetrics
	picker  *Service // with Store: picks this Warden's bundle from it

	mu      sync.Mutex
	current *Verified // the running bundle
	lastErr error     // the last fetch or refusal
	lastOK  time.Time // the last successful contact with the service
	// refusedETag is the last refused bundle's: served again, it is not
	// verified, counted and logged again on every poll.
	refusedETag string
	refusedErr  error

	// stopped is closed when Run returns (after its last fetch, cache
	// write and log line), so an owner can wait for it.
	stopped  chan struct{}
	stopOnce sync.Once
}

// NewFollower checks the options.
func NewFollower(o FollowerOptions) (*Follower, error) {
	if o.Store == nil {
		u, err := url.Parse(o.URL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("bundle url %q: not an absolute URL", o.URL)
		}
		if u.Scheme != "https" {
			return nil, fmt.Errorf("bundle url %q: must be https", o.URL)
		}
	} else if o.URL != "" {
		return nil, errors.New("bundle: a URL and a store given; want one")
	}
	if len(o.Trust) == 0 {
		return nil, errors.New("bundle: no trusted keys")
	}
	if o.Apply == nil {
		return nil, errors.New("bundle: no apply function")
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	// A redirect may not leave TLS: the bundle is signed, but its serial
	// and the Warden's fleet and namespace are not for plain http.
	c := *o.Client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("bundle service redirected to %s: refused, want https", req.URL.Redacted())
		}
		if len(via) >= 10 {
			return errors.New("bundle service: stopped after 10 redirects")
		}
		return nil
	}
	o.Client = &c
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Retry <= 0 {
		o.Retry = 5 * time.Second
	}
	f := &Follower{o: o, stopped: make(chan struct{})}
	if o.Store != nil {
		f.o.Wait = 0 // an object store has no long-poll: poll every Retry
		f.picker = &Service{store: o.Store, trust: o.Trust, log: o.Logger, now: o.Now, changed: make(chan struct{}),
			files: map[string]storedFile{}, onSkip: func(name string, err error) { f.refused(fmt.Errorf("%s: %w", name, err), "store") }}
	}
	if o.Registry != nil {
		var err error
		if f.metrics, err = newFollowerMetrics(o.Registry, f); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Current is the running bundle (nil before one is applied).
func (f *Follower) Current() *Verified {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// Status says whether a bundle is running and, as text for /readyz, what
// is wrong: not yet loaded (not ready: fail closed), expired, or the last
// refusal or fetch error.
func (f *Follower) Status() (ready bool, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == nil {
		msg := "policy bundle: none loaded yet (no cached bundle, service not reached)"
		if f.lastErr != nil {
			msg += ": " + f.lastErr.Error()
		}
		return false, msg
	}
	c := f.current
	detail = fmt.Sprintf("policy bundle: serial %d, key %s", c.Serial, c.KeyID)
	if !f.o.Now().Before(c.ExpiresAt) {
		detail += fmt.Sprintf("; EXPIRED at %s: serving the last good bundle, could not refresh", c.ExpiresAt.Format(time.RFC3339))
	}
	if f.lastErr != nil {
		detail += "; last problem: " + f.lastErr.Error()
	}
	return true, detail
}

// Expired says whether the running bundle is past its expiry.
func (f *Follower) Expired() bool {
	c := f.Current()
	return c != nil && !f.o.Now().Before(c.ExpiresAt)
}

// LoadCache applies the last good bundle from the cache directory, if
// any. It is verified again (signature, scope), but may have expired: a
// Warden that cannot reach the service keeps it and reports it expired.
func (f *Follower) LoadCache(ctx context.Context) error {
	if f.o.CacheDir == "" {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(f.o.CacheDir, CacheFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bundle cache: %w", err)
	}
	v, err := Verify(raw, Policy{Trust: f.o.Trust, Target: f.o.Target, Now: f.o.Now(), AllowExpired: true})
	if err != nil {
		f.refused(err, "cache "+CacheFile)
		return fmt.Errorf("bundle cache %s: %w", CacheFile, err)
	}
	if err := f.o.Apply(ctx, v); err != nil {
		f.refused(err, "cache "+CacheFile)
		return fmt.Errorf("bundle cache: bundle %d: %w", v.Serial, err)
	}
	f.mu.Lock()
	f.current = v
	f.mu.Unlock()
	f.o.Logger.Info("policy bundle loaded from the cache", zap.Uint64("serial", v.Serial), zap.String("key_id", v.KeyID),
		zap.Time("expires_at", v.ExpiresAt))
	return nil
}

// Stopped is closed once Run has returned.
func (f *Follower) Stopped() <-chan struct{} { return f.stopped }

// Run fetches and applies bundles until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	defer f.stopOnce.Do(func() { close(f.stopped) })
	for ctx.Err() == nil {
		start := time.Now()
		changed, err := f.Once(ctx)
		if ctx.Err() != nil {
			return
		}
		// A long-poll answered "unchanged" well before the wait (a proxy
		// or server that ignores wait) is paced like a short poll, so the
		// follower does not spin against it.
		early := f.o.Wait > 0 && time.Since(start) < f.o.Wait/2
		if err != nil || (!changed && (f.o.Wait == 0 || early)) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(f.o.Retry):
			}
		}
	}
}

// Once makes one fetch (a long-poll when Wait is set) and applies what it
// gets; it reports whether a new bundle was applied.
func (f *Follower) Once(ctx context.Context) (bool, error) {
	cur := f.Current()
	fetch := f.fetchService
	if f.picker != nil {
		fetch = f.fetchStore
	}
	raw, err := fetch(ctx, cur)
	if err != nil {
		return false, f.fetchFailed(err)
	}
	f.contact(nil)
	if raw == nil || (cur != nil && ETagOf(raw) == cur.ETag) {
		return false, nil
	}
	f.mu.Lock()
	again := f.refusedETag == ETagOf(raw)
	if again {
		f.lastErr = f.refusedErr
	}
	f.mu.Unlock()
	if again {
		return false, f.refusedErr
	}
	var min uint64
	if cur != nil {
		min = cur.Serial + 1 // a new bundle needs a new serial
	}
	v, err := Verify(raw, Policy{Trust: f.o.Trust, Target: f.o.Target, MinSerial: min, Now: f.o.Now()})
	if err == nil {
		if aerr := f.o.Apply(ctx, v); aerr != nil {
			err = fmt.Errorf("bundle %d: policy rejected: %w", v.Serial, aerr)
		}
	}
	if err != nil {
		f.refused(err, f.source())
		f.mu.Lock()
		f.refusedETag, f.refusedErr = ETagOf(raw), err
		f.mu.Unlock()
		return false, err
	}
	// Recorded at once (/readyz, metrics follow the applied policy), then
	// cached (an fsync).
	f.mu.Lock()
	f.current, f.lastErr, f.refusedETag, f.refusedErr = v, nil, "", nil
	f.mu.Unlock()
	if f.o.CacheDir != "" {
		if err := WriteFileAtomic(filepath.Join(f.o.CacheDir, CacheFile), raw, 0o600); err != nil {
			f.o.Logger.Error("policy bundle applied but not cached", zap.Error(err))
		}
	}
	if f.metrics != nil {
		f.metrics.applied.Inc()
		f.metrics.lastApplied.SetToCurrentTime()
	}
	prev := uint64(0)
	if cur != nil {
		prev = cur.Serial
	}
	f.o.Logger.Info("policy bundle applied", zap.Uint64("serial", v.Serial), zap.Uint64("previous_serial", prev),
		zap.String("key_id", v.KeyID), zap.String("scope", v.Scope.String()), zap.Time("expires_at", v.ExpiresAt))
	return true, nil
}

// source names where bundles come from, for errors.
func (f *Follower) source() string {
	if f.o.Store != nil {
		return f.o.Store.String()
	}
	return f.o.URL
}

// fetchService asks the bundle service, with the running bundle's ETag;
// nil bytes mean unchanged (304).
func (f *Follower) fetchService(ctx context.Context, cur *Verified) ([]byte, error) {
	q := url.Values{"fleet": {f.o.Target.Fleet}, "namespace": {f.o.Target.Namespace}}
	if f.o.Wait > 0 {
		q.Set("wait", f.o.Wait.String())
	}
	rctx, cancel := context.WithTimeout(ctx, f.o.Wait+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, f.o.URL+PathBundle+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		req.Header.Set("If-None-Match", cur.ETag)
	}
	resp, err := f.o.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, nil
	case http.StatusOK:
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("bundle service answered %s: %s", resp.Status, body)
	}
	return readBounded(resp.Body, "the bundle service's answer")
}

// fetchStore re-reads the store (one LIST when nothing changed) and picks
// the newest unexpired bundle for this Warden, as the service would.
func (f *Follower) fetchStore(ctx context.Context, _ *Verified) ([]byte, error) {
	if err := f.picker.scan(ctx); err != nil {
		return nil, err
	}
	b, _ := f.picker.pick(f.o.Target)
	if b == nil {
		return nil, fmt.Errorf("no unexpired bundle for fleet %q namespace %q", f.o.Target.Fleet, f.o.Target.Namespace)
	}
	return b.Raw, nil
}

func (f *Follower) contact(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.lastOK = f.o.Now()
	}
	if f.metrics != nil {
		if err == nil {
			f.metrics.fetches.WithLabelValues("ok").Inc()
		} else {
			f.metrics.fetches.WithLabelValues("error").Inc()
		}
	}
}

func (f *Follower) fetchFailed(err error) error {
	err = fmt.Errorf("fetching the policy bundle from %s: %w", f.source(), err)
	f.contact(err)
	f.mu.Lock()
	f.lastErr = err
	f.mu.Unlock()
	f.o.Logger.Warn("policy bundle fetch failed; the running policy stays", zap.Error(err))
	return err
}

func (f *Follower) refused(err error, from string) {
	f.mu.Lock()
	f.lastErr = err
	serial := uint64(0)
	if f.current != nil {
		serial = f.current.Serial
	}
	f.mu.Unlock()
	if f.metrics != nil {
		f.metrics.refused.WithLabelValues(Reason(err)).Inc()
	}
	f.o.Logger.Error("policy bundle refused; the last good policy stays", zap.String("from", from),
		zap.String("reason", Reason(err)), zap.Error(err), zap.Uint64("running_serial", serial))
}

type followerMetrics struct {
	fetches     *prometheus.CounterVec
	refused     *prometheus.CounterVec
	applied     prometheus.Counter
	lastApplied prometheus.Gauge
}

var (
	bundleInfoDesc = prometheus.NewDesc("warden_policy_bundle_info",
		"The running policy bundle: serial and signing key id as labels, value 1.", []string{"serial", "key_id"}, nil)
	bundleExpiryDesc = prometheus.NewDesc("warden_policy_bundle_expiry_timestamp_seconds",
		"When the running policy bundle expires, in Unix seconds.", nil, nil)
	bundleExpiredDesc = prometheus.NewDesc("warden_policy_bundle_expired",
		"1 when the running policy bundle has expired (the service could not be reached or had nothing newer): the last good bundle keeps deciding.", nil, nil)
	bundleLoadedDesc = prometheus.NewDesc("warden_policy_bundle_loaded",
		"1 when a policy bundle is running; 0 means not ready (fail closed).", nil, nil)
)

func newFollowerMetrics(reg prometheus.Registerer, f *Follower) (*followerMetrics, error) {
	m := &followerMetrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_policy_bundle_fetches_total",
			Help: "Requests to the bundle service, by result (ok: 200 or 304; error: unreachable or an error status)."}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_policy_bundle_refused_total",
			Help: "Bundles refused, by reason (unsigned, bad_signature, expired, out_of_scope, older_serial, malformed, other: the policy did not validate)."}, []string{"reason"}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_policy_bundle_applied_total",
			Help: "Bundles fetched, verified and applied."}),
		lastApplied: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warden_policy_bundle_last_applied_timestamp_seconds",
			Help: "When a bundle from the service was last applied, in Unix seconds."}),
	}
	for _, r := range []string{"ok", "error"} {
		m.fetches.WithLabelValues(r)
	}
	for _, r := range []string{"unsigned", "bad_signature", "expired", "out_of_scope", "older_serial", "malformed", "other"} {
		m.refused.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.fetches, m.refused, m.applied, m.lastApplied, bundleCollector{f}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("bundle metrics: %w", err)
		}
	}
	return m, nil
}

type bundleCollector struct{ f *Follower }

func (c bundleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- bundleInfoDesc
	ch <- bundleExpiryDesc
	ch <- bundleExpiredDesc
	ch <- bundleLoadedDesc
}

func (c bundleCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.f.Current()
	if cur == nil {
		ch <- prometheus.MustNewConstMetric(bundleLoadedDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(bundleLoadedDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(bundleInfoDesc, prometheus.GaugeValue, 1, fmt.Sprint(cur.Serial), cur.KeyID)
	ch <- prometheus.MustNewConstMetric(bundleExpiryDesc, prometheus.GaugeValue, float64(cur.ExpiresAt.Unix()))
	expired := 0.0
	if c.f.Expired() {
		expired = 1
	}
	ch <- prometheus.MustNewConstMetric(bundleExpiredDesc, prometheus.GaugeValue, expired)
}
