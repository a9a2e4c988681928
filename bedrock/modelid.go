package bedrock

import (
	"strconv"
	"strings"
)

// MaxModelIDLen is the API's length bound for a model identifier.
const MaxModelIDLen = 2048

// isScope reports whether s is a geography prefix of a system-defined
// inference profile. us, eu, apac, us-gov, jp, au and global are in the
// reference; "ca" is used by client code in the wild (Canada) but is not in
// the reference, so it is accepted as a scope rather than misread as a
// provider. Anything else with a scope-like prefix is rejected, not guessed.
func isScope(s string) bool {
	switch s {
	case "us", "eu", "apac", "us-gov", "jp", "au", "global", "ca":
		return true
	}
	return false
}

// ParseModelID classifies a model identifier (already percent-decoded once).
// Unknown or malformed forms return a *APIError ValidationException.
//
// Accepted forms (strict; anything else is rejected):
//   - bare foundation model: PROVIDER.NAME with up to two ":suffix" parts,
//     each part [a-z0-9-]{1,63} ("anthropic.claude-3-sonnet-20240229-v1:0:200k")
//   - bare system inference profile: SCOPE.FOUNDATION ("us.amazon.nova-lite-v1:0")
//   - arn:{aws|aws-us-gov|aws-cn}:bedrock:REGION::foundation-model/FOUNDATION
//   - arn:…:bedrock:REGION:ACCOUNT:inference-profile/SCOPE.FOUNDATION
//   - arn:…:bedrock:REGION:ACCOUNT:{application-inference-profile|provisioned-model|
//     imported-model|custom-model-deployment}/[a-z0-9]{12}
//   - arn:…:bedrock:REGION:ACCOUNT:custom-model/FOUNDATION/[a-z0-9]{12}
//   - arn:…:bedrock:REGION:ACCOUNT:prompt/[0-9a-zA-Z]{10}[:VERSION]
//   - arn:…:bedrock:REGION:ACCOUNT:{prompt-router|default-prompt-router}/[A-Za-z0-9.:-]+
//   - arn:…:sagemaker:REGION:ACCOUNT:endpoint/NAME
//
// Bare ids with more than one dot whose first label is not a known scope are
// rejected: no foundation model id has two dots today, so such an id is more
// likely an unknown profile scope than a model, and guessing would misfile it.
func ParseModelID(s string) (ModelID, error) {
	if s == "" {
		return ModelID{}, Validation("model identifier is empty")
	}
	if len(s) > MaxModelIDLen {
		return ModelID{}, badModel(s, "longer than 2048 bytes")
	}
	if strings.HasPrefix(s, "arn:") {
		return parseModelARN(s)
	}
	m := ModelID{Raw: s, Resource: s, Canonical: s}
	if scope, rest, ok := cutScope(s); ok {
		if !validFoundation(rest) {
			return ModelID{}, badModel(s, "inference profile "+scope+". is not followed by a foundation model id")
		}
		m.Kind, m.Scope, m.Foundation = KindInferenceProfile, scope, rest
		return m, nil
	}
	if !validFoundation(s) {
		return ModelID{}, badModel(s, "not a foundation model id, inference profile id or ARN")
	}
	m.Kind, m.Foundation = KindFoundationModel, s
	return m, nil
}

// Indirect reports whether the identifier hides its foundation model, which
// then has to be resolved through the control plane before policy matches.
func (m ModelID) Indirect() bool { return m.Foundation == "" }

// IsARN reports whether the identifier was given as an ARN.
func (m ModelID) IsARN() bool { return m.Partition != "" }

// String returns the canonical form.
func (m ModelID) String() string { return m.Canonical }

func badModel(s, why string) *APIError {
	return Validation("invalid model identifier %q: %s", quoteTrunc(s), why)
}

// quoteTrunc shortens an input for inclusion in a message; %q does the quoting.
func quoteTrunc(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// cutScope splits a system inference profile id into its scope and the rest.
func cutScope(s string) (scope, rest string, ok bool) {
	scope, rest, ok = strings.Cut(s, ".")
	if !ok || !isScope(scope) {
		return "", "", false
	}
	return scope, rest, true
}

// validFoundation checks PROVIDER.NAME(:PART){0,2}, every label [a-z0-9-]{1,63}
// (the API's BedrockModelId pattern, restricted to a single dot).
func validFoundation(s string) bool {
	base, suffix, hasSuffix := strings.Cut(s, ":")
	provider, name, ok := strings.Cut(base, ".")
	if !ok || !validLabel(provider) || !validLabel(name) {
		return false
	}
	if !hasSuffix {
		return true
	}
	p1, p2, two := strings.Cut(suffix, ":")
	if !validLabel(p1) {
		return false
	}
	return !two || validLabel(p2)
}

// validLabel: [a-z0-9-]{1,63}.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isLowerAlnum(c) || c == '-') {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

// validShortID: [a-z0-9]{12}, the id of provisioned, imported and custom
// models, deployments and application inference profiles.
func validShortID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerAlnum(s[i]) {
			return false
		}
	}
	return true
}

// arn holds the parts of an ARN; Resource is everything after the fifth ':'.
type arn struct {
	Partition, Service, Region, Account, Resource string
}

