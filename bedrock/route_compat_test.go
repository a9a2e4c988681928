package bedrock

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRouteCompat(t *testing.T) {
	type in struct{ svc, method, path, query string }
	const endpoint = "endpoint"
	tests := []struct {
		in   in
		want Route
	}{
		// bedrock-runtime's OpenAI-compatible API, on the real host and on Warden's endpoint.
		{in{"bedrock-runtime", "POST", "/openai/v1/chat/completions", ""}, Route{Op: OpOpenAIChatCompletions}},
		{in{"bedrock-runtime", "POST", "/openai/v1/responses", ""}, Route{Op: OpOpenAIResponses}},
		{in{endpoint, "POST", "/openai/v1/chat/completions", ""}, Route{Op: OpOpenAIChatCompletions}},
		{in{endpoint, "POST", "/openai/v1/responses", ""}, Route{Op: OpOpenAIResponses}},
		// bedrock-mantle: both OpenAI prefixes, and Anthropic's Messages API.
		{in{"bedrock-mantle", "POST", "/v1/chat/completions", ""}, Route{Op: OpMantleChatCompletions, Service: ServiceMantle}},
		{in{"bedrock-mantle", "POST", "/openai/v1/chat/completions", ""}, Route{Op: OpMantleChatCompletions, Service: ServiceMantle}},
		{in{"bedrock-mantle", "POST", "/v1/responses", ""}, Route{Op: OpMantleResponses, Service: ServiceMantle}},
		{in{"bedrock-mantle", "POST", "/openai/v1/responses", ""}, Route{Op: OpMantleResponses, Service: ServiceMantle}},
		{in{"bedrock-mantle", "POST", "/anthropic/v1/messages", ""}, Route{Op: OpMantleMessages, Service: ServiceMantle}},
		{in{"bedrock-mantle", "POST", "/anthropic/v1/messages", "beta=true"}, Route{Op: OpMantleMessages, Service: ServiceMantle}},
		{in{endpoint, "POST", "/bedrock-mantle/v1/chat/completions", ""}, Route{Op: OpMantleChatCompletions, Service: ServiceMantle, Path: "/v1/chat/completions"}},
		{in{endpoint, "POST", "/bedrock-mantle/openai/v1/responses", ""}, Route{Op: OpMantleResponses, Service: ServiceMantle, Path: "/openai/v1/responses"}},
		{in{endpoint, "POST", "/bedrock-mantle/anthropic/v1/messages", "beta=true"}, Route{Op: OpMantleMessages, Service: ServiceMantle, Path: "/anthropic/v1/messages"}},
		// Anthropic's Bedrock-only APIs: the real host's paths, and the SDK's with its base URL set.
		{in{"bedrock", "POST", "/anthropic/v1/agents", ""}, Route{Op: OpAnthropicAgents, Service: ServiceBedrock}},
		{in{"bedrock", "GET", "/anthropic/v1/agents", "limit=20&after_id=agent_01"}, Route{Op: OpAnthropicAgents, Service: ServiceBedrock}},
		{in{"bedrock", "GET", "/anthropic/v1/agents/agent_011CZ/versions", ""}, Route{Op: OpAnthropicAgents, Service: ServiceBedrock}},
		{in{"bedrock", "POST", "/anthropic/v1/sessions/sesn_01/events", ""}, Route{Op: OpAnthropicSessions, Service: ServiceBedrock}},
		{in{"bedrock", "GET", "/anthropic/v1/sessions/sesn_01/threads/th-2/stream", ""}, Route{Op: OpAnthropicSessions, Service: ServiceBedrock}},
		{in{"bedrock", "DELETE", "/anthropic/v1/memory_stores/ms_1/memories/m_2", ""}, Route{Op: OpAnthropicMemoryStores, Service: ServiceBedrock}},
		{in{"bedrock", "GET", "/anthropic/v1/sessions", "types%5B%5D=a&types[]=b"}, Route{Op: OpAnthropicSessions, Service: ServiceBedrock}},
		{in{endpoint, "POST", "/v1/agents", ""}, Route{Op: OpAnthropicAgents, Service: ServiceBedrock, Path: "/anthropic/v1/agents"}},
		{in{endpoint, "GET", "/v1/sessions/sesn_01/events/stream", ""}, Route{Op: OpAnthropicSessions, Service: ServiceBedrock, Path: "/anthropic/v1/sessions/sesn_01/events/stream"}},
		{in{endpoint, "POST", "/v1/memory_stores/ms_1/memory_versions/v_2/redact", ""}, Route{Op: OpAnthropicMemoryStores, Service: ServiceBedrock, Path: "/anthropic/v1/memory_stores/ms_1/memory_versions/v_2/redact"}},
		// The endpoint still routes the runtime.
		{in{endpoint, "POST", "/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke", ""}, Route{Op: OpInvokeModel, RawModel: "anthropic.claude-3-5-haiku-20241022-v1:0", Model: mustModel(t, "anthropic.claude-3-5-haiku-20241022-v1:0")}},
	}
	for _, tt := range tests {
		var r Route
		var err error
		if tt.in.svc == endpoint {
			r, err = ParseEndpointRoute(tt.in.method, tt.in.path, tt.in.query)
		} else {
			r, err = ParseServiceRoute(Service(tt.in.svc), tt.in.method, tt.in.path, tt.in.query)
		}
		if err != nil {
			t.Errorf("%+v: %v", tt.in, err)
			continue
		}
		if r != tt.want {
			t.Errorf("%+v = %+v, want %+v", tt.in, r, tt.want)
		}
		if tt.in.svc != endpoint && r.OnService() != Service(tt.in.svc) {
			t.Errorf("%+v: OnService %s", tt.in, r.OnService())
		}
	}
}

