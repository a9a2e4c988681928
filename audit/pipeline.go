package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure a Pipeline.
type Options struct {
	// Dir is the spool directory; "" keeps the spool in memory (nothing
	// survives a crash: tests and demos).
	Dir          string
	Instance     string // "" picks or reuses one (see ResolveInstance)
	Fsync        bool   // group-committed fdatasync before Begin and Write return
	MaxBytes     int64
	SegmentBytes int64
	// DropWhenFull makes a full spool drop (count and log) instead of
	// refusing new calls with ErrSpoolFull.
	DropWhenFull bool
	// ShareUnidentified and ShareApp bound, as fractions of MaxBytes, the
	// spool bytes not yet delivered to every sink that the calls no app
	// selected (Record.App "") and each app may hold with new calls'
	// lines; beyond it their new calls get ErrShareFull while the others
	// still get room. Defaults 0.1 and 0.5; 1 or more: no share bound.
	ShareUnidentified, ShareApp float64
	// DenialWindow is how long repeated denials of one client for one
	// reason are folded into one record with a count (default 1s; negative:
	// every denial gets its own record).
	DenialWindow time.Duration

	Sinks       []Sink
	BatchMax    int
	BatchWait   time.Duration
	MaxBackoff  time.Duration
	DrainWithin time.Duration // how long Close waits for sinks to catch up

	CheckpointEvery    int
	CheckpointInterval time.Duration

	Logger   *zap.Logger
	Registry prometheus.Registerer
}

// Pipeline is the audit hot path and its delivery: Begin appends a call's
// intent to the spool before it is forwarded, Write seals its record into
// the instance's hash chain, and one shipper per sink delivers sealed lines
// in order, at least once, from a persisted cursor.
type Pipeline struct {
	o        Options
	sp       *spool
	signer   *Signer
	instance string
	log      *zap.Logger

	// chain state, guarded by sp.mu
	seq       uint64
	head      [32]byte
	headSeg   uint64
	sinceCkpt int

	stop     chan struct{} // closed by Close: stop waiting, drain
	draining atomic.Bool
	closed   atomic.Bool
	// closeMu: Begin and Write hold it shared, Close exclusively, so no
	// append can slip in after the final checkpoint or race the unmap.
	closeMu  sync.RWMutex
	wg       sync.WaitGroup
	shippers []*shipper
	cancel   context.CancelFunc

	m pipelineMetrics

	denials *denials // nil when DenialWindow < 0
	// lossLogged rate-limits the log line for records lost to a full share
	// (a flood must not become a log flood: the metrics count each).
	lossLogged atomic.Int64
}

type pipelineMetrics struct {
	intents, records, checkpoints prometheus.Counter
	appended                      *prometheus.CounterVec
	dropped                       *prometheus.CounterVec
	refused                       prometheus.Counter
	shareRefused                  *prometheus.CounterVec
	aggregated                    prometheus.Counter
	batches                       *prometheus.CounterVec
	delivered                     *prometheus.CounterVec
}

// SinkLeftover is what one sink had not received when a shutdown ended: the
// lines FirstSeq..LastSeq of the instance's chain (Lines of them; 0 when
// the sink had everything).
type SinkLeftover struct {
	Sink              string
	Lines             uint64
	FirstSeq, LastSeq uint64
}

// Leftover is what a shutdown left undelivered: per sink, and across
// sinks (the lines some sink lacks). Kept says the spool is on disk, so
// the next start delivers them; without a spool they are lost.
type Leftover struct {
	Sinks             []SinkLeftover
	Lines             uint64
	FirstSeq, LastSeq uint64
	Kept              bool
}

