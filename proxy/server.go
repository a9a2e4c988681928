// Package proxy owns a request's life in Warden: listeners, the per-request
// pipeline (route, identify, authorize, forward, relay, audit), upstream
// transport and SigV4 signing.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warden-egress/warden/proxy/egress"
	"github.com/warden-egress/warden/proxy/mitm"

	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/models"
	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock/sigv4"
	"github.com/warden-egress/warden/proxy/proxyproto"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/guard"
)

// Options configure a Server.
type Options struct {
	Config *config.Config
	// Credentials sign upstream requests; nil loads the AWS default chain
	// (environment, IRSA, Pod Identity, ECS task role, instance profile).
	Credentials aws.CredentialsProvider
	// Audit receives one record per call (required).
	Audit audit.Writer
	// Capture receives the payloads of the apps in audit.capture.apps;
	// nil captures nothing.
	Capture Capturer
	Logger  *zap.Logger
	// Registry receives Warden's metrics; nil creates a private one.
	Registry *prometheus.Registry
	// CA intercepts forward-proxy and transparent connections; nil builds
	// one from the config's ca section when either listener is configured.
	CA *mitm.CA
	// Version labels warden_build_info ("" → "(devel)").
	Version string
	// Profiling serves Go's profiler and execution tracer under
	// /debug/pprof/ on the admin listener (warden serve --pprof). Off by
	// default: whoever reaches the admin port could load the process.
	Profiling bool
	// Now is the clock the model-resolution cache expires by; nil is
	// time.Now. Tests move it instead of sleeping.
	Now func() time.Time
}

// Server is a running Warden: its compiled policy, upstream client and listeners.
type Server struct {
	cfg *config.Config // as started: listeners, upstream, identity, models, limits
	// snap is the reloadable part (the policy from the apps section); each
	// request loads it once.
	snap        atomic.Pointer[snapshot]
	identity    *identity.Resolver
	models      *models.Resolver // indirect model ids → foundation models
	audit       audit.Writer
	capture     Capturer
	captureApps map[string]bool
	captureMax  int
	prices      *audit.Prices // audit.prices, compiled once (audit is a restart key)
	log         *zap.Logger
	metrics     *metrics
	registry    *prometheus.Registry

	creds     aws.CredentialsProvider
	guardrail guard.Guardrail // the guards' bedrock: detector (ApplyGuardrail)
	signer    *sigv4.Signer
	region    string
	upstream  *url.URL
	// services are the other endpoints Warden forwards to (bedrock-mantle,
	// bedrock for Anthropic's Bedrock-only APIs, and bedrock-agent-runtime),
	// each with its URL and a signer for its SigV4 service name.
	services map[bedrock.Service]serviceUpstream
	// agentUpstream is where agent-runtime calls go
	// (upstream.agent_runtime_url): services[ServiceAgentRuntime]'s URL.
	agentUpstream *url.URL
	// upstreamPath is every record's upstream side of its network path.
	upstreamPath audit.Path
	transport    *http.Transport
	// upstreamRT is what forward uses: the transport, or a stub in benchmarks.
	upstreamRT http.RoundTripper
	maxBody    int64
	// limits are cfg.Limits with defaults; budget holds what bodies and
	// buffered answers take of memory.
	limits       config.LimitsConfig
	upstreamCfg  config.UpstreamConfig // cfg.Upstream with its timeout defaults
	budget       *bodyBudget
	limitMetrics *limitMetrics
	async        policy.JobStore  // invocation ARN → app that started it (in memory, or the shared budget store)
	budgets      *budget.Enforcer // apps[].budgets, on the budgets: store
	settling     sync.WaitGroup   // budget settlements still running
	ca           *mitm.CA         // forward-proxy and transparent interception
	tunnels      []egress.Rule
	endUser      string // audit.end_user (a restart key, like prices)

	readiness atomic.Pointer[Readiness]
	profiling bool // Options.Profiling: /debug/pprof/ on the admin listener

	mu      sync.Mutex
	servers []*http.Server // call listeners
	admins  []*http.Server // closed last: /metrics shows the shutdown's drain
	// stopping is set by Shutdown: /readyz answers 503.
	stopping atomic.Bool
	// detached: the event streams relayed off their handlers (detach.go),
	// which Shutdown waits for; watcher sees their clients hang up.
	detached detachedSet
	watcher  connWatcher
}

