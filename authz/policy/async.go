package policy

import (
	"fmt"
	"sync"

	"github.com/warden-egress/warden/bedrock"
)

// maxAsyncJobs bounds the ARNs remembered (about 150 bytes each).
const maxAsyncJobs = 100_000

// AsyncJobs maps invocation ARNs to the app that started them: an app may
// read only its own asynchronous jobs. The store is in memory, per Warden
// instance and bounded (past its limit the oldest ARNs are forgotten, and a
// forgotten ARN is denied like a foreign one: fail closed). The zero value
// is ready to use.
type AsyncJobs struct {
	mu    sync.Mutex
	owner map[string]string
	order []string // ring of ARNs in insertion order, for eviction
	next  int
	limit int // 0 = maxAsyncJobs
}

// Remember records that app started arn. The first owner wins: a second app
// replaying another's clientRequestToken gets the same ARN back from
// Bedrock, but not access to it.
func (o *AsyncJobs) Remember(arn, app string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.owner[arn]; ok {
		return
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
// deciding app did not start through this instance.
func (o *AsyncJobs) CheckAsyncOwner(d Decision, op bedrock.Operation, invocationARN string) Decision {
	if !d.Allow || op != bedrock.OpGetAsyncInvoke || o.Owns(invocationARN, d.App) {
		return d
	}
	d.Allow, d.Rule = false, "async-ownership"
	d.Reason = fmt.Sprintf("warden: app %s may not read async invocation %s: it was not started by this app through this Warden instance", d.App, invocationARN)
	return d
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
