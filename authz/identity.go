package authz

import (
	"context"
	"errors"
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
	values map[string]string // TagValues, precomputed by sources whose identity never changes
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

// Conn describes the connection a request arrived on.
type Conn struct {
	Remote netip.AddrPort
	Local  netip.AddrPort
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

// Resolver tries sources in order.
type Resolver struct{ sources []Source }

// NewResolver builds the configured sources.
func NewResolver(cfg IdentityConfig) (*Resolver, error) {
	r := &Resolver{}
	for _, name := range cfg.Sources {
		switch name {
		case "static":
			r.sources = append(r.sources, NewStaticSource(cfg.Static))
		default:
			return nil, errors.New("identity source " + name + " is not available")
		}
	}
	return r, nil
}

// Resolve returns the first identity a source yields.
func (r *Resolver) Resolve(ctx context.Context, c *Conn) (Identity, error) {
	for _, s := range r.sources {
		id, err := s.Resolve(ctx, c)
		if errors.Is(err, ErrNoIdentity) {
			continue
		}
		return id, err
	}
	return Identity{}, ErrNoIdentity
}