// New validates options and builds a Server; it does not listen yet.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Config == nil {
		return nil, errors.New("proxy: no configuration")
	}
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy: invalid configuration: %w", err)
	}
	if o.Audit == nil {
		return nil, errors.New("proxy: Options.Audit is required (an audit.Pipeline in production)")
	}
	s := &Server{cfg: cfg, audit: o.Audit, log: o.Logger, creds: o.Credentials, maxBody: cfg.Limits.MaxBodyBytes, registry: o.Registry,
		profiling: o.Profiling}
	s.prices = cfg.Audit.PriceTable()
	s.endUser = cfg.Audit.EndUser
	if c := cfg.Audit.Capture; c != nil && o.Capture != nil {
		s.capture, s.captureMax, s.captureApps = o.Capture, int(c.MaxBytes), map[string]bool{}
		for _, a := range c.Apps {
			s.captureApps[a] = true
		}
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(s.registry, o.Version)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.limits = cfg.Limits.WithDefaults()
	s.upstreamCfg = cfg.Upstream.WithDefaults()
	s.maxBody = s.limits.MaxBodyBytes
	s.budget = newBodyBudget(budgetSizes(s.limits, memoryLimit()))
	if s.limitMetrics, err = newLimitMetrics(s.registry, s.budget); err != nil {
		return nil, err
	}
	if m.reloadMetrics, err = newReloadMetrics(s.registry, s); err != nil {
		return nil, err
	}
	if s.budgets, err = budget.New(cfg.Budgets, budget.Options{Registry: s.registry, Logger: s.log, Apps: s.currentBudgets}); err != nil {
		return nil, fmt.Errorf("proxy: budgets: %w", err)
	}
	s.async = policy.NewAsyncJobs(0)
	if jobs := s.budgets.Jobs(cfg.Budgets.WithDefaults().AsyncJobTTL); jobs != nil {
		s.async = jobs
	}
	// Loading the default AWS configuration reads the environment and shared
	// files only; credentials are fetched lazily on first use.
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("proxy: loading AWS configuration: %w", err)
	}
	s.region = cfg.Upstream.Region
	if s.creds == nil {
		s.creds = awsCfg.Credentials
	}
	if s.region == "" {
		s.region = awsCfg.Region
	}
	if awsCfg.Region == "" {
		awsCfg.Region = s.region
	}
	snap, err := newSnapshot(cfg, s.region)
	if err != nil {
		return nil, fmt.Errorf("proxy: policy: %w", err)
	}
	// With bundle set the policy is the signed bundle's: none runs (every
	// call denied, /readyz 503) until one is applied (fail closed).
	if cfg.Bundle == nil {
		s.snap.Store(snap)
		m.lastReload.SetToCurrentTime()
		s.logSelectorWarnings(cfg)
	}
	if s.identity, err = identity.NewResolver(ctx, cfg.Identity, identity.Deps{AWS: awsCfg, Logger: s.log}); err != nil {
		return nil, fmt.Errorf("proxy: identity: %w", err)
	}
	// The control plane is read with Warden's own credentials.
	modelsAWS := awsCfg.Copy()
	modelsAWS.Credentials = s.creds
	if s.models, err = models.NewResolver(cfg.Models, modelsAWS, s.log, models.WithClock(o.Now)); err != nil {
		return nil, fmt.Errorf("proxy: models: %w", err)
	}
	if err := s.registry.Register(sourceCollector{s}); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	if s.region == "" {
		return nil, errors.New("proxy: no region: set upstream.region or AWS_REGION")
	}
	if s.creds == nil {
		return nil, errors.New("proxy: no AWS credentials provider")
	}
	ups, err := buildUpstreams(cfg.Upstream, s.region)
	if err != nil {
		return nil, err
	}
	s.upstream, s.agentUpstream = ups.runtime, ups.agent
	s.upstreamPath = audit.Path{Upstream: s.upstream.Host, Region: s.region}
	if h, err := bedrock.ParseRuntimeHost(s.upstream.Host); err == nil && h.VPCE {
		s.upstreamPath.UpstreamVPCEndpoint = h.VPCEndpointID
	}
	if s.ca, err = caFor(cfg, s.region, o.CA); err != nil {
		return nil, err
	}
	if s.tunnels, err = cfg.Egress.Rules(); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.signer = sigv4.NewSigner(s.region)
	s.services = ups.services
	s.services[bedrock.ServiceAgentRuntime] = serviceUpstream{url: s.agentUpstream,
		signer: sigv4.NewServiceSigner(s.region, bedrock.ServiceAgentRuntime.SigningName())}
	s.transport = NewUpstreamTransport()
	s.transport.ResponseHeaderTimeout = s.upstreamCfg.ResponseHeaderTimeout
	s.upstreamRT = s.transport
	s.guardrail = guard.NewBedrock(guard.BedrockOptions{Region: s.region, Credentials: s.creds,
		Endpoint: s.upstream.String(), HTTPClient: &http.Client{Transport: s.transport}})
	return s, nil
}

