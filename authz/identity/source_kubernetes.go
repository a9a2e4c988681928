package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults for the kubernetes (shared proxy) identity source.
const (
	DefaultKubernetesReuseGrace   = 30 * time.Second
	DefaultKubernetesMaxStaleness = 5 * time.Minute
	DefaultKubernetesSyncTimeout  = 30 * time.Second
)

// KubernetesConfig configures the kubernetes identity source: a shared Warden
// maps a connection's source IP to the pod that holds it, through a watch on
// pods (a client-go informer: never an API call per request). It answers only
// for connections from identity.trusted_cidrs.
type KubernetesConfig struct {
	// Kubeconfig is a kubeconfig file; empty means in-cluster (the pod's
	// service account), the normal case. Warden needs list and watch on pods
	// cluster-wide.
	Kubeconfig string `yaml:"kubeconfig"`
	// Resync is the informer's resync period (0, the default: none; the
	// watch keeps the index current).
	Resync time.Duration `yaml:"resync"`
	// ReuseGrace: an IP that stopped belonging to a pod less than this long
	// ago resolves to nobody, whoever holds it now, because connections from
	// the old pod may still be arriving and the watch may lag. Default 30s.
	ReuseGrace time.Duration `yaml:"reuse_grace"`
	// MaxStaleness bounds how long the last known pods keep answering while
	// the API server cannot be listed or watched; identities served in that
	// window carry the warden.stale tag. After it, the source denies.
	// Default 5m.
	MaxStaleness time.Duration `yaml:"max_staleness"`
	// SyncTimeout is how long startup waits for the first full list of pods
	// (calls are denied until it completes). Default 30s.
	SyncTimeout time.Duration `yaml:"sync_timeout"`
	// PodCIDRs are the networks pod addresses come from (the VPC CNI's pod
	// subnets, the cluster CIDR). An address in them that no running pod
	// holds — a pod whose status.podIP is not written yet, one gone more
	// than reuse_grace ago — is refused (the call is denied) instead of
	// being passed to the next source, which would name the node (ec2 with
	// the VPC CNI). The ec2 source never answers for these addresses either.
	PodCIDRs []string `yaml:"pod_cidrs"`

	// trusted is identity.trusted_cidrs, compiled and handed over by
	// validateNetwork: the source answers only for these client networks.
	trusted TrustedNets
}

func (c KubernetesConfig) withDefaults() KubernetesConfig {
	if c.ReuseGrace == 0 {
		c.ReuseGrace = DefaultKubernetesReuseGrace
	}
	if c.MaxStaleness == 0 {
		c.MaxStaleness = DefaultKubernetesMaxStaleness
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = DefaultKubernetesSyncTimeout
	}
	return c
}

func (c KubernetesConfig) validate() error {
	var errs []error
	if c.Resync < 0 {
		errs = append(errs, errors.New("kubernetes.resync must not be negative"))
	}
	if c.ReuseGrace < 0 {
		errs = append(errs, errors.New("kubernetes.reuse_grace must not be negative"))
	}
	if c.MaxStaleness < 0 {
		errs = append(errs, errors.New("kubernetes.max_staleness must not be negative"))
	}
	if c.SyncTimeout < 0 {
		errs = append(errs, errors.New("kubernetes.sync_timeout must not be negative"))
	}
	errs = append(errs, TrustedNetsErrors("kubernetes.pod_cidrs", c.PodCIDRs)...)
	return errors.Join(errs...)
}

// kubeRESTConfig loads a kubeconfig file, or the in-cluster config when path
// is empty.
func kubeRESTConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (set kubeconfig outside a cluster): %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

func newKubernetesSource(ctx context.Context, cfg KubernetesConfig, deps Deps) (Source, error) {
	rc, err := kubeRESTConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "warden"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	s, err := NewKubernetesSource(ctx, cfg, client, cfg.trusted, deps.Logger)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.SyncTimeout)
	defer cancel()
	if err := s.WaitSynced(wctx); err != nil {
		// Not fatal: the informer keeps trying and Resolve denies until it
		// has synced. A Warden that cannot reach the API server at startup
		// still serves callers other sources can identify.
		s.log.Warn("kubernetes: pods not listed yet; callers from trusted networks are denied until they are", zap.Error(err))
	}
	return s, nil
}