// Open recovers the spool in o.Dir (sealing a record marked incomplete for
// every call that was forwarded but never completed), writes a start
// checkpoint and starts a shipper per sink from its saved cursor.
func Open(ctx context.Context, o Options) (*Pipeline, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 16 << 20
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 * o.SegmentBytes
	}
	if o.BatchMax <= 0 {
		o.BatchMax = 500
	}
	if o.BatchWait <= 0 {
		o.BatchWait = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.DrainWithin <= 0 {
		o.DrainWithin = 10 * time.Second
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 1000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 10 * time.Second
	}
	if o.ShareUnidentified <= 0 {
		o.ShareUnidentified = 0.1
	}
	if o.ShareApp <= 0 {
		o.ShareApp = 0.5
	}
	if o.DenialWindow == 0 {
		o.DenialWindow = time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	p := &Pipeline{o: o, log: o.Logger, stop: make(chan struct{})}
	p.initMetrics()
	var err error
	if p.instance, err = ResolveInstance(o.Dir, o.Instance); err != nil {
		return nil, err
	}
	if p.signer, err = loadOrCreateKey(o.Dir); err != nil {
		return nil, err
	}
	if p.sp, err = openSpool(o.Dir, o.SegmentBytes, o.MaxBytes, o.Fsync); err != nil {
		return nil, err
	}
	p.sp.shareLimit = p.shareLimit
	if err := p.recover(); err != nil {
		_ = p.sp.close() // the failure that stopped Open is the error worth returning
		return nil, err
	}
	if err := p.checkpoint("start", false); err != nil {
		_ = p.sp.close() // the failure that stopped Open is the error worth returning
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	names := map[string]int{}
	for _, s := range o.Sinks {
		name := s.Name()
		if names[name]++; names[name] > 1 {
			name = fmt.Sprintf("%s-%d", name, names[name])
		}
		sh, err := p.newShipper(s, name)
		if err != nil {
			cancel()
			_ = p.sp.close()
			return nil, err
		}
		sh.idx = len(p.shippers)
		p.shippers = append(p.shippers, sh)
		p.sp.cursors = append(p.sp.cursors, spoolPos{sh.seg.Load(), sh.off})
	}
	if o.DenialWindow > 0 {
		p.denials = newDenials(p, o.DenialWindow)
	}
	for _, sh := range p.shippers {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); sh.run(sctx) }()
	}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.checkpointLoop() }()
	return p, nil
}

func (p *Pipeline) initMetrics() {
	p.m = pipelineMetrics{
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_audit_spooled_total",
			Help: "Lines appended to the audit spool, by kind (intent, record, checkpoint)."}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_audit_dropped_total",
			Help: "Audit records lost, by reason (spool_full, share_full, error, closed); an aggregated denial counts its calls."}, []string{"reason"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_audit_spool_full_refusals_total",
			Help: "Calls refused because the audit spool was full (audit.spool.on_full: deny)."}),
		shareRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_audit_share_refusals_total",
			Help: "New calls' audit lines refused because their caller group held its share of the spool (audit.spool.share), " +
				"by share: the app's name, or unidentified for calls no app selected. A refused intent refuses the call " +
				"(on_full: deny); a refused record is counted in warden_audit_dropped_total{reason=\"share_full\"}."}, []string{"share"}),
		aggregated: prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_audit_denials_aggregated_total",
			Help: "Denied calls folded into an aggregated record (one per client and reason and second, with a count) instead of a record of their own."}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_audit_sink_batches_total",
			Help: "Sink batch attempts by sink and result (ok, error)."}, []string{"sink", "result"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_audit_sink_delivered_total",
			Help: "Lines delivered by sink (at least once: replays after a crash count again)."}, []string{"sink"}),
	}
	// Every loss reason exists at 0 from the start, so an alert on
	// increase() fires at the first loss rather than the second.
	for _, r := range []string{"spool_full", "share_full", "error"} {
		p.m.dropped.WithLabelValues(r)
	}
	p.m.intents = p.m.appended.WithLabelValues("intent")
	p.m.records = p.m.appended.WithLabelValues("record")
	p.m.checkpoints = p.m.appended.WithLabelValues("checkpoint")
	if r := p.o.Registry; r != nil {
		for _, c := range []prometheus.Collector{p.m.appended, p.m.dropped, p.m.refused, p.m.shareRefused, p.m.aggregated, p.m.batches, p.m.delivered,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_audit_spool_bytes", Help: "Size of the live audit spool segments."},
				func() float64 { return float64(p.sp.usedBytes()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_audit_spool_max_bytes",
				Help: "The spool's bound (audit.spool.max_bytes): warden_audit_spool_bytes over it is how full the spool is."},
				func() float64 { return float64(p.o.MaxBytes) }),
			shareCollector{p},
			deliveryCollector{p},
			// An anchor outside the sink: a monitoring system that keeps
			// this series can tell `warden audit verify --min-seq` how far
			// each chain reached, which catches a tail cut at a checkpoint.
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warden_audit_chain_seq",
				Help: "Seq of the newest line in this instance's audit hash chain.", ConstLabels: prometheus.Labels{"instance": p.instance}},
				func() float64 { p.sp.mu.Lock(); defer p.sp.mu.Unlock(); return float64(p.seq) })} {
			_ = r.Register(c)
		}
	}
}

