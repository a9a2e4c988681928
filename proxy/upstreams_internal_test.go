package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
)

// The regional endpoints come from bedrock.RegionalURL, for New and
// CheckConfig alike. In a China region only the runtime and the agent
// runtime have one: Warden starts there (it refused to, naming the
// bedrock-mantle host it had made up) and refuses a call routed to
// bedrock-mantle or the bedrock host by name, before identity, without
// sending it anywhere.
func TestRegionalUpstreams(t *testing.T) {
	for _, tc := range []struct {
		region              string
		runtime, agent      string
		mantle, bedrockHost string // "" = no endpoint
	}{
		{"us-east-1", "bedrock-runtime.us-east-1.amazonaws.com", "bedrock-agent-runtime.us-east-1.amazonaws.com",
			"bedrock-mantle.us-east-1.api.aws", "bedrock.us-east-1.amazonaws.com"},
		{"cn-north-1", "bedrock-runtime.cn-north-1.amazonaws.com.cn", "bedrock-agent-runtime.cn-north-1.amazonaws.com.cn", "", ""},
	} {
		t.Run(tc.region, func(t *testing.T) {
			cfgText := `version: 1
upstream: {region: ` + tc.region + `}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["*"], operations: ["*"]}}]
`
			cfg, err := config.ParseConfig([]byte(cfgText))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckConfig(context.Background(), cfg); err != nil {
				t.Fatalf("CheckConfig: %v", err)
			}
			rec := &lastRecord{}
			s, err := New(context.Background(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: rec})
			if err != nil {
				t.Fatalf("New: %v (CheckConfig accepted it)", err)
			}
			if s.upstream.Host != tc.runtime || s.agentUpstream.Host != tc.agent {
				t.Errorf("runtime %s, agent runtime %s; want %s, %s", s.upstream.Host, s.agentUpstream.Host, tc.runtime, tc.agent)
			}
			for svc, want := range map[bedrock.Service]string{bedrock.ServiceMantle: tc.mantle, bedrock.ServiceBedrock: tc.bedrockHost} {
				u, _, ok := s.upstreamFor(svc)
				switch {
				case want == "" && ok:
					t.Errorf("%s: upstream %s in %s, which has no such endpoint", svc, u, tc.region)
				case want != "" && (!ok || u.Host != want):
					t.Errorf("%s: upstream %v (%v), want %s", svc, u, ok, want)
				}
			}
			if tc.mantle != "" {
				return
			}
			s.upstreamRT = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				t.Errorf("a call left Warden for %s", r.URL)
				return nil, http.ErrHandlerTimeout
			})
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/bedrock-mantle/v1/chat/completions", strings.NewReader(`{"model":"openai.gpt-oss-20b-1:0","messages":[{"role":"user","content":"hi"}]}`))
			r.Header.Set("Content-Type", "application/json")
			s.Handler().ServeHTTP(w, r)
			if w.Code != 400 || !strings.Contains(w.Body.String(), "bedrock-mantle has no endpoint in "+tc.region) {
				t.Errorf("bedrock-mantle call in %s: %d %s; want 400 naming bedrock-mantle", tc.region, w.Code, w.Body)
			}
			if rec.rec.Decision != "deny" || rec.rec.Rule != "upstream" {
				t.Errorf("record: decision %q rule %q, want deny by upstream", rec.rec.Decision, rec.rec.Rule)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
