package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz"
	"github.com/warden-egress/warden/proxy"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("--config is required")
	}
	cfg, err := authz.LoadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()
	aw, err := openAudit(cfg.Audit, stdout)
	if err != nil {
		return err
	}
	srv, err := proxy.New(ctx, proxy.Options{Config: cfg, Audit: aw, Logger: log})
	if err != nil {
		return err
	}
	return runServer(ctx, srv, cfg, log)
}

// runServer listens on the configured addresses until ctx ends, then shuts
// down gracefully, draining in-flight calls and flushing audit records.
func runServer(ctx context.Context, srv *proxy.Server, cfg *authz.Config, log *zap.Logger) error {
	var tlsCfg *tls.Config
	if t := cfg.Listen.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("listen.tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	g, gctx := errgroup.WithContext(ctx)
	ln, err := net.Listen("tcp", cfg.Listen.Endpoint)
	if err != nil {
		return fmt.Errorf("listen.endpoint: %w", err)
	}
	log.Info("endpoint listening", zap.String("addr", ln.Addr().String()), zap.Bool("tls", tlsCfg != nil),
		zap.String("upstream", srv.Upstream().String()))
	g.Go(func() error { return srv.ServeEndpoint(ln, tlsCfg) })
	if cfg.Listen.Admin != "" {
		aln, err := net.Listen("tcp", cfg.Listen.Admin)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen.admin: %w", err)
		}
		log.Info("admin listening", zap.String("addr", aln.Addr().String()))
		g.Go(func() error { return srv.ServeAdmin(aln) })
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		log.Info("shutting down")
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel))
}

func openAudit(cfg authz.AuditConfig, stdout io.Writer) (audit.Writer, error) {
	var ws audit.Multi
	for _, s := range cfg.Sinks {
		switch {
		case s.Stdout != nil:
			ws = append(ws, audit.NewBufferedZapWriter(zapcore.Lock(zapcore.AddSync(stdout))))
		case s.File != nil:
			w, err := audit.OpenFileWriter(s.File.Path)
			if err != nil {
				_ = ws.Close()
				return nil, err
			}
			ws = append(ws, w)
		}
	}
	if len(ws) == 1 {
		return ws[0], nil
	}
	return ws, nil
}