// Instance is the name records and the chain carry.
func (p *Pipeline) Instance() string { return p.instance }

// PublicKey is the base64 Ed25519 key checkpoints are signed with.
func (p *Pipeline) PublicKey() string { return p.signer.PublicKeyString() }

var encBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// Begin appends r's intent before the call is forwarded. An error means the
// call must not be forwarded (ErrSpoolFull under on_full: deny).
func (p *Pipeline) Begin(r *Record) error {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed.Load() {
		return errClosed
	}
	r.Instance = p.instance
	bp := encBufs.Get().(*[]byte)
	line := r.AppendJSON((*bp)[:0])
	p.sp.mu.Lock()
	seg, pos, err := p.sp.appendLocked(kindIntent, r.RequestID, r.Time, roomNew, p.sp.shareIndex(r.App), line)
	if err == nil {
		seg.intents++
		r.pending = seg
	}
	p.sp.mu.Unlock()
	*bp = line
	encBufs.Put(bp)
	if err != nil {
		reason := "spool_full"
		if errors.Is(err, ErrShareFull) {
			reason = "share_full"
			p.m.shareRefused.WithLabelValues(shareLabel(r.App)).Inc()
		}
		if errors.Is(err, ErrSpoolFull) && p.o.DropWhenFull {
			p.m.dropped.WithLabelValues(reason).Inc()
			return nil
		}
		if errors.Is(err, ErrSpoolFull) && reason == "spool_full" {
			p.m.refused.Inc()
		}
		return err
	}
	p.m.intents.Inc()
	return p.sp.waitDurable(pos)
}

// Write seals r into the chain and appends it for the sinks. It returns
// once the record is as durable as the spool is configured to be.
func (p *Pipeline) Write(r *Record) {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed.Load() {
		p.m.dropped.WithLabelValues("closed").Inc()
		p.log.Error("audit record lost: the pipeline was closed before the call ended", zap.String("request_id", r.RequestID))
		return
	}
	fold := p.denials != nil && foldable(r)
	if fold && p.denials.add(r, time.Now()) {
		return // a repeat: its window's aggregated record will count it
	}
	err := p.write(r, roomComplete)
	if err == nil {
		return
	}
	if fold && errors.Is(err, ErrShareFull) && p.denials.keep(r) {
		return // retried in its window's aggregated record
	}
	p.lose(r, err)
}

// write seals r; a record without a spooled intent (a call never
// forwarded) gets the room of a new call, so refusals cannot use up the
// space kept for completions. A lost record is the caller's to count.
func (p *Pipeline) write(r *Record, rm room) error {
	r.Instance = p.instance
	bp := encBufs.Get().(*[]byte)
	defer encBufs.Put(bp)
	body := r.AppendJSON((*bp)[:0])
	*bp = body
	if r.pending == nil && rm == roomComplete {
		rm = roomNew
	}
	sh := share{name: r.App, counted: rm != roomAny} // recovered records: their intents were in no share
	return p.seal(r.RequestID, r.Time, body[:len(body)-1], rm, sh, &r.pending)
}

// lose counts r's calls as lost and says so in the log; losses to a full
// spool or share are logged at most once every ten seconds (a flood of
// denials must not become a flood of log lines: the metrics count each).
func (p *Pipeline) lose(r *Record, err error) {
	reason := "error"
	switch {
	case errors.Is(err, ErrShareFull):
		reason = "share_full"
		p.m.shareRefused.WithLabelValues(shareLabel(r.App)).Add(float64(r.Calls()))
	case errors.Is(err, ErrSpoolFull):
		reason = "spool_full"
	}
	p.m.dropped.WithLabelValues(reason).Add(float64(r.Calls()))
	if reason != "error" {
		now := time.Now().UnixNano()
		last := p.lossLogged.Load()
		if now-last < int64(10*time.Second) || !p.lossLogged.CompareAndSwap(last, now) {
			return
		}
	}
	p.log.Error("audit record lost", zap.String("request_id", r.RequestID), zap.String("app", r.App),
		zap.Int("calls", r.Calls()), zap.Error(err))
}

