// Package audittest holds audit sinks for tests: one that keeps what it is
// given, one that drops it.
package audittest

import (
	"context"
	"sync"

	"github.com/warden-egress/warden/audit"
)

// Sink keeps every delivered line, in order. While Hold is set and open,
// Write waits for it to close (a sink that is down or far behind).
type Sink struct {
	Hold  chan struct{}
	mu    sync.Mutex
	lines []string
}

// Name implements audit.Sink.
func (s *Sink) Name() string { return "test" }

// Close implements audit.Sink.
func (s *Sink) Close() error { return nil }

// Write implements audit.Sink.
func (s *Sink) Write(ctx context.Context, b []audit.Entry) error {
	if s.Hold != nil {
		select {
		case <-s.Hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range b {
		s.lines = append(s.lines, string(e.Line))
	}
	return nil
}

// Lines returns a copy of what was delivered.
func (s *Sink) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Discard drops every batch (benchmarks).
type Discard struct{}

// Name implements audit.Sink.
func (Discard) Name() string { return "discard" }

// Write implements audit.Sink.
func (Discard) Write(context.Context, []audit.Entry) error { return nil }

// Close implements audit.Sink.
func (Discard) Close() error { return nil }