// caFor returns the MITM CA when an intercepting listener is configured:
// given, loaded from the operator's files, or fresh in memory. Warden's own
// region is always among those it may sign for.
func caFor(cfg *config.Config, region string, given *mitm.CA) (*mitm.CA, error) {
	if cfg.Listen.Proxy == "" && cfg.Listen.Transparent == "" {
		return given, nil
	}
	if given != nil {
		return given, nil
	}
	opts := mitm.Options{ExtraRegions: append([]string{region}, cfg.CA.ExtraRegions...)}
	if cfg.CA.CertFile != "" {
		ca, err := mitm.Load(cfg.CA.CertFile, cfg.CA.KeyFile, opts)
		if err != nil {
			return nil, fmt.Errorf("proxy: ca: %w", err)
		}
		return ca, nil
	}
	ca, err := mitm.New(opts)
	if err != nil {
		return nil, fmt.Errorf("proxy: ca: %w", err)
	}
	return ca, nil
}

// CA returns the MITM certificate authority (nil without an intercepting listener).
func (s *Server) CA() *mitm.CA { return s.ca }

// upstreamSet is where calls go, built from the upstream config and the
// region alone (no network, no files): New builds it, and so does
// CheckConfig, so `policy validate` refuses what serve would.
type upstreamSet struct {
	runtime, agent *url.URL
	services       map[bedrock.Service]serviceUpstream // bedrock-mantle and bedrock, when they have an endpoint
}

func buildUpstreams(u config.UpstreamConfig, region string) (upstreamSet, error) {
	var ups upstreamSet
	var err error
	if ups.runtime, err = upstreamURL(u, region); err != nil {
		return ups, err
	}
	if ups.agent, err = agentUpstreamURL(u, region); err != nil {
		return ups, err
	}
	if ups.services, err = serviceUpstreams(u, region); err != nil {
		return ups, err
	}
	return ups, nil
}

// upstreamURL is the configured URL or the regional endpoint.
func upstreamURL(u config.UpstreamConfig, region string) (*url.URL, error) {
	raw := u.URL
	if raw == "" {
		var ok bool
		if raw, ok = bedrock.RegionalURL(bedrock.ServiceRuntime, region); !ok {
			return nil, fmt.Errorf("proxy: upstream.region: %q has no bedrock-runtime endpoint", region)
		}
	}
	if err := config.ValidateUpstreamURL(raw, u.Insecure); err != nil {
		return nil, fmt.Errorf("proxy: upstream.url: %w", err)
	}
	parsed, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream.url %q: %w", raw, err)
	}
	parsed.Path, parsed.RawPath = "", ""
	return parsed, nil
}