// share names the caller group a sealed line counts in: an app, or "" for
// the calls no app selected; lines of no group (capture, recovery) are not
// counted.
type share struct {
	name    string
	counted bool
}

// shareCollector reports the bytes each share holds and its bound.
type shareCollector struct{ p *Pipeline }

var (
	shareHeldDesc = prometheus.NewDesc("warden_audit_share_bytes",
		"Bytes of audit lines a caller group (an app, or unidentified) holds in the spool that some sink has not taken yet.", []string{"share"}, nil)
	shareLimitDesc = prometheus.NewDesc("warden_audit_share_limit_bytes",
		"The bound on warden_audit_share_bytes beyond which the group's new calls are refused (audit.spool.share).", []string{"share"}, nil)
)

func (c shareCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- shareHeldDesc
	ch <- shareLimitDesc
}

func (c shareCollector) Collect(ch chan<- prometheus.Metric) {
	sp := c.p.sp
	sp.mu.Lock()
	names, held := slices.Clone(sp.shareNames), slices.Clone(sp.held)
	sp.mu.Unlock()
	for i, name := range names {
		ch <- prometheus.MustNewConstMetric(shareHeldDesc, prometheus.GaugeValue, float64(held[i]), shareLabel(name))
		ch <- prometheus.MustNewConstMetric(shareLimitDesc, prometheus.GaugeValue, float64(c.p.shareLimit(name)), shareLabel(name))
	}
}

// shareLabel names a share in metrics.
func shareLabel(app string) string {
	if app == "" {
		return "unidentified"
	}
	return app
}

// shareLimit is the bound on the bytes share name may hold undelivered.
func (p *Pipeline) shareLimit(name string) int64 {
	f := p.o.ShareApp
	if name == "" {
		f = p.o.ShareUnidentified
	}
	if f >= 1 {
		return 1<<63 - 1
	}
	return int64(f * float64(p.o.MaxBytes))
}

// WriteLine seals one JSON object (a capture line: any object whose kind
// says what it is) into the chain, as Write does a call record, with the
// instance added as its first member.
func (p *Pipeline) WriteLine(id string, t time.Time, obj []byte) {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed.Load() || len(obj) < 2 || obj[len(obj)-1] != '}' {
		p.m.dropped.WithLabelValues("closed").Inc()
		return
	}
	// The instance names the chain the line joins, as in records.
	body := make([]byte, 0, len(obj)+len(p.instance)+16)
	body = append(body, `{"instance":`...)
	body = appendString(body, p.instance)
	if len(obj) > 2 {
		body = append(body, ',')
	}
	body = append(body, obj[1:len(obj)-1]...)
	if err := p.seal(id, t, body, roomNew, share{}, nil); err != nil {
		reason := "error"
		if errors.Is(err, ErrSpoolFull) {
			reason = "spool_full"
		}
		p.m.dropped.WithLabelValues(reason).Inc()
		p.log.Error("audit line lost", zap.String("id", id), zap.Error(err))
	}
}

// seal appends body (a JSON object without its closing brace) as the
// chain's next line and waits until it is as durable as configured; a
// pending intent is released once the line is in (if the line is lost, the
// intent stays and the next start seals an incomplete record for it).
func (p *Pipeline) seal(id string, t time.Time, body []byte, rm room, sh share, pending **segment) error {
	bh := bodyHash(body) // off the lock
	var tb [256]byte
	p.sp.mu.Lock()
	seq := p.seq + 1
	h := chainHash(p.head, seq, bh)
	trailer := append(appendTrailer(tb[:0], seq, p.head, h), '}')
	key := int32(noShare)
	if sh.counted {
		key = p.sp.shareIndex(sh.name)
	}
	seg, pos, err := p.sp.appendLocked(kindRecord, id, t, rm, key, body, trailer)
	ckpt := false
	if err == nil {
		if pending != nil && *pending != nil {
			(*pending).intents--
			*pending = nil
		}
		p.seq, p.head, p.headSeg = seq, h, seg.n
		p.sinceCkpt++
		ckpt = p.sinceCkpt >= p.o.CheckpointEvery
	}
	p.sp.mu.Unlock()
	if err != nil {
		return err
	}
	p.m.records.Inc()
	p.sp.wake()
	if err := p.sp.waitDurable(pos); err != nil {
		return err
	}
	if ckpt { // inline: one line in CheckpointEvery pays for a signature (~25 µs)
		if err := p.checkpoint("periodic", false); err != nil {
			p.log.Error("audit checkpoint failed", zap.Error(err))
		}
	}
	return nil
}

