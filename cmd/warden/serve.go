package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	configEnv := fs.String("config-env", "", "read the configuration from this environment variable instead of a file (the injected sidecar: "+
		"WARDEN_CONFIG, written by `warden inject`); nothing to watch, a changed policy comes with new pods")
	pin := fs.String("bundle-pin", "", "refuse to start unless the config's bundle section (url, CA, trusted keys, fleet, namespace) has this digest "+
		"(written by `warden inject` on the sidecar's command line, which the admission policy pins)")
	watch := fs.Duration("watch-interval", time.Second, "how often to check the config file and its directory for changes (0 disables watching; SIGHUP still reloads)")
	profiling := fs.Bool("pprof", false, "serve Go's profiler and execution tracer under /debug/pprof/ on the admin listener "+
		"(for operators chasing latency; off by default, since whoever reaches the admin port could load the process)")
	memRatio := fs.Float64("memory-limit-ratio", 0.9, "when GOMEMLIMIT is unset and Warden runs under a cgroup memory limit (a container's), set Go's soft memory "+
		"limit to this fraction of it, so the heap is collected before the container is killed (0 disables)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !(*memRatio >= 0 && *memRatio <= 1) { // NaN too
		return usageErrorf("--memory-limit-ratio %v: want a fraction between 0 and 1", *memRatio)
	}
	if (*path == "") == (*configEnv == "") {
		return errors.New("one of --config and --config-env is required")
	}
	if *watch < 0 {
		return errors.New("--watch-interval must not be negative")
	}
	// SIGHUP reloads; catch it from the start so an early one cannot kill us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	data, name, err := readServeConfig(*path, *configEnv)
	if err != nil {
		return err
	}
	// What policy validate --files checks, checked and reported the same
	// way (file:line:column: key: message), before the audit opens: New
	// would refuse these too, but later and without the file's positions.
	cfg, err := config.ParseConfigChecked(data, serveChecks(ctx, true))
	if err != nil {
		return errors.New(strings.Join(config.Diagnostics(name, data, err), "\n"))
	}
	if *pin != "" {
		if cfg.Bundle == nil {
			return fmt.Errorf("--bundle-pin %s: %s has no bundle section: the policy must come from signed bundles", *pin, name)
		}
		if got := cfg.Bundle.TrustRoots().Pin(); got != *pin {
			return fmt.Errorf("--bundle-pin: %s's bundle trust roots (url, CA, trusted keys, fleet, namespace) digest to %s, not %s: refusing to start", name, got, *pin)
		}
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()
	applyMemoryLimit(*memRatio, log)
	reg := prometheus.NewRegistry()
	aw, err := audit.OpenFromConfig(ctx, cfg.Audit, stdout, log, reg)
	if err != nil {
		return err
	}
	capture, err := audit.OpenCapture(ctx, cfg.Audit, aw.Instance(), stdout, log)
	if err != nil {
		_ = aw.Close()
		return err
	}
	opts := proxy.Options{Config: cfg, Audit: aw, Logger: log, Registry: reg, Version: versionLabel(), Profiling: *profiling}
	if capture != nil {
		opts.Capture = capture
		defer func() { _ = capture.Close() }() // after the server's calls end
	}
	srv, err := proxy.New(ctx, opts)
	if err != nil {
		_ = aw.Close()
		return err
	}
	if cfg.Bundle != nil {
		if err := startBundleFollower(ctx, srv, log); err != nil {
			_ = aw.Close()
			return err
		}
		log.Info("the policy comes from signed bundles; the config file is not watched (its other keys need a restart)")
	} else if *path != "" {
		go watchConfig(ctx, srv, *path, data, *watch, hup, log)
	} else {
		log.Info("configuration from the environment; not watched", zap.String("env", *configEnv))
	}
	return runServer(ctx, srv, cfg, log)
}

// readServeConfig reads the file, or the environment variable, and names
// it for diagnostics.
func readServeConfig(path, env string) ([]byte, string, error) {
	if env != "" {
		v, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, "", fmt.Errorf("--config-env %s: the environment variable is not set or empty", env)
		}
		return []byte(v), "$" + env, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	return data, path, nil
}

