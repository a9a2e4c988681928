package bedrock

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// The OpenAI-compatible and Anthropic-native routes (reference §1, §10), on
// three hosts:
//
//	bedrock-runtime.REGION.amazonaws.com   POST /openai/v1/chat/completions, POST /openai/v1/responses
//	bedrock-mantle.REGION.api.aws          POST {/v1,/openai/v1}/chat/completions, POST {/v1,/openai/v1}/responses,
//	                                       POST /anthropic/v1/messages
//	bedrock.REGION.amazonaws.com           /anthropic/v1/{agents,sessions,memory_stores}/… (Anthropic's Bedrock-only APIs)
//
// Everything else on those prefixes is refused by name: stored responses
// (GET/DELETE /v1/responses/{id}) would let one app read another's
// conversation through Warden's single identity, and models, files,
// fine-tuning and batches are not inference.

// EndpointMantlePrefix is the path prefix under which Warden's endpoint
// listener serves bedrock-mantle: an OpenAI SDK's base URL is
// https://WARDEN/bedrock-mantle/v1 (or …/bedrock-mantle/openai/v1), an
// Anthropic SDK's https://WARDEN/bedrock-mantle/anthropic. The prefix is
// removed before forwarding.
const EndpointMantlePrefix = "/bedrock-mantle"

// ParseEndpointRoute classifies a request on Warden's endpoint listener,
// where one address serves every service:
//
//   - /bedrock-mantle/… is a bedrock-mantle route (the prefix removed);
//   - /v1/agents…, /v1/sessions… and /v1/memory_stores… are Anthropic's
//     Bedrock-only calls as Anthropic's Bedrock SDK sends them when its base
//     URL is set (ANTHROPIC_BEDROCK_BASE_URL): forwarded to
//     bedrock.REGION.amazonaws.com/anthropic/v1/…;
//   - everything else is a bedrock-runtime route (ParseRoute).
//
// Route.Path holds the upstream path when it differs from the one sent.
func ParseEndpointRoute(method, escapedPath, rawQuery string) (Route, error) {
	p := escapedPath
	if err := checkPath(p); err != nil {
		return Route{}, err
	}
	if rest, ok := strings.CutPrefix(p, EndpointMantlePrefix); ok && strings.HasPrefix(rest, "/") {
		r, err := routeMantle(method, rest, rawQuery)
		if err != nil {
			return Route{}, err
		}
		r.Path = rest
		return r, nil
	}
	if anthropicBedrockOnly(p) {
		up := "/anthropic" + p
		r, err := routeAnthropicBedrock(method, up, rawQuery)
		if err != nil {
			return Route{}, err
		}
		r.Path = up
		return r, nil
	}
	return ParseRoute(method, p, rawQuery)
}

// ParseServiceRoute classifies a request to a host of the given service, as
// an intercepted (forward-proxy or transparent) call names it: only that
// service's own paths, exactly as AWS serves them.
func ParseServiceRoute(svc Service, method, escapedPath, rawQuery string) (Route, error) {
	switch svc {
	case ServiceRuntime:
		return ParseRoute(method, escapedPath, rawQuery)
	case ServiceMantle:
		if err := checkPath(escapedPath); err != nil {
			return Route{}, err
		}
		return routeMantle(method, escapedPath, rawQuery)
	case ServiceBedrock:
		if err := checkPath(escapedPath); err != nil {
			return Route{}, err
		}
		return routeAnthropicBedrock(method, escapedPath, rawQuery)
	}
	return Route{}, AccessDenied("unknown operation: service %q is not one Warden routes", quoteTrunc(string(svc)))
}

// anthropicBedrockOnly reports an endpoint-mode path of Anthropic's
// Bedrock-only APIs (/v1/RESOURCE or /v1/RESOURCE/…).
func anthropicBedrockOnly(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v1/")
	if !ok {
		return false
	}
	res, _, _ := strings.Cut(rest, "/")
	_, ok = anthropicResources[res]
	return ok
}

// routeRuntimeOpenAI: bedrock-runtime's OpenAI-compatible API, whose only
// operations are the two creates (AWS: "Amazon Bedrock currently doesn't
// support the other OpenAI Chat completion API operations"; Responses there
// is synchronous and stateless).
func routeRuntimeOpenAI(method, p, rawQuery string) (Route, error) {
	var op Operation
	switch p {
	case "/openai/v1/chat/completions":
		op = OpOpenAIChatCompletions
	case "/openai/v1/responses":
		op = OpOpenAIResponses
	default:
		return Route{}, AccessDenied("unknown operation: %q %q: bedrock-runtime's OpenAI-compatible API serves only POST /openai/v1/chat/completions and POST /openai/v1/responses through Warden",
			quoteTrunc(method), quoteTrunc(p))
	}
	if method != "POST" {
		return Route{}, wrongMethod(method, p, op)
	}
	if err := noQuery(rawQuery, op); err != nil {
		return Route{}, err
	}
	return Route{Op: op}, nil
}