func mustModel(t *testing.T, s string) ModelID {
	t.Helper()
	m, err := ParseModelID(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseRouteCompatRejects(t *testing.T) {
	V, A := TypeValidation, TypeAccessDenied
	tests := []struct {
		name, svc, method, path, query string
		typ                            string
		says                           string // the refusal names this
	}{
		// bedrock-runtime: only the two creates.
		{"runtime GET chat", "bedrock-runtime", "GET", "/openai/v1/chat/completions", "", A, "OpenAIChatCompletions"},
		{"runtime stored response", "bedrock-runtime", "GET", "/openai/v1/responses/resp_1", "", A, "serves only POST /openai/v1/chat/completions"},
		{"runtime models", "bedrock-runtime", "GET", "/openai/v1/models", "", A, "serves only"},
		{"runtime no prefix", "bedrock-runtime", "POST", "/v1/chat/completions", "", A, "not a Bedrock runtime operation"},
		{"runtime trailing slash", "bedrock-runtime", "POST", "/openai/v1/chat/completions/", "", V, "empty segment"},
		{"runtime encoded slash", "bedrock-runtime", "POST", "/openai/v1/chat%2Fcompletions", "", A, "serves only"},
		{"runtime encoded letter", "bedrock-runtime", "POST", "/openai/v1/%72esponses", "", A, "serves only"},
		{"runtime case", "bedrock-runtime", "POST", "/OpenAI/v1/responses", "", A, "not a Bedrock runtime operation"},
		{"runtime query", "bedrock-runtime", "POST", "/openai/v1/responses", "stream=true", V, "takes no query"},
		{"runtime dotdot", "bedrock-runtime", "POST", "/openai/v1/../v1/responses", "", V, "'..'"},
		{"runtime anthropic", "bedrock-runtime", "POST", "/anthropic/v1/messages", "", A, "Anthropic Messages API"},
		{"runtime mantle prefix", "bedrock-runtime", "POST", "/bedrock-mantle/v1/responses", "", A, "not a Bedrock runtime operation"},
		{"runtime bedrock-only", "bedrock-runtime", "POST", "/v1/agents", "", A, "not a Bedrock runtime operation"},
		// bedrock-mantle: inference only, everything else refused by name.
		{"mantle list models", "bedrock-mantle", "GET", "/v1/models", "", A, "ListModels"},
		{"mantle get model", "bedrock-mantle", "GET", "/v1/models/openai.gpt-oss-120b", "", A, "GetModel"},
		{"mantle stored response", "bedrock-mantle", "GET", "/v1/responses/resp_abc", "", A, "GetResponse"},
		{"mantle delete response", "bedrock-mantle", "DELETE", "/openai/v1/responses/resp_abc", "", A, "DeleteResponse"},
		{"mantle cancel", "bedrock-mantle", "POST", "/v1/responses/resp_abc/cancel", "", A, "CancelResponse"},
		{"mantle input items", "bedrock-mantle", "GET", "/v1/responses/resp_abc/input_items", "", A, "ListInputItems"},
		{"mantle stored chat", "bedrock-mantle", "GET", "/v1/chat/completions/cc_1", "", A, "stored chat completions"},
		{"mantle files", "bedrock-mantle", "POST", "/v1/files", "", A, "files"},
		{"mantle fine-tuning", "bedrock-mantle", "POST", "/v1/fine_tuning/jobs", "", A, "fine-tuning"},
		{"mantle count tokens", "bedrock-mantle", "POST", "/anthropic/v1/messages/count_tokens", "", A, "CountTokens"},
		{"mantle batches", "bedrock-mantle", "POST", "/anthropic/v1/messages/batches", "", A, "Batches"},
		{"mantle chat under anthropic", "bedrock-mantle", "POST", "/anthropic/v1/chat/completions", "", A, "not served"},
		{"mantle messages under v1", "bedrock-mantle", "POST", "/v1/messages", "", A, "not served"},
		{"mantle no prefix", "bedrock-mantle", "POST", "/chat/completions", "", A, "not a bedrock-mantle route"},
		{"mantle runtime path", "bedrock-mantle", "POST", "/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke", "", A, "not a bedrock-mantle route"},
		{"mantle GET chat", "bedrock-mantle", "GET", "/v1/chat/completions", "", A, "MantleChatCompletions"},
		{"mantle query", "bedrock-mantle", "POST", "/v1/responses", "beta=true", V, "takes no query"},
		{"mantle messages other query", "bedrock-mantle", "POST", "/anthropic/v1/messages", "beta=false", V, "takes no query"},
		{"mantle double encoded", "bedrock-mantle", "POST", "/v1/chat%252Fcompletions", "", V, "double-encoded"},
		{"mantle NUL", "bedrock-mantle", "POST", "/v1/responses%00", "", V, "forbidden character"},
		// bedrock (control plane host): only the Bedrock-only Anthropic APIs.
		{"bedrock control plane", "bedrock", "GET", "/foundation-models", "", A, "only Anthropic's Bedrock-only APIs"},
		{"bedrock messages", "bedrock", "POST", "/anthropic/v1/messages", "", A, "\"messages\" is not one Warden classifies"},
		{"bedrock environments", "bedrock", "POST", "/anthropic/v1/environments", "", A, "not one Warden classifies"},
		{"bedrock wrong method", "bedrock", "DELETE", "/anthropic/v1/agents/agent_1", "", A, "AnthropicAgents"},
		{"bedrock unknown shape", "bedrock", "POST", "/anthropic/v1/agents/agent_1/run", "", A, "not a shape"},
		{"bedrock dotted id", "bedrock", "GET", "/anthropic/v1/agents/a.b", "", A, "not a shape"},
		{"bedrock colon id", "bedrock", "GET", "/anthropic/v1/agents/a:b", "", A, "not a shape"},
		{"bedrock encoded slash id", "bedrock", "GET", "/anthropic/v1/agents/a%2Fb", "", A, "not a shape"},
		{"bedrock trailing slash", "bedrock", "GET", "/anthropic/v1/agents/", "", V, "empty segment"},
		{"bedrock bad query key", "bedrock", "GET", "/anthropic/v1/agents", "Limit=1", V, "not a parameter name"},
		{"bedrock repeated query", "bedrock", "GET", "/anthropic/v1/agents", "limit=1&limit=2", V, "repeated"},
		{"bedrock query NUL", "bedrock", "GET", "/anthropic/v1/agents", "after_id=%00", V, "control character"},
		{"bedrock query semicolon", "bedrock", "GET", "/anthropic/v1/agents", "limit=1;x", V, "forbidden character"},
		// Warden's endpoint.
		{"endpoint mantle prefix only", "endpoint", "POST", "/bedrock-mantle", "", A, "not a Bedrock runtime operation"},
		{"endpoint mantle unknown", "endpoint", "GET", "/bedrock-mantle/v1/models", "", A, "ListModels"},
		{"endpoint mantle prefix glued", "endpoint", "POST", "/bedrock-mantlev1/responses", "", A, "not a Bedrock runtime operation"},
		{"endpoint mantle encoded", "endpoint", "POST", "/bedrock-mantle%2Fv1/responses", "", A, "not a Bedrock runtime operation"},
		{"endpoint bedrock-only wrong method", "endpoint", "PUT", "/v1/agents", "", A, "AnthropicAgents"},
		{"endpoint v1 other", "endpoint", "POST", "/v1/chat/completions", "", A, "not a Bedrock runtime operation"},
		{"endpoint anthropic prefix", "endpoint", "POST", "/anthropic/v1/agents", "", A, "Anthropic Messages API"},
		{"endpoint dotdot", "endpoint", "POST", "/bedrock-mantle/../openai/v1/responses", "", V, "'..'"},
		{"unknown service", "lambda", "POST", "/v1/responses", "", A, "not one Warden routes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Route
			var err error
			if tt.svc == "endpoint" {
				r, err = ParseEndpointRoute(tt.method, tt.path, tt.query)
			} else {
				r, err = ParseServiceRoute(Service(tt.svc), tt.method, tt.path, tt.query)
			}
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v is not *APIError", err, err)
			}
			if ae.Type != tt.typ {
				t.Errorf("type %s, want %s (%v)", ae.Type, tt.typ, err)
			}
			if !strings.Contains(ae.Message, tt.says) {
				t.Errorf("message %q does not say %q", ae.Message, tt.says)
			}
			if r != (Route{}) {
				t.Errorf("non-zero route %+v with error", r)
			}
		})
	}
}

