// Package config loads Warden's configuration file: it assembles the
// sections the packages that use them own (identity, policy, models, guard,
// audit, the listeners' proxyproto and mitm), keeps the settings of the
// request path itself (listen, upstream, limits, egress), checks what spans
// sections, reports every problem with its file:line:column, and generates
// the JSON Schema.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/warden-egress/warden/proxy/egress"
	"github.com/warden-egress/warden/proxy/mitm"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/proxy/proxyproto"

	"github.com/warden-egress/warden/authz/budget"
	"github.com/warden-egress/warden/authz/models"
	"github.com/warden-egress/warden/authz/policy"

	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/bedrock"
	"gopkg.in/yaml.v3"

	"github.com/warden-egress/warden/guard"
)

// Config is the whole Warden configuration file. The keys under listen,
// upstream, identity and apps are a contract with external tests: keep them.
type Config struct {
	Version  int                `yaml:"version"`
	Listen   ListenConfig       `yaml:"listen"`
	Upstream UpstreamConfig     `yaml:"upstream"`
	Identity identity.Config    `yaml:"identity"`
	Apps     []policy.AppConfig `yaml:"apps"`
	Limits   LimitsConfig       `yaml:"limits"`
	Models   models.Config      `yaml:"models"`
	Audit    audit.Config       `yaml:"audit"`
	// Egress says what the forward-proxy and transparent listeners do with
	// connections to hosts that are not Bedrock runtime hosts.
	Egress egress.Config `yaml:"egress"`
	// CA is the MITM certificate authority of the forward-proxy and
	// transparent listeners.
	CA mitm.Config `yaml:"ca"`

	// Deny rules beat every app's allow (see DenyConfig).
	Deny []policy.DenyConfig `yaml:"deny"`
	// Mode "dry-run" forwards every call the policy would deny and records
	// the denial (for rolling Warden out); "enforce" (the default) denies.
	Mode string `yaml:"mode"`

	// Guards are named guardrails (see guard.Config) that apps apply by name.
	Guards map[string]guard.Config `yaml:"guards"`

	// Budgets says where the apps' budgets (apps[].budgets) and async job
	// owners are kept: in each replica's memory, or in a Redis every
	// replica shares.
	Budgets budget.Config `yaml:"budgets"`

	// Bundle takes the policy from signed bundles (see BundleConfig).
	Bundle *BundleConfig `yaml:"bundle"`

	// Shutdown bounds what Warden does after SIGTERM.
	Shutdown ShutdownConfig `yaml:"shutdown"`
}

// ShutdownConfig is the stop sequence: on SIGTERM Warden stops accepting
// calls, lets the calls in flight finish for at most half of GracePeriod,
// then keeps delivering the audit spool until every sink has every line or
// GracePeriod ends, and logs what was left (the next start delivers it).
// GracePeriod must end before the platform's SIGKILL: below Kubernetes'
// terminationGracePeriodSeconds, below ECS's stopTimeout.
type ShutdownConfig struct {
	GracePeriod time.Duration `yaml:"grace_period"`
}

// DefaultShutdownGrace fits the 30 s both Kubernetes and ECS (Fargate's
// stopTimeout default) give a container between SIGTERM and SIGKILL.
const DefaultShutdownGrace = 25 * time.Second

// maxShutdownGrace: ECS allows a stopTimeout of at most 120 s; Kubernetes
// has no bound, but an audit drain longer than this is a sink outage,
// which the spool (kept for the next start) already covers.
const maxShutdownGrace = 10 * time.Minute

// Grace is GracePeriod with its default.
func (s ShutdownConfig) Grace() time.Duration {
	if s.GracePeriod == 0 {
		return DefaultShutdownGrace
	}
	return s.GracePeriod
}

// Policy returns the policy's part of the file (apps, deny, mode) with the
// settings of other sections it checks against.
func (c *Config) Policy() policy.Config {
	return policy.Config{Apps: c.Apps, Deny: c.Deny, Mode: c.Mode, MaxBodyBytes: c.Limits.MaxBodyBytes, Region: c.Upstream.Region}
}

// ListenConfig holds listener addresses; empty means "not listening".
type ListenConfig struct {
	Endpoint string `yaml:"endpoint"`
	Proxy    string `yaml:"proxy"` // forward proxy (HTTPS_PROXY): CONNECT, MITM for Bedrock hosts
	// Transparent takes connections an iptables REDIRECT sent to Warden
	// (original destination from SO_ORIGINAL_DST, host from TLS SNI).
	Transparent string     `yaml:"transparent"`
	Admin       string     `yaml:"admin"`
	TLS         *TLSConfig `yaml:"tls"` // serves the endpoint listener over TLS (h2 by ALPN)
	// ProxyProtocol accepts PROXY protocol v2 from trusted load balancers.
	ProxyProtocol proxyproto.Config `yaml:"proxy_protocol"`
}

