package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

// Async invocations are per app: Warden remembers which invocation ARNs each
// app started (from StartAsyncInvoke's 200 response), answers GetAsyncInvoke
// only for the app's own ARNs and filters ListAsyncInvokes down to them.
//
// The store (policy.JobStore) is the budget store's: with budgets.store:
// redis every replica shares it, so any replica answers for a job another
// started; in memory it is per Warden instance (a job started through one
// replica is unknown to another, and a restart forgets every job) and
// bounded (past 100,000 ARNs the oldest are forgotten, and a forgotten ARN
// is denied like a foreign one: fail closed). A store that cannot answer
// denies GetAsyncInvoke and fails ListAsyncInvokes.

// maxAsyncResponse bounds the Start/List response Warden reads to inspect
// (a full ListAsyncInvokes page of 1,000 summaries is well under 1 MiB).
const maxAsyncResponse = 8 << 20

// relayAsync relays a successful StartAsyncInvoke (remembering the ARN it
// returns) or ListAsyncInvokes (keeping only the app's own jobs) response.
func (s *Server) relayAsync(w http.ResponseWriter, c *call, resp *http.Response) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAsyncResponse+1))
	if err != nil || len(body) > maxAsyncResponse {
		s.fail(w, c, bedrock.ServiceUnavailable("warden: reading the upstream %s response failed", c.route.Op), "upstream")
		return
	}
	switch c.route.Op {
	case bedrock.OpStartAsyncInvoke:
		var out struct {
			InvocationArn string `json:"invocationArn"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.InvocationArn == "" {
			// The job may exist but nobody can read it through Warden: say so.
			s.log.Warn("StartAsyncInvoke response without an invocationArn", zapReq(c.requestID))
		} else {
			if err := s.async.Remember(resp.Request.Context(), out.InvocationArn, c.rec.App); err != nil {
				// The job runs, but no replica will let the app read it.
				s.log.Warn("remembering an async invocation's owner failed", zapErr(err), zapReq(c.requestID))
			}
		}
	case bedrock.OpListAsyncInvokes:
		filtered, err := s.filterAsyncList(resp.Request.Context(), body, c.rec.App)
		if err != nil {
			s.log.Warn("filtering ListAsyncInvokes", zapErr(err), zapReq(c.requestID))
			s.fail(w, c, bedrock.InternalServer("warden: the upstream ListAsyncInvokes response could not be filtered to the app's jobs"), "upstream")
			return
		}
		body = filtered
	}
	h := w.Header()
	copyResponseHeader(h, resp.Header)
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(resp.StatusCode)
	n, _ := w.Write(body)
	c.rec.BytesOut = int64(n)
}

// filterAsyncList drops the summaries of jobs app did not start, keeping
// every other member (nextToken) as sent. A page may come back short or
// empty with a nextToken: the client pages on as usual.
func (s *Server) filterAsyncList(ctx context.Context, body []byte, app string) ([]byte, error) {
	return s.filterOwned(ctx, body, app, "asyncInvokeSummaries", func(raw json.RawMessage) (string, error) {
		var sum struct {
			InvocationArn string `json:"invocationArn"`
		}
		err := json.Unmarshal(raw, &sum)
		return sum.InvocationArn, err
	})
}

// filterOwned keeps, of the list body[member], the entries whose store key
// (keyOf; "" for none) app owns in the job store, and every other member
// of body as sent. Async jobs and agent sessions are listed this way.
func (s *Server) filterOwned(ctx context.Context, body []byte, app, member string, keyOf func(json.RawMessage) (string, error)) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	var entries []json.RawMessage
	if raw, ok := top[member]; ok && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, fmt.Errorf("%s: %w", member, err)
		}
	}
	keys := make([]string, len(entries))
	for i, raw := range entries {
		k, err := keyOf(raw)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", member, i, err)
		}
		keys[i] = k
	}
	visible, err := policy.Visible(ctx, s.async, app, keys) // the policy decides what the app sees
	if err != nil {
		return nil, err
	}
	kept := make([]json.RawMessage, 0, len(entries))
	for i, raw := range entries {
		if visible[i] {
			kept = append(kept, raw)
		}
	}
	k, err := json.Marshal(kept)
	if err != nil {
		return nil, err
	}
	top[member] = k
	return json.Marshal(top)
}
