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
	// ECSCredentialsEnv is the path, on the agent's address, of the task
	// role's credentials; the agent sets it in every container of a task
	// that has a task role.
	ECSCredentialsEnv = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
	DefaultECSRefresh = 5 * time.Minute
	DefaultECSTimeout = 2 * time.Second

	// maxECSMetadata bounds a task metadata response (a task has at most
	// ten containers; real responses are a few KiB).
	maxECSMetadata    = 4 << 20
	maxECSCredentials = 64 << 10
	minECSRefresh     = 10 * time.Second

	// capNetAdmin is CAP_NET_ADMIN's bit in /proc/PID/status CapEff.
	capNetAdmin = 12
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
	// PlatformTaskDefinitions makes ecs.family, ecs.revision and
	// ecs.service strong tags. Whoever may register a task definition or
	// create a service chooses those names, so they are weak unless only
	// the platform can (the IAM setup of docs/ecs.md: an SCP denying
	// ecs:RegisterTaskDefinition, CreateService, UpdateService, RunTask and
	// StartTask to everyone but the platform pipeline).
	PlatformTaskDefinitions bool `yaml:"platform_task_definitions"`
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
	role     string // the task role's ARN ("" when the task has none); fixed for the task's life
	noTags   atomic.Bool
	id       atomic.Pointer[Identity]
	failures atomic.Uint64
	done     chan struct{}
}

// ecsHost is what the source reads of its own container: the environment
// and the process's status (capabilities). Tests replace both.
type ecsHost struct {
	lookupEnv  func(string) (string, bool)
	readStatus func() ([]byte, error) // /proc/self/status
}

func newECSSidecarSource(ctx context.Context, cfg ECSSidecarConfig, deps Deps) (Source, error) {
	status := deps.ProcStatus
	if status == nil {
		status = func() ([]byte, error) { return os.ReadFile("/proc/self/status") }
	}
	return startECSSidecar(ctx, cfg, deps, ecsHost{lookupEnv: os.LookupEnv, readStatus: status})
}

func startECSSidecar(ctx context.Context, cfg ECSSidecarConfig, deps Deps, host ecsHost) (*ECSSidecarSource, error) {
	cfg = cfg.withDefaults()
	if cfg.Refresh < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("refresh %s / timeout %s: negative", cfg.Refresh, cfg.Timeout)
	}
	if err := checkNoNetAdmin(host.readStatus); err != nil {
		return nil, err
	}
	lookupEnv := host.lookupEnv
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
	if rel, ok := lookupEnv(ECSCredentialsEnv); ok && rel != "" {
		role, err := s.fetchRole(ctx, rel)
		if err != nil {
			return nil, err
		}
		s.role = role
	} else {
		s.log.Info("no task role (" + ECSCredentialsEnv + " is not set): ecs.task_role_arn is not available")
	}
	id, err := s.fetch(ctx, nil)
	if err != nil {
		return nil, err
	}
	s.id.Store(id)
	go s.refreshLoop(ctx)
	return s, nil
}

// checkNoNetAdmin refuses to run with CAP_NET_ADMIN in the process's
// effective set: this source believes whatever answers at the agent's
// link-local address, and a container with NET_ADMIN in the task's network
// namespace can add that address and answer for it. A task definition that
// grants it to Warden likely grants it elsewhere too; the platform's must
// grant it to no container (Fargate never allows it).
func checkNoNetAdmin(readStatus func() ([]byte, error)) error {
	status, err := readStatus()
	if err != nil {
		return fmt.Errorf("reading this process's capabilities (/proc/self/status), which the ecs-sidecar source checks for NET_ADMIN: %w", err)
	}
	eff, err := parseCapEff(status)
	if err != nil {
		return fmt.Errorf("/proc/self/status: %w", err)
	}
	if eff&(1<<capNetAdmin) != 0 {
		return fmt.Errorf("the ecs-sidecar source refuses to run with CAP_NET_ADMIN (effective capabilities %016x): a container holding it can answer at the ECS agent's address "+
			"and name any task; drop it from Warden's container (linuxParameters.capabilities.drop: [ALL]) and grant it to no container of the task", eff)
	}
	return nil
}