// TLSConfig names a certificate and key on disk.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// UpstreamConfig says where Warden forwards and how it signs.
type UpstreamConfig struct {
	Region string `yaml:"region"`
	URL    string `yaml:"url"`
	// MantleURL and BedrockURL are where bedrock-mantle calls (the
	// OpenAI-compatible and Anthropic Messages APIs) and Anthropic's
	// Bedrock-only calls (bedrock.REGION.amazonaws.com/anthropic/…) go;
	// "" is the regional endpoint of each.
	MantleURL  string `yaml:"mantle_url"`
	BedrockURL string `yaml:"bedrock_url"`
	// AgentRuntimeURL is where agent-runtime calls (InvokeAgent, Retrieve,
	// RetrieveAndGenerate, InvokeFlow, …) go; "" is the region's
	// bedrock-agent-runtime endpoint. It is signed as upstream.url is.
	AgentRuntimeURL string `yaml:"agent_runtime_url,omitempty"`
	Insecure        bool   `yaml:"insecure"`
	Signing         string `yaml:"signing"` // resign | passthrough
	// ResponseHeaderTimeout bounds the wait for the upstream's answer to
	// begin: long, because a non-streamed inference may legitimately run
	// for many minutes.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// StreamIdleTimeout ends a stream with an exception frame when the
	// upstream sends no event for so long; a stream runs as long as events
	// flow.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
}

// LimitsConfig bounds requests, and what clients may hold of Warden before
// anyone knows who they are (see limits.go for the defaults).
type LimitsConfig struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// InflightBodyBytes bounds request bodies and buffered (output-scanned)
	// answers held in memory at once, across the process; 0 derives it from
	// the memory limit. Per-source and per-connection shares keep one client
	// from taking it all.
	InflightBodyBytes   int64 `yaml:"inflight_body_bytes"`
	SourceBodyShare     int64 `yaml:"source_body_bytes"`
	ConnectionBodyShare int64 `yaml:"connection_body_bytes"`
	// MaxConnections bounds open connections per listener, and
	// MaxConnectionsPerSource those of one client address.
	MaxConnections          int `yaml:"max_connections"`
	MaxConnectionsPerSource int `yaml:"max_connections_per_source"`
	// MaxStreamsPerConnection bounds concurrent HTTP/2 streams.
	MaxStreamsPerConnection int `yaml:"max_streams_per_connection"`
	// MaxHeaderBytes bounds a request's header block on every listener
	// (inside forward-proxy and transparent tunnels too).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// HeaderTimeout bounds the time a client may take to send a request's
	// headers (and a TLS handshake).
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	// BodyIdleTimeout is the longest pause between bytes of a request body,
	// and BodyMinRate the slowest average rate (bytes per second, checked
	// from twice BodyIdleTimeout on): a slow link may take as long as it
	// needs for a large body, a trickle may not.
	BodyIdleTimeout time.Duration `yaml:"body_idle_timeout"`
	BodyMinRate     int64         `yaml:"body_min_rate"`
	// WriteTimeout is the longest a write to a client may block: a client
	// that stops reading an answer frees its call after it.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections with no call for so long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML strictly (unknown keys are errors), applies
// defaults and validates. Every problem is reported at once, as a
// *ConfigError that names config keys and knows each one's position: a
// value that could not be decoded is reported and the rest of the file is
// still validated (validation is skipped only when the decoder failed in a
// way the shape check cannot place, such as a duplicate key).
func ParseConfig(data []byte) (*Config, error) { return ParseConfigChecked(data, nil) }

// Check is a caller's own check of a parsed file, one that needs what
// config cannot import or reach (proxy.CheckConfig: the AWS configuration's
// region, the compiled policy; proxy.CheckFiles). ParseConfigChecked runs it
// beside validation so that its problems come in the same pass, positioned
// the same way; valid is false when validation found problems, so that the
// check says only what validation cannot (the policy would not compile
// twice over).
type Check func(cfg *Config, valid bool) error