// KubernetesSource resolves a source IP to the pod holding it.
//
// The index is fed by one informer's event handler (so writes are serial)
// and read under a read lock; each pod's Identity is built once when the pod
// changes, so a lookup allocates nothing but the stale flag.
type KubernetesSource struct {
	cfg     KubernetesConfig
	log     *zap.Logger
	trusted TrustedNets
	podNets TrustedNets // pod_cidrs: unknown addresses here are refused
	now     func() time.Time
	refused refusalCounts

	informer cache.SharedIndexInformer
	reg      cache.ResourceEventHandlerRegistration

	mu       sync.RWMutex
	pods     map[string]*k8sPod       // namespace/name → pod
	byIP     map[netip.Addr][]*k8sPod // pod IP → pods holding it
	released map[netip.Addr]time.Time // pod IP → when a pod last stopped holding it
	sweepAt  time.Time                // next time released is pruned

	// downSince is the UnixNano time the API server first failed a list or
	// watch since the last success; 0 while healthy.
	downSince atomic.Int64
}

// k8sPod is the part of a pod the source keeps.
type k8sPod struct {
	key         string
	uid         types.UID
	hostNetwork bool
	ips         []netip.Addr
	id          Identity
}

// NewKubernetesSource starts an informer on pods through client; it runs
// until ctx ends. trusted lists the client networks the source answers for
// (none: it answers for nobody). Use WaitSynced before relying on it.
func NewKubernetesSource(ctx context.Context, cfg KubernetesConfig, client kubernetes.Interface, trusted TrustedNets, log *zap.Logger) (*KubernetesSource, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	podNets, err := ParseTrustedNets(cfg.PodCIDRs) // validated above
	if err != nil {
		return nil, err
	}
	s := &KubernetesSource{
		cfg:      cfg.withDefaults(),
		log:      log.With(zap.String("source", SourceKubernetes)),
		trusted:  trusted,
		podNets:  podNets,
		now:      time.Now,
		pods:     map[string]*k8sPod{},
		byIP:     map[netip.Addr][]*k8sPod{},
		released: map[netip.Addr]time.Time{},
	}
	// Pods that finished hold no IP any more (and the field selector makes
	// a pod that finishes look deleted, which releases its IP).
	const selector = "status.phase!=Succeeded,status.phase!=Failed"
	pods := client.CoreV1().Pods(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			l, err := pods.List(ctx, o)
			if err == nil {
				s.apiUp()
			}
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			w, err := pods.Watch(ctx, o)
			if err == nil {
				s.apiUp()
			} else {
				s.apiDown(err)
			}
			return w, err
		},
	}
	// The wrapper tells the reflector whether client can stream the initial
	// list over the watch (the real one can; client-go's fake cannot).
	s.informer = cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), &corev1.Pod{}, s.cfg.Resync, cache.Indexers{})
	if err := s.informer.SetTransform(slimPod); err != nil {
		return nil, err
	}
	if err := s.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		s.apiDown(err)
	}); err != nil {
		return nil, err
	}
	reg, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.upsert(obj) },
		UpdateFunc: func(_, obj any) { s.upsert(obj) },
		DeleteFunc: s.remove,
	})
	if err != nil {
		return nil, err
	}
	s.reg = reg
	go s.informer.RunWithContext(ctx)
	return s, nil
}

// Name implements Source.
func (s *KubernetesSource) Name() string { return SourceKubernetes }

// WaitSynced blocks until the first list of pods is indexed or ctx ends.
func (s *KubernetesSource) WaitSynced(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), s.reg.HasSynced) {
		return fmt.Errorf("kubernetes: pods not synced: %w", context.Cause(ctx))
	}
	return nil
}

