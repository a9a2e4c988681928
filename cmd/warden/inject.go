package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/inject"
	"github.com/warden-egress/warden/inject/admission"
)

const injectUsage = `usage:
  warden inject --config FILE --tls-cert FILE --tls-key FILE [--listen :8443] [--metrics-listen :9090] [--kubeconfig FILE]
      serve the mutating admission webhook (POST /inject, AdmissionReview v1) that adds Warden's native sidecar to
      pods in namespaces labelled ` + inject.LabelEnrolled + `=true. The certificate and key are re-read when
      they change (cert-manager renewals). Before serving, the sidecar configuration of every mode is checked as
      ` + "`warden policy validate`" + ` would.
  warden inject --audit --config FILE [--kubeconfig FILE]
      list the pods of enrolled namespaces that do not run the current sidecar: admitted before enrolment (no
      sidecar), or injected by another injector version, image or policy. Exits 1 when there are any.
  warden inject --print-config MODE --config FILE
      print the Warden configuration a sidecar in MODE (endpoint, proxy, transparent) runs.
  warden inject --print-policies --config FILE
      print the admission policies (ValidatingAdmissionPolicies, their bindings and their parameters ConfigMap),
      the parameters generated from this configuration: the canonical sidecar the policies admit is exactly the
      one this injector writes. Apply with kubectl apply -f -.
  warden inject --bootstrap-self-signed DIR --host NAME [--host NAME]…
      write a bootstrap CA (ca.crt) and a serving certificate for the hosts (tls.crt, tls.key 0600) into DIR,
      and print the caBundle for the MutatingWebhookConfiguration. Use cert-manager in production.

  Without --kubeconfig, the in-cluster configuration is used.
`

func cmdInject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inject", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "the injector's configuration (YAML)")
	certFile := fs.String("tls-cert", "", "the webhook's serving certificate (PEM), re-read when it changes")
	keyFile := fs.String("tls-key", "", "its key (PEM, mode 0600)")
	listen := fs.String("listen", ":8443", "the webhook's HTTPS address")
	metricsListen := fs.String("metrics-listen", ":9090", "the address of /metrics, /healthz and /readyz (plain HTTP; empty: off)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster)")
	audit := fs.Bool("audit", false, "list pods in enrolled namespaces that do not run the current sidecar")
	printConfig := fs.String("print-config", "", "print the sidecar configuration of this mode")
	printPolicies := fs.Bool("print-policies", false, "print the admission policies with parameters generated from --config")
	bootstrap := fs.String("bootstrap-self-signed", "", "write a bootstrap CA and serving certificate into this directory")
	var hosts listFlag
	fs.Var(&hosts, "host", "DNS name or IP of the webhook's serving certificate (with --bootstrap-self-signed; repeatable)")
	validity := fs.Duration("validity", 365*24*time.Hour, "lifetime of the bootstrap certificate")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *bootstrap != "" {
		return injectBootstrap(*bootstrap, hosts, *validity, stdout)
	}
	if *configPath == "" {
		return errors.New("--config is required\n" + injectUsage)
	}
	in, err := loadInjector(ctx, *configPath)
	if err != nil {
		return err
	}
	if *printConfig != "" {
		cfg := in.SidecarConfig(*printConfig)
		if cfg == nil {
			return fmt.Errorf("--print-config %q: want %s, %s or %s", *printConfig, inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent)
		}
		_, err := stdout.Write(cfg)
		return err
	}
	if *printPolicies {
		p, err := in.AdmissionParams()
		if err != nil {
			return fmt.Errorf("%s: %w", *configPath, err)
		}
		return admission.WriteManifests(stdout, p)
	}
	client, err := kubeClient(*kubeconfig)
	if err != nil {
		return err
	}
	if *audit {
		return injectAudit(ctx, in, client, stdout)
	}
	if *certFile == "" || *keyFile == "" {
		return errors.New("--tls-cert and --tls-key are required to serve the webhook\n" + injectUsage)
	}
	return injectServe(ctx, in, client, *certFile, *keyFile, *listen, *metricsListen, stderr)
}

// injectorVersion is what the injector writes to the injected annotation:
// the release version, or the VCS revision of a development build.
func injectorVersion() string {
	v := versionString() // "warden VERSION [REVISION] GOVERSION"
	f := strings.Fields(v)
	if len(f) >= 2 && f[1] != "(devel)" {
		return f[1]
	}
	if len(f) >= 4 {
		return "devel-" + f[2]
	}
	return "devel"
}

