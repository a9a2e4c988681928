package identity

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// agent is a stand-in ECS agent metadata endpoint: path → (status, body),
// changeable while running, recording the paths asked.
type agent struct {
	srv   *httptest.Server
	mu    sync.Mutex
	pages map[string]page
	asked []string
}

type page struct {
	status int
	body   string
}

const agentPrefix = "/v4/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-1234567890"

func newAgent(t testing.TB, pages map[string]page) *agent {
	a := &agent{pages: pages}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.asked = append(a.asked, r.URL.Path)
		p, ok := a.pages[strings.TrimPrefix(r.URL.Path, agentPrefix)]
		a.mu.Unlock()
		if !ok || !strings.HasPrefix(r.URL.Path, agentPrefix) {
			http.NotFound(w, r)
			return
		}
		if p.status == 0 {
			p.status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(p.status)
		_, _ = w.Write([]byte(p.body))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *agent) url() string { return a.srv.URL + agentPrefix }

func (a *agent) set(path string, p page) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pages[path] = p
}

func (a *agent) paths() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.asked...)
}

func ok(body string) page { return page{body: body} }

func startECS(t testing.TB, cfg ECSSidecarConfig, log *zap.Logger) (*ECSSidecarSource, error) {
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.Refresh == 0 {
		cfg.Refresh = time.Hour
	}
	s, err := startECSSidecar(ctx, cfg, Deps{Logger: log}, testECSHost(nil))
	if err != nil {
		cancel()
		return nil, err
	}
	t.Cleanup(func() { cancel(); <-s.done })
	return s, nil
}

type wantTag struct {
	v      string
	strong bool
}