func TestBodyModel(t *testing.T) {
	good := []struct{ body, want string }{
		{`{"model":"openai.gpt-oss-20b-1:0","messages":[{"role":"user","content":"hi"}]}`, "openai.gpt-oss-20b-1:0"},
		{`{"messages":[{"model":"x"}],"model":"us.anthropic.claude-3-5-haiku-20241022-v1:0","stream":true}`, "us.anthropic.claude-3-5-haiku-20241022-v1:0"},
		{`{"mod\u0065l":"a.b"}`, "a.b"},
	}
	for _, tt := range good {
		got, err := BodyModel(OpOpenAIChatCompletions, []byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("BodyModel(%s) = %q, %v; want %q", tt.body, got, err, tt.want)
		}
	}
	bad := []struct{ body, says string }{
		{``, "not a JSON object"},
		{`{}`, `no "model"`},
		{`{"model":""}`, `empty "model"`},
		{`{"model":1}`, "not a string"},
		{`{"model":"a.b","model":"c.d"}`, "more than one"},
		{`{"Model":"a.b"}`, "ambiguous"},
		{`{"model":"a.b"} {}`, "data after"},
		{"{\"model\":\"a.b\xff\"}", "UTF-8"},
	}
	for _, tt := range bad {
		got, err := BodyModel(OpMantleResponses, []byte(tt.body))
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || ae.Type != TypeValidation || !strings.Contains(ae.Message, tt.says) || !strings.Contains(ae.Message, "MantleResponses body") {
			t.Errorf("BodyModel(%q) = %q, %v; want a ValidationException saying %q", tt.body, got, err, tt.says)
		}
	}
}