// Synced reports whether the first list of pods has been indexed.
func (s *KubernetesSource) Synced() bool { return s.reg.HasSynced() }

// Stale reports how long the API server has been failing lists and watches
// (0 while healthy).
func (s *KubernetesSource) Stale() time.Duration {
	d := s.downSince.Load()
	if d == 0 {
		return 0
	}
	return s.now().Sub(time.Unix(0, d))
}

func (s *KubernetesSource) apiUp() {
	if d := s.downSince.Swap(0); d != 0 {
		s.log.Info("kubernetes: API server reachable again", zap.Duration("after", s.now().Sub(time.Unix(0, d))))
	}
}

func (s *KubernetesSource) apiDown(err error) {
	if s.downSince.CompareAndSwap(0, s.now().UnixNano()) {
		s.log.Warn("kubernetes: cannot list or watch pods; serving the last known pods", zap.Duration("max_staleness", s.cfg.MaxStaleness), zap.Error(err))
	}
}

// Resolve implements Source.
func (s *KubernetesSource) Resolve(_ context.Context, c *Conn) (Identity, error) {
	if c == nil || !c.Remote.IsValid() {
		return Identity{}, ErrNoIdentity
	}
	ip := c.Remote.Addr().Unmap().WithZone("") // the index holds no zones
	if !s.trusted.Contains(ip) {
		return Identity{}, ErrNoIdentity
	}
	if !s.reg.HasSynced() {
		return Identity{}, errors.New("pods are not listed yet (API server not reached since startup); denying rather than guessing")
	}
	var stale time.Duration
	if d := s.downSince.Load(); d != 0 {
		stale = s.now().Sub(time.Unix(0, d))
		if stale > s.cfg.MaxStaleness {
			return Identity{}, fmt.Errorf("pod data is stale: the API server has been unreachable for %s (max_staleness %s)", stale.Round(time.Second), s.cfg.MaxStaleness)
		}
	}
	id, code, why := s.lookup(ip)
	if code != "" {
		if code == RefusedNoPod && !s.podNets.Contains(ip) {
			// Outside pod_cidrs an address no pod holds (a node, a VM in
			// the same network) is routine: later sources may know it.
			s.log.Debug("kubernetes: source IP does not resolve", zap.Stringer("ip", ip), zap.String("reason", why))
			return Identity{}, fmt.Errorf("%w: %s %s", ErrNoIdentity, ip, why)
		}
		// A pod address this source refuses (no pod yet or any more,
		// shared, reused, hostNetwork) must not fall through to a weaker
		// source: with the VPC CNI the ec2 source would name the node.
		if code == RefusedNoPod {
			why += " but is in identity.kubernetes.pod_cidrs (a pod not reported yet, or gone more than reuse_grace ago)"
		}
		s.refused.add(code)
		s.log.Info("kubernetes: source IP refused", zap.Stringer("ip", ip), zap.String("reason", code), zap.String("why", why))
		return Identity{}, &RefusedError{Reason: code, Msg: fmt.Sprintf("source IP %s %s", ip, why)}
	}
	// Served from the last known pods while the API server is unreachable:
	// flagged for audit and metrics.
	id.Stale = stale > 0
	return id, nil
}

// Refusals returns how many calls the source refused, by reason (for
// metrics).
func (s *KubernetesSource) Refusals() map[string]uint64 {
	return s.refused.snapshot(RefusedNoPod, RefusedReused, RefusedShared, RefusedHostNetwork)
}

