package budget

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The scripts run on the server, atomically, with the server's clock
// (TIME): no replica's clock matters and no two replicas can both take the
// last of a budget. Every key one script touches carries the app in a hash
// tag ({app}), so a script's keys share a hash slot in a Redis Cluster.
var (
	//go:embed redis_windows.lua
	luaWindows string
	//go:embed redis_reserve.lua
	luaReserve string
	//go:embed redis_settle.lua
	luaSettle string
	//go:embed redis_usage.lua
	luaUsage string
	//go:embed redis_extend.lua
	luaExtend string

	reserveScript = redis.NewScript(luaWindows + luaReserve)
	settleScript  = redis.NewScript(luaWindows + luaSettle)
	usageScript   = redis.NewScript(luaWindows + luaUsage)
	extendScript  = redis.NewScript(luaExtend)
)

// Redis is the shared store: every replica pointed at one Redis (or Redis
// Cluster) counts against the same budgets. Reserve is one round trip
// (EVALSHA; the script is loaded on first use), and so is Settle.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	ttlMs  int64
}

// NewRedis connects to the Redis r describes (it does not dial until the
// first call). ttl is how long an unsettled reservation holds.
func NewRedis(r *RedisConfig, ttlMs int64) (*Redis, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	return &Redis{c: c, prefix: r.KeyPrefix, ttlMs: ttlMs}, nil
}

// client builds the go-redis client: ACL user and password, TLS,
// timeouts, a single node or a cluster.
func (r *RedisConfig) client() (redis.UniversalClient, error) {
	pw, err := r.password()
	if err != nil {
		return nil, err
	}
	tc, err := r.tlsConfig()
	if err != nil {
		return nil, err
	}
	o := &redis.UniversalOptions{
		Addrs:         r.addrs(),
		IsClusterMode: r.Cluster,
		Username:      r.Username,
		Password:      pw,
		DB:            r.DB,
		TLSConfig:     tc,
		DialTimeout:   max(r.Timeout, DefaultRedisTimeout),
		ReadTimeout:   r.Timeout,
		WriteTimeout:  r.Timeout,
		// A call's budget is its timeout: no retry within it (the next
		// call tries again, and on_store_error says what happens now).
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		// No CLIENT SETINFO: an ACL user need not be allowed it.
		DisableIdentity: true,
	}
	return redis.NewUniversalClient(o), nil
}

