package policy

import (
	"context"
	"fmt"
	"sync"

	"github.com/warden-egress/warden/bedrock"
)

// maxAsyncJobs bounds the ARNs remembered (about 150 bytes each).
const maxAsyncJobs = 100_000

// JobStore remembers which app started each asynchronous invocation: an
// app may read only its own jobs. AsyncJobs keeps them in this instance's
// memory; a shared store (budgets.store: redis, authz/budget.RedisJobs)
// lets any replica answer for a job another started.
type JobStore interface {
	// Remember records that app started arn. The first owner wins: a second
	// app replaying another's clientRequestToken gets the same ARN back from
	// Bedrock, but not access to it.
	Remember(ctx context.Context, arn, app string) error
	// Owners returns the app that started each ARN ("" when unknown).
	Owners(ctx context.Context, arns []string) ([]string, error)
}

// AsyncJobs is the in-memory JobStore: per Warden instance and bounded
// (past its limit the oldest ARNs are forgotten, and a forgotten ARN is
// denied like a foreign one: fail closed). The zero value is ready to use.
type AsyncJobs struct {
	mu    sync.Mutex
	owner map[string]string
	order []string // ring of ARNs in insertion order, for eviction
	next  int
	limit int // 0 = maxAsyncJobs
}

// Remember implements JobStore.
func (o *AsyncJobs) Remember(_ context.Context, arn, app string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.owner[arn]; ok {
		return nil
	}
	limit := o.limit
	if limit <= 0 {
		limit = maxAsyncJobs
	}
	if o.owner == nil {
		o.owner = make(map[string]string)
	}
	if len(o.order) < limit {
		o.order = append(o.order, arn)
	} else {
		delete(o.owner, o.order[o.next])
		o.order[o.next] = arn
		o.next = (o.next + 1) % limit
	}
	o.owner[arn] = app
	return nil
}

// Owners implements JobStore.
func (o *AsyncJobs) Owners(_ context.Context, arns []string) ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, len(arns))
	for i, a := range arns {
		out[i] = o.owner[a]
	}
	return out, nil
}

// Owns reports whether app started arn (through this instance, and not yet
// forgotten).
func (o *AsyncJobs) Owns(arn, app string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.owner[arn]
	return ok && a == app
}

// NewAsyncJobs returns a store remembering at most limit ARNs (0: the
// default, 100,000).
func NewAsyncJobs(limit int) *AsyncJobs { return &AsyncJobs{limit: limit} }

// CheckAsyncOwner takes back an allow for GetAsyncInvoke of a job the
// deciding app did not start (as far as jobs knows). A store that cannot
// answer denies: fail closed.
func CheckAsyncOwner(ctx context.Context, jobs JobStore, d Decision, op bedrock.Operation, invocationARN string) Decision {
	if !d.Allow || op != bedrock.OpGetAsyncInvoke {
		return d
	}
	owners, err := jobs.Owners(ctx, []string{invocationARN})
	if err == nil && len(owners) == 1 && owners[0] == d.App {
		return d
	}
	d.Allow, d.Rule = false, "async-ownership"
	if err != nil {
		d.Reason = fmt.Sprintf("warden: app %s may not read async invocation %s: its owner could not be checked (the job store did not answer)", d.App, invocationARN)
		return d
	}
	d.Reason = fmt.Sprintf("warden: app %s may not read async invocation %s: it was not started by this app through Warden (or Warden no longer remembers it)", d.App, invocationARN)
	return d
}

// Visible says which entries of a listing (ListAsyncInvokes' jobs, the
// agent runtime's ListSessions) app may see, by each entry's key in jobs:
// only those it started. An entry without a key, or whose owner the store
// does not know, is hidden (fail closed); a store that cannot answer hides
// the whole listing (the error).
func Visible(ctx context.Context, jobs JobStore, app string, keys []string) ([]bool, error) {
	owners, err := jobs.Owners(ctx, keys)
	if err != nil {
		return nil, err
	}
	if len(owners) != len(keys) {
		return nil, fmt.Errorf("job store answered %d owners for %d keys", len(owners), len(keys))
	}
	out := make([]bool, len(keys))
	for i, k := range keys {
		out[i] = k != "" && app != "" && owners[i] == app
	}
	return out, nil
}

// CheckBody applies the deciding app's own body limit: a limit, not an
// authorisation, so it holds in dry-run too, like the global one. It
// returns the rule and the error for the caller, or "" and nil.
func (d Decision) CheckBody(n int) (rule string, err error) {
	if d.MaxBodyBytes <= 0 || int64(n) <= d.MaxBodyBytes {
		return "", nil
	}
	return "app.limits.max_body_bytes", bedrock.Validation("warden: request body of %d bytes exceeds the limit of %d bytes for app %s (limits.max_body_bytes)",
		n, d.MaxBodyBytes, d.App)
}
