package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/warden-egress/warden/authz/budget"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/warden-egress/warden/authz/policy"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/guard"
)

// snapshot is everything a request reads that a reload may replace. It is
// immutable: a reload builds a new one and swaps the pointer, and a request
// loads the pointer once, so one call's decision and audit record always
// come from one policy.
type snapshot struct {
	cfg    *config.Config // the file the snapshot came from (apps applied; other keys as at start)
	policy *policy.Policy
	hash   string     // config.PolicyHash
	guards *guard.Set // every app's compiled guards
	// budgets are the apps' compiled budgets (apps[].budgets), by app.
	budgets map[string]*budget.Limits
	// serial and expires are the signed policy bundle's (0 and zero when
	// the policy came from the config file).
	serial  uint64
	expires time.Time
}

// newSnapshot compiles cfg's policy for the region Warden forwards to (fixed
// at start: upstream changes need a restart).
func newSnapshot(cfg *config.Config, region string) (*snapshot, error) {
	p, err := policy.New(cfg.Policy())
	if err != nil {
		return nil, err
	}
	guards, err := guard.Compile(guardApps(cfg.Apps), cfg.Guards)
	if err != nil {
		return nil, err
	}
	return &snapshot{cfg: cfg, policy: p.WithRegion(region), hash: config.PolicyHash(cfg), guards: guards, budgets: budgetLimits(cfg.Apps)}, nil
}

// PolicyHash returns the running policy's hash ("" before one is loaded).
func (s *Server) PolicyHash() string {
	if p := s.snap.Load(); p != nil {
		return p.hash
	}
	return ""
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Hash is the running policy's hash after the reload (the old one when
	// the reload failed).
	Hash string
	// Changed says the policy changed (a valid file with the same apps only
	// counts as a successful reload).
	Changed bool
	// NotApplied are the keys that changed in the file but need a restart.
	NotApplied []string
	// Errors are the problems that rejected the file, "file:line:col: msg".
	Errors []string
	// Err is set when the file was rejected; the previous policy stays.
	Err error
}

// Reload validates cfg fully and, if valid, swaps in its policy
// atomically. Only the apps section is applied: the keys that differ from
// the running config and need a restart are returned (and logged).
func (s *Server) Reload(cfg *config.Config) ReloadResult {
	if s.cfg.Bundle != nil {
		return s.reloadFailed(s.snap.Load(), errors.New("config: the policy comes from signed bundles (bundle.url); a file reload does not replace it"), nil)
	}
	return s.reload(cfg, BundleMeta{})
}

// BundleMeta names the signed bundle a policy came from.
type BundleMeta struct {
	Serial  uint64
	Expires time.Time
}

// ApplyBundle applies the policy file of a verified policy bundle (package
// bundle checked its signature, scope, expiry and serial): its policy
// sections replace the running ones, validated against the rest of the
// running config exactly as a reload is. Every audit record then carries
// the bundle's serial beside the policy hash.
func (s *Server) ApplyBundle(policyYAML []byte, meta BundleMeta) ReloadResult {
	name := fmt.Sprintf("bundle %d", meta.Serial)
	cfg, err := config.WithPolicy(s.cfg, policyYAML)
	if err != nil {
		return s.reloadFailed(s.snap.Load(), err, config.Diagnostics(name, policyYAML, err))
	}
	return s.reload(cfg, meta)
}

// PolicySerial returns the running bundle's serial (0: not from a bundle).
func (s *Server) PolicySerial() uint64 {
	if p := s.snap.Load(); p != nil {
		return p.serial
	}
	return 0
}

func (s *Server) reload(cfg *config.Config, meta BundleMeta) ReloadResult {
	old := s.snap.Load()
	if err := cfg.Validate(); err != nil {
		return s.reloadFailed(old, err, nil)
	}
	// Guard definitions are policy too: the new file's are compiled with it.
	next, err := newSnapshot(cfg, s.region)
	if err != nil {
		return s.reloadFailed(old, err, nil)
	}
	next.serial, next.expires = meta.Serial, meta.Expires
	res := ReloadResult{Hash: next.hash, Changed: old == nil || old.hash != next.hash, NotApplied: config.RestartKeys(s.cfg, cfg)}
	s.snap.Store(next)
	s.metrics.reloads.WithLabelValues("ok").Inc()
	s.metrics.lastReload.SetToCurrentTime()
	if len(res.NotApplied) > 0 {
		s.log.Warn("config reload: changes that need a restart were not applied",
			zap.Strings("keys", res.NotApplied), zap.String("policy_hash", next.hash))
	}
	if res.Changed {
		s.logSelectorWarnings(cfg)
		prev := ""
		if old != nil {
			prev = old.hash
		}
		s.log.Info("config reload: policy applied", zap.String("policy_hash", next.hash),
			zap.String("previous_policy_hash", prev), zap.Int("apps", len(cfg.Apps)), zap.Uint64("policy_serial", next.serial))
	}
	return res
}

