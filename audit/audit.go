// Package audit holds Warden's per-call audit record and the writers that
// deliver it. This release writes one JSON line per call through zap to
// stdout or a file; the durable spooled pipeline comes later.
package audit

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// SchemaVersion is bumped on any incompatible change to Record.
const SchemaVersion = 1

// Record is what happened on one call. It never holds prompts, responses,
// credentials or matched values.
type Record struct {
	Time              time.Time
	RequestID         string
	UpstreamRequestID string
	Client            string
	Protocol          string // client protocol, e.g. HTTP/2.0
	IdentitySource    string
	// IdentityStale says the identity was served from cache while the API
	// it came from was failing (bounded by the source's stale_ttl).
	IdentityStale  bool
	Tags           map[string]string
	App            string
	Operation      string
	Model          string // as requested
	ModelCanonical string

	// ModelResolved are the foundation models (canonical ids) an indirect
	// model id resolved to through the Bedrock control plane;
	// ModelResolvedStale says the answer came from the cache during a
	// control-plane outage.
	ModelResolved      []string
	ModelResolvedStale bool

	// PolicyHash names the policy snapshot that made the decision
	// (authz.PolicyHash of its apps section); it changes on every reload
	// that changes the policy.
	PolicyHash string

	Decision          string // allow | deny
	Rule              string
	Reason            string
	Status            int
	ErrorType         string
	BytesIn, BytesOut int64
	Latency           time.Duration
	UpstreamLatency   time.Duration // to the upstream's response headers
}

// MarshalLogObject writes the record as flat JSON fields with stable names.
func (r *Record) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddInt("v", SchemaVersion)
	e.AddTime("time", r.Time)
	e.AddString("request_id", r.RequestID)
	if r.UpstreamRequestID != "" {
		e.AddString("upstream_request_id", r.UpstreamRequestID)
	}
	if r.Client != "" {
		e.AddString("client", r.Client)
	}
	if r.Protocol != "" {
		e.AddString("protocol", r.Protocol)
	}
	if r.IdentitySource != "" {
		e.AddString("identity_source", r.IdentitySource)
	}
	if r.IdentityStale {
		e.AddBool("identity_stale", true)
	}
	if len(r.Tags) > 0 {
		_ = e.AddObject("tags", stringMap(r.Tags))
	}
	e.AddString("app", r.App)
	e.AddString("operation", r.Operation)
	e.AddString("model", r.Model)
	if r.ModelCanonical != "" {
		e.AddString("model_canonical", r.ModelCanonical)
	}
	if len(r.ModelResolved) > 0 {
		_ = e.AddArray("model_resolved", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
			for _, m := range r.ModelResolved {
				a.AppendString(m)
			}
			return nil
		}))
		if r.ModelResolvedStale {
			e.AddBool("model_resolved_stale", true)
		}
	}
	if r.PolicyHash != "" {
		e.AddString("policy_hash", r.PolicyHash)
	}
	e.AddString("decision", r.Decision)
	e.AddString("rule", r.Rule)
	e.AddString("reason", r.Reason)
	e.AddInt("status", r.Status)
	if r.ErrorType != "" {
		e.AddString("error_type", r.ErrorType)
	}
	e.AddInt64("bytes_in", r.BytesIn)
	e.AddInt64("bytes_out", r.BytesOut)
	e.AddFloat64("latency_ms", float64(r.Latency.Microseconds())/1000)
	if r.UpstreamLatency > 0 {
		e.AddFloat64("upstream_latency_ms", float64(r.UpstreamLatency.Microseconds())/1000)
	}
	return nil
}

type stringMap map[string]string

func (m stringMap) MarshalLogObject(e zapcore.ObjectEncoder) error {
	for k, v := range m {
		e.AddString(k, v)
	}
	return nil
}

// Writer emits records as JSON lines.
type Writer interface {
	Write(r *Record)
	Close() error
}

// ZapWriter writes records through a zap core with a JSON encoder and no
// sampling: every record is written.
type ZapWriter struct {
	log    *zap.Logger
	closer func() error
}

// NewZapWriter writes to ws (for example zapcore.Lock(os.Stdout)).
func NewZapWriter(ws zapcore.WriteSyncer) *ZapWriter {
	// No message, level or caller keys: a line is exactly one record.
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		LineEnding: zapcore.DefaultLineEnding,
		EncodeTime: zapcore.RFC3339NanoTimeEncoder,
	})
	core := zapcore.NewCore(enc, ws, zapcore.InfoLevel)
	return &ZapWriter{log: zap.New(core), closer: func() error { return nil }}
}

// FlushInterval bounds how long a record may sit in a buffered writer's
// memory. A graceful shutdown flushes; a SIGKILL can lose at most this much
// (the on-disk spool of the audit pipeline closes that gap).
const FlushInterval = 100 * time.Millisecond

// NewBufferedZapWriter batches records in memory and writes them every
// FlushInterval or 256 KiB, whichever comes first, and on Close: one write
// system call per batch instead of per call.
func NewBufferedZapWriter(ws zapcore.WriteSyncer) *ZapWriter {
	bws := &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: FlushInterval}
	w := NewZapWriter(bws)
	w.closer = bws.Stop
	return w
}

// OpenFileWriter appends to path, creating it 0600 (records name apps and
// models), through a buffered writer.
func OpenFileWriter(path string) (*ZapWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit file sink %s: %w", path, err)
	}
	w := NewBufferedZapWriter(zapcore.AddSync(f))
	stop := w.closer
	w.closer = func() error {
		err := stop()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return w, nil
}

// Write implements Writer.
func (w *ZapWriter) Write(r *Record) { w.log.Info("", zap.Inline(r)) }

// Close flushes and closes.
func (w *ZapWriter) Close() error {
	_ = w.log.Sync()
	return w.closer()
}

// Multi fans a record out to several writers.
type Multi []Writer

// Write implements Writer.
func (m Multi) Write(r *Record) {
	for _, w := range m {
		w.Write(r)
	}
}

// Close implements Writer.
func (m Multi) Close() error {
	var first error
	for _, w := range m {
		if err := w.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