// checkpoint seals a signed checkpoint of the chain head.
func (p *Pipeline) checkpoint(reason string, final bool) error {
	now := time.Now().UTC()
	p.sp.mu.Lock()
	if reason == "periodic" && p.sinceCkpt == 0 { // another writer got there first
		p.sp.mu.Unlock()
		return nil
	}
	seq := p.seq + 1
	body := checkpointBody(nil, p.instance, seq, now, p.signer.PublicKeyString(), reason, final)
	h := chainHash(p.head, seq, bodyHash(body))
	line := appendTrailer(nil, seq, p.head, h)
	line = append(line, `,"sig":"`...)
	line = base64.StdEncoding.AppendEncode(line, ed25519.Sign(p.signer.priv, h[:]))
	line = append(line, `"}`...)
	seg, pos, err := p.sp.appendLocked(kindCheck, checkpointID(p.instance, seq), now, roomAny, noShare, body, line)
	if err == nil {
		p.seq, p.head, p.headSeg = seq, h, seg.n
		p.sinceCkpt = 0
	}
	p.sp.mu.Unlock()
	if err != nil {
		p.m.dropped.WithLabelValues("error").Inc()
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	p.m.checkpoints.Inc()
	p.sp.wake()
	return p.sp.waitDurable(pos)
}

func (p *Pipeline) checkpointLoop() {
	t := time.NewTicker(p.o.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.sp.mu.Lock()
		pending := p.sinceCkpt > 0
		p.sp.mu.Unlock()
		if pending {
			if err := p.checkpoint("periodic", false); err != nil {
				p.log.Error("audit checkpoint failed", zap.Error(err))
			}
		}
	}
}

// recover rebuilds the chain head from the spool and seals a record for
// every intent that has no completion.
func (p *Pipeline) recover() error {
	type open struct {
		seg  *segment
		line []byte
	}
	intents := map[string]open{}
	var order []string
	segs := p.sp.segs[:len(p.sp.segs)-1] // the new segment is empty
	for _, seg := range segs {
		end := seg.end.Load()
		for off := int64(0); off < end; {
			f, next := decodeFrame(seg.data, off)
			off = next
			switch f.kind {
			case kindIntent:
				if _, dup := intents[f.id]; dup {
					continue
				}
				order = append(order, f.id)
				intents[f.id] = open{seg, f.line}
				seg.intents++
			case kindRecord, kindCheck:
				if o, ok := intents[f.id]; ok && f.kind == kindRecord {
					o.seg.intents--
					delete(intents, f.id)
				}
				t, err := ParseTrailer(f.line)
				if err != nil { // cannot happen short of disk corruption the CRC missed
					p.log.Error("audit spool: a sealed line without a valid trailer; kept for the sinks, skipped for the chain head",
						zap.String("segment", seg.path), zap.String("id", f.id), zap.Error(err))
					continue
				}
				p.seq, p.head, p.headSeg = t.Seq, t.Hash, seg.n
			}
		}
	}
	for _, id := range order {
		o, ok := intents[id]
		if !ok {
			continue
		}
		r, err := DecodeRecord(o.line)
		if err != nil { // keep what is certain: the id, and that a call was forwarded
			p.log.Error("audit spool: an intent that does not decode; sealing a minimal record", zap.String("id", id), zap.Error(err))
			r = Record{RequestID: id, Decision: DecisionAllow}
		}
		r.Incomplete = true
		r.Status = 0
		r.Reason = "Warden stopped after forwarding the call and before it completed; recovered from the audit spool"
		r.pending = o.seg
		if err := p.write(&r, roomAny); err != nil {
			p.lose(&r, err)
			return fmt.Errorf("audit spool: sealing recovered intent %s: %w", id, err)
		}
	}
	if len(intents) > 0 {
		p.log.Warn("audit: sealed records for calls interrupted by a crash", zap.Int("calls", len(intents)))
	}
	return nil
}

// Close is Shutdown bounded by Options.DrainWithin.
func (p *Pipeline) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.o.DrainWithin)
	defer cancel()
	_, err := p.Shutdown(ctx)
	return err
}

