package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults for the kubernetes-sidecar source: the paths a downwardAPI volume
// is mounted at by Warden's injector, and the env vars it fills with fieldRef.
const (
	DefaultPodLabelsPath      = "/etc/warden/pod/labels"
	DefaultPodAnnotationsPath = "/etc/warden/pod/annotations"
	DefaultPodNamespaceEnv    = "POD_NAMESPACE"
	DefaultPodServiceAcctEnv  = "POD_SERVICE_ACCOUNT"
	DefaultPodNameEnv         = "POD_NAME"
	DefaultPodIPEnv           = "POD_IP"
	DefaultHostIPEnv          = "HOST_IP"
	DefaultPodPollInterval    = 5 * time.Second

	// maxDownwardAPIFile bounds what Warden reads from a downward-API file.
	// Kubernetes caps all annotations of an object at 256 KiB; labels are
	// far smaller.
	maxDownwardAPIFile = 1 << 20
)

// KubernetesSidecarConfig configures the kubernetes-sidecar identity source:
// Warden runs in the workload's pod and learns who it is from the downward
// API (labels and annotations files) and from env vars set with fieldRef.
type KubernetesSidecarConfig struct {
	// LabelsPath and AnnotationsPath are downwardAPI volume files
	// (fieldRef metadata.labels / metadata.annotations). The labels file
	// must exist; a missing annotations file means "no annotations".
	LabelsPath      string `yaml:"labels_path"`
	AnnotationsPath string `yaml:"annotations_path"`

	// Env var names carrying metadata.namespace (required),
	// spec.serviceAccountName and metadata.name.
	NamespaceEnv      string `yaml:"namespace_env"`
	ServiceAccountEnv string `yaml:"service_account_env"`
	PodNameEnv        string `yaml:"pod_name_env"`

	// PodIPEnv and HostIPEnv (status.podIP, status.hostIP) are optional: when
	// both are set and equal, the pod runs with hostNetwork, its loopback is
	// the node's, and every process on the node could claim this pod's
	// identity — Warden refuses to start.
	PodIPEnv  string `yaml:"pod_ip_env"`
	HostIPEnv string `yaml:"host_ip_env"`

	// TrustPodEnv marks k8s.namespace, k8s.serviceaccount and k8s.pod strong.
	//
	// Those values reach Warden through env vars that the pod spec fills
	// with fieldRef, and the pod spec is written by the team being policed:
	// without a guarantee they can replace the fieldRef with a literal and
	// claim any namespace. The threat model's answer (DESIGN.md, "Editing
	// one's own policy": an admission policy requires the exact sidecar) is
	// that guarantee. Set trust_pod_env only where such an admission policy
	// pins Warden's container, env included; otherwise the tags stay weak
	// and prod policy cannot select on them (use the kubernetes or token
	// source for a namespace proven by the API server).
	TrustPodEnv bool `yaml:"trust_pod_env"`

	// PollInterval is how often the files are checked for changes (labels
	// can change on a running pod; the kubelet rewrites the files).
	// Default 5s.
	PollInterval time.Duration `yaml:"poll_interval"`
}

func (c KubernetesSidecarConfig) withDefaults() KubernetesSidecarConfig {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.LabelsPath, DefaultPodLabelsPath)
	def(&c.AnnotationsPath, DefaultPodAnnotationsPath)
	def(&c.NamespaceEnv, DefaultPodNamespaceEnv)
	def(&c.ServiceAccountEnv, DefaultPodServiceAcctEnv)
	def(&c.PodNameEnv, DefaultPodNameEnv)
	def(&c.PodIPEnv, DefaultPodIPEnv)
	def(&c.HostIPEnv, DefaultHostIPEnv)
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPodPollInterval
	}
	return c
}

func (c KubernetesSidecarConfig) validate() error {
	c = c.withDefaults()
	var errs []error
	for _, e := range []struct{ key, name string }{
		{"namespace_env", c.NamespaceEnv},
		{"service_account_env", c.ServiceAccountEnv},
		{"pod_name_env", c.PodNameEnv},
		{"pod_ip_env", c.PodIPEnv},
		{"host_ip_env", c.HostIPEnv},
	} {
		if !validEnvName(e.name) {
			errs = append(errs, fmt.Errorf("identity.kubernetes_sidecar.%s: %q is not an environment variable name", e.key, e.name))
		}
	}
	if c.LabelsPath == c.AnnotationsPath {
		errs = append(errs, fmt.Errorf("identity.kubernetes_sidecar: labels_path and annotations_path are both %q", c.LabelsPath))
	}
	if c.PollInterval < time.Second {
		errs = append(errs, fmt.Errorf("identity.kubernetes_sidecar.poll_interval: %s is below the 1s minimum", c.PollInterval))
	}
	return errors.Join(errs...)
}

