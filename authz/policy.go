package authz

import (
	"fmt"
	"strings"

	"github.com/warden-egress/warden/bedrock"
)

// policyOperations are the operations an app can be allowed. The
// bidirectional stream is absent on purpose: Warden cannot inspect its
// per-frame-signed body yet, so it is denied whatever the policy says.
var policyOperations = [...]bedrock.Operation{
	bedrock.OpInvokeModel, bedrock.OpInvokeModelWithResponseStream,
	bedrock.OpConverse, bedrock.OpConverseStream, bedrock.OpCountTokens,
	bedrock.OpApplyGuardrail, bedrock.OpInvokeGuardrailChecks,
	bedrock.OpStartAsyncInvoke, bedrock.OpGetAsyncInvoke, bedrock.OpListAsyncInvokes,
}

func knownOperation(name string) bool {
	for _, op := range policyOperations {
		if string(op) == name {
			return true
		}
	}
	return false
}

// Decision is the policy's answer for one call.
type Decision struct {
	Allow  bool
	App    string // "" when no app matched
	Rule   string // which part of the policy decided, e.g. "apps[0].allow.models"
	Reason string // a sentence safe to show the caller
}

// Call is what the policy looks at. Decide does no I/O: everything it needs
// is resolved by the caller first.
type Call struct {
	Op    bedrock.Operation
	Model *bedrock.ModelID // nil for operations without a model
	// Foundations are the foundation model ids behind an indirect model id
	// (application inference profile, provisioned or custom model, prompt,
	// prompt router …), resolved through the Bedrock control plane by the
	// caller; Resolved says the resolution was done (an indirect id that was
	// not resolved is denied).
	Foundations []string
	Resolved    bool
	// S3OutputURI is StartAsyncInvoke's outputDataConfig.s3OutputDataConfig.s3Uri.
	S3OutputURI string
}

// Policy is an immutable, compiled set of apps. Decide is pure and lock-free.
type Policy struct{ apps []app }

type app struct {
	name   string
	index  int
	match  map[string]string
	models []string
	ops    map[bedrock.Operation]bool
	allOps bool
}

// NewPolicy compiles the apps of a validated config.
func NewPolicy(apps []AppConfig) (*Policy, error) {
	p := &Policy{}
	for i, a := range apps {
		c := app{name: a.Name, index: i, match: a.Match.Tags, models: a.Allow.Models, ops: map[bedrock.Operation]bool{}}
		for _, op := range a.Allow.Operations {
			if op == "*" {
				c.allOps = true
				continue
			}
			if !knownOperation(op) {
				return nil, fmt.Errorf("app %q: unknown operation %q", a.Name, op)
			}
			c.ops[bedrock.Operation(op)] = true
		}
		for _, m := range a.Allow.Models {
			if err := validateGlob(m); err != nil {
				return nil, fmt.Errorf("app %q: allow.models %q: %w", a.Name, m, err)
			}
		}
		p.apps = append(p.apps, c)
	}
	return p, nil
}

// Match returns the app selecting id: the first app, in file order, all of
// whose match tags the identity carries with equal values.
func (p *Policy) Match(id Identity) (string, int) {
	for _, a := range p.apps {
		if a.selects(id) {
			return a.name, a.index
		}
	}
	return "", -1
}

func (a *app) selects(id Identity) bool {
	for k, v := range a.match {
		t, ok := id.Tags[k]
		if !ok || t.Value != v {
			return false
		}
	}
	return true
}

// Decide answers whether id may make call. Default deny.
func (p *Policy) Decide(id Identity, call Call) Decision {
	model := "-"
	if call.Model != nil {
		model = call.Model.Raw
	}
	if call.Op == bedrock.OpInvokeModelWithBidirectionalStream {
		return Decision{Rule: "unsupported-operation", Reason: fmt.Sprintf(
			"warden: operation %s on model %s is not supported by Warden yet (its per-frame signed body cannot be inspected)", call.Op, model)}
	}
	for i := range p.apps {
		a := &p.apps[i]
		if !a.selects(id) {
			continue
		}
		if !a.allOps && !a.ops[call.Op] {
			return Decision{App: a.name, Rule: fmt.Sprintf("apps[%d].allow.operations", a.index), Reason: fmt.Sprintf(
				"warden: app %s may not call operation %s (model %s): operation not in allow.operations", a.name, call.Op, model)}
		}
		if call.Model != nil && !a.allowsModel(call.Model) {
			return Decision{App: a.name, Rule: fmt.Sprintf("apps[%d].allow.models", a.index), Reason: fmt.Sprintf(
				"warden: app %s may not call operation %s on model %s: model not in allow.models", a.name, call.Op, model)}
		}
		return Decision{Allow: true, App: a.name, Rule: fmt.Sprintf("apps[%d]", a.index), Reason: "allowed"}
	}
	return Decision{Rule: "default-deny", Reason: fmt.Sprintf(
		"warden: no app matches this workload for operation %s on model %s", call.Op, model)}
}

func (a *app) allowsModel(m *bedrock.ModelID) bool {
	for _, g := range a.models {
		if Glob(g, m.Canonical) {
			return true
		}
	}
	return false
}

func validateGlob(g string) error {
	if g == "" {
		return fmt.Errorf("empty pattern")
	}
	if strings.ContainsAny(g, "[]{}\\") {
		return fmt.Errorf("only * and ? are supported in patterns")
	}
	for _, r := range g {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character in pattern")
		}
	}
	return nil
}

// Glob matches s against a pattern where * is any run of characters
// (including ':' and '/', which canonical ids contain) and ? is one character.
func Glob(pattern, s string) bool {
	// Iterative matcher with single-star backtracking: linear in practice, no recursion.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