// parseCapEff reads the CapEff line of a /proc/PID/status.
func parseCapEff(status []byte) (uint64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) == 0 || len(v) > 16 {
			return 0, fmt.Errorf("CapEff %q is not a 64-bit hex mask", v)
		}
		n, err := strconv.ParseUint(v, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("CapEff %q is not a 64-bit hex mask", v)
		}
		return n, nil
	}
	return 0, errors.New("no CapEff line")
}

// fetchRole asks the agent's credentials endpoint, rel being the task's
// AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, which role the task runs with.
// The platform passes that role (iam:PassRole), so it is a strong tag. The
// answer carries the role's credentials too: only RoleArn is decoded, and
// nothing of the body is ever logged or returned.
func (s *ECSSidecarSource) fetchRole(ctx context.Context, rel string) (string, error) {
	u, err := url.Parse(rel)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(rel, "/") || strings.HasPrefix(rel, "//") {
		return "", fmt.Errorf("env %s: want a path on the agent's address, like /v2/credentials/ID", ECSCredentialsEnv)
	}
	base, _ := url.Parse(s.base) // checked at start
	endpoint := base.Scheme + "://" + base.Host + rel
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return "", fmt.Errorf("task role: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("task role: the agent's credentials endpoint is unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("task role: the agent's credentials endpoint answered HTTP %d", resp.StatusCode)
	}
	var creds struct {
		RoleArn string `json:"RoleArn"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxECSCredentials)).Decode(&creds); err != nil {
		return "", errors.New("task role: the agent's credentials answer is not JSON with a RoleArn")
	}
	a, err := arn.Parse(creds.RoleArn)
	if err != nil || a.Service != "iam" || !strings.HasPrefix(a.Resource, "role/") || !isAccountID(a.AccountID) {
		return "", fmt.Errorf("task role: RoleArn %q is not an IAM role ARN", creds.RoleArn)
	}
	return creds.RoleArn, nil
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
	if s.role != "" {
		if a, _ := arn.Parse(s.role); a.AccountID != task.account {
			return nil, fmt.Errorf("task role %s is not in the task's account %s", s.role, task.account)
		}
	}
	id := task.identity(s.cfg.PlatformTaskDefinitions, s.role)
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
// identity builds the task's tags. The task ARN, cluster, launch type,
// account and region come from ECS; the task role from the platform's
// iam:PassRole. Family, revision and service are names whoever registers
// the task definition or creates the service chooses: strong only when
// platformDefs says only the platform can (identity.ecs_sidecar.
// platform_task_definitions).
func (t *ecsTask) identity(platformDefs bool, role string) *Identity {
	id := &Identity{Source: SourceECSSidecar, Tags: make(map[string]Tag, 9+len(t.TaskTags))}
	strong := func(k, v string) {
		if v != "" {
			id.Tags[k] = StrongTag(SourceECSSidecar, v)
		}
	}
	named := func(k, v string) {
		if v != "" {
			id.Tags[k] = Tag{Value: v, Strong: platformDefs, Source: SourceECSSidecar}
		}
	}
	strong(TagECSTaskARN, t.TaskARN)
	strong(TagECSCluster, clusterName(t.Cluster))
	named(TagECSFamily, t.Family)
	named(TagECSRevision, string(t.Revision))
	named(TagECSService, t.ServiceName)
	strong(TagECSLaunch, t.LaunchType)
	strong(TagECSTaskRole, role)
	strong(TagAWSAccount, t.account)
	strong(TagAWSRegion, t.region)
	for k, v := range t.TaskTags {
		id.Tags[TagECSTagPrefix+k] = WeakTag(SourceECSSidecar, v)
	}
	id.precompute()
	return id
}