func TestParseServiceHost(t *testing.T) {
	good := []struct {
		in     string
		svc    Service
		region string
	}{
		{"bedrock-runtime.us-east-1.amazonaws.com", ServiceRuntime, "us-east-1"},
		{"vpce-0abc-xyz.bedrock-runtime.eu-west-1.vpce.amazonaws.com", ServiceRuntime, "eu-west-1"},
		{"bedrock-mantle.us-east-1.api.aws", ServiceMantle, "us-east-1"},
		{"BEDROCK-MANTLE.us-west-2.API.AWS.:443", ServiceMantle, "us-west-2"},
		{"bedrock.us-west-2.amazonaws.com", ServiceBedrock, "us-west-2"},
	}
	for _, tt := range good {
		h, err := ParseServiceHost(tt.in)
		if err != nil || h.Service != tt.svc || h.Region != tt.region {
			t.Errorf("ParseServiceHost(%q) = %+v, %v; want %s in %s", tt.in, h, err, tt.svc, tt.region)
		}
	}
	for _, in := range []string{
		"bedrock-mantle.us-east-1.amazonaws.com", "bedrock-mantle.api.aws", "bedrock-mantle.us-east-1.api.aws:8443",
		"bedrock-mantle-fips.us-east-1.api.aws", "x.bedrock-mantle.us-east-1.api.aws", "bedrock-mantle.cn-north-1.api.aws",
		"bedrock.us-east-1.api.aws", "bedrock.cn-north-1.amazonaws.com", "bedrock.us-east-1.amazonaws.com.evil.com",
		"bedrock-agent-runtime.us-east-1.amazonaws.com", "bedrock.us_east-1.amazonaws.com", "", "bedrock..amazonaws.com",
	} {
		if h, err := ParseServiceHost(in); err == nil {
			t.Errorf("ParseServiceHost(%q) = %+v, want an error", in, h)
		}
	}
	// The runtime validator stays the runtime's alone.
	for _, in := range []string{"bedrock-mantle.us-east-1.api.aws", "bedrock.us-east-1.amazonaws.com"} {
		if IsRuntimeHost(in) {
			t.Errorf("IsRuntimeHost(%q) = true", in)
		}
	}
}