// keys are an app's three keys, in one hash slot.
func (s *Redis) keys(app string) []string {
	base := s.prefix + ":{" + app + "}:"
	return []string{base + "c", base + "r", base + "rv"}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Reserve implements Store.
func (s *Redis) Reserve(ctx context.Context, app string, l *Limits, amt Amount) (Ticket, error) {
	id := newID()
	args := make([]any, 0, 3+3*NumKinds)
	args = append(args, s.ttlMs, id, int(NumKinds))
	var kinds uint16
	for k := Kind(0); k < NumKinds; k++ {
		if l.Max[k] > 0 {
			kinds |= 1 << k
		}
		args = append(args, int(k.Period()), l.Max[k], amt[k])
	}
	res, err := reserveScript.Run(ctx, s.c, s.keys(app), args...).Int64Slice()
	if err != nil {
		return Ticket{}, fmt.Errorf("budget store (redis): reserve for app %s: %w", app, err)
	}
	if len(res) < 1 {
		return Ticket{}, fmt.Errorf("budget store (redis): reserve for app %s: empty answer", app)
	}
	if res[0] == 0 {
		if len(res) != 4 || res[1] < 0 || res[1] >= int64(NumKinds) {
			return Ticket{}, fmt.Errorf("budget store (redis): reserve for app %s: unexpected answer %v", app, res)
		}
		k := Kind(res[1])
		return Ticket{}, &Exceeded{App: app, Kind: k, Limit: l.Max[k], Used: res[3], Want: amt[k], ResetAt: ResetAt(k.Period(), res[2])}
	}
	if len(res) != 2+int(NumKinds) {
		return Ticket{}, fmt.Errorf("budget store (redis): reserve for app %s: unexpected answer %v", app, res)
	}
	t := Ticket{App: app, ID: id, Amount: amt, Kinds: kinds, store: s}
	copy(t.Windows[:], res[2:])
	return t, nil
}

// Settle implements Store.
func (s *Redis) Settle(ctx context.Context, t *Ticket, used Amount) error {
	args := make([]any, 0, 2+3*NumKinds)
	args = append(args, t.ID, int(NumKinds))
	for k := Kind(0); k < NumKinds; k++ {
		w := int64(-1)
		if t.tracked(k) {
			w = t.Windows[k]
		}
		args = append(args, strconv.FormatInt(w, 10), t.Amount[k], used[k])
	}
	if err := settleScript.Run(ctx, s.c, s.keys(t.App), args...).Err(); err != nil {
		return fmt.Errorf("budget store (redis): settle for app %s: %w", t.App, err)
	}
	return nil
}

// Extend pushes a reservation's expiry to the server's now + the TTL while
// its call still runs. It reports false when the reservation is gone
// (expired and given back, or settled).
func (s *Redis) Extend(ctx context.Context, app, id string) (bool, error) {
	n, err := extendScript.Run(ctx, s.c, s.keys(app), s.ttlMs, id).Int64()
	if err != nil {
		return false, fmt.Errorf("budget store (redis): extend a reservation of app %s: %w", app, err)
	}
	return n == 1, nil
}

// TTL is how long an unsettled reservation holds.
func (s *Redis) TTL() time.Duration { return time.Duration(s.ttlMs) * time.Millisecond }

// Usage implements Store.
func (s *Redis) Usage(ctx context.Context, app string, l *Limits) (Amount, error) {
	args := make([]any, 0, 1+2*NumKinds)
	args = append(args, int(NumKinds))
	for k := Kind(0); k < NumKinds; k++ {
		args = append(args, int(k.Period()), l.Max[k])
	}
	res, err := usageScript.Run(ctx, s.c, s.keys(app), args...).Int64Slice()
	if err != nil {
		return Amount{}, fmt.Errorf("budget store (redis): usage of app %s: %w", app, err)
	}
	var u Amount
	if len(res) != int(NumKinds) {
		return u, fmt.Errorf("budget store (redis): usage of app %s: unexpected answer %v", app, res)
	}
	copy(u[:], res)
	return u, nil
}

// Ping checks the connection (a round trip, for benchmarks and readiness).
func (s *Redis) Ping(ctx context.Context) error { return s.c.Ping(ctx).Err() }

// Close implements Store.
func (s *Redis) Close() error { return s.c.Close() }

// asyncKey is where a shared store keeps an async invocation's owner.
func (s *Redis) asyncKey(arn string) string { return s.prefix + ":async:" + arn }

// RedisJobs keeps async invocation owners in Redis, so any replica answers
// for a job another started (policy.JobStore).
type RedisJobs struct {
	s   *Redis
	ttl int64 // seconds
}

// Jobs returns the async job store on s's Redis, remembering owners for
// ttlSec seconds.
func (s *Redis) Jobs(ttlSec int64) *RedisJobs { return &RedisJobs{s: s, ttl: ttlSec} }

// Remember records that app started arn; the first owner wins.
func (j *RedisJobs) Remember(ctx context.Context, arn, app string) error {
	if err := j.s.c.SetArgs(ctx, j.s.asyncKey(arn), app, redis.SetArgs{Mode: "NX", TTL: secs(j.ttl)}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("budget store (redis): remember async invocation owner: %w", err)
	}
	return nil
}

// Owners returns the app that started each arn ("" when unknown), in one
// round trip (a pipeline).
func (j *RedisJobs) Owners(ctx context.Context, arns []string) ([]string, error) {
	out := make([]string, len(arns))
	if len(arns) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(arns))
	_, err := j.s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range arns {
			cmds[i] = p.Get(ctx, j.s.asyncKey(a))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("budget store (redis): read async invocation owners: %w", err)
	}
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("budget store (redis): read async invocation owner: %w", err)
		}
		out[i] = v
	}
	return out, nil
}

func secs(n int64) time.Duration { return time.Duration(n) * time.Second }
