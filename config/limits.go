package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/warden-egress/warden/authz/policy"
)

// Defaults for limits and upstream timeouts that fit both a sidecar (one
// client: the pod itself) and a shared proxy (many clients, some hostile).
const (
	DefaultMaxConnections          = 4096
	DefaultMaxConnectionsPerSource = 512
	DefaultMaxStreamsPerConnection = 100
	DefaultMaxHeaderBytes          = 64 << 10
	DefaultHeaderTimeout           = 10 * time.Second
	DefaultBodyIdleTimeout         = 20 * time.Second
	DefaultBodyMinRate             = 1024
	DefaultWriteTimeout            = 30 * time.Second
	DefaultIdleTimeout             = 120 * time.Second
	// AWS documents inference timeouts of up to 60 minutes for some models:
	// a non-streamed call may wait that long for its first byte.
	DefaultResponseHeaderTimeout = 60 * time.Minute
	DefaultStreamIdleTimeout     = 5 * time.Minute
)

// WithDefaults returns l with every unset limit at its default (configs
// built in code skip the parser that applies them).
func (l LimitsConfig) WithDefaults() LimitsConfig {
	l.applyDefaults()
	return l
}

// WithDefaults returns u with unset timeouts at their defaults.
func (u UpstreamConfig) WithDefaults() UpstreamConfig {
	u.applyTimeoutDefaults()
	return u
}

// orDefault sets *v to d when the file left it unset (zero).
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func (l *LimitsConfig) applyDefaults() {
	orDefault(&l.MaxBodyBytes, policy.DefaultMaxBodyBytes)
	orDefault(&l.MaxConnections, DefaultMaxConnections)
	orDefault(&l.MaxConnectionsPerSource, min(DefaultMaxConnectionsPerSource, l.MaxConnections))
	orDefault(&l.MaxStreamsPerConnection, DefaultMaxStreamsPerConnection)
	orDefault(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&l.HeaderTimeout, DefaultHeaderTimeout)
	orDefault(&l.BodyIdleTimeout, DefaultBodyIdleTimeout)
	orDefault(&l.BodyMinRate, DefaultBodyMinRate)
	orDefault(&l.WriteTimeout, DefaultWriteTimeout)
	orDefault(&l.IdleTimeout, DefaultIdleTimeout)
}

func (u *UpstreamConfig) applyTimeoutDefaults() {
	orDefault(&u.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	orDefault(&u.StreamIdleTimeout, DefaultStreamIdleTimeout)
}

func (l *LimitsConfig) validate(u UpstreamConfig) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, v := range []struct {
		key string
		n   int64
	}{
		{"limits.inflight_body_bytes", l.InflightBodyBytes},
		{"limits.source_body_bytes", l.SourceBodyShare},
		{"limits.connection_body_bytes", l.ConnectionBodyShare},
		{"limits.max_connections", int64(l.MaxConnections)},
		{"limits.max_connections_per_source", int64(l.MaxConnectionsPerSource)},
		{"limits.max_streams_per_connection", int64(l.MaxStreamsPerConnection)},
		{"limits.max_header_bytes", int64(l.MaxHeaderBytes)},
		{"limits.body_min_rate", l.BodyMinRate},
	} {
		if v.n < 0 {
			add("%s: must not be negative, got %d", v.key, v.n)
		}
	}
	for _, v := range []struct {
		key string
		d   time.Duration
	}{
		{"limits.header_timeout", l.HeaderTimeout},
		{"limits.body_idle_timeout", l.BodyIdleTimeout},
		{"limits.write_timeout", l.WriteTimeout},
		{"limits.idle_timeout", l.IdleTimeout},
		{"upstream.response_header_timeout", u.ResponseHeaderTimeout},
		{"upstream.stream_idle_timeout", u.StreamIdleTimeout},
	} {
		if v.d < 0 {
			add("%s: must not be negative, got %s", v.key, v.d)
		}
	}
	// A share below the largest body would refuse every call of that size.
	for _, v := range []struct {
		key string
		n   int64
	}{
		{"limits.inflight_body_bytes", l.InflightBodyBytes},
		{"limits.source_body_bytes", l.SourceBodyShare},
		{"limits.connection_body_bytes", l.ConnectionBodyShare},
	} {
		if v.n > 0 && v.n < l.MaxBodyBytes {
			add("%s: %d is below limits.max_body_bytes (%d): a body of the largest allowed size could never be read", v.key, v.n, l.MaxBodyBytes)
		}
	}
	if l.MaxConnectionsPerSource > 0 && l.MaxConnections > 0 && l.MaxConnectionsPerSource > l.MaxConnections {
		add("limits.max_connections_per_source: %d exceeds limits.max_connections (%d)", l.MaxConnectionsPerSource, l.MaxConnections)
	}
	if len(errs) == 0 {
		return nil
	}
	return []error{errors.Join(errs...)}
}