// parseARN splits and checks the partition, region syntax and account form
// (12 digits or empty); the caller decides whether an empty account is allowed.
func parseARN(s string) (arn, string) {
	rest, ok := strings.CutPrefix(s, "arn:")
	if !ok {
		return arn{}, "not an ARN"
	}
	var a arn
	var ok1, ok2, ok3, ok4 bool
	a.Partition, rest, ok1 = strings.Cut(rest, ":")
	a.Service, rest, ok2 = strings.Cut(rest, ":")
	a.Region, rest, ok3 = strings.Cut(rest, ":")
	a.Account, a.Resource, ok4 = strings.Cut(rest, ":")
	if !(ok1 && ok2 && ok3 && ok4) {
		return arn{}, "ARN has fewer than six parts"
	}
	switch a.Partition {
	case "aws", "aws-us-gov", "aws-cn":
	default:
		return arn{}, "unknown partition " + quote(a.Partition)
	}
	if !validRegion(a.Partition, a.Region) {
		return arn{}, "region " + quote(a.Region) + " is not a region of partition " + a.Partition
	}
	if a.Account != "" && !validAccount(a.Account) {
		return arn{}, "account " + quote(a.Account) + " is not 12 digits"
	}
	return a, ""
}

func quote(s string) string { return strconv.Quote(quoteTrunc(s)) }

// validRegion checks the region syntax and that it belongs to the partition.
func validRegion(partition, r string) bool {
	p, ok := RegionPartition(r)
	return ok && p == partition
}

func validAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parseModelARN(s string) (ModelID, error) {
	a, why := parseARN(s)
	if why != "" {
		return ModelID{}, badModel(s, why)
	}
	kind, id, ok := strings.Cut(a.Resource, "/")
	if !ok || id == "" {
		return ModelID{}, badModel(s, "ARN resource is not KIND/ID")
	}
	m := ModelID{
		Raw: s, Partition: a.Partition, Region: a.Region, Account: a.Account,
		Resource: id, Canonical: s,
	}
	if a.Service == "sagemaker" {
		if kind != "endpoint" {
			return ModelID{}, badModel(s, "unsupported SageMaker resource "+quote(kind))
		}
		if a.Account == "" || !validEndpointName(id) {
			return ModelID{}, badModel(s, "malformed SageMaker endpoint ARN")
		}
		m.Kind = KindSageMakerEndpoint
		return m, nil
	}
	if a.Service != "bedrock" {
		return ModelID{}, badModel(s, "unsupported ARN service "+quote(a.Service))
	}
	if kind == "foundation-model" {
		// Foundation-model ARNs are AWS-owned: an account there is a forgery.
		if a.Account != "" {
			return ModelID{}, badModel(s, "a foundation-model ARN has an empty account")
		}
		if !validFoundation(id) {
			return ModelID{}, badModel(s, "malformed foundation model id")
		}
		m.Kind, m.Foundation, m.Canonical = KindFoundationModel, id, id
		return m, nil
	}
	if a.Account == "" {
		return ModelID{}, badModel(s, "missing account")
	}
	valid := false
	switch kind {
	case "inference-profile":
		if scope, rest, ok := cutScope(id); ok && validFoundation(rest) {
			m.Kind, m.Scope, m.Foundation, m.Canonical = KindInferenceProfile, scope, rest, id
			return m, nil
		}
	case "application-inference-profile":
		m.Kind, valid = KindApplicationInferenceProfile, validShortID(id)
	case "provisioned-model":
		m.Kind, valid = KindProvisionedModel, validShortID(id)
	case "imported-model":
		m.Kind, valid = KindImportedModel, validShortID(id)
	case "custom-model-deployment":
		m.Kind, valid = KindCustomModelDeployment, validShortID(id)
	case "custom-model":
		base, suffix, ok := strings.Cut(id, "/")
		m.Kind, valid = KindCustomModel, ok && validFoundation(base) && validShortID(suffix)
	case "prompt":
		m.Kind, valid = KindPrompt, validPrompt(id)
	case "prompt-router":
		m.Kind, valid = KindPromptRouter, validRouterID(id)
	case "default-prompt-router":
		m.Kind, valid = KindDefaultPromptRouter, validRouterID(id)
	default:
		return ModelID{}, badModel(s, "unsupported Bedrock resource type "+quote(kind))
	}
	if !valid {
		return ModelID{}, badModel(s, "malformed "+kind+" id")
	}
	return m, nil
}

// Repointable reports whether the id names something its owner can change
// after Warden resolved it, so that what runs is not what Warden checked: a
// prompt without a version runs the prompt's DRAFT, which anyone with
// bedrock:UpdatePrompt can re-point to another model at any time. A numbered
// prompt version (prompt/ID:N) is immutable. (Agent and flow aliases, which
// their owner can re-point too, are not model ids the runtime routes.)
func (m ModelID) Repointable() bool {
	return m.Kind == KindPrompt && !strings.Contains(m.Resource, ":")
}

// validPrompt: [0-9a-zA-Z]{10} with an optional :VERSION of 1-5 digits.
func validPrompt(s string) bool {
	id, ver, hasVer := strings.Cut(s, ":")
	if len(id) != 10 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return false
		}
	}
	if !hasVer {
		return true
	}
	if len(ver) < 1 || len(ver) > 5 {
		return false
	}
	for i := 0; i < len(ver); i++ {
		if ver[i] < '0' || ver[i] > '9' {
			return false
		}
	}
	return true
}

// validRouterID: the API's [a-zA-Z0-9-:.]+ (e.g. "anthropic.claude:1"),
// bounded, starting with an alphanumeric.
func validRouterID(s string) bool {
	if len(s) == 0 || len(s) > 256 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlnum(c) || c == '-' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}

// validEndpointName: SageMaker's [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}.
func validEndpointName(s string) bool {
	if len(s) == 0 || len(s) > 63 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(isAlnum(s[i]) || s[i] == '-') {
			return false
		}
	}
	return true
}