// loadInjector reads the injector's configuration and checks the sidecar
// configuration of every mode as `warden policy validate` does, so an
// injector never writes a configuration its sidecars would refuse.
func loadInjector(ctx context.Context, path string) (*inject.Injector, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := inject.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	in, err := inject.New(cfg, injectorVersion())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, mode := range []string{inject.ModeEndpoint, inject.ModeProxy, inject.ModeTransparent} {
		if err := checkSidecarConfig(ctx, in.SidecarConfig(mode)); err != nil {
			return nil, fmt.Errorf("%s: the %s-mode sidecar configuration is invalid:\n%w", path, mode, err)
		}
	}
	return in, nil
}

// checkSidecarConfig is `warden policy validate` on a rendered config.
func checkSidecarConfig(ctx context.Context, data []byte) error {
	_, err := config.ParseConfigChecked(data, serveChecks(ctx, false))
	if err != nil {
		return errors.New(strings.Join(config.Diagnostics("$"+inject.ConfigEnv, data, err), "\n"))
	}
	return nil
}

func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	if kubeconfig == "" {
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("in-cluster config (pass --kubeconfig outside a cluster): %w", err)
		}
	} else if rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	rc.UserAgent = "warden-inject/" + injectorVersion()
	return kubernetes.NewForConfig(rc)
}

func injectAudit(ctx context.Context, in *inject.Injector, client kubernetes.Interface, stdout io.Writer) error {
	findings, err := in.Audit(ctx, client)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tFINDING\tDETAIL")
	var attention int
	for _, f := range findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Namespace, f.Pod, f.Kind, f.Detail)
		if f.Kind != inject.FindingOptedOut {
			attention++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if attention > 0 {
		return fmt.Errorf("%d pod(s) in enrolled namespaces do not run the current sidecar (injector %s)", attention, in.Version())
	}
	fmt.Fprintf(stdout, "every pod in enrolled namespaces runs the current sidecar (injector %s)\n", in.Version())
	return nil
}

func injectBootstrap(dir string, hosts []string, validity time.Duration, stdout io.Writer) error {
	if len(hosts) == 0 {
		return errors.New("--bootstrap-self-signed needs at least one --host (e.g. warden-inject.warden-system.svc)")
	}
	ss, err := inject.NewSelfSigned(hosts, validity)
	if err != nil {
		return err
	}
	if err := ss.Write(dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s/ca.crt, %s/tls.crt and %s/tls.key (0600) for %s\ncaBundle: %s\n",
		dir, dir, dir, strings.Join(hosts, ", "), base64.StdEncoding.EncodeToString(ss.CACert))
	return nil
}

func injectServe(ctx context.Context, in *inject.Injector, client kubernetes.Interface, certFile, keyFile, listen, metricsListen string, stderr io.Writer) error {
	log := newLogger(stderr).With(zap.String("component", "inject"))
	defer func() { _ = log.Sync() }()
	certs, err := inject.NewCertReloader(certFile, keyFile, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := inject.NewMetrics(reg)
	if err != nil {
		return err
	}
	h := &inject.Handler{Injector: in, Namespaces: inject.APINamespaces{Client: client}, Log: log, Metrics: m}
	mux := http.NewServeMux()
	mux.Handle("/inject", h)
	srv := &http.Server{Addr: listen, Handler: mux, TLSConfig: certs.TLSConfig(),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(log.Named("http"))}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	servers := []*http.Server{srv}
	g.Go(func() error {
		log.Info("webhook listening", zap.String("addr", ln.Addr().String()), zap.String("version", in.Version()),
			zap.String("image", in.Config().Image))
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if metricsListen != "" {
		admin := http.NewServeMux()
		admin.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }
		admin.HandleFunc("/healthz", ok)
		admin.HandleFunc("/readyz", ok)
		asrv := &http.Server{Addr: metricsListen, Handler: admin, ReadHeaderTimeout: 5 * time.Second}
		aln, err := net.Listen("tcp", metricsListen)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		servers = append(servers, asrv)
		g.Go(func() error {
			if err := asrv.Serve(aln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		log.Info("shutting down")
		var errs []error
		for _, s := range servers {
			errs = append(errs, s.Shutdown(sctx))
		}
		return errors.Join(errs...)
	})
	return g.Wait()
}
