package inject

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	sigsyaml "sigs.k8s.io/yaml"
)

type fakeNamespaces map[string]Namespace

func (f fakeNamespaces) Namespace(_ context.Context, name string) (Namespace, error) {
	ns, ok := f[name]
	if !ok {
		return Namespace{}, errors.New("namespaces \"" + name + "\" not found")
	}
	return ns, nil
}

var testNamespaces = fakeNamespaces{
	"shop":          shop,
	"open":          {Name: "open", Labels: map[string]string{LabelEnrolled: "true", LabelAllowOptOut: "true"}},
	"plain":         {Name: "plain"},
	"warden-system": {Name: "warden-system", Labels: map[string]string{LabelEnrolled: "true"}},
}

func review(t testing.TB, ns string, op admissionv1.Operation, pod *corev1.Pod) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "uid-42", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: ns, Operation: op,
			Object: runtime.RawExtension{Raw: raw}},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func simplePod(ann map[string]string) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
}

// The handler answers every AdmissionReview with the request's uid, injects
// only pod CREATEs in enrolled namespaces, and refuses (with a message
// naming why) what it cannot or must not admit.
func TestHandler(t *testing.T) {
	in := testInjector(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	h := &Handler{Injector: in, Namespaces: testNamespaces, Metrics: m, Log: zap.New(core)}
	// Logs name what happened, never the sidecar's configuration or
	// Warden's role (checked after the cases).
	defer func() {
		for _, e := range logs.All() {
			line := e.Message
			for k, v := range e.ContextMap() {
				line += fmt.Sprintf(" %s=%v", k, v)
			}
			for _, secret := range []string{in.cfg.RoleARN, "shop-prod", ConfigEnv, TokenFile} {
				if strings.Contains(line, secret) {
					t.Errorf("log line carries %q: %s", secret, line)
				}
			}
		}
		if logs.Len() < 10 {
			t.Errorf("%d log lines for the cases", logs.Len())
		}
	}()
	hostNet := simplePod(nil)
	hostNet.Spec.HostNetwork = true
	sharePID := simplePod(nil)
	yes := true
	sharePID.Spec.ShareProcessNamespace = &yes
	hostPID := simplePod(nil)
	hostPID.Spec.HostPID = true
	noApp := simplePod(nil)
	noApp.Spec.Containers[0].Name = ContainerName
	cases := []struct {
		name    string
		ns      string
		op      admissionv1.Operation
		pod     *corev1.Pod
		allowed bool
		patched bool
		outcome Outcome
		msg     string
	}{
		{"enrolled endpoint", "shop", admissionv1.Create, simplePod(nil), true, true, OutcomeInjected, ""},
		{"enrolled proxy", "shop", admissionv1.Create, simplePod(map[string]string{AnnotationMode: ModeProxy}), true, true, OutcomeInjected, ""},
		{"inject=true", "shop", admissionv1.Create, simplePod(map[string]string{AnnotationInject: "true"}), true, true, OutcomeInjected, ""},
		{"not enrolled", "plain", admissionv1.Create, simplePod(nil), true, false, OutcomeSkipped, ""},
		{"injector's own namespace", "warden-system", admissionv1.Create, simplePod(nil), true, false, OutcomeSkipped, ""},
		{"update", "shop", admissionv1.Update, simplePod(nil), true, false, OutcomeSkipped, ""},
		{"opt-out allowed", "open", admissionv1.Create, simplePod(map[string]string{AnnotationInject: "false"}), true, false, OutcomeOptedOut, ""},
		{"opt-out forbidden", "shop", admissionv1.Create, simplePod(map[string]string{AnnotationInject: "false"}), false, false, OutcomeDenied, "does not allow opting out"},
		{"inject=maybe", "shop", admissionv1.Create, simplePod(map[string]string{AnnotationInject: "maybe"}), false, false, OutcomeDenied, `want "true" or "false"`},
		{"bad mode", "shop", admissionv1.Create, simplePod(map[string]string{AnnotationMode: "ebpf"}), false, false, OutcomeDenied, "want endpoint, proxy or transparent"},
		{"hostNetwork", "shop", admissionv1.Create, hostNet, false, false, OutcomeDenied, "hostNetwork"},
		{"shareProcessNamespace", "shop", admissionv1.Create, sharePID, false, false, OutcomeDenied, "shares a process namespace"},
		{"hostPID", "shop", admissionv1.Create, hostPID, false, false, OutcomeDenied, "shares a process namespace"},
		{"only a warden container", "shop", admissionv1.Create, noApp, false, false, OutcomeDenied, "no container but"},
		{"namespace lookup fails", "gone", admissionv1.Create, simplePod(nil), false, false, OutcomeError, `cannot read namespace "gone"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(m.admissions.WithLabelValues(string(tc.outcome)))
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(review(t, tc.ns, tc.op, tc.pod)))
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			r := out.Response
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || r == nil || r.UID != "uid-42" {
				t.Fatalf("response envelope: %+v", out)
			}
			if r.Allowed != tc.allowed || (r.Patch != nil) != tc.patched {
				t.Fatalf("allowed %v patch %s; want allowed %v patched %v (%+v)", r.Allowed, r.Patch, tc.allowed, tc.patched, r.Result)
			}
			if tc.patched && (r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch) {
				t.Errorf("patchType %v", r.PatchType)
			}
			if tc.msg != "" && (r.Result == nil || !strings.Contains(r.Result.Message, tc.msg)) {
				t.Errorf("result %+v, want a message with %q", r.Result, tc.msg)
			}
			if got := testutil.ToFloat64(m.admissions.WithLabelValues(string(tc.outcome))); got != before+1 {
				t.Errorf("admissions{outcome=%s}: %v → %v", tc.outcome, before, got)
			}
		})
	}
}

// Requests that are not an AdmissionReview get an HTTP error, not an answer.
func TestHandlerBadRequests(t *testing.T) {
	h := &Handler{Injector: testInjector(t), Namespaces: testNamespaces}
	good := review(t, "shop", admissionv1.Create, simplePod(nil))
	cases := []struct {
		name, method, ctype string
		body                []byte
		status              int
		msg                 string
	}{
		{"GET", http.MethodGet, "application/json", nil, http.StatusMethodNotAllowed, "POST"},
		{"yaml", http.MethodPost, "application/yaml", good, http.StatusUnsupportedMediaType, "application/json"},
		{"not json", http.MethodPost, "application/json", []byte("{"), http.StatusBadRequest, "AdmissionReview"},
		{"v1beta1", http.MethodPost, "application/json", bytes.Replace(good, []byte("admission.k8s.io/v1"), []byte("admission.k8s.io/v1beta1"), 1), http.StatusBadRequest, "want admission.k8s.io/v1"},
		{"no request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), http.StatusBadRequest, "no request"},
		{"no uid", http.MethodPost, "application/json", bytes.Replace(good, []byte(`"uid":"uid-42"`), []byte(`"uid":""`), 1), http.StatusBadRequest, "uid is empty"},
		{"too large", http.MethodPost, "application/json", bytes.Repeat([]byte(" "), MaxReviewBytes+1), http.StatusRequestEntityTooLarge, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, "/inject", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Errorf("status %d body %q; want %d with %q", rec.Code, rec.Body, tc.status, tc.msg)
			}
		})
	}
	// A pod that does not decode is refused in the AdmissionReview answer.
	bad := bytes.Replace(good, []byte(`"containers":[`), []byte(`"containers":7,"x":[`), 1)
	var r admissionv1.AdmissionReview
	_ = json.Unmarshal(bad, &r)
	resp, outcome := h.Review(context.Background(), r.Request)
	if resp.Allowed || outcome != OutcomeBadInput || resp.UID != "uid-42" {
		t.Errorf("undecodable pod: allowed %v outcome %s", resp.Allowed, outcome)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "injector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, from, to, want string }{
		{"unknown key", "region: us-east-1\n", "region: us-east-1\nregoin: x\n", "field regoin not found"},
		{"no image", "image: ghcr.io", "#image: ghcr.io", "image is required"},
		{"bad role", "role_arn: arn:aws:iam::111122223333:role/warden/warden-sidecar", "role_arn: warden", "is not an IAM role ARN"},
		{"short token", "token_expiration_seconds: 3600", "token_expiration_seconds: 60", "below Kubernetes' 600"},
		{"bad quantity", "memory: 256Mi}", "memory: lots}", `resources.limits.memory: "lots"`},
		{"unknown resource", "limits: {memory: 256Mi}", "limits: {gpu: 1}", `unknown resource "gpu"`},
		{"policy listen", "  version: 1\n", "  version: 1\n  listen: {endpoint: 0.0.0.0:80}\n", "policy.listen is written by the injector"},
		{"policy identity", "  version: 1\n", "  version: 1\n  identity: {sources: [static]}\n", "policy.identity is written by the injector"},
		{"spool dir", "  audit:\n", "  audit:\n    spool: {dir: /tmp}\n", "policy.audit.spool.dir /tmp"},
		{"bad namespace", "namespace: warden-system", "namespace: Warden_System", `namespace "Warden_System"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(string(base), tc.from, tc.to, 1)
			if data == string(base) {
				t.Fatalf("%q not in the base config", tc.from)
			}
			_, err := ParseConfig([]byte(data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A replaced certificate and key are served from the next handshake on; a
// pair that does not load keeps the last good one; a key readable by
// others is refused.
func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	a, err := NewSelfSigned([]string{"127.0.0.1", "warden-inject.warden-system.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Write(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "tls.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("tls.key mode %v", fi.Mode().Perm())
	}
	r, err := NewCertReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	served := func() []byte {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads the served certificate
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	leaf := func(s *SelfSigned) []byte {
		pair, err := tls.X509KeyPair(s.Cert, s.Key)
		if err != nil {
			t.Fatal(err)
		}
		return pair.Certificate[0]
	}
	if !bytes.Equal(served(), leaf(a)) {
		t.Fatal("first handshake: not certificate A")
	}
	b, _ := NewSelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(), leaf(b)) {
		t.Fatal("after replacing the files: not certificate B")
	}
	// The CA written beside it verifies what is served.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.CACert)
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Errorf("verify against ca.crt: %v", err)
	} else {
		c.Close()
	}
	// A half-written renewal: the previous certificate stays.
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("-----BEGIN CERTIFICATE-----\ngarbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(), leaf(b)) {
		t.Fatal("a broken file replaced the good certificate")
	}
	// A key readable by others is refused.
	if err := os.Chmod(filepath.Join(dir, "tls.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(dir); err != nil { // rewrites tls.key 0600
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Join(dir, "tls.key"), 0o640)
	if _, err := NewCertReloader(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil); err == nil || !strings.Contains(err.Error(), "make it 0600") {
		t.Errorf("group-readable key: %v", err)
	}
}

// FuzzDecodeReview feeds arbitrary bodies through the decoding path and
// the decision: no panic, the uid is echoed, a refusal says why, and a
// patch is a JSON array.
func FuzzDecodeReview(f *testing.F) {
	in := testInjector(f)
	h := &Handler{Injector: in, Namespaces: testNamespaces}
	f.Add(review(f, "shop", admissionv1.Create, simplePod(nil)))
	f.Add(review(f, "shop", admissionv1.Create, simplePod(map[string]string{AnnotationMode: ModeTransparent})))
	f.Add(review(f, "open", admissionv1.Create, simplePod(map[string]string{AnnotationInject: "false"})))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE","object":{"spec":{"containers":null}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE","object":[]}}`))
	f.Add([]byte(`{}`))
	// The golden pods, as the API server would send them.
	inputs, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.yaml"))
	for _, path := range inputs {
		if strings.HasSuffix(path, ".injected.yaml") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		var pod corev1.Pod
		if err := sigsyaml.Unmarshal(data, &pod); err != nil {
			f.Fatal(err)
		}
		f.Add(review(f, "shop", admissionv1.Create, &pod))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReview(body)
		if err != nil {
			return
		}
		resp, outcome := h.Review(context.Background(), r.Request)
		if resp.UID != r.Request.UID {
			t.Fatalf("uid %q answered as %q", r.Request.UID, resp.UID)
		}
		if !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
			t.Fatalf("refusal without a message (outcome %s)", outcome)
		}
		if resp.Patch != nil {
			var ops []map[string]any
			if err := json.Unmarshal(resp.Patch, &ops); err != nil || len(ops) == 0 {
				t.Fatalf("patch %q: %v", resp.Patch, err)
			}
		}
	})
}

// FuzzParseConfig: any injector configuration that parses renders, in
// every mode, a sidecar configuration that is YAML with the injector's
// keys; nothing panics.
func FuzzParseConfig(f *testing.F) {
	base, err := os.ReadFile(filepath.Join("testdata", "injector.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(base)
	deploy, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", "injector", "config.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(deploy)
	deployBundle, err := os.ReadFile(filepath.Join("..", "deploy", "kubernetes", "injector", "config-bundle.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(deployBundle)
	f.Add([]byte("image: x\nrole_arn: arn:aws:iam::111122223333:role/r\nregion: us-east-1\npolicy: {version: 1}\n"))
	f.Add([]byte("policy: {listen: {}}\n"))
	f.Add([]byte("resources: {limits: {memory: -1}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		in, err := New(cfg, "fuzz")
		if err != nil {
			t.Fatalf("ParseConfig accepted what New refuses: %v", err)
		}
		for _, m := range []string{ModeEndpoint, ModeProxy, ModeTransparent} {
			var out map[string]any
			if err := sigsyaml.Unmarshal(in.SidecarConfig(m), &out); err != nil {
				t.Fatalf("%s config is not YAML: %v", m, err)
			}
			if _, ok := out["identity"]; !ok {
				t.Fatalf("%s config has no identity", m)
			}
		}
	})
}

// A Secret volume as the kubelet writes it (files are symlinks into
// ..data, itself a symlink to a timestamped directory swapped on update;
// mode 0440 for fsGroup): the key's group bit is accepted there, and a
// swap of ..data is served from the next handshake.
func TestCertReloadKubeletSecretVolume(t *testing.T) {
	vol := t.TempDir()
	version := func(name string, s *SelfSigned) {
		t.Helper()
		d := filepath.Join(vol, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, data := range map[string][]byte{"tls.crt": s.Cert, "tls.key": s.Key} {
			if err := os.WriteFile(filepath.Join(d, f), data, 0o440); err != nil {
				t.Fatal(err)
			}
		}
		tmp := filepath.Join(vol, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := NewSelfSigned([]string{"127.0.0.1"}, time.Hour)
	b, _ := NewSelfSigned([]string{"127.0.0.1"}, time.Hour)
	version("..2026_12_05_06_00_00.1", a)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(vol, f)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewCertReloader(filepath.Join(vol, "tls.crt"), filepath.Join(vol, "tls.key"), nil)
	if err != nil {
		t.Fatalf("0440 key in a kubelet Secret volume: %v", err)
	}
	leaf := func(c *tls.Certificate) []byte { return c.Certificate[0] }
	want := func(s *SelfSigned) []byte {
		pair, _ := tls.X509KeyPair(s.Cert, s.Key)
		return pair.Certificate[0]
	}
	got, _ := r.GetCertificate(nil)
	if !bytes.Equal(leaf(got), want(a)) {
		t.Fatal("not certificate A")
	}
	version("..2026_12_05_07_00_00.2", b)
	got, _ = r.GetCertificate(nil)
	if !bytes.Equal(leaf(got), want(b)) {
		t.Fatal("after the ..data swap: not certificate B")
	}
}
