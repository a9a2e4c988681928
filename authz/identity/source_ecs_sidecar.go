package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"go.uber.org/zap"
)

// Defaults for the ecs-sidecar source.
const (
	DefaultECSMetadataEnv = "ECS_CONTAINER_METADATA_URI_V4"
	DefaultECSRefresh     = 5 * time.Minute
	DefaultECSTimeout     = 2 * time.Second

	// maxECSMetadata bounds a task metadata response (a task has at most
	// ten containers; real responses are a few KiB).
	maxECSMetadata = 4 << 20
	minECSRefresh  = 10 * time.Second
)

// ECSSidecarConfig configures the ecs-sidecar identity source: Warden runs as
// a container of the workload's task and asks the ECS agent's task metadata
// endpoint (v4) who the task is.
type ECSSidecarConfig struct {
	// URIEnv names the env var the ECS agent sets to this container's
	// metadata endpoint. Default ECS_CONTAINER_METADATA_URI_V4. Its value
	// must point at the agent's link-local address: the task definition
	// (and so this container's env) is written by the team being policed.
	URIEnv string `yaml:"uri_env"`
	// URL, when set, is used instead of the env var and is not restricted
	// to link-local addresses (a local emulator, tests).
	URL string `yaml:"url"`
	// Fargate asks /task instead of /taskWithTags: Fargate documents no
	// /taskWithTags, so task tags are not available there. On EC2 a 404 from
	// /taskWithTags also falls back to /task.
	Fargate bool `yaml:"fargate"`
	// Refresh is how often the metadata is fetched again (task tags can
	// change). Default 5m, minimum 10s: each /taskWithTags makes the agent
	// call ListTagsForResource, which ECS throttles.
	Refresh time.Duration `yaml:"refresh"`
	// Timeout bounds one fetch. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
}

func (c ECSSidecarConfig) withDefaults() ECSSidecarConfig {
	if c.URIEnv == "" {
		c.URIEnv = DefaultECSMetadataEnv
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultECSRefresh
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultECSTimeout
	}
	return c
}

func (c ECSSidecarConfig) validate() error {
	c = c.withDefaults()
	var errs []error
	if !validEnvName(c.URIEnv) {
		errs = append(errs, fmt.Errorf("identity.ecs_sidecar.uri_env: %q is not an environment variable name", c.URIEnv))
	}
	if c.URL != "" {
		if _, err := parseMetadataURL(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("identity.ecs_sidecar.url: %w", err))
		}
	}
	if c.Refresh < minECSRefresh {
		errs = append(errs, fmt.Errorf("identity.ecs_sidecar.refresh: %s is below the %s minimum", c.Refresh, minECSRefresh))
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		errs = append(errs, fmt.Errorf("identity.ecs_sidecar.timeout: %s is not between 0 and 1m", c.Timeout))
	}
	return errors.Join(errs...)
}

func parseMetadataURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL with a host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q has a query or fragment", raw)
	}
	return u, nil
}

// ecsAgentAddr reports whether host is where an ECS agent's metadata
// endpoint can live: link-local (169.254.170.2 on EC2 and Fargate) or AWS's
// fd00:ec2::/32 service range. A container cannot bind these without
// NET_ADMIN, so an env var pointing elsewhere is a forgery, not a setup.
func ecsAgentAddr(host string) bool {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsLinkLocalUnicast() || netip.MustParsePrefix("fd00:ec2::/32").Contains(a)
}

// ECSSidecarSource is the ecs-sidecar identity source. Resolve is a
// lock-free load of an immutable identity that a background refresher
// replaces.
type ECSSidecarSource struct {
	cfg      ECSSidecarConfig
	log      *zap.Logger
	client   *http.Client
	base     string // metadata endpoint, no trailing slash
	noTags   atomic.Bool
	id       atomic.Pointer[Identity]
	failures atomic.Uint64
	done     chan struct{}
}

func newECSSidecarSource(ctx context.Context, cfg ECSSidecarConfig, deps Deps) (Source, error) {
	return startECSSidecar(ctx, cfg, deps, os.LookupEnv)
}