// lookup returns the identity for ip, or a Refused* code and why there is
// none.
func (s *KubernetesSource) lookup(ip netip.Addr) (id Identity, code, why string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	holders := s.byIP[ip]
	if t, ok := s.released[ip]; ok {
		if ago := s.now().Sub(t); ago < s.cfg.ReuseGrace {
			return Identity{}, RefusedReused, fmt.Sprintf("was released by another pod %s ago (reuse_grace %s)", ago.Round(time.Millisecond), s.cfg.ReuseGrace)
		}
	}
	if len(holders) == 0 {
		return Identity{}, RefusedNoPod, "belongs to no running pod"
	}
	for _, h := range holders {
		if h.hostNetwork {
			return Identity{}, RefusedHostNetwork, "is a node's address (hostNetwork pod " + h.key + ")"
		}
	}
	if len(holders) > 1 {
		return Identity{}, RefusedShared, fmt.Sprintf("is held by %d pods (%s, %s, …)", len(holders), holders[0].key, holders[1].key)
	}
	return holders[0].id, "", ""
}

// slimPod keeps only what the index needs, so a large cluster's pods cost
// little memory.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, Labels: p.Labels,
			ResourceVersion: p.ResourceVersion, DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: p.Spec.ServiceAccountName, NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}, nil
}

func podIPs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		a = a.Unmap()
		for _, b := range out {
			if b == a {
				return
			}
		}
		out = append(out, a)
	}
	add(p.Status.PodIP)
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	return out
}

func newK8sPod(p *corev1.Pod) *k8sPod {
	kp := &k8sPod{key: p.Namespace + "/" + p.Name, uid: p.UID, hostNetwork: p.Spec.HostNetwork}
	if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		kp.ips = podIPs(p)
	}
	tags := make(map[string]Tag, 4+len(p.Labels))
	tags[TagK8sNamespace] = StrongTag(SourceKubernetes, p.Namespace)
	tags[TagK8sPod] = StrongTag(SourceKubernetes, p.Name)
	// No name means no service account: the API server fills in "default"
	// for every pod but mirror (static) pods, which run with none, and a
	// node's manifest must not be taken for the namespace's default
	// account.
	if sa := p.Spec.ServiceAccountName; sa != "" {
		tags[TagK8sServiceAccount] = StrongTag(SourceKubernetes, sa)
	}
	if p.Spec.NodeName != "" {
		tags[TagK8sNode] = StrongTag(SourceKubernetes, p.Spec.NodeName)
	}
	for k, v := range p.Labels {
		tags[TagK8sLabelPrefix+k] = WeakTag(SourceKubernetes, v)
	}
	kp.id = Identity{Source: SourceKubernetes, Tags: tags}
	kp.id.precompute()
	return kp
}

func (s *KubernetesSource) upsert(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	np := newK8sPod(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.pods[np.key]
	s.pods[np.key] = np
	now := s.now()
	if old != nil {
		for _, ip := range old.ips {
			s.unindex(ip, old)
			// A different UID under the same name is a new pod: every IP it
			// inherits counts as reused.
			if old.uid != np.uid || !containsAddr(np.ips, ip) {
				s.released[ip] = now
			}
		}
	}
	for _, ip := range np.ips {
		s.byIP[ip] = append(s.byIP[ip], np)
	}
	s.sweep(now)
}

func (s *KubernetesSource) remove(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := p.Namespace + "/" + p.Name
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.pods[key]
	if old == nil {
		return
	}
	delete(s.pods, key)
	now := s.now()
	for _, ip := range old.ips {
		s.unindex(ip, old)
		s.released[ip] = now
	}
	s.sweep(now)
}

func (s *KubernetesSource) unindex(ip netip.Addr, p *k8sPod) {
	hs := s.byIP[ip]
	for i, h := range hs {
		if h == p {
			hs = append(hs[:i:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(s.byIP, ip)
	} else {
		s.byIP[ip] = hs
	}
}

// sweep forgets releases older than the grace period, at most once per
// grace period.
func (s *KubernetesSource) sweep(now time.Time) {
	if now.Before(s.sweepAt) {
		return
	}
	s.sweepAt = now.Add(s.cfg.ReuseGrace)
	for ip, t := range s.released {
		if now.Sub(t) >= s.cfg.ReuseGrace {
			delete(s.released, ip)
		}
	}
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, b := range as {
		if a == b {
			return true
		}
	}
	return false
}
