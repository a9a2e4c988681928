package budget

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Stores and failure modes (budgets.store, budgets.on_store_error).
const (
	StoreMemory = "memory"
	StoreRedis  = "redis"

	FailClosed = "fail_closed"
	FailOpen   = "fail_open"
)

// Defaults.
const (
	DefaultReservationTTL = 65 * time.Minute // past the longest inference AWS documents (60 minutes)
	DefaultRedisTimeout   = 250 * time.Millisecond
	DefaultKeyPrefix      = "warden"
	DefaultRetryAfter     = time.Second
)

// Config is the top-level budgets: section: where the apps' budgets
// (apps[].budgets) and async job owners are kept.
type Config struct {
	// Store is memory (the default: each replica counts alone) or redis
	// (every replica shares one count).
	Store string       `yaml:"store,omitempty"`
	Redis *RedisConfig `yaml:"redis,omitempty"`
	// OnStoreError is what a call does when the shared store cannot be
	// reached: fail_closed (the default) refuses it (503, retried by the
	// SDKs); fail_open decides on this replica's share of each limit
	// (limit ÷ replicas), flags the record and the metrics, and goes back
	// to the shared store when it answers again.
	OnStoreError string `yaml:"on_store_error,omitempty"`
	// Replicas is how many Warden replicas share the budgets: fail_open's
	// local share is each limit divided by it.
	Replicas int64 `yaml:"replicas,omitempty"`
	// ReservationTTL is how long a reservation holds when the replica that
	// made it never settles it (it crashed): then it is given back.
	ReservationTTL time.Duration `yaml:"reservation_ttl,omitempty"`
	// AsyncJobTTL is how long a shared store remembers which app started
	// an async invocation (default 30 days).
	AsyncJobTTL time.Duration `yaml:"async_job_ttl,omitempty"`
}

// RedisConfig reaches the Redis that holds the shared budgets. It holds
// policy state: give Warden its own ACL user, TLS, and a network path no
// one else has.
type RedisConfig struct {
	// Address is host:port of a Redis server; Addresses with Cluster set
	// names a Redis Cluster's seed nodes (every script's keys share one
	// hash slot, {app}).
	Address   string   `yaml:"address,omitempty"`
	Addresses []string `yaml:"addresses,omitempty"`
	Cluster   bool     `yaml:"cluster,omitempty"`
	// Username is the ACL user (Redis 6+); PasswordFile holds its password
	// (a mounted secret), never the config.
	Username     string `yaml:"username,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	DB           int    `yaml:"db,omitempty"`
	// TLS: when set, Warden speaks TLS to Redis, verifying the server with
	// CAFile (else the system roots) and presenting CertFile/KeyFile when
	// given.
	TLS *RedisTLSConfig `yaml:"tls,omitempty"`
	// KeyPrefix starts every key (default "warden").
	KeyPrefix string `yaml:"key_prefix,omitempty"`
	// Timeout bounds each call to Redis (default 250ms): a call waits at
	// most this long before on_store_error applies.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// RedisTLSConfig is TLS to Redis.
type RedisTLSConfig struct {
	CAFile     string `yaml:"ca_file,omitempty"`
	CertFile   string `yaml:"cert_file,omitempty"`
	KeyFile    string `yaml:"key_file,omitempty"`
	ServerName string `yaml:"server_name,omitempty"`
}

// WithDefaults returns c with unset values at their defaults.
func (c Config) WithDefaults() Config {
	if c.Store == "" {
		c.Store = StoreMemory
	}
	if c.OnStoreError == "" {
		c.OnStoreError = FailClosed
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.ReservationTTL <= 0 {
		c.ReservationTTL = DefaultReservationTTL
	}
	if c.AsyncJobTTL <= 0 {
		c.AsyncJobTTL = 30 * 24 * time.Hour
	}
	if c.Redis != nil {
		r := *c.Redis
		if r.KeyPrefix == "" {
			r.KeyPrefix = DefaultKeyPrefix
		}
		if r.Timeout <= 0 {
			r.Timeout = DefaultRedisTimeout
		}
		c.Redis = &r
	}
	return c
}

// Validate checks the section; errors name the key.
func (c *Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Store {
	case "", StoreMemory:
		if c.Redis != nil {
			add("budgets.redis: set, but budgets.store is %q; set budgets.store: redis to use it", c.Store)
		}
	case StoreRedis:
		if c.Redis == nil {
			add("budgets.redis: required when budgets.store is redis")
		}
	default:
		add("budgets.store: %q is not memory or redis", c.Store)
	}
	switch c.OnStoreError {
	case "", FailClosed:
	case FailOpen:
		if c.Store != StoreRedis {
			add("budgets.on_store_error: fail_open applies to a shared store (budgets.store: redis)")
		}
	default:
		add("budgets.on_store_error: %q is not fail_closed or fail_open", c.OnStoreError)
	}
	if c.Replicas < 0 {
		add("budgets.replicas: must not be negative")
	}
	if c.ReservationTTL < 0 {
		add("budgets.reservation_ttl: must not be negative")
	} else if c.ReservationTTL > 0 && c.ReservationTTL < time.Minute {
		add("budgets.reservation_ttl: %s is shorter than a minute: a call still running would lose its reservation", c.ReservationTTL)
	}
	if c.AsyncJobTTL < 0 {
		add("budgets.async_job_ttl: must not be negative")
	}
	if r := c.Redis; r != nil {
		errs = append(errs, r.validate()...)
	}
	return errs
}

func (r *RedisConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	addrs := r.addrs()
	switch {
	case len(addrs) == 0:
		add("budgets.redis.address: required (host:port)")
	case r.Address != "" && len(r.Addresses) > 0:
		add("budgets.redis: set address or addresses, not both")
	case len(addrs) > 1 && !r.Cluster:
		add("budgets.redis.addresses: several addresses name a Redis Cluster's seeds; set budgets.redis.cluster: true")
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil {
			add("budgets.redis.address: %q is not host:port: %v", a, err)
		} else if _, err := net.LookupPort("tcp", port); err != nil {
			add("budgets.redis.address: %q is not host:port: port %q: want 0-65535 or a service name", a, port)
		}
	}
	if r.Cluster && r.DB != 0 {
		add("budgets.redis.db: a Redis Cluster has only database 0")
	}
	if r.DB < 0 {
		add("budgets.redis.db: must not be negative")
	}
	if r.Timeout < 0 {
		add("budgets.redis.timeout: must not be negative")
	}
	if strings.ContainsAny(r.KeyPrefix, "{} \t\r\n") {
		add("budgets.redis.key_prefix: %q may not hold braces (they pick the hash slot) or spaces", r.KeyPrefix)
	}
	if t := r.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		add("budgets.redis.tls: cert_file and key_file go together")
	}
	return errs
}

func (r *RedisConfig) addrs() []string {
	if r.Address != "" {
		return []string{r.Address}
	}
	return r.Addresses
}

// password reads PasswordFile ("" without one).
func (r *RedisConfig) password() (string, error) {
	if r.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(r.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("budgets.redis.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// tlsConfig builds the client TLS config (nil without tls:).
func (r *RedisConfig) tlsConfig() (*tls.Config, error) {
	t := r.TLS
	if t == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("budgets.redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("budgets.redis.tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("budgets.redis.tls: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// CheckFiles reads the files the store reads when it starts (the Redis
// password file), without connecting, so `warden policy validate --files`
// refuses what serve would.
func (c *Config) CheckFiles() error {
	if c.Redis == nil {
		return nil
	}
	_, err := c.Redis.password()
	return err
}