func TestECSSidecarShapes(t *testing.T) {
	ec2 := testdataFile(t, "testdata/ecs/ec2_task_with_tags.json")
	fargate := testdataFile(t, "testdata/ecs/fargate_task.json")
	withErrors := testdataFile(t, "testdata/ecs/ec2_task_with_tags_errors.json")
	cases := []struct {
		name     string
		pages    map[string]page
		fargate  bool
		platform bool // identity.ecs_sidecar.platform_task_definitions
		asked    []string
		want     map[string]wantTag
	}{
		{
			name:     "EC2 taskWithTags, task definitions by the platform",
			pages:    map[string]page{"/taskWithTags": ok(ec2), "/task": ok(`{"TaskARN":"wrong"}`)},
			platform: true,
			asked:    []string{"/taskWithTags"},
			want: map[string]wantTag{
				TagECSCluster:                 {"payments-prod", true},
				TagECSTaskARN:                 {"arn:aws:ecs:us-west-2:111122223333:task/payments-prod/158d1c8083dd49d6b527399fd6414f5c", true},
				TagECSFamily:                  {"payments-api", true},
				TagECSRevision:                {"27", true},
				TagECSService:                 {"payments-api-svc", true},
				TagECSLaunch:                  {"EC2", true},
				TagAWSAccount:                 {"111122223333", true},
				TagAWSRegion:                  {"us-west-2", true},
				"ecs.tag.team":                {"payments", false},
				"ecs.tag.env":                 {"prod", false},
				"ecs.tag.aws:ecs:serviceName": {"payments-api-svc", false},
				"ecs.tag.aws:ecs:clusterName": {"payments-prod", false},
				"ecs.tag.cost-center":         {"cc=1234/eu", false},
			},
		},
		{
			name:    "Fargate asks /task; cluster ARN becomes its name",
			pages:   map[string]page{"/task": ok(fargate)},
			fargate: true,
			asked:   []string{"/task"},
			want: map[string]wantTag{
				TagECSCluster:  {"batch-nonprod", true},
				TagECSTaskARN:  {"arn:aws:ecs:us-east-1:444455556666:task/batch-nonprod/9781c248-0edd-4cdb-9a93-f63cb662a5d3", true},
				TagECSFamily:   {"summarizer", false}, // whoever registers the task definition names it
				TagECSRevision: {"5", false},
				TagECSService:  {"summarizer", false},
				TagECSLaunch:   {"FARGATE", true},
				TagAWSAccount:  {"444455556666", true},
				TagAWSRegion:   {"us-east-1", true},
			},
		},
		{
			name:  "404 on taskWithTags falls back to /task",
			pages: map[string]page{"/task": ok(fargate)},
			asked: []string{"/taskWithTags", "/task"},
			want: map[string]wantTag{
				TagECSCluster:  {"batch-nonprod", true},
				TagECSLaunch:   {"FARGATE", true},
				TagAWSAccount:  {"444455556666", true},
				TagAWSRegion:   {"us-east-1", true},
				TagECSFamily:   {"summarizer", false}, // whoever registers the task definition names it
				TagECSRevision: {"5", false},
				TagECSService:  {"summarizer", false},
				TagECSTaskARN:  {"arn:aws:ecs:us-east-1:444455556666:task/batch-nonprod/9781c248-0edd-4cdb-9a93-f63cb662a5d3", true},
			},
		},
		{
			name:  "Errors: tags missing, strong identity intact",
			pages: map[string]page{"/taskWithTags": ok(withErrors)},
			asked: []string{"/taskWithTags"},
			want: map[string]wantTag{
				TagECSCluster:  {"default", true},
				TagECSTaskARN:  {"arn:aws:ecs:eu-west-1:111122223333:task/default/8f03e41243824aea923aca126495f665", true},
				TagECSFamily:   {"curltest", false},
				TagECSRevision: {"26", false},
				TagECSLaunch:   {"EC2", true},
				TagAWSAccount:  {"111122223333", true},
				TagAWSRegion:   {"eu-west-1", true},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t, tc.pages)
			core, logs := observer.New(zap.InfoLevel)
			s, err := startECS(t, ECSSidecarConfig{URL: a.url(), Fargate: tc.fargate, PlatformTaskDefinitions: tc.platform}, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, p := range tc.asked {
				want = append(want, agentPrefix+p)
			}
			if got := a.paths(); !reflect.DeepEqual(got, want) {
				t.Errorf("asked %v, want %v", got, want)
			}
			id, err := s.Resolve(context.Background(), loopback)
			if err != nil {
				t.Fatal(err)
			}
			if id.Source != SourceECSSidecar || s.Name() != SourceECSSidecar {
				t.Errorf("source %q name %q", id.Source, s.Name())
			}
			for k, w := range tc.want {
				got, ok := id.Tags[k]
				if !ok || got.Value != w.v || got.Strong != w.strong || got.Source != SourceECSSidecar {
					t.Errorf("%s = %+v (present %v), want %q strong=%v", k, got, ok, w.v, w.strong)
				}
			}
			if len(id.Tags) != len(tc.want) {
				t.Errorf("%d tags, want %d: %v", len(id.Tags), len(tc.want), id)
			}
			if id.values == nil || !maps.Equal(id.values, id.TagValues()) {
				t.Errorf("values not precomputed")
			}
			if strings.Contains(tc.name, "Errors") && logs.FilterMessageSnippet("metadata error").FilterField(zap.String("field", "TaskTags")).Len() != 1 {
				t.Errorf("agent errors not logged: %v", logs.All())
			}
		})
	}
}

