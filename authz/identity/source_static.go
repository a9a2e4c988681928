package identity

import "context"

// StaticSource yields tags from the configuration: the sidecar case, where the
// injector writes the workload's tags into Warden's config. Anyone who can
// reach the port gets these tags, so they are honoured only for loopback
// connections, and they are weak: the injector copied them from
// workload-editable metadata.
type StaticSource struct{ id Identity }

// NewStaticSource builds the source from a tag map.
func NewStaticSource(tags map[string]string) *StaticSource {
	id := Identity{Source: "static", Tags: make(map[string]Tag, len(tags))}
	for k, v := range tags {
		id.Tags[k] = Tag{Value: v, Source: "static"}
	}
	id.precompute()
	return &StaticSource{id: id}
}

// Name implements Source.
func (s *StaticSource) Name() string { return "static" }

// Resolve implements Source.
func (s *StaticSource) Resolve(_ context.Context, c *Conn) (Identity, error) {
	if !c.SameHost() {
		return Identity{}, ErrNoIdentity
	}
	return s.id, nil
}