// Shutdown writes a final checkpoint, lets the shippers deliver what the
// spool holds until every sink has every line or ctx ends, closes sinks
// and spool, and reports (in its return, one log line and the
// warden_audit_undelivered_lines gauge) what was left undelivered. The
// spool keeps that for the next start. A second call returns at once with
// a zero Leftover.
func (p *Pipeline) Shutdown(ctx context.Context) (Leftover, error) {
	p.closeMu.Lock()
	already := p.closed.Swap(true)
	p.closeMu.Unlock() // every Begin and Write in flight has finished
	if already {
		return Leftover{}, nil
	}
	if p.denials != nil {
		p.denials.close() // what is still being aggregated goes in before the final checkpoint
	}
	err := p.checkpoint("shutdown", true)
	p.draining.Store(true)
	close(p.stop)
	p.sp.wake()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.cancel() // a sink still retrying gives up; its cursor stays where delivery stopped
		<-done
	}
	p.cancel()
	left := p.leftover()
	p.logLeftover(left)
	for _, sh := range p.shippers {
		if e := sh.close(); e != nil && err == nil {
			err = e
		}
	}
	if e := p.sp.close(); e != nil && err == nil {
		err = e
	}
	return left, err
}

// leftover reads what each sink lacks from the chain head and the seq of
// the last line it acknowledged. Lines are sealed with consecutive seqs in
// spool order, so a sink lacks exactly delivered+1..head.
func (p *Pipeline) leftover() Leftover {
	p.sp.mu.Lock()
	head := p.seq
	p.sp.mu.Unlock()
	l := Leftover{Kept: p.o.Dir != ""}
	low := head
	for _, sh := range p.shippers {
		d := min(sh.delivered.Load(), head)
		sl := SinkLeftover{Sink: sh.name, Lines: head - d}
		if sl.Lines > 0 {
			sl.FirstSeq, sl.LastSeq = d+1, head
		}
		l.Sinks = append(l.Sinks, sl)
		low = min(low, d)
	}
	if l.Lines = head - low; l.Lines > 0 {
		l.FirstSeq, l.LastSeq = low+1, head
	}
	return l
}

// logLeftover writes shutdown's final audit line: every sink has every
// line, or what is left, per sink, and where it is.
func (p *Pipeline) logLeftover(l Leftover) {
	if l.Lines == 0 {
		p.log.Info("audit shutdown: every sink has every line", zap.Uint64("undelivered_lines", 0), zap.Int("sinks", len(l.Sinks)))
		return
	}
	fields := []zap.Field{zap.Uint64("undelivered_lines", l.Lines), zap.Uint64("first_seq", l.FirstSeq), zap.Uint64("last_seq", l.LastSeq),
		zap.String("instance", p.instance), zap.Bool("kept_in_spool", l.Kept),
		zap.Array("sinks", zapcore.ArrayMarshalerFunc(func(enc zapcore.ArrayEncoder) error {
			for _, s := range l.Sinks {
				_ = enc.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
					o.AddString("sink", s.Sink)
					o.AddUint64("undelivered_lines", s.Lines)
					if s.Lines > 0 {
						o.AddUint64("first_seq", s.FirstSeq)
						o.AddUint64("last_seq", s.LastSeq)
					}
					return nil
				}))
			}
			return nil
		}))}
	msg := "audit shutdown: lines left undelivered; the spool keeps them and the next start delivers them"
	if !l.Kept {
		msg = "audit shutdown: lines left undelivered and lost (audit.spool.dir is none)"
	}
	p.log.Error(msg, fields...)
}

// deliveryCollector exports, per sink, the seq of the last line it
// acknowledged and how many lines of the chain it still lacks (the chain
// head is warden_audit_chain_seq). Read on scrape, also while a shutdown
// drains.
type deliveryCollector struct{ p *Pipeline }

