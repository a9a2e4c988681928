package identity

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestParseDownwardAPI(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want map[string]string
		err  []string // substrings of the error; nil means success
	}{
		{"empty file", "", map[string]string{}, nil},
		{"kubelet shape", "app=\"web\"\nenv=\"prod\"\n", map[string]string{"app": "web", "env": "prod"}, nil},
		{"no trailing newline", "app=\"web\"", map[string]string{"app": "web"}, nil},
		{"empty lines", "\n\napp=\"web\"\n\n\nenv=\"prod\"\n\n", map[string]string{"app": "web", "env": "prod"}, nil},
		{"equals in value", `q="a=b=c"` + "\n", map[string]string{"q": "a=b=c"}, nil},
		{"empty value", `e=""`, map[string]string{"e": ""}, nil},
		{"escaped quote and backslash", `k="say \"hi\" \\o/"`, map[string]string{"k": `say "hi" \o/`}, nil},
		{"escaped newline and tab", `k="a\nb\tc"`, map[string]string{"k": "a\nb\tc"}, nil},
		{"unicode escapes and literal", `k="caf\u00e9 🚀 \U0001F680"`, map[string]string{"k": "café 🚀 🚀"}, nil},
		{"prefixed keys", `app.kubernetes.io/name="x"` + "\n" + `example.com/a.b-c_d="y"`, map[string]string{"app.kubernetes.io/name": "x", "example.com/a.b-c_d": "y"}, nil},
		{"no equals names the line", "app=\"web\"\ngarbage\n", nil, []string{"line 2", "garbage", "no '='"}},
		{"unquoted value", "app=\"web\"\n\nenv=prod\n", nil, []string{"line 3", "env=prod", "quoted"}},
		{"single quotes", "app='web'", nil, []string{"line 1", "quoted"}},
		{"trailing junk after quote", `app="web" x`, nil, []string{"line 1"}},
		{"bad escape", `app="\q"`, nil, []string{"line 1"}},
		{"raw newline inside quotes", "app=\"we\nb\"", nil, []string{"line 1"}},
		{"CRLF line", "app=\"web\"\r\n", nil, []string{"line 1"}},
		{"empty key", `="v"`, nil, []string{"line 1", "empty key"}},
		{"key with space", ` app="v"`, nil, []string{"line 1", "space"}},
		{"duplicate key", "a=\"1\"\na=\"2\"\n", nil, []string{"line 2", "repeated"}},
		{"long line is cut in the message", strings.Repeat("x", 500), nil, []string{"line 1", "…"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDownwardAPI([]byte(tc.in))
			if tc.err == nil {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				if !maps.Equal(got, tc.want) {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %q", got)
			}
			for _, w := range tc.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if len(err.Error()) > 200 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestParseDownwardAPITestdata(t *testing.T) {
	labels, _, err := readDownwardAPIFile("testdata/k8s/labels")
	if err != nil {
		t.Fatal(err)
	}
	if labels["app.kubernetes.io/name"] != "payments" || labels["env"] != "prod" || len(labels) != 6 {
		t.Errorf("labels: %q", labels)
	}
	ann, _, err := readDownwardAPIFile("testdata/k8s/annotations")
	if err != nil {
		t.Fatal(err)
	}
	if got := ann["warden.dev/note"]; got != "query=a=b&c=d; tab:\there, café 🚀, bell \a, quote \" backslash \\" {
		t.Errorf("note: %q", got)
	}
	if got := ann["kubectl.kubernetes.io/last-applied-configuration"]; !strings.HasPrefix(got, `{"apiVersion":"v1"`) || !strings.HasSuffix(got, "}\n") {
		t.Errorf("last-applied: %q", got)
	}
}

// podDir lays files out as the kubelet's atomic writer does: the data in a
// timestamped directory, ..data a symlink to it (swapped by rename), and each
// visible name a symlink through ..data.
type podDir struct {
	t   *testing.T
	dir string
	n   int
}

func newPodDir(t *testing.T, files map[string]string) *podDir {
	p := &podDir{t: t, dir: t.TempDir()}
	p.write(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(p.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *podDir) path(name string) string { return filepath.Join(p.dir, name) }

func (p *podDir) write(files map[string]string) {
	p.t.Helper()
	p.n++
	ts := fmt.Sprintf("..2024_05_14_09_12_%02d.%d", p.n, p.n)
	if err := os.Mkdir(filepath.Join(p.dir, ts), 0o755); err != nil {
		p.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(p.dir, ts, name), []byte(content), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	tmp := filepath.Join(p.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "..data")); err != nil {
		p.t.Fatal(err)
	}
}

func fakeEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var podEnvVars = map[string]string{
	"POD_NAMESPACE":       "payments",
	"POD_SERVICE_ACCOUNT": "payments-api",
	"POD_NAME":            "payments-api-7d9c6b8f5d-x2k4q",
	"POD_IP":              "10.1.2.3",
	"HOST_IP":             "10.0.0.7",
}

func testdataFile(t testing.TB, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startK8s starts a source over files laid out like a kubelet's; the poller
// effectively never ticks unless interval says otherwise, so tests drive
// check() themselves.
func startK8s(t testing.TB, cfg KubernetesSidecarConfig, env map[string]string, log *zap.Logger) (*KubernetesSidecarSource, error) {
	ctx, cancel := context.WithCancel(context.Background())
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Hour
	}
	s, err := startKubernetesSidecar(ctx, cfg, Deps{Logger: log}, fakeEnv(env))
	if err != nil {
		cancel()
		return nil, err
	}
	t.Cleanup(func() { cancel(); <-s.done })
	return s, nil
}

var loopback = &Conn{Remote: netip.MustParseAddrPort("127.0.0.1:50000")}

func TestKubernetesSidecarIdentity(t *testing.T) {
	p := newPodDir(t, map[string]string{
		"labels":      testdataFile(t, "testdata/k8s/labels"),
		"annotations": testdataFile(t, "testdata/k8s/annotations"),
	})
	for _, trust := range []bool{false, true} {
		t.Run(fmt.Sprintf("trust_pod_env=%v", trust), func(t *testing.T) {
			s, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: p.path("labels"), AnnotationsPath: p.path("annotations"), TrustPodEnv: trust}, podEnvVars, nil)
			if err != nil {
				t.Fatal(err)
			}
			id, err := s.Resolve(context.Background(), loopback)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]struct {
				v      string
				strong bool
			}{
				TagK8sNamespace:                       {"payments", trust},
				TagK8sServiceAccount:                  {"payments-api", trust},
				TagK8sPod:                             {"payments-api-7d9c6b8f5d-x2k4q", trust},
				"k8s.label.app":                       {"payments-api", false},
				"k8s.label.env":                       {"prod", false},
				"k8s.label.app.kubernetes.io/part-of": {"checkout", false},
				"k8s.annotation.kubernetes.io/config.source": {"api", false},
				"k8s.annotation.warden.dev/note":             {"query=a=b&c=d; tab:\there, café 🚀, bell \a, quote \" backslash \\", false},
			}
			for k, w := range want {
				got, ok := id.Tags[k]
				if !ok || got.Value != w.v || got.Strong != w.strong || got.Source != SourceKubernetesSidecar {
					t.Errorf("%s = %+v (present %v), want %q strong=%v", k, got, ok, w.v, w.strong)
				}
			}
			if len(id.Tags) != 3+6+5 {
				t.Errorf("%d tags: %v", len(id.Tags), id)
			}
			if id.Source != SourceKubernetesSidecar || s.Name() != SourceKubernetesSidecar {
				t.Errorf("source %q / name %q", id.Source, s.Name())
			}
			if id.values == nil || !maps.Equal(id.values, id.TagValues()) || id.values["k8s.label.team"] != "payments" {
				t.Errorf("values not precomputed: %v", id.values)
			}
		})
	}
}

func TestKubernetesSidecarOptionalParts(t *testing.T) {
	p := newPodDir(t, map[string]string{"labels": "app=\"x\"\n"})
	env := map[string]string{"POD_NAMESPACE": "ns"}
	s, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: p.path("labels"), AnnotationsPath: p.path("annotations")}, env, nil)
	if err != nil {
		t.Fatalf("missing annotations file and optional env must be fine: %v", err)
	}
	id, _ := s.Resolve(context.Background(), loopback)
	want := map[string]string{TagK8sNamespace: "ns", "k8s.label.app": "x"}
	if !maps.Equal(id.TagValues(), want) {
		t.Errorf("tags %v, want %v", id.TagValues(), want)
	}
}

func TestKubernetesSidecarConfigurableNames(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "l"), []byte(`a="b"`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MY_NS": "ns2", "MY_SA": "sa2", "MY_POD": "pod2", "POD_NAMESPACE": "wrong"}
	s, err := startK8s(t, KubernetesSidecarConfig{
		LabelsPath: filepath.Join(dir, "l"), AnnotationsPath: filepath.Join(dir, "a"),
		NamespaceEnv: "MY_NS", ServiceAccountEnv: "MY_SA", PodNameEnv: "MY_POD",
	}, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := s.Resolve(context.Background(), loopback)
	if id.Tags[TagK8sNamespace].Value != "ns2" || id.Tags[TagK8sServiceAccount].Value != "sa2" || id.Tags[TagK8sPod].Value != "pod2" {
		t.Errorf("tags %v", id)
	}
}

func TestKubernetesSidecarLoopbackOnly(t *testing.T) {
	p := newPodDir(t, map[string]string{"labels": `app="x"`})
	s, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: p.path("labels"), AnnotationsPath: p.path("annotations")}, podEnvVars, nil)
	if err != nil {
		t.Fatal(err)
	}
	testLoopbackOnly(t, s)
}