// ParseConfigChecked is ParseConfig with check's problems among the file's.
func ParseConfigChecked(data []byte, check Check) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, syntaxError(data, err)
	}
	var second yaml.Node
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		msg := "configuration must be a single YAML document"
		if err != nil || len(second.Content) == 0 {
			return nil, errors.New(msg)
		}
		// Point at the second document's first node (its "---" is the line above).
		n := second.Content[0]
		return nil, &ConfigError{Problems: []ConfigProblem{{Line: n.Line, Column: n.Column, Msg: msg + "; a second one starts here"}}}
	}
	shape := &shapeChecker{}
	shape.check(&root, reflect.TypeFor[Config](), "")
	var cfg Config
	unplaced := false // the decoder failed where the shape check saw nothing
	if err := root.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, err
		}
		// What the shape check did not say (duplicate keys, …) in yaml's
		// words; its own findings replace yaml's, which name Go types.
		for _, msg := range te.Errors {
			if shape.badValue && strings.Contains(msg, "cannot unmarshal") {
				continue
			}
			p := positionProblems(&root, errors.New(msg))
			shape.problems = append(shape.problems, p...)
			unplaced = true
		}
	}
	problems := shape.problems
	if !unplaced && !slices.Contains(shape.badPaths, "") {
		// The values that did not decode were left empty: validation of
		// the rest goes on, and what it says about them is dropped.
		var vp []ConfigProblem
		policy.RecordLines(&root, cfg.Apps, cfg.Deny)
		cfg.applyDefaults()
		if err := cfg.Validate(); err != nil {
			vp = append(vp, positionProblems(&root, err)...)
		}
		if err := cfg.Bundle.fileValidate(&cfg); err != nil {
			vp = append(vp, positionProblems(&root, err)...)
		}
		if check != nil {
			if err := check(&cfg, len(vp) == 0); err != nil {
				vp = append(vp, positionProblems(&root, err)...)
			}
		}
		problems = append(problems, dropBadPaths(vp, shape.badPaths)...)
	}
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return &cfg, nil
}

// DefaultEndpoint is where the endpoint listener binds when the config names
// no listener: loopback, the sidecar case.
const DefaultEndpoint = "127.0.0.1:8480"

func (c *Config) applyDefaults() {
	if c.Listen.Endpoint == "" && c.Listen.Proxy == "" && c.Listen.Transparent == "" {
		c.Listen.Endpoint = DefaultEndpoint
	}
	if c.Upstream.Signing == "" {
		c.Upstream.Signing = "resign"
	}
	c.Limits.applyDefaults()
	c.Upstream.applyTimeoutDefaults()
	c.Identity.ApplyDefaults()
	c.Audit.ApplyDefaults()
}

// Validate checks everything that can be checked without I/O.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Version != 1 {
		add("version: must be 1, got %d", c.Version)
	}
	for name, addr := range map[string]string{"listen.endpoint": c.Listen.Endpoint, "listen.proxy": c.Listen.Proxy,
		"listen.transparent": c.Listen.Transparent, "listen.admin": c.Listen.Admin} {
		if addr == "" {
			continue
		}
		if err := checkHostPort(addr); err != nil {
			add("%s: %q is not host:port: %v", name, addr, err)
		}
	}
	if c.Listen.Endpoint == "" && c.Listen.Proxy == "" && c.Listen.Transparent == "" {
		add("listen: set listen.endpoint, listen.proxy or listen.transparent")
	}
	if c.Listen.Endpoint != "" && c.Listen.TLS == nil && !identity.IsLoopbackHostPort(c.Listen.Endpoint) {
		add("listen.endpoint: %q is not a loopback address; a non-loopback listener needs listen.tls (cert_file, key_file)", c.Listen.Endpoint)
	}
	if t := c.Listen.TLS; t != nil && (t.CertFile == "" || t.KeyFile == "") {
		add("listen.tls: cert_file and key_file are both required")
	}
	switch c.Upstream.Signing {
	case "resign":
	case "passthrough":
		if c.Listen.Proxy == "" && c.Listen.Transparent == "" {
			add("upstream.signing: passthrough applies to intercepted calls; set listen.proxy or listen.transparent (the endpoint listener always re-signs)")
		}
	default:
		add("upstream.signing: %q is not resign or passthrough", c.Upstream.Signing)
	}
	if r := c.Upstream.Region; r != "" && !bedrock.ValidRegion(r) {
		add("upstream.region: %q is not an AWS region name (like us-east-1)", r)
	}
	if err := ValidateUpstreamURL(c.Upstream.URL, c.Upstream.Insecure); err != nil {
		add("upstream.url: %v", err)
	}
	if err := ValidateServiceURL(c.Upstream.MantleURL, c.Upstream.Insecure, bedrock.ServiceMantle); err != nil {
		add("upstream.mantle_url: %v", err)
	}
	if err := ValidateServiceURL(c.Upstream.BedrockURL, c.Upstream.Insecure, bedrock.ServiceBedrock); err != nil {
		add("upstream.bedrock_url: %v", err)
	}
	if err := ValidateAgentRuntimeURL(c.Upstream.AgentRuntimeURL, c.Upstream.Insecure); err != nil {
		add("upstream.agent_runtime_url: %v", err)
	}
	if g := c.Shutdown.GracePeriod; g < 0 || g > maxShutdownGrace || (g > 0 && g < time.Second) {
		add("shutdown.grace_period: %s is not between 1s and %s (unset: %s)", g, maxShutdownGrace, DefaultShutdownGrace)
	}
	if c.Limits.MaxBodyBytes < 0 {
		add("limits.max_body_bytes: must be positive")
	}
	errs = append(errs, c.Limits.validate(c.Upstream)...)
	errs = append(errs, c.Egress.Validate()...)
	errs = append(errs, c.CA.Validate()...)
	errs = append(errs, c.Identity.Validate()...)
	errs = append(errs, c.Models.Validate()...)
	errs = append(errs, validateNetwork(c)...)
	pc := c.Policy()
	errs = append(errs, pc.Validate()...)
	errs = append(errs, validateGuards(c)...)

	errs = append(errs, c.Audit.Validate()...)
	errs = append(errs, c.Budgets.Validate()...)
	errs = append(errs, validateBudgetPrices(c)...)
	errs = append(errs, c.Bundle.validate(c)...)
	if c.Audit.Capture != nil {
		for _, name := range c.Audit.Capture.Apps {
			if !slices.ContainsFunc(c.Apps, func(a policy.AppConfig) bool { return a.Name == name }) {
				add("audit.capture.apps: %q is not an app", name)
			}
		}
	}
	return errors.Join(errs...)
}

