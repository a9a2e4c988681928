package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
)

// Tag is one identity attribute and how much it can be trusted.
type Tag struct {
	Value string `json:"value"`
	// Strong tags are set by the platform, not by the workload being policed.
	Strong bool   `json:"strong"`
	Source string `json:"source"`
}

// Identity is what Warden knows about a caller.
type Identity struct {
	Source string
	Tags   map[string]Tag
	// Stale marks an identity served from cache past its TTL because the
	// API it came from is failing (bounded by the source's stale_ttl).
	Stale  bool
	values map[string]string // TagValues, precomputed by sources whose identity never changes
	weak   []string          // WeakTagNames, precomputed with values
}

// precompute caches TagValues and WeakTagNames for a source whose identity
// never changes, so calls do not rebuild them.
func (id *Identity) precompute() {
	id.values, id.weak = nil, nil
	id.values, id.weak = id.TagValues(), id.WeakTagNames()
}

// TagValues returns the tags as a plain map (for audit records). The map
// may be shared: do not modify it.
func (id Identity) TagValues() map[string]string {
	if id.values != nil {
		return id.values
	}
	out := make(map[string]string, len(id.Tags))
	for k, t := range id.Tags {
		out[k] = t.Value
	}
	return out
}

// WeakTagNames returns the names of the tags the workload could have
// claimed rather than proven, sorted (nil when all are strong).
func (id Identity) WeakTagNames() []string {
	if id.values != nil {
		return id.weak
	}
	var out []string
	for k, t := range id.Tags {
		if !t.Strong {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// WithTag returns a copy of id with one more tag; id's maps, which a source
// may share between calls, are not touched.
func (id Identity) WithTag(key string, t Tag) Identity {
	tags := make(map[string]Tag, len(id.Tags)+1)
	for k, v := range id.Tags {
		tags[k] = v
	}
	tags[key] = t
	id.Tags, id.values, id.weak = tags, nil, nil
	return id
}

// String renders tags sorted, for messages.
func (id Identity) String() string {
	keys := make([]string, 0, len(id.Tags))
	for k := range id.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(id.Tags[k].Value)
	}
	return b.String()
}

// Conn describes the call as identity sources see it.
type Conn struct {
	Remote netip.AddrPort // the client address (after PROXY protocol, if trusted)
	Local  netip.AddrPort
	// VPCEndpoint is the PrivateLink endpoint the client came through
	// ("vpce-…"), named by a trusted load balancer's PROXY protocol AWS
	// TLV; empty otherwise. Spoke VPCs' networks may overlap, so an
	// address means something only together with it.
	VPCEndpoint string
	// Redirected marks a connection an iptables OUTPUT REDIRECT sent to a
	// loopback-bound transparent listener: only a process in Warden's own
	// network namespace can have made it, whatever its source address.
	Redirected bool
	// Request and Body are the HTTP request and its whole body, for sources
	// that verify what the caller presents (signatures, tokens). Read-only.
	Request *http.Request
	Body    []byte
}

// SameHost reports whether the caller runs in Warden's own network
// namespace (its pod or task): a loopback client, or a redirected one. Only
// such callers get sidecar identities.
func (c *Conn) SameHost() bool {
	return c != nil && (c.Remote.Addr().Unmap().IsLoopback() || c.Redirected)
}

// ErrNoIdentity means a source has nothing to say about this connection.
var ErrNoIdentity = errors.New("no identity")

// Source resolves a connection to an identity. It returns ErrNoIdentity when
// it does not apply; any other error denies the call (never fall through to
// a weaker source).
type Source interface {
	Name() string
	Resolve(ctx context.Context, c *Conn) (Identity, error)
}

// Resolver consults presented-credential sources first, then the others
// in order.
type Resolver struct {
	presented []presentedSource
	sources   []Source
}

type presentedSource struct {
	Source
	p Presenter
}

// Resolve returns the identity of the caller. A presented credential decides
// alone: verified, it is the identity; failed, the call is denied. Otherwise
// the first source with something to say wins; ErrNoIdentity means none had.
func (r *Resolver) Resolve(ctx context.Context, c *Conn) (Identity, error) {
	for _, s := range r.presented {
		if s.p.Presents(c) {
			id, err := s.Resolve(ctx, c)
			if err != nil {
				return Identity{}, fmt.Errorf("%s: %w", s.Name(), err)
			}
			return id, nil
		}
	}
	for _, s := range r.sources {
		id, err := s.Resolve(ctx, c)
		if errors.Is(err, ErrNoIdentity) {
			continue
		}
		if err != nil {
			return Identity{}, fmt.Errorf("%s: %w", s.Name(), err)
		}
		return id, nil
	}
	return Identity{}, ErrNoIdentity
}
