package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/warden-egress/warden/bedrock"
)

// Async invocations are per app: Warden remembers which invocation ARNs each
// app started (from StartAsyncInvoke's 200 response), answers GetAsyncInvoke
// only for the app's own ARNs and filters ListAsyncInvokes down to them.
//
// The store is in memory and per Warden instance: a job started through one
// replica is unknown to another (GetAsyncInvoke there is denied, List does
// not show it), and a restart forgets every job. A fleet behind a load
// balancer needs a shared store (DynamoDB, Redis) in its place; the
// policy.AsyncJobs methods are the seam for it.
//
// The store is bounded: past maxAsyncJobs the oldest ARNs are forgotten,
// and a forgotten ARN is denied like a foreign one (fail closed).

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
			s.async.Remember(out.InvocationArn, c.rec.App)
		}
	case bedrock.OpListAsyncInvokes:
		filtered, err := s.filterAsyncList(body, c.rec.App)
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
func (s *Server) filterAsyncList(body []byte, app string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	var sums []json.RawMessage
	if raw, ok := top["asyncInvokeSummaries"]; ok && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &sums); err != nil {
			return nil, fmt.Errorf("asyncInvokeSummaries: %w", err)
		}
	}
	kept := make([]json.RawMessage, 0, len(sums))
	for _, raw := range sums {
		var sum struct {
			InvocationArn string `json:"invocationArn"`
		}
		if err := json.Unmarshal(raw, &sum); err != nil {
			return nil, fmt.Errorf("summary: %w", err)
		}
		if sum.InvocationArn != "" && s.async.Owns(sum.InvocationArn, app) {
			kept = append(kept, raw)
		}
	}
	k, err := json.Marshal(kept)
	if err != nil {
		return nil, err
	}
	top["asyncInvokeSummaries"] = k
	return json.Marshal(top)
}
