package identity

import (
	"errors"
	"fmt"
	"net/netip"
)

// podIndex answers which pods hold an address (the kubernetes source).
type podIndex interface {
	// podsHolding returns the namespace/name of the pods known to hold ip,
	// and node true if ip is a node's address (a hostNetwork pod holds it).
	// known is false when the index cannot say (not a trusted address, not
	// listed yet).
	podsHolding(ip netip.Addr) (keys []string, node, known bool)
}

// bound applies bind_pod_ip to a verified token identity: the token's pod
// must be the pod the index gives the caller's address to.
func (s *TokenSource) bound(c *Conn, id Identity) (Identity, error) {
	if s.pods == nil || c == nil || !c.Remote.IsValid() {
		return id, nil
	}
	ip := c.Remote.Addr().Unmap().WithZone("")
	holders, node, known := s.pods.podsHolding(ip)
	if !known || node || len(holders) == 0 {
		// An address no pod holds, or a node's (hostNetwork pods; traffic
		// SNATed to the node): nothing to bind to.
		return id, nil
	}
	pod, ok := id.Tags[TagK8sPod]
	if !ok {
		return Identity{}, fmt.Errorf("%w: token is bound to no pod but was presented from %s, the address of pod %s (token.bind_pod_ip)", errTokenRejected, ip, holders[0])
	}
	want := id.Tags[TagK8sNamespace].Value + "/" + pod.Value
	for _, h := range holders {
		if h == want {
			return id, nil
		}
	}
	return Identity{}, fmt.Errorf("%w: token of pod %s presented from %s, the address of pod %s (token.bind_pod_ip)", errTokenRejected, want, ip, holders[0])
}

// podsHolding implements podIndex for the token source's bind_pod_ip.
func (s *KubernetesSource) podsHolding(ip netip.Addr) (keys []string, node, known bool) {
	ip = ip.Unmap().WithZone("")
	if !s.trusted.Contains(ip) || !s.reg.HasSynced() {
		return nil, false, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, h := range s.byIP[ip] {
		if h.hostNetwork {
			return nil, true, true
		}
		keys = append(keys, h.key)
	}
	return keys, false, true
}

// bindTokenPods hands the kubernetes source's pod index to the token source
// when token.bind_pod_ip asks for it.
func bindTokenPods(r *Resolver, cfg TokenConfig) error {
	if !cfg.BindPodIP {
		return nil
	}
	var (
		ts *TokenSource
		ks *KubernetesSource
	)
	for _, s := range r.Sources() {
		switch v := s.(type) {
		case *TokenSource:
			ts = v
		case *KubernetesSource:
			ks = v
		}
	}
	if ts != nil && ks == nil {
		return errors.New("token.bind_pod_ip needs the kubernetes source in identity.sources")
	}
	if ts != nil {
		ts.pods = ks
	}
	return nil
}
