package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/zap/zaptest"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
	"github.com/warden-egress/warden/config"
	"github.com/warden-egress/warden/proxy"
)

const nova = "amazon.nova-lite-v1:0"

// reloadPolicy allows one model family; ${MODELS} picks it.
const reloadPolicy = `
version: 1
listen: {endpoint: 127.0.0.1:0, admin: 127.0.0.1:0}
upstream: {region: us-east-1, url: "${UPSTREAM}", insecure: true, signing: resign}
models: {control_plane_url: "${CONTROL_PLANE}", insecure: true}
identity:
  sources: [static]
  static: {app: chatbot, env: prod}
apps:
  - name: chatbot-prod
    allow_weak_identity: true
    match: {tags: {app: chatbot, env: prod}}
    allow:
      models: [${MODELS}]
      operations: [Converse]
`

// memAudit keeps every record without blocking the writer.
type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (m *memAudit) Begin(*audit.Record) error { return nil }
func (m *memAudit) Write(r *audit.Record)     { m.mu.Lock(); m.recs = append(m.recs, *r); m.mu.Unlock() }
func (m *memAudit) Close() error              { return nil }

// wait returns the records once there are n (a record is written after its
// response has gone, so the caller may see the answer first).
func (m *memAudit) wait(t *testing.T, n int) []audit.Record {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if recs := m.all(); len(recs) >= n {
			return recs
		}
	}
	t.Fatalf("timed out waiting for %d audit records", n)
	return nil
}

func (m *memAudit) all() []audit.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Record(nil), m.recs...)
}

// configMapDir lays out a directory the way the kubelet projects a
// ConfigMap: warden.yaml → ..data/warden.yaml, ..data → ..<timestamp>/,
// and each update writes a new timestamped directory and swaps ..data by
// rename.
type configMapDir struct {
	dir string
	n   int
}

func newConfigMapDir(t *testing.T, content string) *configMapDir {
	d := &configMapDir{dir: t.TempDir()}
	d.write(t, content)
	if err := os.Symlink(filepath.Join("..data", "warden.yaml"), d.path()); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *configMapDir) path() string { return filepath.Join(d.dir, "warden.yaml") }

func (d *configMapDir) write(t *testing.T, content string) {
	t.Helper()
	d.n++
	ts := fmt.Sprintf("..2026_11_22_05_00_00.%06d", d.n)
	if err := os.Mkdir(filepath.Join(d.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, ts, "warden.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(d.dir, "..data"))
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		_ = os.RemoveAll(filepath.Join(d.dir, old))
	}
}

type reloadEnv struct {
	srv      *proxy.Server
	audit    *memAudit
	endpoint string
	admin    string
	results  chan proxy.ReloadResult
	policy   func(models string) string
}

// startReloadEnv runs the emulators and a Warden that watches file.
func startReloadEnv(t *testing.T, file func(*reloadEnv) string) *reloadEnv {
	t.Helper()
	emu, cp := newEmulator(t), newControlPlane(t)
	e := &reloadEnv{audit: &memAudit{}, results: make(chan proxy.ReloadResult, 16)}
	e.policy = func(models string) string {
		p := strings.ReplaceAll(reloadPolicy, "${UPSTREAM}", emu.URL)
		p = strings.ReplaceAll(p, "${CONTROL_PLANE}", cp.URL)
		return strings.ReplaceAll(p, "${MODELS}", models)
	}
	path := file(e)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, err = proxy.New(context.Background(), proxy.Options{
		Config:      cfg,
		Credentials: credentials.NewStaticCredentialsProvider(wardenKey, wardenSecret, ""),
		Audit:       e.audit,
		Logger:      zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.srv.ServeEndpoint(ln, nil) }()
	go func() { _ = e.srv.ServeAdmin(aln) }()
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		e.srv.WatchConfig(ctx, path, proxy.WatchOptions{
			Interval: 2 * time.Millisecond, FullEvery: 100 * time.Millisecond, Loaded: data,
			OnReload: func(r proxy.ReloadResult) { e.results <- r },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-watched
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = e.srv.Shutdown(sctx)
	})
	e.endpoint = "http://" + ln.Addr().String()
	e.admin = "http://" + aln.Addr().String()
	return e
}

func (e *reloadEnv) next(t *testing.T) proxy.ReloadResult {
	t.Helper()
	select {
	case r := <-e.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no reload seen after a write")
		return proxy.ReloadResult{}
	}
}

func (e *reloadEnv) client() *bedrockruntime.Client {
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(e.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(appKey, appSecret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       bedrocktest.BufferedClient(nil),
	})
}

func (e *reloadEnv) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A rejected file keeps the last good policy and shows in metrics; a good
// one swaps it; keys that need a restart are named, not applied.
func TestReloadRejectsInvalidKeepsLastGood(t *testing.T) {
	var d *configMapDir
	e := startReloadEnv(t, func(e *reloadEnv) string {
		d = newConfigMapDir(t, e.policy(`"amazon.nova-*"`))
		return d.path()
	})
	if code, body := e.get(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	h0 := e.srv.PolicyHash()
	_, metrics := e.get(t, "/metrics")
	if !strings.Contains(metrics, `warden_policy_info{hash="`+h0+`"} 1`) {
		t.Errorf("metrics lack warden_policy_info for %s", h0)
	}

	d.write(t, strings.Replace(e.policy(`"amazon.nova-*"`), "operations: [Converse]", "operations: [Converse]\n      colour: blue", 1))
	r := e.next(t)
	if r.Err == nil || r.Hash != h0 || len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0], d.path()+":16:7: apps[0].allow.colour: unknown key") {
		t.Fatalf("invalid file: %+v", r)
	}
	_, metrics = e.get(t, "/metrics")
	for _, want := range []string{`warden_config_reloads_total{result="error"} 1`, `warden_config_reloads_total{result="ok"} 0`,
		`warden_policy_info{hash="` + h0 + `"} 1`, "warden_config_last_reload_success_timestamp_seconds "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	d.write(t, strings.Replace(e.policy(`"anthropic.*"`), "static: {app: chatbot, env: prod}", "static: {app: chatbot, env: prod, x: y}", 1))
	r = e.next(t)
	if r.Err != nil || !r.Changed || r.Hash == h0 || strings.Join(r.NotApplied, ",") != "identity.static" {
		t.Fatalf("valid file: %+v", r)
	}
	if e.srv.PolicyHash() != r.Hash {
		t.Errorf("running policy %s, want %s", e.srv.PolicyHash(), r.Hash)
	}
	_, err := e.client().Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(nova), Messages: userMsg("hi")})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) {
		t.Errorf("nova after the reload: %v, want AccessDenied", err)
	}
	recs := e.audit.wait(t, 1)
	if len(recs) != 1 || recs[0].PolicyHash != r.Hash || recs[0].Decision != "deny" {
		t.Errorf("audit: %+v", recs)
	}
}

