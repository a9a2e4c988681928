package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz"
)

// openAudit starts the audit pipeline the config describes: the spool
// (recovering what a crash left in it), the sinks, the chain.
func openAudit(ctx context.Context, cfg authz.AuditConfig, stdout io.Writer, log *zap.Logger, reg prometheus.Registerer) (*audit.Pipeline, error) {
	dir := cfg.Spool.Dir
	if dir == authz.SpoolNone {
		dir = ""
		log.Warn("audit.spool.dir is none: records wait for their sinks in memory, and a crash loses those not yet delivered")
	}
	want := cfg.Instance
	if dir == "" && want != "" {
		// Without a spool each start is a new chain with a new key: a
		// suffix keeps two runs from claiming one chain.
		want += "-" + strconv.FormatInt(time.Now().Unix(), 36)
	}
	instance, err := audit.ResolveInstance(dir, want)
	if err != nil {
		return nil, fmt.Errorf("%w (audit.spool.dir must be a writable directory, ideally a volume that outlives the container; `none` runs without a spool)", err)
	}
	sinks, err := openSinks(ctx, cfg, instance, stdout)
	if err != nil {
		return nil, err
	}
	p, err := audit.Open(ctx, audit.Options{
		Dir: dir, Instance: instance,
		Fsync:        cfg.Spool.Durability == authz.DurabilityFsync,
		MaxBytes:     cfg.Spool.MaxBytes,
		SegmentBytes: cfg.Spool.SegmentBytes,
		DropWhenFull: cfg.Spool.OnFull == authz.OnFullDrop,
		Sinks:        sinks,
		BatchMax:     cfg.Batch.MaxRecords, BatchWait: cfg.Batch.MaxWait, MaxBackoff: cfg.Batch.MaxBackoff,
		CheckpointEvery: cfg.Checkpoint.Every, CheckpointInterval: cfg.Checkpoint.Interval,
		Logger: log.Named("audit"), Registry: reg,
	})
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