func FuzzParseServiceHost(f *testing.F) {
	for _, s := range []string{"bedrock-mantle.us-east-1.api.aws", "bedrock.eu-west-1.amazonaws.com:443", "bedrock-runtime.us-east-1.amazonaws.com", "a.b.c.d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ParseServiceHost(in)
		if err != nil {
			return
		}
		again, err := ParseServiceHost(h.Host)
		if err != nil || again != h {
			t.Fatalf("ParseServiceHost(%q) = %+v but its Host re-parses as %+v, %v", in, h, again, err)
		}
		if !strings.HasPrefix(h.Host, string(h.Service)+".") && !(h.VPCE && h.Service == ServiceRuntime) && !(h.FIPS && h.Service == ServiceRuntime) {
			t.Fatalf("ParseServiceHost(%q) = %+v: the name does not start with its service", in, h)
		}
	})
}

// Every accepted compat path, bent by the tricks of the runtime's corpus, is
// refused: nothing close to a served route is guessed into one.
func TestParseRouteCompatTricks(t *testing.T) {
	good := []struct{ svc, method, path string }{
		{"bedrock-runtime", "POST", "/openai/v1/chat/completions"},
		{"bedrock-runtime", "POST", "/openai/v1/responses"},
		{"bedrock-mantle", "POST", "/v1/chat/completions"},
		{"bedrock-mantle", "POST", "/openai/v1/responses"},
		{"bedrock-mantle", "POST", "/anthropic/v1/messages"},
		{"bedrock", "GET", "/anthropic/v1/sessions/sesn_1/events/stream"},
		{"endpoint", "POST", "/bedrock-mantle/v1/responses"},
		{"endpoint", "POST", "/v1/agents/agent_1/archive"},
	}
	tricks := []struct {
		name string
		bend func(string) string
	}{
		{"dotdot", func(p string) string { i := strings.LastIndexByte(p, '/'); return p[:i] + "/x/.." + p[i:] }},
		{"dot", func(p string) string { i := strings.LastIndexByte(p, '/'); return p[:i] + "/." + p[i:] }},
		{"empty segment", func(p string) string { i := strings.LastIndexByte(p, '/'); return p[:i] + "/" + p[i:] }},
		{"trailing slash", func(p string) string { return p + "/" }},
		{"encoded slash", func(p string) string { i := strings.LastIndexByte(p, '/'); return p[:i] + "%2F" + p[i+1:] }},
		{"double encoded", func(p string) string { i := strings.LastIndexByte(p, '/'); return p[:i] + "%252F" + p[i+1:] }},
		{"encoded first letter", func(p string) string {
			i := strings.LastIndexByte(p, '/')
			return p[:i+1] + "%" + strings.ToUpper(hexByte(p[i+1])) + p[i+2:]
		}},
		{"semicolon", func(p string) string { return p + ";x=y" }},
		{"NUL", func(p string) string { return p + "%00" }},
		{"space", func(p string) string { return p + "%20" }},
		{"backslash", func(p string) string { return strings.Replace(p, "/v1/", "/v1\\", 1) }},
		{"upper case", func(p string) string { return strings.ToUpper(p) }},
		{"suffix", func(p string) string { return p + "x" }},
		{"extra segment", func(p string) string { return p + "/x" }},
		{"no leading slash", func(p string) string { return p[1:] }},
	}
	for _, g := range good {
		for _, tr := range tricks {
			p := tr.bend(g.path)
			var r Route
			var err error
			if g.svc == "endpoint" {
				r, err = ParseEndpointRoute(g.method, p, "")
			} else {
				r, err = ParseServiceRoute(Service(g.svc), g.method, p, "")
			}
			if err == nil {
				t.Errorf("%s %s %q (%s): accepted as %+v", g.svc, g.method, p, tr.name, r)
			}
		}
	}
}