func startECSSidecar(ctx context.Context, cfg ECSSidecarConfig, deps Deps, lookupEnv func(string) (string, bool)) (*ECSSidecarSource, error) {
	cfg = cfg.withDefaults()
	if cfg.Refresh < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("refresh %s / timeout %s: negative", cfg.Refresh, cfg.Timeout)
	}
	raw := cfg.URL
	if raw == "" {
		v, ok := lookupEnv(cfg.URIEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("env %s is not set: not running in an ECS task with metadata endpoint v4 (EC2 agent ≥ 1.39.0, Fargate platform ≥ 1.4.0)", cfg.URIEnv)
		}
		u, err := parseMetadataURL(v)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", cfg.URIEnv, err)
		}
		if !ecsAgentAddr(u.Hostname()) {
			return nil, fmt.Errorf("env %s=%q does not point at the ECS agent (a link-local address such as 169.254.170.2); refusing an endpoint the task definition could have forged (set identity.ecs_sidecar.url to override)", cfg.URIEnv, v)
		}
		raw = v
	} else if _, err := parseMetadataURL(raw); err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &ECSSidecarSource{
		cfg:    cfg,
		log:    log.With(zap.String("source", SourceECSSidecar)),
		client: newMetadataClient(cfg.Timeout),
		base:   strings.TrimRight(raw, "/"),
		done:   make(chan struct{}),
	}
	s.noTags.Store(cfg.Fargate)
	id, err := s.fetch(ctx, nil)
	if err != nil {
		return nil, err
	}
	s.id.Store(id)
	go s.refreshLoop(ctx)
	return s, nil
}

// newMetadataClient talks to the agent directly: no proxy (Warden's own
// HTTPS_PROXY must not see this), no redirects (the agent never sends one),
// and a short timeout.
func newMetadataClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       (&net.Dialer{Timeout: timeout}).DialContext,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Name implements Source.
func (s *ECSSidecarSource) Name() string { return SourceECSSidecar }

// Resolve implements Source. Only loopback callers — containers sharing the
// task's network namespace (awsvpc, Fargate) — are answered. No I/O, no lock.
func (s *ECSSidecarSource) Resolve(_ context.Context, c *Conn) (Identity, error) {
	if !c.SameHost() {
		return Identity{}, ErrNoIdentity
	}
	return *s.id.Load(), nil
}

// RefreshFailures counts background refreshes that failed (the last good
// identity stayed in use).
func (s *ECSSidecarSource) RefreshFailures() uint64 { return s.failures.Load() }

func (s *ECSSidecarSource) refreshLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(ctx)
		}
	}
}

func (s *ECSSidecarSource) refresh(ctx context.Context) {
	prev := s.id.Load()
	id, err := s.fetch(ctx, prev)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		n := s.failures.Add(1)
		s.log.Warn("task metadata refresh failed; serving the last good identity", zap.Error(err), zap.Uint64("failures", n))
		return
	}
	s.id.Store(id)
}

// fetch asks the agent and builds an identity. prev, when set, is the
// identity in use: a different task ARN is refused (a container's task never
// changes), and task tags the agent failed to list are carried over.
func (s *ECSSidecarSource) fetch(ctx context.Context, prev *Identity) (*Identity, error) {
	var (
		body     []byte
		err      error
		endpoint string
	)
	if !s.noTags.Load() {
		endpoint = s.base + "/taskWithTags"
		body, err = s.get(ctx, endpoint)
		if errors.Is(err, errNotFound) {
			// Older agents, or platforms without tag support.
			s.noTags.Store(true)
			s.log.Info("task metadata endpoint has no /taskWithTags; using /task (no task tags)")
		}
	}
	if s.noTags.Load() {
		endpoint = s.base + "/task"
		body, err = s.get(ctx, endpoint)
	}
	if err != nil {
		return nil, err
	}
	task, err := parseECSTask(body)
	if err != nil {
		return nil, fmt.Errorf("task metadata from %s: %w", endpoint, err)
	}
	for _, e := range task.Errors {
		s.log.Warn("ECS agent reported a metadata error", zap.String("field", e.ErrorField), zap.String("code", e.ErrorCode),
			zap.String("message", e.ErrorMessage), zap.String("resource", e.ResourceARN))
	}
	id := task.identity()
	if prev != nil {
		if old := prev.Tags[TagECSTaskARN].Value; old != task.TaskARN {
			return nil, fmt.Errorf("task metadata from %s names task %q, not %q", endpoint, task.TaskARN, old)
		}
		if task.failedField("TaskTags") {
			for k, t := range prev.Tags {
				if strings.HasPrefix(k, TagECSTagPrefix) {
					if _, ok := id.Tags[k]; !ok {
						id.Tags[k] = t
					}
				}
			}
			id.precompute()
		}
	}
	return id, nil
}

var errNotFound = errors.New("404 Not Found")