// validEnvName accepts POSIX-style names: letters, digits and underscores,
// not starting with a digit.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// KubernetesSidecarSource is the kubernetes-sidecar identity source. Resolve
// is a lock-free load of an immutable identity that a background poller
// replaces when the downward-API files change.
type KubernetesSidecarSource struct {
	cfg      KubernetesSidecarConfig
	log      *zap.Logger
	podEnv   podEnv
	id       atomic.Pointer[Identity]
	failures atomic.Uint64
	reloads  atomic.Uint64
	done     chan struct{}

	// Touched only by the poller goroutine (and the constructor before it
	// starts).
	labelsStamp, annotStamp fileStamp
}

// podEnv is what the env vars said at start-up; it never changes.
type podEnv struct{ namespace, serviceAccount, pod string }

func newKubernetesSidecarSource(ctx context.Context, cfg KubernetesSidecarConfig, deps Deps) (Source, error) {
	return startKubernetesSidecar(ctx, cfg, deps, os.LookupEnv)
}

// startKubernetesSidecar reads the env and files, builds the first identity
// and starts the poller, which stops when ctx ends.
func startKubernetesSidecar(ctx context.Context, cfg KubernetesSidecarConfig, deps Deps, lookupEnv func(string) (string, bool)) (*KubernetesSidecarSource, error) {
	cfg = cfg.withDefaults()
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("poll_interval %s is negative", cfg.PollInterval)
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &KubernetesSidecarSource{cfg: cfg, log: log.With(zap.String("source", SourceKubernetesSidecar)), done: make(chan struct{})}

	ns, _ := lookupEnv(cfg.NamespaceEnv)
	if ns == "" {
		return nil, fmt.Errorf("env %s is not set: give Warden's container the pod's namespace (env %s with valueFrom.fieldRef.fieldPath: metadata.namespace)", cfg.NamespaceEnv, cfg.NamespaceEnv)
	}
	s.podEnv.namespace = ns
	s.podEnv.serviceAccount, _ = lookupEnv(cfg.ServiceAccountEnv)
	s.podEnv.pod, _ = lookupEnv(cfg.PodNameEnv)
	podIP, _ := lookupEnv(cfg.PodIPEnv)
	hostIP, _ := lookupEnv(cfg.HostIPEnv)
	if podIP != "" && podIP == hostIP {
		return nil, fmt.Errorf("pod IP %s equals host IP (env %s, %s): the pod uses hostNetwork, so its loopback is the node's and any process on the node could claim this pod's identity", podIP, cfg.PodIPEnv, cfg.HostIPEnv)
	}

	labels, ls, err := readDownwardAPIFile(cfg.LabelsPath)
	if err != nil {
		return nil, fmt.Errorf("pod labels: %w (mount a downwardAPI volume with fieldRef metadata.labels there, or set identity.kubernetes_sidecar.labels_path)", err)
	}
	annots, as, err := readDownwardAPIFile(cfg.AnnotationsPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pod annotations: %w", err)
	}
	s.labelsStamp, s.annotStamp = ls, as
	s.id.Store(s.build(labels, annots))
	if s.podEnv.serviceAccount == "" {
		s.log.Warn("service account env var is empty; k8s.serviceaccount will be missing", zap.String("env", cfg.ServiceAccountEnv))
	}
	go s.poll(ctx)
	return s, nil
}

// build makes an immutable identity; it is never modified once stored.
func (s *KubernetesSidecarSource) build(labels, annots map[string]string) *Identity {
	id := &Identity{Source: SourceKubernetesSidecar, Tags: make(map[string]Tag, 3+len(labels)+len(annots))}
	envTag := WeakTag
	if s.cfg.TrustPodEnv {
		envTag = StrongTag
	}
	id.Tags[TagK8sNamespace] = envTag(SourceKubernetesSidecar, s.podEnv.namespace)
	if v := s.podEnv.serviceAccount; v != "" {
		id.Tags[TagK8sServiceAccount] = envTag(SourceKubernetesSidecar, v)
	}
	if v := s.podEnv.pod; v != "" {
		id.Tags[TagK8sPod] = envTag(SourceKubernetesSidecar, v)
	}
	for k, v := range labels {
		id.Tags[TagK8sLabelPrefix+k] = WeakTag(SourceKubernetesSidecar, v)
	}
	for k, v := range annots {
		id.Tags[TagK8sAnnotPrefix+k] = WeakTag(SourceKubernetesSidecar, v)
	}
	id.precompute()
	return id
}

// Name implements Source.
func (s *KubernetesSidecarSource) Name() string { return SourceKubernetesSidecar }

