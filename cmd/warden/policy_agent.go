package main

import (
	"fmt"
	"strings"

	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
)

// agentCall builds what the proxy would hand the policy for an
// agent-runtime request: its route from method and path (with the query
// after '?'), the facts of its JSON body, and its models classified, each
// indirect one resolved to foundations when given. op must be the
// operation the path names.
func agentCall(op, method, path, body string, foundations, regions []string) (*policy.AgentCall, error) {
	if path == "" {
		return nil, fmt.Errorf("%s is an agent-runtime operation: give its request path (and body)", op)
	}
	if method == "" {
		method = "POST"
	}
	p, q, _ := strings.Cut(path, "?")
	r, err := bedrock.ParseAgentRoute(strings.ToUpper(method), p, q)
	if err != nil {
		return nil, fmt.Errorf("path: %v", err)
	}
	if string(r.Op) != op {
		return nil, fmt.Errorf("path: %s %s is %s, not %s", method, path, r.Op, op)
	}
	f, err := bedrock.AgentRequestFacts(r.Op, []byte(body))
	if err != nil {
		return nil, fmt.Errorf("body: %v", err)
	}
	ac := &policy.AgentCall{Route: r, Facts: f, Models: policy.AgentModels(&f)}
	for i := range ac.Models {
		if m := &ac.Models[i]; m.ID != nil && m.ID.Indirect() && foundations != nil {
			m.Foundations, m.Regions, m.Resolved = foundations, regions, true
		}
	}
	return ac, nil
}