func (s *ECSSidecarSource) get(ctx context.Context, endpoint string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("task metadata: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("task metadata endpoint unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxECSMetadata+1))
	if err != nil {
		return nil, fmt.Errorf("task metadata %s: reading the response: %w", endpoint, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("task metadata %s: %w", endpoint, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("task metadata %s: HTTP %d: %s", endpoint, resp.StatusCode, excerpt(body))
	case len(body) > maxECSMetadata:
		return nil, fmt.Errorf("task metadata %s: response larger than %d bytes", endpoint, maxECSMetadata)
	}
	return body, nil
}

// ecsTask is the part of a task metadata v4 response (/task,
// /taskWithTags) Warden uses; field names as the ECS agent writes them.
type ecsTask struct {
	Cluster               string            `json:"Cluster"`
	TaskARN               string            `json:"TaskARN"`
	Family                string            `json:"Family"`
	Revision              flexString        `json:"Revision"`
	LaunchType            string            `json:"LaunchType"`
	ServiceName           string            `json:"ServiceName"`
	AvailabilityZone      string            `json:"AvailabilityZone"`
	TaskTags              map[string]string `json:"TaskTags"`
	ContainerInstanceTags map[string]string `json:"ContainerInstanceTags"`
	Containers            []struct {
		Name     string `json:"Name"`
		Networks []struct {
			NetworkMode string `json:"NetworkMode"`
		} `json:"Networks"`
	} `json:"Containers"`
	Errors []ecsMetadataError `json:"Errors"`

	// From TaskARN.
	account, region string
}

// ecsMetadataError is an entry of Errors: the agent could not list the task's
// or the container instance's tags (ErrorField TaskTags /
// ContainerInstanceTags).
type ecsMetadataError struct {
	ErrorField   string `json:"ErrorField"`
	ErrorCode    string `json:"ErrorCode"`
	ErrorMessage string `json:"ErrorMessage"`
	StatusCode   int    `json:"StatusCode"`
	RequestID    string `json:"RequestId"`
	ResourceARN  string `json:"ResourceARN"`
}

// flexString accepts a JSON string or number (Revision is a string in every
// agent seen, but a number would mean the same).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("Revision: %s is neither a string nor a number", excerpt(b))
	}
	*f = flexString(n.String())
	return nil
}

// parseECSTask decodes and checks a task metadata response. A response
// without a well-formed task ARN is no identity (fail closed); so is a task
// in host network mode, whose loopback is the instance's.
func parseECSTask(data []byte) (*ecsTask, error) {
	var t ecsTask
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("not task metadata JSON: %w", err)
	}
	if t.TaskARN == "" {
		return nil, errors.New("no TaskARN in the response")
	}
	a, err := arn.Parse(t.TaskARN)
	if err != nil {
		return nil, fmt.Errorf("TaskARN %q: %w", t.TaskARN, err)
	}
	if a.Service != "ecs" || !strings.HasPrefix(a.Resource, "task/") || a.Region == "" || !isAccountID(a.AccountID) {
		return nil, fmt.Errorf("TaskARN %q is not an ECS task ARN (arn:PARTITION:ecs:REGION:ACCOUNT:task/…)", t.TaskARN)
	}
	t.account, t.region = a.AccountID, a.Region
	for _, c := range t.Containers {
		for _, n := range c.Networks {
			if n.NetworkMode == "host" {
				return nil, fmt.Errorf("container %q uses host network mode: loopback is the instance's, so any process on it could claim this task's identity", c.Name)
			}
		}
	}
	return &t, nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func (t *ecsTask) failedField(field string) bool {
	for _, e := range t.Errors {
		if e.ErrorField == field {
			return true
		}
	}
	return false
}

// clusterName is the short name: EC2 agents report the name, Fargate the
// ARN; one form keeps selectors the same for both launch types.
func clusterName(c string) string {
	if a, err := arn.Parse(c); err == nil {
		if name, ok := strings.CutPrefix(a.Resource, "cluster/"); ok {
			return name
		}
	}
	return c
}

// identity builds an immutable identity. Everything except task tags is
// written by AWS (the agent, from the ECS control plane) and strong; task
// tags are set by whoever runs the task and are weak.
func (t *ecsTask) identity() *Identity {
	id := &Identity{Source: SourceECSSidecar, Tags: make(map[string]Tag, 8+len(t.TaskTags))}
	strong := func(k, v string) {
		if v != "" {
			id.Tags[k] = StrongTag(SourceECSSidecar, v)
		}
	}
	strong(TagECSTaskARN, t.TaskARN)
	strong(TagECSCluster, clusterName(t.Cluster))
	strong(TagECSFamily, t.Family)
	strong(TagECSRevision, string(t.Revision))
	strong(TagECSService, t.ServiceName)
	strong(TagECSLaunch, t.LaunchType)
	strong(TagAWSAccount, t.account)
	strong(TagAWSRegion, t.region)
	for k, v := range t.TaskTags {
		id.Tags[TagECSTagPrefix+k] = WeakTag(SourceECSSidecar, v)
	}
	id.precompute()
	return id
}