var (
	deliveredSeqDesc = prometheus.NewDesc("warden_audit_sink_delivered_seq",
		"Seq of the last audit chain line the sink acknowledged (with warden_audit_chain_seq: the range it lacks).", []string{"sink"}, nil)
	undeliveredDesc = prometheus.NewDesc("warden_audit_undelivered_lines",
		"Audit chain lines sealed but not yet acknowledged by the sink; at shutdown, what the drain left for the next start.", []string{"sink"}, nil)
)

func (c deliveryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- deliveredSeqDesc
	ch <- undeliveredDesc
}

func (c deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	p.sp.mu.Lock()
	head := p.seq
	p.sp.mu.Unlock()
	for _, sh := range p.shippers {
		d := min(sh.delivered.Load(), head)
		ch <- prometheus.MustNewConstMetric(deliveredSeqDesc, prometheus.GaugeValue, float64(d), sh.name)
		ch <- prometheus.MustNewConstMetric(undeliveredDesc, prometheus.GaugeValue, float64(head-d), sh.name)
	}
}

// shipper delivers one sink's lines from its cursor.
type shipper struct {
	p    *Pipeline
	sink Sink
	name string
	idx  int // in the spool's cursors
	wake chan struct{}
	seg  atomic.Uint64 // read by other shippers' gc
	off  int64
	cur  *os.File // persisted cursor; nil in memory
	// delivered is the seq of the last line the sink acknowledged (at
	// start: the line before the cursor).
	delivered atomic.Uint64
	m         struct{ ok, failed, delivered prometheus.Counter }
}

const cursorSize = 8 + 8 + 4

func (p *Pipeline) newShipper(s Sink, name string) (*shipper, error) {
	sh := &shipper{p: p, sink: s, name: name, wake: p.sp.subscribe()}
	sh.m.ok = p.m.batches.WithLabelValues(name, "ok")
	sh.m.failed = p.m.batches.WithLabelValues(name, "error")
	sh.m.delivered = p.m.delivered.WithLabelValues(name)
	if p.o.Dir == "" {
		sh.initDelivered()
		return sh, nil
	}
	path := filepath.Join(p.o.Dir, "cursor-"+name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit sink %s cursor: %w", name, err)
	}
	var b [cursorSize]byte
	if n, _ := f.ReadAt(b[:], 0); n == cursorSize && crc32.Checksum(b[:16], castagnoli) == binary.LittleEndian.Uint32(b[16:]) {
		sh.seg.Store(binary.LittleEndian.Uint64(b[:8]))
		sh.off = int64(binary.LittleEndian.Uint64(b[8:16]))
	}
	sh.seg.Store(validCursor(p.sp, sh.seg.Load(), &sh.off))
	sh.cur = f
	sh.initDelivered()
	return sh, nil
}

// initDelivered sets delivered from the cursor: the seq before the first
// line still to ship, or the chain head when there is none.
func (sh *shipper) initDelivered() {
	sh.p.sp.mu.Lock()
	head := sh.p.seq
	sh.p.sp.mu.Unlock()
	sh.delivered.Store(head)
	first, _, _ := sh.collect(nil, 1, sh.seg.Load(), sh.off)
	if len(first) == 1 {
		if t, err := ParseTrailer(first[0].Line); err == nil && t.Seq > 0 {
			sh.delivered.Store(t.Seq - 1)
		}
	}
}

// validCursor returns the segment a saved cursor may resume in, moving it
// (and off) to the oldest live segment's start if it names no live
// segment or no frame boundary: delivering again beats skipping.
func validCursor(sp *spool, segN uint64, off *int64) uint64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.segs) == 0 {
		*off = 0
		return segN
	}
	newest := sp.segs[len(sp.segs)-1].n
	for _, seg := range sp.segs {
		switch {
		case segN > newest: // a spool lost or replaced under its cursor
			*off = 0
			return sp.segs[0].n
		case seg.n > segN: // the cursor's segment is gone: resume at the next
			*off = 0
			return seg.n
		case seg.n < segN:
			continue
		}
		end := seg.end.Load()
		for o := int64(0); o < end && o != *off; {
			_, o = decodeFrame(seg.data, o)
			if o > *off {
				*off = 0 // not a frame boundary
				break
			}
		}
		if *off > end {
			*off = 0
		}
		return segN
	}
	*off = 0
	return sp.segs[0].n
}