// Resolve implements Source. Anyone who can reach the sidecar's port would
// get the pod's identity, so only loopback callers (the pod's own
// containers) are answered. No I/O, no lock.
func (s *KubernetesSidecarSource) Resolve(_ context.Context, c *Conn) (Identity, error) {
	if !c.SameHost() {
		return Identity{}, ErrNoIdentity
	}
	return *s.id.Load(), nil
}

// ReloadFailures counts re-reads that failed (the last good identity stayed).
func (s *KubernetesSidecarSource) ReloadFailures() uint64 { return s.failures.Load() }

// Reloads counts successful re-reads after a file changed.
func (s *KubernetesSidecarSource) Reloads() uint64 { return s.reloads.Load() }

func (s *KubernetesSidecarSource) poll(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.check()
		}
	}
}

// check re-reads both files when either changed. A failed re-read keeps the
// last good identity; the stamps still advance so one bad version is
// reported once, and the next change is picked up.
func (s *KubernetesSidecarSource) check() {
	ls, as := statStamp(s.cfg.LabelsPath), statStamp(s.cfg.AnnotationsPath)
	if ls.same(s.labelsStamp) && as.same(s.annotStamp) {
		return
	}
	labels, ls, lerr := readDownwardAPIFile(s.cfg.LabelsPath)
	annots, as, aerr := readDownwardAPIFile(s.cfg.AnnotationsPath)
	s.labelsStamp, s.annotStamp = ls, as
	if errors.Is(aerr, fs.ErrNotExist) {
		aerr = nil
	}
	if err := errors.Join(lerr, aerr); err != nil {
		s.failures.Add(1)
		s.log.Warn("pod metadata changed but could not be read; keeping the last good identity", zap.Error(err))
		return
	}
	s.id.Store(s.build(labels, annots))
	s.reloads.Add(1)
	s.log.Info("pod labels/annotations reloaded", zap.Int("labels", len(labels)), zap.Int("annotations", len(annots)))
}

// fileStamp identifies a version of a file: the kubelet replaces
// downward-API files by swapping a symlink, so a new version has a new
// inode, and usually a new mtime or size.
type fileStamp struct {
	fi    fs.FileInfo // nil: missing or unreadable
	errIs string      // why fi is nil, so a change of failure shows as a change
}

func statStamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return errStamp(err)
	}
	return fileStamp{fi: fi}
}

// errStamp names a failure without the operation (stat or open), so the same
// condition seen by statStamp and readDownwardAPIFile compares equal.
func errStamp(err error) fileStamp {
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{errIs: "missing"}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fileStamp{errIs: err.Error()}
}

func (a fileStamp) same(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil && a.errIs == b.errIs
	}
	return os.SameFile(a.fi, b.fi) && a.fi.ModTime().Equal(b.fi.ModTime()) && a.fi.Size() == b.fi.Size()
}

// readDownwardAPIFile reads and parses one file, stamping the version read
// (from the open descriptor, so stamp and content agree).
func readDownwardAPIFile(path string) (map[string]string, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errStamp(err), err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, errStamp(err), fmt.Errorf("%s: %w", path, err)
	}
	st := fileStamp{fi: fi}
	data, err := io.ReadAll(io.LimitReader(f, maxDownwardAPIFile+1))
	if err != nil {
		return nil, st, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxDownwardAPIFile {
		return nil, st, fmt.Errorf("%s: larger than %d bytes", path, maxDownwardAPIFile)
	}
	m, err := parseDownwardAPI(data)
	if err != nil {
		return nil, st, fmt.Errorf("%s: %w", path, err)
	}
	return m, st, nil
}

// parseDownwardAPI parses the kubelet's rendering of a label or annotation
// map: one key="escaped-value" per line (Go %q quoting), split on the first
// '=' and unquoted with strconv.Unquote, as Istio's ParseDownwardAPI does.
// Unlike Istio it rejects a malformed line instead of skipping it: a file
// Warden cannot fully understand is not an identity.
func parseDownwardAPI(data []byte) (map[string]string, error) {
	m := map[string]string{}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		k, quoted, ok := strings.Cut(string(line), "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("line %d: %s: no '='", n, excerpt(line))
		case k == "" || strings.TrimSpace(k) != k:
			return nil, fmt.Errorf("line %d: %s: empty key or key with surrounding space", n, excerpt(line))
		}
		v, err := strconv.Unquote(quoted)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: value is not a quoted string: %w", n, excerpt(line), err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("line %d: key %q repeated", n, k)
		}
		m[k] = v
	}
	return m, nil
}

// excerpt quotes the start of a line for an error message: annotation
// values can be long, so messages carry no more than 64 bytes of one.
func excerpt(line []byte) string {
	const max = 64
	if len(line) > max {
		return strconv.Quote(string(line[:max])) + "…"
	}
	return strconv.Quote(string(line))
}