// watchConfig reloads the policy on SIGHUP and, unless interval is 0, when
// the file or its directory (a ConfigMap's ..data symlink) changes, with a
// full re-read every 10 intervals as a fallback.
func watchConfig(ctx context.Context, srv *proxy.Server, path string, loaded []byte, interval time.Duration, hup <-chan os.Signal, log *zap.Logger) {
	trigger := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading configuration", zap.String("config", path))
				select {
				case trigger <- struct{}{}:
				default:
				}
			}
		}
	}()
	o := proxy.WatchOptions{Interval: interval, FullEvery: 10 * interval, Trigger: trigger, Loaded: loaded}
	if interval == 0 {
		o.Interval, o.FullEvery = 365*24*time.Hour, 365*24*time.Hour // signals only
	}
	srv.WatchConfig(ctx, path, o)
}

// runServer listens on the configured addresses until ctx ends (SIGTERM),
// then shuts down within shutdown.grace_period: calls in flight finish,
// the audit spool is delivered, and what is left is logged.
func runServer(ctx context.Context, srv *proxy.Server, cfg *config.Config, log *zap.Logger) error {
	var tlsCfg *tls.Config
	if t := cfg.Listen.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("listen.tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := writeCAFiles(srv, cfg, log); err != nil {
		return err
	}
	// Bind every listener before serving any, so a bad address fails the start.
	type listener struct {
		name, addr string
		serve      func(net.Listener) error
	}
	var want []listener
	if cfg.Listen.Endpoint != "" {
		want = append(want, listener{"endpoint", cfg.Listen.Endpoint, func(ln net.Listener) error { return srv.ServeEndpoint(ln, tlsCfg) }})
	}
	if cfg.Listen.Proxy != "" {
		want = append(want, listener{"proxy", cfg.Listen.Proxy, srv.ServeProxy})
	}
	if cfg.Listen.Transparent != "" {
		want = append(want, listener{"transparent", cfg.Listen.Transparent, srv.ServeTransparent})
	}
	if cfg.Listen.Admin != "" {
		want = append(want, listener{"admin", cfg.Listen.Admin, srv.ServeAdmin})
	}
	lns := make([]net.Listener, 0, len(want))
	for _, l := range want {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, prev := range lns {
				_ = prev.Close()
			}
			return fmt.Errorf("listen.%s: %w", l.name, err)
		}
		lns = append(lns, ln)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, l := range want {
		ln := lns[i]
		log.Info(l.name+" listening", zap.String("addr", ln.Addr().String()), zap.Bool("tls", l.name == "endpoint" && tlsCfg != nil),
			zap.String("upstream", srv.Upstream().String()), zap.String("signing", cfg.Upstream.Signing))
		g.Go(func() error { return l.serve(ln) })
	}
	g.Go(func() error {
		<-gctx.Done()
		grace := cfg.Shutdown.Grace()
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		log.Info("shutting down: calls in flight get half the grace period, the audit drain the rest", zap.Duration("grace_period", grace))
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}

// writeCAFiles writes the MITM CA certificate (public, 0644: apps running as
// other users must read it; the key is never written) and, if asked, the
// AWS_CA_BUNDLE file of system roots plus that certificate.
func writeCAFiles(srv *proxy.Server, cfg *config.Config, log *zap.Logger) error {
	ca := srv.CA()
	if ca == nil {
		return nil
	}
	if out := cfg.CA.CertOut; out != "" {
		if err := writePublicFile(out, ca.CertPEM()); err != nil {
			return fmt.Errorf("ca.cert_out: %w", err)
		}
		log.Info("wrote the MITM CA certificate", zap.String("file", out))
	}
	if out := cfg.CA.BundleOut; out != "" {
		roots, from, err := readSystemRoots("")
		if err != nil {
			return fmt.Errorf("ca.bundle_out: %w", err)
		}
		if err := writePublicFile(out, caBundle(roots, ca.CertPEM())); err != nil {
			return fmt.Errorf("ca.bundle_out: %w", err)
		}
		log.Info("wrote the CA bundle for AWS_CA_BUNDLE", zap.String("file", out), zap.String("system_roots", from))
	}
	return nil
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel))
}