func (sh *shipper) save() error {
	if sh.cur == nil {
		return nil
	}
	var b [cursorSize]byte
	binary.LittleEndian.PutUint64(b[:8], sh.seg.Load())
	binary.LittleEndian.PutUint64(b[8:16], uint64(sh.off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	_, err := sh.cur.WriteAt(b[:], 0)
	if err == nil && sh.p.o.Fsync {
		err = sh.cur.Sync()
	}
	return err
}

func (sh *shipper) close() error {
	err := sh.sink.Close()
	if sh.cur != nil {
		sh.cur.Close()
	}
	return err
}

// collect appends shippable entries read from (segN, off) until batch
// holds max, and returns where reading stopped: the cursor once the batch
// is delivered.
func (sh *shipper) collect(batch []Entry, max int, segN uint64, off int64) ([]Entry, uint64, int64) {
	for len(batch) < max {
		seg := sh.p.sp.segmentAt(segN)
		if seg == nil {
			break
		}
		if seg.n != segN {
			segN, off = seg.n, 0
		}
		sealed := seg.sealed.Load() // before end: a sealed segment's end is final
		written := seg.end.Load()
		end := written
		if sh.p.o.Fsync {
			end = min(end, seg.durable.Load())
		}
		for off < end && len(batch) < max {
			f, next := decodeFrame(seg.data, off)
			off = next
			if f.kind == kindRecord || f.kind == kindCheck {
				batch = append(batch, Entry{ID: f.id, Time: f.time, Line: f.line})
			}
		}
		if off < written || !sealed {
			break
		}
		segN, off = segN+1, 0
	}
	return batch, segN, off
}

func (sh *shipper) run(ctx context.Context) {
	var batch []Entry
	var since time.Time
	readSeg, readOff := sh.seg.Load(), sh.off // where the batch so far ends
	backoff := 100 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		batch, readSeg, readOff = sh.collect(batch, sh.p.o.BatchMax, readSeg, readOff)
		draining := sh.p.draining.Load()
		if len(batch) > 0 && since.IsZero() {
			since = time.Now()
		}
		ready := len(batch) >= sh.p.o.BatchMax || draining || (len(batch) > 0 && time.Since(since) >= sh.p.o.BatchWait)
		if !ready {
			if len(batch) == 0 { // only intents (or nothing) passed
				sh.seg.Store(readSeg)
				sh.off = readOff
			}
			wait := time.Hour
			if len(batch) > 0 {
				wait = sh.p.o.BatchWait - time.Since(since)
			}
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-sh.wake:
			case <-sh.p.stop:
			case <-timer.C:
			}
			continue
		}
		if len(batch) == 0 { // draining and caught up
			sh.seg.Store(readSeg)
			sh.off = readOff
			_ = sh.save()
			return
		}
		if err := sh.sink.Write(ctx, batch); err != nil {
			sh.m.failed.Inc()
			sh.p.log.Warn("audit sink write failed; retrying from the spool", zap.String("sink", sh.name), zap.Int("records", len(batch)), zap.Error(err))
			d := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, sh.p.o.MaxBackoff)
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue // the same batch (maybe grown), in order
		}
		backoff = 100 * time.Millisecond
		since = time.Time{}
		sh.m.ok.Inc()
		sh.m.delivered.Add(float64(len(batch)))
		if t, err := ParseTrailer(batch[len(batch)-1].Line); err == nil {
			sh.delivered.Store(t.Seq)
		}
		clear(batch) // drop references to spool memory
		batch = batch[:0]
		sh.seg.Store(readSeg)
		sh.off = readOff
		if err := sh.save(); err != nil {
			sh.p.log.Error("audit sink cursor not saved; a restart will deliver this batch again", zap.String("sink", sh.name), zap.Error(err))
		}
		sh.p.gc(sh)
	}
}

// gc removes segments every shipper has passed (and that hold no open
// intent nor the chain head).
func (p *Pipeline) gc(sh *shipper) {
	p.sp.shipperPassed(sh.idx, spoolPos{sh.seg.Load(), sh.off})
	p.sp.mu.Lock()
	bound := p.headSeg
	p.sp.mu.Unlock()
	for _, sh := range p.shippers {
		bound = min(bound, sh.seg.Load())
	}
	p.sp.removeBefore(bound)
}