func testLoopbackOnly(t *testing.T, s Source) {
	t.Helper()
	for _, tc := range []struct {
		remote string
		ok     bool
	}{
		{"127.0.0.1:1234", true},
		{"127.9.8.7:1234", true},
		{"[::1]:1234", true},
		{"[::ffff:127.0.0.1]:1234", true},
		{"10.1.2.3:1234", false},
		{"[fe80::1]:1234", false},
		{"0.0.0.0:1234", false},
		{"169.254.170.2:80", false},
		{"[::ffff:10.0.0.1]:1234", false},
	} {
		_, err := s.Resolve(context.Background(), &Conn{Remote: netip.MustParseAddrPort(tc.remote)})
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: err %v, want ok=%v", tc.remote, err, tc.ok)
		}
	}
	if _, err := s.Resolve(context.Background(), nil); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("nil conn: %v", err)
	}
	if _, err := s.Resolve(context.Background(), &Conn{}); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("zero conn: %v", err)
	}
}

func TestKubernetesSidecarStartErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", `app="x"`)
	bad := write("bad", "app=\"x\"\nenv=prod\n")
	missing := filepath.Join(dir, "missing")
	noNS := maps.Clone(podEnvVars)
	delete(noNS, "POD_NAMESPACE")
	emptyNS := maps.Clone(podEnvVars)
	emptyNS["POD_NAMESPACE"] = ""
	hostNet := maps.Clone(podEnvVars)
	hostNet["POD_IP"] = hostNet["HOST_IP"]

	cases := []struct {
		name          string
		labels, annot string
		env           map[string]string
		want          []string
	}{
		{"missing labels file names the path", missing, filepath.Join(dir, "a"), podEnvVars, []string{missing, "labels", "downwardAPI"}},
		{"labels is a directory", dir, filepath.Join(dir, "a"), podEnvVars, []string{dir}},
		{"malformed labels name the line", bad, filepath.Join(dir, "a"), podEnvVars, []string{bad, "line 2", "env=prod"}},
		{"malformed annotations", good, bad, podEnvVars, []string{"annotations", bad, "line 2"}},
		{"namespace env unset", good, missing, noNS, []string{"POD_NAMESPACE", "metadata.namespace"}},
		{"namespace env empty", good, missing, emptyNS, []string{"POD_NAMESPACE"}},
		{"hostNetwork pod", good, missing, hostNet, []string{"hostNetwork", "10.0.0.7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: tc.labels, AnnotationsPath: tc.annot}, tc.env, nil)
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

func TestKubernetesSidecarReload(t *testing.T) {
	p := newPodDir(t, map[string]string{"labels": "app=\"web\"\nenv=\"dev\"\n", "annotations": `note="one"`})
	core, logs := observer.New(zap.InfoLevel)
	s, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: p.path("labels"), AnnotationsPath: p.path("annotations")}, podEnvVars, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	current := func() map[string]string {
		id, err := s.Resolve(context.Background(), loopback)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, v := range id.TagValues() {
			if strings.HasPrefix(k, TagK8sLabelPrefix) || strings.HasPrefix(k, TagK8sAnnotPrefix) {
				out[k] = v
			}
		}
		return out
	}
	held := current()

	steps := []struct {
		name     string
		files    map[string]string // written as one kubelet update; nil: no change
		want     map[string]string
		failures uint64
		reloads  uint64
	}{
		{"unchanged files are not re-read", nil,
			map[string]string{"k8s.label.app": "web", "k8s.label.env": "dev", "k8s.annotation.note": "one"}, 0, 0},
		{"label change is picked up", map[string]string{"labels": "app=\"web\"\nenv=\"prod\"\n", "annotations": `note="one"`},
			map[string]string{"k8s.label.app": "web", "k8s.label.env": "prod", "k8s.annotation.note": "one"}, 0, 1},
		{"malformed labels keep the last good set", map[string]string{"labels": "app=\"web\"\nenv=prod\n", "annotations": `note="two"`},
			map[string]string{"k8s.label.app": "web", "k8s.label.env": "prod", "k8s.annotation.note": "one"}, 1, 1},
		{"a bad version is reported once", nil,
			map[string]string{"k8s.label.app": "web", "k8s.label.env": "prod", "k8s.annotation.note": "one"}, 1, 1},
		{"a good version after a bad one", map[string]string{"labels": "app=\"api\"\n", "annotations": `note="three"`},
			map[string]string{"k8s.label.app": "api", "k8s.annotation.note": "three"}, 1, 2},
		{"same size, new inode", map[string]string{"labels": "app=\"apj\"\n", "annotations": `note="three"`},
			map[string]string{"k8s.label.app": "apj", "k8s.annotation.note": "three"}, 1, 3},
	}
	for _, st := range steps {
		if st.files != nil {
			p.write(st.files)
		}
		s.check()
		if got := current(); !maps.Equal(got, st.want) {
			t.Errorf("%s: tags %v, want %v", st.name, got, st.want)
		}
		if s.ReloadFailures() != st.failures || s.Reloads() != st.reloads {
			t.Errorf("%s: failures %d reloads %d, want %d %d", st.name, s.ReloadFailures(), s.Reloads(), st.failures, st.reloads)
		}
	}
	if n := logs.FilterMessageSnippet("keeping the last good identity").Len(); n != 1 {
		t.Errorf("%d failure logs, want 1", n)
	}
	if e := logs.FilterMessageSnippet("keeping the last good identity").All(); len(e) == 1 && !strings.Contains(fmt.Sprint(e[0].ContextMap()["error"]), "line 2") {
		t.Errorf("failure log does not name the line: %v", e[0].ContextMap())
	}

	// An identity handed out earlier is never modified by a reload.
	if held["k8s.label.env"] != "dev" {
		t.Errorf("earlier identity changed: %v", held)
	}
}

func TestKubernetesSidecarReloadFileAppearsAndGoes(t *testing.T) {
	dir := t.TempDir()
	labels, annots := filepath.Join(dir, "labels"), filepath.Join(dir, "annotations")
	if err := os.WriteFile(labels, []byte(`app="a"`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: labels, AnnotationsPath: annots}, podEnvVars, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(k string) (string, bool) {
		id, _ := s.Resolve(context.Background(), loopback)
		v, ok := id.Tags[k]
		return v.Value, ok
	}
	// Annotations appear (written in place, not by rename).
	if err := os.WriteFile(annots, []byte(`x="1"`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.check()
	if v, _ := get("k8s.annotation.x"); v != "1" {
		t.Fatalf("annotation not loaded: %q", v)
	}
	// Labels vanish: a failure, the last good set stays.
	if err := os.Remove(labels); err != nil {
		t.Fatal(err)
	}
	s.check()
	if v, _ := get("k8s.label.app"); v != "a" || s.ReloadFailures() != 1 {
		t.Fatalf("label %q failures %d", v, s.ReloadFailures())
	}
	s.check() // still missing: not counted again
	if s.ReloadFailures() != 1 {
		t.Fatalf("failures %d", s.ReloadFailures())
	}
	// Labels back, annotations gone: gone annotations mean none.
	if err := os.WriteFile(labels, []byte(`app="b"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(annots); err != nil {
		t.Fatal(err)
	}
	s.check()
	if v, _ := get("k8s.label.app"); v != "b" {
		t.Fatalf("label %q", v)
	}
	if _, ok := get("k8s.annotation.x"); ok {
		t.Fatal("removed annotations still present")
	}
}

// TestKubernetesSidecarPoller checks the background poller itself picks up
// a kubelet update (the other reload tests drive check directly).
func TestKubernetesSidecarPoller(t *testing.T) {
	p := newPodDir(t, map[string]string{"labels": `app="v1"`})
	s, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: p.path("labels"), AnnotationsPath: p.path("annotations"), PollInterval: 5 * time.Millisecond}, podEnvVars, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.write(map[string]string{"labels": `app="v2"`})
	waitFor(t, func() bool {
		id, _ := s.Resolve(context.Background(), loopback)
		return id.Tags["k8s.label.app"].Value == "v2"
	})
}

// waitFor polls cond; the deadline is generous and only guards against a
// hang, it is not a timing assertion.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestKubernetesSidecarConcurrentResolve runs Resolve against reloads under
// the race detector.
func TestKubernetesSidecarConcurrentResolve(t *testing.T) {
	p := newPodDir(t, map[string]string{"labels": `app="v0"`})
	s, err := startK8s(t, KubernetesSidecarConfig{LabelsPath: p.path("labels"), AnnotationsPath: p.path("annotations")}, podEnvVars, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			id, err := s.Resolve(context.Background(), loopback)
			if err != nil || !strings.HasPrefix(id.TagValues()["k8s.label.app"], "v") {
				t.Errorf("resolve: %v %v", id, err)
				return
			}
		}
	}()
	for i := 1; i <= 50; i++ {
		p.write(map[string]string{"labels": fmt.Sprintf(`app="v%d"`, i)})
		s.check()
	}
	close(stop)
	<-done
	id, _ := s.Resolve(context.Background(), loopback)
	if id.Tags["k8s.label.app"].Value != "v50" {
		t.Errorf("final %v", id)
	}
}

func TestKubernetesSidecarValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  KubernetesSidecarConfig
		want []string
	}{
		{"zero config is valid", KubernetesSidecarConfig{}, nil},
		{"full config", KubernetesSidecarConfig{LabelsPath: "/l", AnnotationsPath: "/a", NamespaceEnv: "NS", ServiceAccountEnv: "SA", PodNameEnv: "P_1", TrustPodEnv: true, PollInterval: 2 * time.Second}, nil},
		{"bad env name", KubernetesSidecarConfig{NamespaceEnv: "POD-NS"}, []string{"namespace_env", "POD-NS"}},
		{"env name with =", KubernetesSidecarConfig{ServiceAccountEnv: "A=B"}, []string{"service_account_env"}},
		{"env name starting with a digit", KubernetesSidecarConfig{PodNameEnv: "1POD"}, []string{"pod_name_env"}},
		{"same file twice", KubernetesSidecarConfig{LabelsPath: "/x", AnnotationsPath: "/x"}, []string{"labels_path", "annotations_path"}},
		{"poll too fast", KubernetesSidecarConfig{PollInterval: time.Millisecond}, []string{"poll_interval", "1s"}},
		{"poll negative", KubernetesSidecarConfig{PollInterval: -time.Second}, []string{"poll_interval"}},
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

func TestKubernetesSidecarConfigYAML(t *testing.T) {
	y := strings.Replace(minimal, "identity: {sources: [static], static: {app: a}}", `identity:
  sources: [kubernetes-sidecar]
  kubernetes_sidecar:
    labels_path: /pod/labels
    annotations_path: /pod/annotations
    namespace_env: NS
    service_account_env: SA
    pod_name_env: PN
    pod_ip_env: PIP
    host_ip_env: HIP
    trust_pod_env: true
    poll_interval: 3s`, 1)
	cfg, err := parseIdentity([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	want := KubernetesSidecarConfig{LabelsPath: "/pod/labels", AnnotationsPath: "/pod/annotations", NamespaceEnv: "NS", ServiceAccountEnv: "SA",
		PodNameEnv: "PN", PodIPEnv: "PIP", HostIPEnv: "HIP", TrustPodEnv: true, PollInterval: 3 * time.Second}
	if !reflect.DeepEqual(cfg.Identity.KubernetesSidecar, want) {
		t.Errorf("got %+v", cfg.Identity.KubernetesSidecar)
	}
	_, err = parseIdentity([]byte(strings.Replace(y, "poll_interval: 3s", "poll_interval: 10ms", 1)))
	if err == nil || !strings.Contains(err.Error(), "poll_interval") {
		t.Errorf("fast poll accepted: %v", err)
	}
}

func TestKubernetesSidecarThroughResolver(t *testing.T) {
	p := newPodDir(t, map[string]string{"labels": `app="x"`})
	t.Setenv("POD_NAMESPACE", "team-a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := NewResolver(ctx, Config{Sources: []string{SourceKubernetesSidecar},
		KubernetesSidecar: KubernetesSidecarConfig{LabelsPath: p.path("labels"), AnnotationsPath: p.path("annotations")}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Resolve(ctx, loopback)
	if err != nil || id.Tags[TagK8sNamespace].Value != "team-a" || id.Tags[TagK8sNamespace].Strong {
		t.Fatalf("%v %v", id, err)
	}
	if _, err := r.Resolve(ctx, &Conn{Remote: netip.MustParseAddrPort("10.0.0.1:1")}); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("remote: %v", err)
	}
}

func BenchmarkResolveKubernetesSidecar(b *testing.B) {
	dir := b.TempDir()
	labels := filepath.Join(dir, "labels")
	if err := os.WriteFile(labels, []byte(testdataFile(b, "testdata/k8s/labels")), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := startK8s(b, KubernetesSidecarConfig{LabelsPath: labels, AnnotationsPath: "testdata/k8s/annotations"}, podEnvVars, nil)
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

func FuzzParseDownwardAPI(f *testing.F) {
	for _, p := range []string{"testdata/k8s/labels", "testdata/k8s/annotations"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "\n", `a="b"`, `a="b=c"` + "\n\n", `a=b`, `="x"`, "a=\"\\u00e9\"\r\n", "a=\"1\"\na=\"2\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseDownwardAPI(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error does not name a line: %v", err)
			}
			return
		}
		// Rendering the map as the kubelet does must parse back to it.
		keys := slices.Sorted(maps.Keys(m))
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%q\n", k, m[k])
		}
		back, err := parseDownwardAPI([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.String(), err)
		}
		if !maps.Equal(m, back) {
			t.Fatalf("round trip: %q -> %q", m, back)
		}
	})
}