func TestECSSidecarLoopbackOnly(t *testing.T) {
	a := newAgent(t, map[string]page{"/taskWithTags": ok(testdataFile(t, "testdata/ecs/ec2_task_with_tags.json"))})
	s, err := startECS(t, ECSSidecarConfig{URL: a.url()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	testLoopbackOnly(t, s)
}

func TestECSSidecarStartErrors(t *testing.T) {
	ec2 := testdataFile(t, "testdata/ecs/ec2_task_with_tags.json")
	var task map[string]any
	if err := json.Unmarshal([]byte(ec2), &task); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) string {
		b, _ := json.Marshal(task)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		f(m)
		b, _ = json.Marshal(m)
		return string(b)
	}
	noARN := edit(func(m map[string]any) { delete(m, "TaskARN") })
	badARN := edit(func(m map[string]any) { m["TaskARN"] = "158d1c8083dd49d6b527399fd6414f5c" })
	notTask := edit(func(m map[string]any) { m["TaskARN"] = "arn:aws:ecs:us-west-2:111122223333:cluster/payments-prod" })
	badAccount := edit(func(m map[string]any) { m["TaskARN"] = "arn:aws:ecs:us-west-2:1111:task/x/y" })
	hostMode := edit(func(m map[string]any) {
		c := m["Containers"].([]any)[1].(map[string]any)
		c["Networks"] = []any{map[string]any{"NetworkMode": "host"}}
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cases := []struct {
		name string
		page page
		url  string
		want []string
	}{
		{"endpoint unreachable", page{}, closedURL + agentPrefix, []string{"unreachable", strings.TrimPrefix(closedURL, "http://")}},
		{"no TaskARN", ok(noARN), "", []string{"TaskARN", "/taskWithTags"}},
		{"empty object", ok(`{}`), "", []string{"TaskARN"}},
		{"TaskARN not an ARN", ok(badARN), "", []string{"TaskARN", "158d1c80"}},
		{"ARN of a cluster", ok(notTask), "", []string{"not an ECS task ARN"}},
		{"bad account in ARN", ok(badAccount), "", []string{"not an ECS task ARN"}},
		{"host network mode", ok(hostMode), "", []string{"host network mode", "warden"}},
		{"not JSON", ok(`<html>nope</html>`), "", []string{"not task metadata JSON"}},
		{"agent error status", page{status: 500, body: `{"error":"internal"}`}, "", []string{"HTTP 500", "internal"}},
		{"wrong type", ok(`{"TaskARN": 7}`), "", []string{"not task metadata JSON"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url
			if u == "" {
				u = newAgent(t, map[string]page{"/taskWithTags": tc.page}).url()
			}
			_, err := startECS(t, ECSSidecarConfig{URL: u, Timeout: 5 * time.Second}, nil)
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestECSSidecarEnv(t *testing.T) {
	a := newAgent(t, map[string]page{"/taskWithTags": ok(testdataFile(t, "testdata/ecs/ec2_task_with_tags.json"))})
	cases := []struct {
		name string
		cfg  ECSSidecarConfig
		env  map[string]string
		want []string // nil: starts
	}{
		{"env unset", ECSSidecarConfig{}, nil, []string{"ECS_CONTAINER_METADATA_URI_V4", "not set"}},
		{"env empty", ECSSidecarConfig{}, map[string]string{"ECS_CONTAINER_METADATA_URI_V4": ""}, []string{"not set"}},
		{"env not a URL", ECSSidecarConfig{}, map[string]string{"ECS_CONTAINER_METADATA_URI_V4": "169.254.170.2/v4/x"}, []string{"http(s) URL"}},
		{"env points at a workload-run server", ECSSidecarConfig{}, map[string]string{"ECS_CONTAINER_METADATA_URI_V4": a.url()}, []string{"does not point at the ECS agent", "identity.ecs_sidecar.url"}},
		{"custom env name, still checked", ECSSidecarConfig{URIEnv: "MY_META"}, map[string]string{"MY_META": "http://metadata.evil.example/v4"}, []string{"MY_META", "does not point at the ECS agent"}},
		{"url overrides env", ECSSidecarConfig{URL: a.url()}, map[string]string{"ECS_CONTAINER_METADATA_URI_V4": "http://10.9.9.9/v4"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := startECSSidecar(ctx, tc.cfg, Deps{}, testECSHost(tc.env))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				cancel()
				<-s.done
				return
			}
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestECSAgentAddr(t *testing.T) {
	for host, want := range map[string]bool{
		"169.254.170.2":        true,
		"169.254.170.23":       true,
		"fd00:ec2::2":          true,
		"fe80::1":              true,
		"127.0.0.1":            false,
		"10.0.0.1":             false,
		"::1":                  false,
		"metadata.local":       false,
		"":                     false,
		"fd00:ec3::2":          false,
		"::ffff:169.254.170.2": true,
	} {
		if got := ecsAgentAddr(host); got != want {
			t.Errorf("%q: %v, want %v", host, got, want)
		}
	}
}

func TestECSSidecarRefresh(t *testing.T) {
	ec2 := testdataFile(t, "testdata/ecs/ec2_task_with_tags.json")
	var base map[string]any
	if err := json.Unmarshal([]byte(ec2), &base); err != nil {
		t.Fatal(err)
	}
	variant := func(f func(m map[string]any)) page {
		b, _ := json.Marshal(base)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		f(m)
		b, _ = json.Marshal(m)
		return ok(string(b))
	}
	a := newAgent(t, map[string]page{"/taskWithTags": ok(ec2)})
	core, logs := observer.New(zap.InfoLevel)
	s, err := startECS(t, ECSSidecarConfig{URL: a.url()}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	held, _ := s.Resolve(context.Background(), loopback)

	steps := []struct {
		name     string
		page     page
		tags     map[string]string // expected ecs.tag.* after the refresh
		failures uint64
	}{
		{"tag change is picked up", variant(func(m map[string]any) { m["TaskTags"] = map[string]any{"team": "payments", "env": "staging"} }),
			map[string]string{"team": "payments", "env": "staging"}, 0},
		{"agent down keeps the last good", page{status: 503, body: "unavailable"},
			map[string]string{"team": "payments", "env": "staging"}, 1},
		{"garbage keeps the last good", ok(`{"TaskARN":`),
			map[string]string{"team": "payments", "env": "staging"}, 2},
		{"another task's ARN is refused", variant(func(m map[string]any) {
			m["TaskARN"] = "arn:aws:ecs:us-west-2:111122223333:task/payments-prod/00000000000000000000000000000000"
			m["TaskTags"] = map[string]any{"team": "intruder"}
		}), map[string]string{"team": "payments", "env": "staging"}, 3},
		{"tags the agent failed to list are carried over", variant(func(m map[string]any) {
			delete(m, "TaskTags")
			m["Errors"] = []any{map[string]any{"ErrorField": "TaskTags", "ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded", "StatusCode": 400}}
		}), map[string]string{"team": "payments", "env": "staging"}, 3},
		{"recovery", variant(func(m map[string]any) { m["TaskTags"] = map[string]any{"team": "payments"} }),
			map[string]string{"team": "payments"}, 3},
		{"tags removed for real", variant(func(m map[string]any) { delete(m, "TaskTags") }),
			map[string]string{}, 3},
	}
	for _, st := range steps {
		a.set("/taskWithTags", st.page)
		s.refresh(context.Background())
		id, err := s.Resolve(context.Background(), loopback)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for k, v := range id.Tags {
			if name, ok := strings.CutPrefix(k, TagECSTagPrefix); ok {
				got[name] = v.Value
				if v.Strong {
					t.Errorf("%s: %s is strong", st.name, k)
				}
			}
		}
		if !maps.Equal(got, st.tags) {
			t.Errorf("%s: tags %v, want %v", st.name, got, st.tags)
		}
		if id.Tags[TagECSTaskARN].Value != held.Tags[TagECSTaskARN].Value || !id.Tags[TagECSCluster].Strong {
			t.Errorf("%s: strong identity changed: %v", st.name, id)
		}
		if !maps.Equal(id.values, id.TagValues()) {
			t.Errorf("%s: stale values cache", st.name)
		}
		if s.RefreshFailures() != st.failures {
			t.Errorf("%s: failures %d, want %d", st.name, s.RefreshFailures(), st.failures)
		}
	}
	if n := logs.FilterMessageSnippet("refresh failed").Len(); n != 3 {
		t.Errorf("%d refresh failure logs, want 3", n)
	}
	if held.Tags["ecs.tag.env"].Value != "prod" {
		t.Errorf("identity handed out earlier changed: %v", held)
	}
}

// TestECSSidecarRefreshLoop checks the background loop itself refreshes
// (the other refresh tests call refresh directly), and that a /taskWithTags
// 404 is remembered.
func TestECSSidecarRefreshLoop(t *testing.T) {
	fargate := testdataFile(t, "testdata/ecs/fargate_task.json")
	a := newAgent(t, map[string]page{"/task": ok(fargate)})
	s, err := startECS(t, ECSSidecarConfig{URL: a.url(), Refresh: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.set("/task", ok(strings.Replace(fargate, `"Revision": "5"`, `"Revision": 6`, 1)))
	waitFor(t, func() bool {
		id, _ := s.Resolve(context.Background(), loopback)
		return id.Tags[TagECSRevision].Value == "6"
	})
	for i, p := range a.paths() {
		if want := "/taskWithTags"; i == 0 && p != agentPrefix+want || i > 0 && p != agentPrefix+"/task" {
			t.Fatalf("request %d asked %s", i, p)
		}
	}
}

func TestECSSidecarValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  ECSSidecarConfig
		want []string
	}{
		{"zero config is valid", ECSSidecarConfig{}, nil},
		{"full config", ECSSidecarConfig{URIEnv: "META", URL: "http://169.254.170.2/v4/abc", Fargate: true, Refresh: time.Minute, Timeout: time.Second}, nil},
		{"bad env name", ECSSidecarConfig{URIEnv: "A B"}, []string{"uri_env"}},
		{"url without scheme", ECSSidecarConfig{URL: "169.254.170.2/v4"}, []string{"identity.ecs_sidecar.url"}},
		{"url with another scheme", ECSSidecarConfig{URL: "file:///etc/task.json"}, []string{"identity.ecs_sidecar.url"}},
		{"url with a query", ECSSidecarConfig{URL: "http://169.254.170.2/v4?x=1"}, []string{"query"}},
		{"refresh too fast", ECSSidecarConfig{Refresh: time.Second}, []string{"refresh", "10s"}},
		{"refresh negative", ECSSidecarConfig{Refresh: -time.Minute}, []string{"refresh"}},
		{"timeout negative", ECSSidecarConfig{Timeout: -1}, []string{"timeout"}},
		{"timeout huge", ECSSidecarConfig{Timeout: time.Hour}, []string{"timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.validate()
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestECSSidecarConfigYAML(t *testing.T) {
	y := strings.Replace(minimal, "identity: {sources: [static], static: {app: a}}", `identity:
  sources: [ecs-sidecar]
  ecs_sidecar:
    uri_env: META
    url: http://169.254.170.2/v4/abc
    fargate: true
    refresh: 2m
    timeout: 1500ms`, 1)
	cfg, err := parseIdentity([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	want := ECSSidecarConfig{URIEnv: "META", URL: "http://169.254.170.2/v4/abc", Fargate: true, Refresh: 2 * time.Minute, Timeout: 1500 * time.Millisecond}
	if cfg.Identity.ECSSidecar != want {
		t.Errorf("got %+v", cfg.Identity.ECSSidecar)
	}
}

func TestECSSidecarThroughResolver(t *testing.T) {
	a := newAgent(t, map[string]page{"/taskWithTags": ok(testdataFile(t, "testdata/ecs/ec2_task_with_tags.json"))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := NewResolver(ctx, Config{Sources: []string{SourceECSSidecar}, ECSSidecar: ECSSidecarConfig{URL: a.url()}}, Deps{ProcStatus: statusWith("0000000000000000")})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Resolve(ctx, &Conn{Remote: netip.MustParseAddrPort("[::1]:4000")})
	if err != nil || id.Tags[TagECSFamily].Value != "payments-api" {
		t.Fatalf("%v %v", id, err)
	}
	if _, err := r.Resolve(ctx, &Conn{Remote: netip.MustParseAddrPort("10.0.2.7:4000")}); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("remote: %v", err)
	}
}

func BenchmarkResolveECSSidecar(b *testing.B) {
	a := newAgent(b, map[string]page{"/taskWithTags": ok(testdataFile(b, "testdata/ecs/ec2_task_with_tags.json"))})
	s, err := startECS(b, ECSSidecarConfig{URL: a.url()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Resolve(ctx, loopback); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func FuzzParseECSTask(f *testing.F) {
	for _, p := range []string{"testdata/ecs/ec2_task_with_tags.json", "testdata/ecs/fargate_task.json", "testdata/ecs/ec2_task_with_tags_errors.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"TaskARN":"arn:aws:ecs:us-east-1:123456789012:task/c/t"}`, `{"TaskARN":"arn:aws:ecs:us-east-1:123456789012:task/c/t","Revision":3}`,
		`{"TaskARN":"arn:aws-cn:ecs:cn-north-1:123456789012:task/t","Cluster":"arn:aws-cn:ecs:cn-north-1:123456789012:cluster/c","TaskTags":{"":""}}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := parseECSTask(data)
		if err != nil {
			return
		}
		for _, k := range []string{TagECSFamily, TagECSRevision, TagECSService} {
			if weak := task.identity(false, ""); weak.Tags[k].Strong {
				t.Fatalf("%s strong without platform_task_definitions: %v", k, weak)
			}
		}
		id := task.identity(true, "")
		if id.Tags[TagECSTaskARN].Value != task.TaskARN || !id.Tags[TagECSTaskARN].Strong {
			t.Fatalf("task ARN tag: %v", id)
		}
		if len(id.Tags[TagAWSAccount].Value) != 12 || id.Tags[TagAWSRegion].Value == "" {
			t.Fatalf("account/region: %v", id)
		}
		for k, tag := range id.Tags {
			if strings.HasPrefix(k, TagECSTagPrefix) == tag.Strong {
				t.Fatalf("%s strong=%v", k, tag.Strong)
			}
		}
		if !maps.Equal(id.values, id.TagValues()) {
			t.Fatal("values")
		}
	})
}

// statusWith is a /proc/self/status with the given effective capabilities.
func statusWith(capEff string) func() ([]byte, error) {
	return func() ([]byte, error) {
		return []byte("Name:\twarden\nUmask:\t0022\nState:\tS (sleeping)\nCapInh:\t0000000000000000\nCapPrm:\t" + capEff +
			"\nCapEff:\t" + capEff + "\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\n"), nil
	}
}

// testECSHost is a container without NET_ADMIN and with env.
func testECSHost(env map[string]string) ecsHost {
	return ecsHost{lookupEnv: fakeEnv(env), readStatus: statusWith("0000000000000000")}
}

func TestECSSidecarRefusesNetAdmin(t *testing.T) {
	a := newAgent(t, map[string]page{"/taskWithTags": ok(testdataFile(t, "testdata/ecs/ec2_task_with_tags.json"))})
	cases := []struct {
		name   string
		status func() ([]byte, error)
		want   []string // nil: starts
	}{
		{"no capabilities (drop ALL)", statusWith("0000000000000000"), nil},
		{"Docker's default set, no NET_ADMIN", statusWith("00000000a80425fb"), nil},
		{"NET_ADMIN alone", statusWith("0000000000001000"), []string{"CAP_NET_ADMIN", "0000000000001000", "capabilities.drop"}},
		{"root's full set", statusWith("000001ffffffffff"), []string{"CAP_NET_ADMIN"}},
		{"unreadable", func() ([]byte, error) { return nil, os.ErrPermission }, []string{"/proc/self/status", "NET_ADMIN"}},
		{"no CapEff line", func() ([]byte, error) { return []byte("Name:\twarden\n"), nil }, []string{"no CapEff"}},
		{"CapEff not hex", statusWith("zz"), []string{"not a 64-bit hex mask"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := startECSSidecar(ctx, ECSSidecarConfig{URL: a.url()}, Deps{}, ecsHost{lookupEnv: fakeEnv(nil), readStatus: tc.status})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				cancel()
				<-s.done
				return
			}
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// credsBody is the agent's credentials answer: the role and its secrets,
// which must never surface.
const (
	credsPath   = "/v2/credentials/7e1b5b3c-0f5e-4d8a-9d2b-3f6a1c2e4b5d"
	credsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
	credsToken  = "IQoJb3JpZ2luX2VjSESSIONTOKEN"
)

func credsBody(role string) string {
	return `{"AccessKeyId":"ASIAEXAMPLEEXAMPLE01","Expiration":"2026-12-01T12:00:00Z","RoleArn":"` + role +
		`","SecretAccessKey":"` + credsSecret + `","Token":"` + credsToken + `"}`
}

// credsAgent serves task metadata under agentPrefix and the credentials
// endpoint at credsPath on the same address, as the ECS agent does.
func credsAgent(t *testing.T, creds page) string {
	task := testdataFile(t, "testdata/ecs/ec2_task_with_tags.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := page{status: http.StatusNotFound, body: "not found"}
		switch r.URL.Path {
		case agentPrefix + "/taskWithTags":
			p = ok(task)
		case credsPath:
			p = creds
		}
		if p.status == 0 {
			p.status = http.StatusOK
		}
		w.WriteHeader(p.status)
		_, _ = w.Write([]byte(p.body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + agentPrefix
}

func TestECSSidecarTaskRole(t *testing.T) {
	const role = "arn:aws:iam::111122223333:role/warden/app-payments"
	cases := []struct {
		name  string
		creds page
		env   map[string]string
		role  string   // the tag, when it starts
		want  []string // the error, when it does not
	}{
		{"task role is a strong tag", ok(credsBody(role)), map[string]string{ECSCredentialsEnv: credsPath}, role, nil},
		{"no task role: no tag", ok(credsBody(role)), nil, "", nil},
		{"endpoint refuses", page{status: 400, body: `{"code":"InvalidIdentifier","message":"` + credsSecret + `"}`},
			map[string]string{ECSCredentialsEnv: credsPath}, "", []string{"HTTP 400"}},
		{"unknown credentials id", ok(""), map[string]string{ECSCredentialsEnv: "/v2/credentials/other"}, "", []string{"HTTP 404"}},
		{"not JSON", ok("<html>" + credsSecret), map[string]string{ECSCredentialsEnv: credsPath}, "", []string{"not JSON with a RoleArn"}},
		{"not a role", ok(credsBody("arn:aws:iam::111122223333:user/alice")), map[string]string{ECSCredentialsEnv: credsPath}, "", []string{"not an IAM role ARN"}},
		{"no RoleArn", ok(`{"AccessKeyId":"A","SecretAccessKey":"` + credsSecret + `"}`), map[string]string{ECSCredentialsEnv: credsPath}, "", []string{`RoleArn ""`}},
		{"role in another account", ok(credsBody("arn:aws:iam::999988887777:role/warden/x")), map[string]string{ECSCredentialsEnv: credsPath}, "",
			[]string{"not in the task's account 111122223333"}},
		{"absolute URL in the env", ok(credsBody(role)), map[string]string{ECSCredentialsEnv: "http://10.0.0.9/v2/credentials/x"}, "", []string{"a path on the agent's address"}},
		{"scheme-relative URL in the env", ok(credsBody(role)), map[string]string{ECSCredentialsEnv: "//10.0.0.9/v2/credentials/x"}, "", []string{"a path on the agent's address"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := credsAgent(t, tc.creds)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := startECSSidecar(ctx, ECSSidecarConfig{URL: u, Refresh: time.Hour}, Deps{}, testECSHost(tc.env))
			if tc.want != nil {
				if err == nil {
					t.Fatal("started")
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if strings.Contains(err.Error(), credsSecret) || strings.Contains(err.Error(), credsToken) {
					t.Errorf("error leaks the credentials: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); <-s.done }()
			id, _ := s.Resolve(ctx, loopback)
			got, ok := id.Tags[TagECSTaskRole]
			if tc.role == "" {
				if ok {
					t.Errorf("task role tag %v without a task role", got)
				}
				return
			}
			if !ok || got.Value != tc.role || !got.Strong {
				t.Errorf("task role tag %+v, want %q strong", got, tc.role)
			}
			if strings.Contains(fmt_(id), credsSecret) {
				t.Error("identity holds the secret")
			}
		})
	}
}

func fmt_(v any) string { b, _ := json.Marshal(v); return string(b) }

func FuzzParseCapEff(f *testing.F) {
	for _, s := range []string{"CapEff:\t0000000000001000\n", "CapEff:\t000001ffffffffff", "Name:\tx\nCapEff:\t\n", "CapEff: zz", "CapEff:\t00000000000010000"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseCapEff(data)
		if err == nil && !strings.Contains(string(data), "CapEff:") {
			t.Fatalf("parsed %x from a status without CapEff", v)
		}
	})
}