// serviceUpstream is where calls to one service go and how they are signed.
type serviceUpstream struct {
	url    *url.URL
	signer *sigv4.Signer
}

// serviceUpstreams builds the bedrock-mantle and bedrock upstreams:
// upstream.mantle_url and upstream.bedrock_url, or the regional endpoints.
// A service with neither (no regional endpoint: China) is left out, and
// calls routed to it are refused (Server.upstreamFor).
func serviceUpstreams(u config.UpstreamConfig, region string) (map[bedrock.Service]serviceUpstream, error) {
	out := map[bedrock.Service]serviceUpstream{}
	for _, sv := range []struct {
		svc      bedrock.Service
		raw, key string
	}{
		{bedrock.ServiceMantle, u.MantleURL, "mantle_url"},
		{bedrock.ServiceBedrock, u.BedrockURL, "bedrock_url"},
	} {
		raw := sv.raw
		if raw == "" {
			var ok bool
			if raw, ok = bedrock.RegionalURL(sv.svc, region); !ok {
				continue
			}
		}
		if err := config.ValidateServiceURL(raw, u.Insecure, sv.svc); err != nil {
			return nil, fmt.Errorf("proxy: upstream.%s: %w", sv.key, err)
		}
		parsed, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("proxy: upstream.%s %q: %w", sv.key, raw, err)
		}
		parsed.Path, parsed.RawPath = "", ""
		out[sv.svc] = serviceUpstream{url: parsed, signer: sigv4.NewServiceSigner(region, sv.svc.SigningName())}
	}
	return out, nil
}

// upstreamFor returns the base URL and signer for a route's service, and
// false when the service has no endpoint here (bedrock-mantle and the bedrock
// host in a China region, with no upstream URL of their own configured).
func (s *Server) upstreamFor(svc bedrock.Service) (*url.URL, *sigv4.Signer, bool) {
	if svc == bedrock.ServiceRuntime {
		return s.upstream, s.signer, true
	}
	su, ok := s.services[svc]
	return su.url, su.signer, ok
}