// ValidateServiceURL is ValidateUpstreamURL for the bedrock-mantle and
// bedrock hosts: the https URL must name that service's host
// (bedrock-mantle.REGION.api.aws, bedrock.REGION.amazonaws.com) or an
// interface VPC endpoint.
func ValidateServiceURL(raw string, insecure bool, svc bedrock.Service) error {
	if raw == "" {
		return nil
	}
	if err := ValidateUpstreamURL(raw, true); err != nil {
		return err
	}
	if insecure {
		return nil
	}
	u, _ := url.Parse(raw)
	if u.Scheme != "https" {
		return fmt.Errorf("%q is plain http: Warden's signed requests and session token would cross the network in clear; use https or set upstream.insecure: true (tests only)", raw)
	}
	if h, err := bedrock.ParseRuntimeHost(u.Hostname()); err == nil && h.VPCE {
		return nil
	}
	if h, err := bedrock.ParseServiceHost(u.Hostname()); err != nil || h.Service != svc {
		return fmt.Errorf("%q is not a %s host name or an interface VPC endpoint; set upstream.insecure: true only for tests", raw, svc)
	}
	return nil
}

// validateBudgetPrices: a cost budget prices calls with audit.prices, so
// an app with one needs a price table (a call on a model the table does
// not price is denied at run time).
func validateBudgetPrices(c *Config) []error {
	if len(c.Audit.Prices) > 0 {
		return nil
	}
	var errs []error
	for i := range c.Apps {
		if c.Apps[i].Budgets.Cost() {
			errs = append(errs, fmt.Errorf("%s: budgets: a cost budget prices calls with audit.prices, which is empty", policy.AppWhere(&c.Apps[i], i)))
		}
	}
	return errs
}

// ValidateUpstreamURL accepts "" (the regional endpoint) and https URLs on
// AWS's Bedrock runtime host names. Anything else receives Warden's signed
// requests and session token, so it needs an explicit insecure flag.
func ValidateUpstreamURL(raw string, insecure bool) error {
	return validateUpstreamURL(raw, insecure, bedrock.IsRuntimeHost, "runtime host (bedrock-runtime.*.amazonaws.com[.cn], *.vpce.amazonaws.com, *.api.aws)")
}

// ValidateAgentRuntimeURL is ValidateUpstreamURL for
// upstream.agent_runtime_url: the host must be a Bedrock agent runtime host.
func ValidateAgentRuntimeURL(raw string, insecure bool) error {
	return validateUpstreamURL(raw, insecure, bedrock.IsAgentRuntimeHost, "agent runtime host (bedrock-agent-runtime.*.amazonaws.com[.cn], *.vpce.amazonaws.com, *.api.aws)")
}

func validateUpstreamURL(raw string, insecure bool, hostOK func(string) bool, what string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %v", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: scheme must be https", raw)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: must be scheme://host[:port] with no user, path or query", raw)
	}
	if insecure {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%q is plain http: Warden's signed requests and session token would cross the network in clear; use https or set upstream.insecure: true (tests only)", raw)
	}
	if !hostOK(u.Hostname()) {
		return fmt.Errorf("%q is not a Bedrock %s; set upstream.insecure: true only for tests", raw, what)
	}
	return nil
}

// checkHostPort checks a listen address as net.Listen will read it: host:port
// with a port of 0-65535 (or a service name), so that a typo such as
// 127.0.0.1:84800 is refused by validate rather than by the first listen.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q: want 0-65535 or a service name", port)
	}
	return nil
}