// mantleServed is what the refusals on bedrock-mantle say Warden serves.
const mantleServed = "Warden serves only POST /v1/chat/completions, POST /v1/responses (also under /openai/v1) and POST /anthropic/v1/messages there"

// routeMantle: bedrock-mantle's inference routes. The path prefix varies by
// model (most under /v1, some under /openai/v1; Anthropic's Messages API
// under /anthropic/v1), so both OpenAI prefixes are accepted and forwarded
// as sent.
func routeMantle(method, p, rawQuery string) (Route, error) {
	var prefix string
	switch {
	case strings.HasPrefix(p, "/anthropic/v1/"):
		prefix = "/anthropic/v1"
	case strings.HasPrefix(p, "/openai/v1/"):
		prefix = "/openai/v1"
	case strings.HasPrefix(p, "/v1/"):
		prefix = "/v1"
	default:
		return Route{}, AccessDenied("unknown operation: %q %q is not a bedrock-mantle route (its prefixes are /v1, /openai/v1 and /anthropic/v1); %s",
			quoteTrunc(method), quoteTrunc(p), mantleServed)
	}
	rest := p[len(prefix):]
	var op Operation
	switch {
	case prefix != "/anthropic/v1" && rest == "/chat/completions":
		op = OpMantleChatCompletions
	case prefix != "/anthropic/v1" && rest == "/responses":
		op = OpMantleResponses
	case prefix == "/anthropic/v1" && rest == "/messages":
		op = OpMantleMessages
	default:
		name := mantleRefusedName(method, prefix, rest)
		if name != "" {
			name = " (" + name + ")"
		}
		return Route{}, AccessDenied("unknown operation: bedrock-mantle %q %q%s is not served through Warden; %s",
			quoteTrunc(method), quoteTrunc(p), name, mantleServed)
	}
	if method != "POST" {
		return Route{}, wrongMethod(method, p, op)
	}
	// Anthropic's SDKs mark beta calls with ?beta=true; nothing else takes a query.
	if !(op == OpMantleMessages && rawQuery == "beta=true") {
		if err := noQuery(rawQuery, op); err != nil {
			return Route{}, err
		}
	}
	return Route{Op: op, Service: ServiceMantle}, nil
}

// mantleRefusedName names the bedrock-mantle calls Warden knows and refuses
// (AWS's CloudTrail event names where it has them), so the refusal says
// what was asked for; "" for anything else.
func mantleRefusedName(method, prefix, rest string) string {
	if prefix == "/anthropic/v1" {
		switch {
		case rest == "/messages/count_tokens":
			return "Anthropic CountTokens"
		case rest == "/messages/batches" || strings.HasPrefix(rest, "/messages/batches/"):
			return "Anthropic Message Batches"
		case rest == "/models" || strings.HasPrefix(rest, "/models/"):
			return "Anthropic Models"
		}
		return ""
	}
	seg := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	switch seg[0] {
	case "models":
		if len(seg) == 1 {
			return "ListModels"
		}
		return "GetModel"
	case "responses":
		switch {
		case len(seg) == 2 && method == "GET":
			return "GetResponse: a stored response"
		case len(seg) == 2 && method == "DELETE":
			return "DeleteResponse: a stored response"
		case len(seg) == 3 && seg[2] == "cancel":
			return "CancelResponse: a background response"
		case len(seg) == 3 && seg[2] == "input_items":
			return "ListInputItems: a stored response"
		case len(seg) == 2 && seg[1] == "compact", len(seg) == 2 && seg[1] == "input_tokens":
			return "a Responses utility"
		}
		return "a stored response"
	case "chat":
		return "stored chat completions"
	case "fine_tuning":
		return "fine-tuning"
	case "files":
		return "files"
	case "batches":
		return "batches"
	case "embeddings":
		return "embeddings"
	case "conversations":
		return "conversations"
	}
	return ""
}

// anthropicShape is one path shape of Anthropic's Bedrock-only APIs, below
// /anthropic/v1/: literal segments, and "*" for an id.
type anthropicShape struct {
	pattern string
	methods string // space-separated
}

// anthropicResources maps each Bedrock-only resource to its operation and
// the shapes Anthropic's SDK sends (@anthropic-ai/sdk
// resources/beta/bedrock, 1.17). A shape not listed is refused by name.
var anthropicResources = map[string]struct {
	op     Operation
	shapes []anthropicShape
}{
	"agents": {OpAnthropicAgents, []anthropicShape{
		{"", "GET POST"}, {"*", "GET POST"}, {"*/archive", "POST"}, {"*/versions", "GET"},
	}},
	"sessions": {OpAnthropicSessions, []anthropicShape{
		{"", "GET POST"}, {"*", "GET POST DELETE"}, {"*/archive", "POST"},
		{"*/events", "GET POST"}, {"*/events/stream", "GET"},
		{"*/threads", "GET"}, {"*/threads/*", "GET"}, {"*/threads/*/archive", "POST"},
		{"*/threads/*/events", "GET"}, {"*/threads/*/stream", "GET"},
	}},
	"memory_stores": {OpAnthropicMemoryStores, []anthropicShape{
		{"", "GET POST"}, {"*", "GET POST DELETE"}, {"*/archive", "POST"},
		{"*/memory_versions", "GET"}, {"*/memory_versions/*", "GET"}, {"*/memory_versions/*/redact", "POST"},
		{"*/memories", "GET POST"}, {"*/memories/*", "GET POST DELETE"},
	}},
}