// logSelectorWarnings logs the policy's selectors that the identity config
// makes weak (config.SelectorWarnings): a policy from a signed bundle never
// passes through `warden policy validate` on this host.
func (s *Server) logSelectorWarnings(cfg *config.Config) {
	for _, w := range config.SelectorWarnings(cfg) {
		s.log.Warn("policy warning", zap.String("warning", w))
	}
}

func (s *Server) reloadFailed(old *snapshot, err error, diags []string) ReloadResult {
	res := ReloadResult{Err: err, Errors: diags}
	if old != nil {
		res.Hash = old.hash
	}
	if res.Errors == nil {
		res.Errors = config.Diagnostics("config", nil, err)
	}
	s.metrics.reloads.WithLabelValues("error").Inc()
	s.log.Error("config reload rejected; the last good policy stays", zap.Strings("errors", res.Errors),
		zap.String("policy_hash", res.Hash))
	return res
}

// ReloadFile reads, validates and applies a config file (see Reload).
func (s *Server) ReloadFile(path string) ReloadResult {
	data, err := os.ReadFile(path)
	if err != nil {
		return s.reloadFailed(s.snap.Load(), fmt.Errorf("config: %w", err), []string{fmt.Sprintf("%s: %v", path, err)})
	}
	return s.reloadData(path, data)
}

func (s *Server) reloadData(path string, data []byte) ReloadResult {
	cfg, err := config.ParseConfig(data)
	if err != nil {
		return s.reloadFailed(s.snap.Load(), err, config.Diagnostics(path, data, err))
	}
	return s.Reload(cfg)
}

// WatchOptions configure WatchConfig.
type WatchOptions struct {
	// Interval between cheap change checks: a stat of the file (through its
	// symlinks) and of its directory, where a Kubernetes ConfigMap swaps its
	// ..data symlink. Default 1s.
	Interval time.Duration
	// FullEvery re-reads the file whatever the stat says (a filesystem whose
	// timestamps do not move). Default 10s.
	FullEvery time.Duration
	// Trigger forces a re-read (warden serve sends SIGHUP here).
	Trigger <-chan struct{}
	// Loaded is the content the running policy came from (nil: read the
	// file when watching starts); a file with this content is not reloaded.
	Loaded []byte
	// OnReload, if set, sees every reload attempt's result.
	OnReload func(ReloadResult)
}

// WatchConfig reloads path whenever its content changes, until ctx ends.
// The running policy must have come from path: its content is the
// baseline, so an unchanged file is not reloaded (a trigger always is).
func (s *Server) WatchConfig(ctx context.Context, path string, o WatchOptions) {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.FullEvery <= 0 {
		o.FullEvery = 10 * time.Second
	}
	w := &watcher{path: path, dir: filepath.Dir(path)}
	w.stamp = w.stat()
	if o.Loaded != nil {
		w.sum = sha256.Sum256(o.Loaded)
	} else if data, err := os.ReadFile(path); err == nil {
		w.sum = sha256.Sum256(data)
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	lastFull := time.Now()
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-o.Trigger:
			force = true
		case now := <-tick.C:
			st := w.stat()
			if st == w.stamp && now.Sub(lastFull) < o.FullEvery {
				continue
			}
			w.stamp = st
			lastFull = now
		}
		data, err := readSettled(ctx, path, max(10*time.Millisecond, min(o.Interval, 50*time.Millisecond)))
		var res ReloadResult
		switch {
		case err != nil:
			if !force && errors.Is(err, os.ErrNotExist) && w.missing {
				continue // still missing: reported once
			}
			w.missing = errors.Is(err, os.ErrNotExist)
			res = s.reloadFailed(s.snap.Load(), fmt.Errorf("config: %w", err), []string{fmt.Sprintf("%s: %v", path, err)})
		default:
			w.missing = false
			sum := sha256.Sum256(data)
			if sum == w.sum && !force {
				continue
			}
			w.sum = sum
			res = s.reloadData(path, data)
		}
		if o.OnReload != nil {
			o.OnReload(res)
		}
	}
}