// NewUpstreamTransport is the pooled client transport Warden uses upstream.
// Exported so benchmarks can give a bare reverse proxy the same pool.
func NewUpstreamTransport() *http.Transport {
	return &http.Transport{
		// Never an environment proxy: Warden's signed requests go only where
		// upstream.url says.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Headers and a typical prompt leave in one write instead of two.
		WriteBufferSize: 64 << 10,
		// Responses must arrive as sent so they can be relayed (and later
		// inspected) unchanged.
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// Handler is the endpoint-mode HTTP handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveEndpoint) }

// Registry exposes the metrics registry (for the admin listener).
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Upstream returns the upstream base URL.
func (s *Server) Upstream() *url.URL { u := *s.upstream; return &u }

// ServeEndpoint serves endpoint mode on ln until Shutdown. Plain listeners
// speak HTTP/1.1 and h2c with prior knowledge (the JS SDK's default);
// with tlsCfg they speak HTTP/1.1 and h2 by ALPN.
func (s *Server) ServeEndpoint(ln net.Listener, tlsCfg *tls.Config) error {
	// PROXY protocol from trusted load balancers comes before TLS.
	ln, perr := proxyproto.Listen(ln, s.cfg.Listen.ProxyProtocol)
	if perr != nil {
		return perr
	}
	ln = s.limitListener("endpoint", ln)
	var p http.Protocols
	p.SetHTTP1(true)
	if tlsCfg != nil {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	hs := s.newHTTPServer("http", s.Handler(), &p)
	if tlsCfg != nil {
		c := tlsCfg.Clone()
		c.NextProtos = []string{"h2", "http/1.1"}
		if c.MinVersion == 0 {
			c.MinVersion = tls.VersionTLS12
		}
		hs.TLSConfig = c
		ln = tls.NewListener(ln, c)
	}
	s.track(hs)
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeAdmin serves /healthz, /readyz and /metrics on ln. A load balancer
// with PROXY protocol on its target group sends its header on health check
// connections too (a LOCAL header, Elastic Load Balancing's target group
// docs), so the admin listener reads one from the trusted load balancers as
// the endpoint does; other peers (the kubelet, Prometheus) never send one.
func (s *Server) ServeAdmin(ln net.Listener) error {
	ln, perr := proxyproto.Listen(ln, s.cfg.Listen.ProxyProtocol)
	if perr != nil {
		return perr
	}
	hs := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.admins = append(s.admins, hs)
	s.mu.Unlock()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// newHTTPServer is an http.Server under limits.*: header size and time,
// keep-alive idle time, HTTP/2 streams per connection, and the connection
// state requests find their connection's budget in.
func (s *Server) newHTTPServer(logName string, h http.Handler, p *http.Protocols) *http.Server {
	l := s.limits
	return &http.Server{
		Handler:           h,
		Protocols:         p,
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: l.MaxStreamsPerConnection,
			// A connection whose client stops reading is closed.
			WriteByteTimeout: l.WriteTimeout,
		},
		ConnContext: withConnState,
		ErrorLog:    zap.NewStdLog(s.log.Named(logName)),
	}
}

func (s *Server) track(hs *http.Server) {
	s.mu.Lock()
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
}

// drainer is an audit writer that can report what a shutdown left
// undelivered (audit.Pipeline).
type drainer interface {
	Shutdown(ctx context.Context) (audit.Leftover, error)
}

// Shutdown stops Warden within ctx's deadline: the call listeners stop
// accepting and /readyz answers 503; the calls in flight get at most half
// of the time left (then their connections are closed, and the spool's
// intents record them as incomplete at the next start); the audit and
// capture pipelines then deliver their spools until every sink has every
// line or ctx ends, and log what is left. The admin listener keeps serving
// /metrics (warden_audit_undelivered_lines) until the drain ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	s.mu.Lock()
	servers, admins := s.servers, s.admins
	s.servers, s.admins = nil, nil
	s.mu.Unlock()
	callsCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		callsCtx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
		defer cancel()
	}
	var first error
	for _, hs := range servers {
		if err := hs.Shutdown(callsCtx); err != nil {
			s.log.Warn("shutdown: calls still in flight at half the grace period; closing their connections", zap.Error(err))
			_ = hs.Close()
		}
	}
	// Streams detached from their handlers get the same time, then are
	// cut; their records are written before the audit drains.
	s.detached.shutdown(callsCtx)
	s.watcher.close()
	s.transport.CloseIdleConnections()
	s.settling.Wait() // budget settlements of calls that just ended
	if err := s.budgets.Close(); err != nil {
		first = fmt.Errorf("budgets: %w", err)
	}
	var wg sync.WaitGroup
	drain := func(name string, w any) {
		defer wg.Done()
		var err error
		if d, ok := w.(drainer); ok {
			_, err = d.Shutdown(ctx)
		} else if c, ok := w.(interface{ Close() error }); ok {
			err = c.Close()
		}
		if err != nil {
			s.mu.Lock()
			if first == nil {
				first = fmt.Errorf("%s: %w", name, err)
			}
			s.mu.Unlock()
		}
	}
	wg.Add(1)
	go drain("audit", s.audit)
	if s.capture != nil {
		wg.Add(1)
		go drain("audit.capture", s.capture)
	}
	wg.Wait()
	for _, hs := range admins {
		_ = hs.Close()
	}
	return first
}

// serviceURLSet reports whether the operator named svc's upstream URL.
func (s *Server) serviceURLSet(svc bedrock.Service) bool {
	switch svc {
	case bedrock.ServiceMantle:
		return s.cfg.Upstream.MantleURL != ""
	case bedrock.ServiceBedrock:
		return s.cfg.Upstream.BedrockURL != ""
	case bedrock.ServiceAgentRuntime:
		return s.cfg.Upstream.AgentRuntimeURL != ""
	}
	return s.cfg.Upstream.URL != ""
}