// routeAnthropicBedrock: Anthropic's Bedrock-only APIs on
// bedrock.REGION.amazonaws.com. AWS serves nothing outside /anthropic/v1/
// there for them; the rest of that host is Bedrock's control plane, which
// Warden does not route.
func routeAnthropicBedrock(method, p, rawQuery string) (Route, error) {
	rest, ok := strings.CutPrefix(p, "/anthropic/v1/")
	if !ok {
		return Route{}, AccessDenied("unknown operation: %q %q: on bedrock.REGION.amazonaws.com Warden routes only Anthropic's Bedrock-only APIs under /anthropic/v1/ (agents, sessions, memory_stores)",
			quoteTrunc(method), quoteTrunc(p))
	}
	res, sub, _ := strings.Cut(rest, "/")
	r, ok := anthropicResources[res]
	if !ok {
		return Route{}, AccessDenied("unknown operation: %q %q: Anthropic's Bedrock-only resource %q is not one Warden classifies (agents, sessions, memory_stores)",
			quoteTrunc(method), quoteTrunc(p), quoteTrunc(res))
	}
	var shape *anthropicShape
	for i := range r.shapes {
		if matchShape(r.shapes[i].pattern, sub) {
			shape = &r.shapes[i]
			break
		}
	}
	if shape == nil {
		return Route{}, AccessDenied("unknown operation: %q %q is not a shape of Anthropic's %s API Warden knows", quoteTrunc(method), quoteTrunc(p), res)
	}
	if !hasWord(shape.methods, method) {
		return Route{}, wrongMethod(method, p, r.op)
	}
	if err := checkGenericQuery(rawQuery, r.op); err != nil {
		return Route{}, err
	}
	return Route{Op: r.op, Service: ServiceBedrock}, nil
}

// matchShape matches the path below a resource against a pattern; each id
// is [A-Za-z0-9_-]{1,128} (no dots, escapes or colons: ids are opaque
// tokens, and nothing else needs to pass).
func matchShape(pattern, sub string) bool {
	if pattern == "" || sub == "" {
		return pattern == sub
	}
	ps, ss := strings.Split(pattern, "/"), strings.Split(sub, "/")
	if len(ps) != len(ss) {
		return false
	}
	for i, p := range ps {
		if p == "*" {
			if !validOpaqueID(ss[i]) {
				return false
			}
		} else if p != ss[i] {
			return false
		}
	}
	return true
}

func validOpaqueID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func hasWord(list, w string) bool {
	for f := range strings.FieldsSeq(list) {
		if f == w {
			return true
		}
	}
	return false
}

// checkGenericQuery accepts list parameters (limit, after_id, …): keys
// [a-z0-9_]+, optionally with a trailing "[]" (only those may repeat), values
// with valid escapes that decode to valid UTF-8 without control characters.
func checkGenericQuery(q string, op Operation) error {
	if q == "" {
		return nil
	}
	if len(q) > MaxPathLen {
		return Validation("query string is longer than %d bytes", MaxPathLen)
	}
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(q, "&") {
		rk, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(rk) // "types%5B%5D" is "types[]"
		if err != nil {
			return Validation("query parameter %q in %q has an invalid escape", quoteTrunc(rk), quoteTrunc(q))
		}
		base, array := strings.CutSuffix(k, "[]")
		if base == "" || len(base) > 64 || strings.IndexFunc(base, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') }) >= 0 {
			return Validation("query parameter %q in %q is not a parameter name %s takes", quoteTrunc(k), quoteTrunc(q), op)
		}
		if seen[k] && !array {
			return Validation("repeated query parameter %q in %q", k, quoteTrunc(q))
		}
		seen[k] = true
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c >= 0x7f || c == ';' || c == '#' {
				return Validation("query parameter %q has the forbidden character %q", k, string(rune(c)))
			}
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return Validation("query parameter %q has an invalid escape: %q", k, quoteTrunc(v))
		}
		if hasControl(dv) || !utf8.ValidString(dv) {
			return Validation("query parameter %q decodes to a control character or invalid UTF-8", k)
		}
	}
	return nil
}

// BodyStreams reports whether a compat body (Operation.BodyModel) asks for
// a streamed answer: its top-level "stream" is true. A body that is not one
// JSON object reports false (the caps refuse it before it is forwarded).
func BodyStreams(body []byte) bool {
	members, _, err := ScanObject(body)
	if err != nil {
		return false
	}
	for _, m := range members {
		if m.Key == "stream" && string(body[m.ValueStart:m.ValueEnd]) == "true" {
			return true
		}
	}
	return false
}