func hexByte(c byte) string {
	return strings.ToLower(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15]))
}

func FuzzParseEndpointRoute(f *testing.F) {
	for _, p := range []string{
		"/openai/v1/chat/completions", "/openai/v1/responses", "/bedrock-mantle/v1/chat/completions",
		"/bedrock-mantle/openai/v1/responses", "/bedrock-mantle/anthropic/v1/messages", "/v1/agents",
		"/v1/sessions/sesn_1/threads/t_2/stream", "/v1/memory_stores/ms/memories/m", "/bedrock-mantle/v1/responses/r_1",
		"/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse",
	} {
		f.Add("POST", p, "")
		f.Add("GET", p, "limit=2")
	}
	f.Add("POST", "/bedrock-mantle/anthropic/v1/messages", "beta=true")
	f.Fuzz(func(t *testing.T, method, path, query string) {
		r, err := ParseEndpointRoute(method, path, query)
		if err != nil {
			ae := mustAPIError(t, err, "ParseEndpointRoute")
			if !utf8.ValidString(ae.Message) {
				t.Fatalf("message is not valid UTF-8: %q", ae.Message)
			}
			if r != (Route{}) {
				t.Fatalf("route %+v with error", r)
			}
			return
		}
		if r.Op == "" {
			t.Fatal("success without an operation")
		}
		if method != "POST" && method != "GET" && method != "DELETE" {
			t.Fatalf("method %q accepted", method)
		}
		if r.Op.BodyModel() && method != "POST" {
			t.Fatalf("%s accepted with %s", r.Op, method)
		}
		// What Warden forwards is a route of the service it goes to, on that
		// service's own host, and classifies the same there.
		up := path
		if r.Path != "" {
			up = r.Path
		}
		if err := checkPath(up); err != nil {
			t.Fatalf("upstream path %q: %v", up, err)
		}
		again, err := ParseServiceRoute(r.OnService(), method, up, query)
		want := r
		want.Path = ""
		if err != nil || again != want {
			t.Fatalf("upstream %s %q routes to %+v, %v; want %+v", r.OnService(), up, again, err, want)
		}
		if r.OnService() == ServiceBedrock && !strings.HasPrefix(up, "/anthropic/v1/") {
			t.Fatalf("bedrock route %q outside /anthropic/v1/", up)
		}
		if r.OnService() == ServiceMantle && strings.HasPrefix(up, EndpointMantlePrefix) {
			t.Fatalf("mantle route %q keeps Warden's prefix", up)
		}
	})
}

func FuzzBodyModel(f *testing.F) {
	f.Add([]byte(`{"model":"openai.gpt-oss-20b-1:0","messages":[]}`))
	f.Add([]byte(`{"model":"a.b","model":"c.d"}`))
	f.Add([]byte(`{"MODEL":"a.b"}`))
	f.Add([]byte(`{"mod\u0065l":"a.b"}`))
	f.Add([]byte(`{"model":"a.b"} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := BodyModel(OpOpenAIChatCompletions, body)
		if err != nil {
			if ae := mustAPIError(t, err, "BodyModel"); ae.Type != TypeValidation {
				t.Fatalf("type %s", ae.Type)
			}
			return
		}
		var v struct {
			Model *string `json:"model"`
		}
		if err := jsonUnmarshal(body, &v); err != nil || v.Model == nil || *v.Model != m {
			t.Fatalf("encoding/json disagrees on %q: %v", body, err)
		}
	})
}

func TestBodyStreams(t *testing.T) {
	for body, want := range map[string]bool{
		`{"stream":true}`:               true,
		`{"model":"m", "stream": true}`: true,
		`{"stream":false}`:              false,
		`{"stream":"true"}`:             false,
		`{"Stream":true}`:               false,
		`{"a":{"stream":true}}`:         false,
		`{"stream":true`:                false,
		``:                              false,
	} {
		if got := BodyStreams([]byte(body)); got != want {
			t.Errorf("BodyStreams(%s) = %v, want %v", body, got, want)
		}
	}
}