// readSettled reads path until two reads settle apart agree, so a file
// being rewritten in place (truncate, then write) is not applied half
// written: a truncated YAML file can be a valid, smaller policy. Atomic
// replacements (rename, ConfigMap ..data swaps) agree at once. An empty
// file (just truncated, or never valid anyway) is read again for a while.
func readSettled(ctx context.Context, path string, settle time.Duration) ([]byte, error) {
	data, err := os.ReadFile(path)
	for range 20 {
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(settle):
		}
		again, err2 := os.ReadFile(path)
		if err2 == nil && len(again) > 0 && bytes.Equal(again, data) {
			return data, nil
		}
		data, err = again, err2
	}
	if err != nil {
		return nil, err
	}
	// Never apply a file that is still changing: the next change or poll
	// tries again. Write policy files with an atomic rename.
	return nil, fmt.Errorf("%s did not stop changing; not applied", path)
}

type watcher struct {
	path, dir string
	stamp     string
	sum       [sha256.Size]byte
	missing   bool
}

// stat fingerprints the file (followed through symlinks) and the
// directory entries that ConfigMap updates change.
func (w *watcher) stat() string {
	var b strings.Builder
	for _, p := range []string{w.path, w.dir, filepath.Join(w.dir, "..data")} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d/%v;", fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		} else {
			b.WriteString("-;")
		}
	}
	for _, p := range []string{w.path, filepath.Join(w.dir, "..data")} {
		if t, err := os.Readlink(p); err == nil {
			b.WriteString(t)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// reloadMetrics are the config life-cycle metrics.
type reloadMetrics struct {
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
}

func newReloadMetrics(reg *prometheus.Registry, s *Server) (reloadMetrics, error) {
	m := reloadMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_config_reloads_total",
			Help: "Config reload attempts after start, by result (ok: validated and applied; error: rejected, the last good policy stays).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warden_config_last_reload_success_timestamp_seconds",
			Help: "When a valid config was last loaded (start or reload), in Unix seconds.",
		}),
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	for _, c := range []prometheus.Collector{m.reloads, m.lastReload, policyInfo{s}, policySerial{s}} {
		if err := reg.Register(c); err != nil {
			return m, err
		}
	}
	return m, nil
}

var policyInfoDesc = prometheus.NewDesc("warden_policy_info",
	"The running policy: its hash (SHA-256 of the canonical apps section, 12 hex digits) as a label, value 1.",
	[]string{"hash"}, nil)

// policyInfo reads the current snapshot at scrape time, so the series
// always names the policy that is deciding.
type policyInfo struct{ s *Server }

func (p policyInfo) Describe(ch chan<- *prometheus.Desc) { ch <- policyInfoDesc }
func (p policyInfo) Collect(ch chan<- prometheus.Metric) {
	if h := p.s.PolicyHash(); h != "" {
		ch <- prometheus.MustNewConstMetric(policyInfoDesc, prometheus.GaugeValue, 1, h)
	}
}

var policySerialDesc = prometheus.NewDesc("warden_policy_serial",
	"The running policy's signed bundle serial (0: the policy came from the config file).", nil, nil)

type policySerial struct{ s *Server }

func (p policySerial) Describe(ch chan<- *prometheus.Desc) { ch <- policySerialDesc }
func (p policySerial) Collect(ch chan<- prometheus.Metric) {
	if p.s.snap.Load() != nil {
		ch <- prometheus.MustNewConstMetric(policySerialDesc, prometheus.GaugeValue, float64(p.s.PolicySerial()))
	}
}

// Readiness reports, for /readyz, whether the policy source is usable and
// what to say about it (the bundle follower: not loaded, expired, refused).
type Readiness func() (ready bool, detail string)

// SetReadiness adds a check to /readyz: not ready when it says so, and its
// detail in the answer's body either way.
func (s *Server) SetReadiness(r Readiness) { s.readiness.Store(&r) }

// ready reports whether a good policy is loaded, and the readiness detail.
func (s *Server) ready() (bool, string) {
	ok := s.snap.Load() != nil
	detail := ""
	if !ok {
		detail = "no valid policy loaded"
	}
	if r := s.readiness.Load(); r != nil {
		rok, d := (*r)()
		ok = ok && rok
		if d != "" {
			detail = d
		}
	}
	return ok, detail
}