// Reload under load: the real SDK calls Warden continuously while the
// ConfigMap-style directory is rewritten 100 times, alternating two valid
// policies that allow different models, with invalid files mixed in. No
// call fails other than by the policy's denial, every audit record's
// decision is the one its policy_hash's policy makes, a call made wholly
// after a valid file was applied is decided by it, and at the end the last
// valid file rules.
func TestReloadUnderLoad(t *testing.T) {
	t.Run("configmap", func(t *testing.T) {
		testReloadUnderLoad(t, func(t *testing.T, content string) policyWriter { return newConfigMapDir(t, content) })
	})
	// Rewritten in place (truncate, then write), as `cat > warden.yaml` does:
	// the watcher must not apply a half-written file.
	t.Run("in-place", func(t *testing.T) {
		testReloadUnderLoad(t, func(t *testing.T, content string) policyWriter {
			f := &inPlaceFile{file: filepath.Join(t.TempDir(), "warden.yaml")}
			f.write(t, content)
			return f
		})
	})
}

// policyWriter rewrites the watched file one way or another.
type policyWriter interface {
	path() string
	write(t *testing.T, content string)
}

type inPlaceFile struct{ file string }

func (f *inPlaceFile) path() string { return f.file }
func (f *inPlaceFile) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(f.file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testReloadUnderLoad(t *testing.T, newWriter func(*testing.T, string) policyWriter) {
	var d policyWriter
	e := startReloadEnv(t, func(e *reloadEnv) string {
		d = newWriter(t, e.policy(`"amazon.nova-*"`))
		return d.path()
	})
	novaOnly, haikuOnly := e.policy(`"amazon.nova-*"`), e.policy(`"anthropic.claude-3-5-haiku-*"`)
	hash := func(p string) string {
		cfg, err := config.ParseConfig([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		return config.PolicyHash(cfg)
	}
	allows := map[string]string{hash(novaOnly): nova, hash(haikuOnly): haiku} // policy hash → the model it allows
	invalid := []string{
		strings.Replace(novaOnly, "operations: [Converse]", "operations: [Conversation]", 1), // validation
		strings.Replace(haikuOnly, "version: 1", "version: one", 1),                          // type
		haikuOnly + "  - name: [\n", // syntax
		strings.Replace(novaOnly, "match:", "match:\n      colour: blue", 1), // unknown key
		"", // empty
	}

	// The writer's state, read by callers: the write in flight and, when
	// settled, the hash that must decide.
	type phase struct {
		seq      int
		settled  bool
		expected string
	}
	var cur atomic.Pointer[phase]
	cur.Store(&phase{settled: true, expected: hash(novaOnly)})

	type outcome struct {
		model, reqID, expected string
		allowed                bool
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		failures []string
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.client()
			for i := 0; ctx.Err() == nil; i++ {
				model := nova
				if (i+w)%2 == 1 {
					model = haiku
				}
				before := cur.Load()
				out, err := c.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("hi")})
				after := cur.Load()
				o := outcome{model: model, allowed: err == nil}
				if before == after && before.settled {
					o.expected = before.expected
				}
				var ade *types.AccessDeniedException
				var re *awshttp.ResponseError
				switch {
				case err == nil:
					o.reqID, _ = awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
				case errors.As(err, &ade) && errors.As(err, &re):
					o.reqID = re.ServiceRequestID()
				default:
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %v", model, err))
					mu.Unlock()
					continue
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		}()
	}

	lastValid := hash(novaOnly)
	valid := 0
	for i := range 100 {
		var content string
		bad := i%7 == 3
		switch {
		case bad:
			content = invalid[(i/7)%len(invalid)]
		case valid%2 == 0:
			content = haikuOnly
		default:
			content = novaOnly
		}
		content += fmt.Sprintf("\n# write %d\n", i) // every write changes the file
		seq := cur.Load().seq + 1
		cur.Store(&phase{seq: seq})
		d.write(t, content)
		r := e.next(t)
		if bad {
			if r.Err == nil || r.Hash != lastValid || len(r.Errors) == 0 {
				t.Fatalf("write %d (invalid) gave %+v", i, r)
			}
			for _, msg := range r.Errors {
				if !strings.HasPrefix(msg, d.path()+":") {
					t.Errorf("write %d: error without position: %q", i, msg)
				}
			}
		} else {
			valid++
			lastValid = hash(content)
			if r.Hash != lastValid || len(r.NotApplied) != 0 {
				t.Fatalf("write %d (valid) gave %+v, want hash %s", i, r, lastValid)
			}
		}
		if e.srv.PolicyHash() != lastValid {
			t.Fatalf("write %d: running %s, want %s", i, e.srv.PolicyHash(), lastValid)
		}
		cur.Store(&phase{seq: seq, settled: true, expected: lastValid})
		time.Sleep(time.Millisecond) // let some calls land on every policy
	}
	// After the last valid write, decisions follow it.
	for _, model := range []string{nova, haiku, nova, haiku} {
		_, err := e.client().Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: userMsg("hi")})
		if (err == nil) != (allows[lastValid] == model) {
			t.Errorf("after the last write (%s allows %s): %s gave %v", lastValid, allows[lastValid], model, err)
		}
	}
	stop()
	wg.Wait()

	if len(failures) > 0 {
		t.Fatalf("%d calls failed other than by policy, e.g. %s", len(failures), failures[0])
	}
	mu.Lock()
	recs := e.audit.wait(t, len(outcomes)+4)
	mu.Unlock()
	byID := map[string]audit.Record{}
	hashes := map[string]int{}
	for _, r := range recs {
		allowed, ok := allows[r.PolicyHash]
		if !ok {
			t.Fatalf("record %s has policy_hash %q, not one of the two policies", r.RequestID, r.PolicyHash)
		}
		hashes[r.PolicyHash]++
		if want := r.Model == allowed; (r.Decision == "allow") != want || (want && r.Status != 200) {
			t.Errorf("record %s: %s under %s decided %s (%d)", r.RequestID, r.Model, r.PolicyHash, r.Decision, r.Status)
		}
		byID[r.RequestID] = r
		if r.UpstreamRequestID != "" {
			byID[r.UpstreamRequestID] = r
		}
	}
	if len(hashes) != 2 {
		t.Errorf("calls were decided by %v, want both policies", hashes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outcomes) < 20 {
		t.Errorf("only %d calls during the reloads", len(outcomes))
	}
	settled := 0
	for _, o := range outcomes {
		if o.expected != "" {
			settled++
		}
		r, ok := byID[o.reqID]
		if !ok {
			t.Errorf("call %s (%s) has no audit record", o.reqID, o.model)
			continue
		}
		if o.allowed != (r.Decision == "allow") || r.Model != o.model {
			t.Errorf("call %s: client saw allowed=%v, audit says %s for %s", o.reqID, o.allowed, r.Decision, r.Model)
		}
		if o.expected != "" && r.PolicyHash != o.expected {
			t.Errorf("call %s made while %s was settled was decided by %s", o.reqID, o.expected, r.PolicyHash)
		}
	}
	if settled == 0 {
		t.Error("no call ran wholly between two writes: the switch-over check checked nothing")
	}
	t.Logf("%d calls across 100 writes (%d valid), %d wholly within one policy's time; decided by %v", len(outcomes), valid, settled, hashes)
}
