package audit

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// OpenFromConfig starts the audit pipeline the config describes: the spool
// (recovering what a crash left in it), the sinks, the chain.
func OpenFromConfig(ctx context.Context, cfg Config, stdout io.Writer, log *zap.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	dir := cfg.Spool.Dir
	if dir == SpoolNone {
		dir = ""
		log.Warn("audit.spool.dir is none: records wait for their sinks in memory, and a crash loses those not yet delivered")
	}
	if dir != "" {
		if err := CheckSpoolDir(dir); err != nil {
			return nil, err
		}
	}
	want := cfg.Instance
	if dir == "" && want != "" {
		// Without a spool each start is a new chain with a new key: a
		// suffix keeps two runs from claiming one chain.
		want += "-" + strconv.FormatInt(time.Now().Unix(), 36)
	}
	instance, err := ResolveInstance(dir, want)
	if err != nil {
		return nil, fmt.Errorf("%w (audit.spool.dir must be a writable directory, ideally a volume that outlives the container; `none` runs without a spool)", err)
	}
	sinks, err := OpenSinks(ctx, cfg, instance, stdout)
	if err != nil {
		return nil, err
	}
	o := pipelineOptions(cfg, dir, instance, sinks, log.Named("audit"))
	o.DropWhenFull, o.Registry = cfg.Spool.OnFull == OnFullDrop, reg
	o.ShareUnidentified, o.ShareApp = cfg.Spool.Share.Unidentified, cfg.Spool.Share.PerApp
	if w := cfg.DenialWindow; w != nil {
		o.DenialWindow = *w
		if *w == 0 {
			o.DenialWindow = -1 // audit.denial_window: 0s turns aggregation off
		}
	}
	p, err := Open(ctx, o)
	if err != nil {
		for _, s := range sinks {
			_ = s.Close()
		}
		return nil, fmt.Errorf("audit: %w", err)
	}
	log.Info("audit pipeline open", zap.String("instance", p.Instance()), zap.String("spool", dir),
		zap.String("durability", cfg.Spool.Durability), zap.String("checkpoint_key", p.PublicKey()))
	return p, nil
}

// OpenCapture starts the capture pipeline when audit.capture is set: its
// own spool (a capture directory in the audit spool), chain, key and sinks,
// so payloads never mix with records.
func OpenCapture(ctx context.Context, cfg Config, instance string, stdout io.Writer, log *zap.Logger) (*Pipeline, error) {
	c := cfg.Capture
	if c == nil {
		return nil, nil
	}
	dir := ""
	if cfg.Spool.Dir != SpoolNone {
		dir = filepath.Join(cfg.Spool.Dir, "capture")
	}
	name := instance + "-capture"
	sinks, err := OpenSinks(ctx, Config{Sinks: c.Sinks}, name, stdout)
	if err != nil {
		return nil, fmt.Errorf("audit.capture: %w", err)
	}
	o := pipelineOptions(cfg, dir, name, sinks, log.Named("capture"))
	o.DropWhenFull = true // a payload copy never refuses a call; its audit record is the evidence
	p, err := Open(ctx, o)
	if err != nil {
		for _, s := range sinks {
			_ = s.Close()
		}
		return nil, fmt.Errorf("audit.capture: %w", err)
	}
	log.Warn("audit.capture is on: raw request and response bodies of these apps are kept", zap.Strings("apps", c.Apps))
	return p, nil
}

// pipelineOptions is what the audit and capture pipelines share of the
// audit config: durability, bounds, batching, checkpoints.
func pipelineOptions(cfg Config, dir, instance string, sinks []Sink, log *zap.Logger) Options {
	return Options{
		Dir: dir, Instance: instance, Sinks: sinks, Logger: log,
		Fsync:        cfg.Spool.Durability == DurabilityFsync,
		MaxBytes:     cfg.Spool.MaxBytes,
		SegmentBytes: cfg.Spool.SegmentBytes,
		BatchMax:     cfg.Batch.MaxRecords, BatchWait: cfg.Batch.MaxWait, MaxBackoff: cfg.Batch.MaxBackoff,
		CheckpointEvery: cfg.Checkpoint.Every, CheckpointInterval: cfg.Checkpoint.Interval,
	}
}
