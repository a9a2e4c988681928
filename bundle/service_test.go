package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

// testService is a bundle.Service on a directory, behind TLS.
type testService struct {
	dir string
	svc *Service
	ts  *httptest.Server
}

func newTestService(t *testing.T, trust Trust) *testService {
	t.Helper()
	dir := t.TempDir()
	svc, err := NewService(context.Background(), DirStore{Dir: dir}, trust, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(svc)
	t.Cleanup(ts.Close)
	return &testService{dir: dir, svc: svc, ts: ts}
}

// put publishes raw through the service's PUT, as `warden policy publish`
// to https:// does; it returns the status.
func (s *testService) put(t *testing.T, raw []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, s.ts.URL+PathPublish, bytes.NewReader(raw))
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (s *testService) get(t *testing.T, query, etag string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.ts.URL+PathBundle+"?"+query, nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// fresh signs a bundle valid for an hour from now (the service checks
// expiry against the real clock).
func fresh(t *testing.T, serial uint64, scope Scope, signers ...Signer) []byte {
	t.Helper()
	now := time.Now()
	return sign(t, Envelope{Serial: serial, IssuedAt: now, ExpiresAt: now.Add(time.Hour), Scope: scope}, signers...)
}

func TestServiceETagAndLongPoll(t *testing.T) {
	s, pub := testKey(5, "k")
	srv := newTestService(t, Trust{"k": pub})
	b1 := fresh(t, 1, Scope{Fleets: []string{"*"}}, s)
	if code := srv.put(t, b1); code != http.StatusCreated {
		t.Fatalf("PUT serial 1 = %d", code)
	}
	if code := srv.put(t, b1); code != http.StatusConflict {
		t.Fatalf("PUT of serial 1 again = %d, want 409", code)
	}
	etag1 := ETagOf(b1)

	resp, body := srv.get(t, "fleet=f&namespace=n", "")
	if resp.StatusCode != 200 || body != string(b1) || resp.Header.Get("ETag") != etag1 {
		t.Fatalf("GET = %d %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	// The same ETag: 304 at once without wait, and after the wait with one.
	for _, wait := range []string{"", "0s", "50ms"} {
		if resp, body := srv.get(t, "fleet=f&namespace=n&wait="+wait, etag1); resp.StatusCode != http.StatusNotModified || body != "" {
			t.Fatalf("unchanged, wait %q = %d %q, want 304 and no body", wait, resp.StatusCode, body)
		}
	}
	// A stale ETag gets the bundle.
	if resp, _ := srv.get(t, "fleet=f&namespace=n", `"stale"`); resp.StatusCode != 200 {
		t.Fatalf("stale ETag = %d", resp.StatusCode)
	}

	// A long-poll returns as soon as a newer bundle is published.
	b2 := fresh(t, 2, Scope{Fleets: []string{"*"}}, s)
	done := make(chan string, 1)
	go func() {
		resp, body := srv.get(t, "fleet=f&namespace=n&wait=5m", etag1)
		done <- resp.Status + " " + body
	}()
	time.Sleep(20 * time.Millisecond) // let the poll start waiting (either order passes)
	if code := srv.put(t, b2); code != http.StatusCreated {
		t.Fatalf("PUT serial 2 = %d", code)
	}
	if got := <-done; !strings.HasPrefix(got, "200 OK ") || !strings.HasSuffix(got, string(b2)) {
		t.Fatalf("long-poll answered %.60q", got)
	}
	// A long-poll for another scope is not woken by it.
	canary := fresh(t, 3, Scope{Namespaces: []string{"canary-*"}}, s)
	go func() {
		resp, _ := srv.get(t, "fleet=f&namespace=shop&wait=300ms", ETagOf(b2))
		done <- resp.Status
	}()
	time.Sleep(20 * time.Millisecond)
	if code := srv.put(t, canary); code != http.StatusCreated {
		t.Fatalf("PUT canary = %d", code)
	}
	if got := <-done; got != "304 Not Modified" {
		t.Fatalf("shop's long-poll after a canary bundle = %q", got)
	}
	if _, body := srv.get(t, "fleet=f&namespace=canary-shop", ""); body != string(canary) {
		t.Fatal("the canary does not get its bundle")
	}

	for _, c := range []struct {
		name string
		raw  []byte
		want int
	}{
		{"untrusted key", fresh(t, 9, Scope{Fleets: []string{"*"}}, func() Signer { o, _ := testKey(6, "k"); return o }()), http.StatusForbidden},
		{"older serial", fresh(t, 2, Scope{Fleets: []string{"*"}}, s), http.StatusConflict},
		{"expired", sign(t, Envelope{Serial: 20}, s), http.StatusForbidden}, // t0 + 1h, long past
		{"garbage", []byte("{"), http.StatusForbidden},
	} {
		if got := srv.put(t, c.raw); got != c.want {
			t.Errorf("PUT %s = %d, want %d", c.name, got, c.want)
		}
	}
	for _, q := range []string{"wait=x", "wait=-1s"} {
		if resp, _ := srv.get(t, q, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET ?%s = %d, want 400", q, resp.StatusCode)
		}
	}
	if resp, _ := srv.get(t, "fleet=f&namespace=n", ""); resp.Header.Get("ETag") != ETagOf(b2) {
		t.Fatal("a refused PUT changed what is served")
	}
}

// TestServiceScan: files dropped into the directory are picked up by Run;
// one that does not verify, or whose name is not its serial, is skipped.
func TestServiceScan(t *testing.T) {
	s, pub := testKey(5, "k")
	srv := newTestService(t, Trust{"k": pub})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.svc.Run(ctx, 5*time.Millisecond)
	write := func(name string, raw []byte) {
		if err := WriteFileAtomic(filepath.Join(srv.dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if resp, _ := srv.get(t, "fleet=f", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("empty store = %d, want 404", resp.StatusCode)
	}
	b1 := fresh(t, 1, Scope{Fleets: []string{"*"}}, s)
	write(FileName(1), b1)
	if resp, body := srv.get(t, "fleet=f&wait=1m", `"none"`); resp.StatusCode != 200 || body != string(b1) {
		t.Fatalf("a dropped file: %d", resp.StatusCode)
	}
	junk := []byte(strings.Replace(string(fresh(t, 3, Scope{Fleets: []string{"*"}}, s)), `"sig": "`, `"sig": "AAAA`, 1))
	write(FileName(3), junk)
	write(FileName(4), fresh(t, 5, Scope{Fleets: []string{"*"}}, s)) // serial 5 under serial 4's name
	write("notes.txt", []byte("x"))
	time.Sleep(30 * time.Millisecond) // a few scans
	if _, body := srv.get(t, "fleet=f", ""); body != string(b1) {
		t.Fatal("a bundle that does not verify, or is misnamed, was served")
	}
}

// followerHarness is a Follower against a test service, its metrics and
// the serials it applied.
type followerHarness struct {
	f       *Follower
	reg     *prometheus.Registry
	mu      sync.Mutex
	applied []uint64
	clock   time.Time
}

func (h *followerHarness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

func (h *followerHarness) setClock(t time.Time) {
	h.mu.Lock()
	h.clock = t
	h.mu.Unlock()
}

func (h *followerHarness) gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

type followerSetup struct {
	url, cache string
	client     *http.Client
	store      Store
	trust      Trust
	target     Target
}

func newFollowerHarness(t *testing.T, o followerSetup) *followerHarness {
	t.Helper()
	h := &followerHarness{reg: prometheus.NewRegistry(), clock: time.Now()}
	if o.target == (Target{}) {
		o.target = Target{Fleet: "eks-prod", Namespace: "shop"}
	}
	var err error
	h.f, err = NewFollower(FollowerOptions{URL: o.url, Store: o.store, Client: o.client, Trust: o.trust, Target: o.target,
		CacheDir: o.cache, Retry: time.Millisecond, Logger: zaptest.NewLogger(t), Registry: h.reg, Now: h.now,
		Apply: func(_ context.Context, v *Verified) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if strings.Contains(v.Policy, "INVALID") {
				return errors.New("apps[0]: invalid")
			}
			h.applied = append(h.applied, v.Serial)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestFollower walks one Warden through the service's answers: first
// bundle, 304, a newer one, a refused one (counted once), the service
// going away, expiry while away, and a restart from the cache.
func TestFollower(t *testing.T) {
	ctx := context.Background()
	s, pub := testKey(5, "k")
	trust := Trust{"k": pub}
	srv := newTestService(t, trust)
	cache := t.TempDir()
	h := newFollowerHarness(t, followerSetup{url: srv.ts.URL, client: srv.ts.Client(), cache: cache, trust: trust})

	// Nothing published: not ready, and /readyz says why.
	if _, err := h.f.Once(ctx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Once with nothing published: %v", err)
	}
	if ready, detail := h.f.Status(); ready || !strings.Contains(detail, "none loaded") || !strings.Contains(detail, "404") {
		t.Fatalf("Status = %v %q", ready, detail)
	}
	if h.gauge(t, "warden_policy_bundle_loaded") != 0 {
		t.Fatal("warden_policy_bundle_loaded is not 0")
	}

	now := time.Now()
	b1 := sign(t, Envelope{Serial: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour), Scope: Scope{Fleets: []string{"eks-*"}}}, s)
	srv.put(t, b1)
	steps := []struct {
		name        string
		publish     []byte
		wantChanged bool
		wantErr     string
		wantSerial  uint64
	}{
		{name: "first bundle", wantChanged: true, wantSerial: 1},
		{name: "unchanged: 304", wantSerial: 1},
		{name: "a newer bundle", publish: sign(t, Envelope{Serial: 2, IssuedAt: now, ExpiresAt: now.Add(2 * time.Hour), Scope: Scope{Fleets: []string{"eks-*"}}}, s),
			wantChanged: true, wantSerial: 2},
		{name: "out of scope: still 304 for this Warden", publish: sign(t, Envelope{Serial: 3, IssuedAt: now, ExpiresAt: now.Add(time.Hour), Scope: Scope{Fleets: []string{"ecs-*"}}}, s),
			wantSerial: 2},
		{name: "a policy that does not validate", publish: sign(t, Envelope{Serial: 4, IssuedAt: now, ExpiresAt: now.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}, Policy: "apps: INVALID\n"}, s),
			wantErr: "policy rejected", wantSerial: 2},
		{name: "the same refused bundle again", wantErr: "policy rejected", wantSerial: 2},
	}
	for _, st := range steps {
		if st.publish != nil {
			if code := srv.put(t, st.publish); code != http.StatusCreated {
				t.Fatalf("%s: PUT = %d", st.name, code)
			}
		}
		changed, err := h.f.Once(ctx)
		if changed != st.wantChanged || (st.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), st.wantErr)) {
			t.Fatalf("%s: Once = %v, %v; want %v, %q", st.name, changed, err, st.wantChanged, st.wantErr)
		}
		if cur := h.f.Current(); cur == nil || cur.Serial != st.wantSerial {
			t.Fatalf("%s: running %+v, want serial %d", st.name, cur, st.wantSerial)
		}
	}
	if got := testutil.ToFloat64(h.f.metrics.refused.WithLabelValues("other")); got != 1 {
		t.Errorf("refusals of the invalid policy = %v, want 1 (served twice, counted once)", got)
	}
	if got := testutil.ToFloat64(h.f.metrics.fetches.WithLabelValues("ok")); got != 6 {
		t.Errorf("ok fetches = %v, want 6", got)
	}
	if got := testutil.ToFloat64(h.f.metrics.applied); got != 2 {
		t.Errorf("applied = %v, want 2", got)
	}
	if ready, detail := h.f.Status(); !ready || !strings.Contains(detail, "serial 2") || !strings.Contains(detail, "policy rejected") {
		t.Fatalf("Status = %v %q", ready, detail)
	}
	cached, err := os.ReadFile(filepath.Join(cache, CacheFile))
	if err != nil || ETagOf(cached) != h.f.Current().ETag {
		t.Fatalf("the cache does not hold the running bundle: %v", err)
	}

	// The service goes away; the bundle expires meanwhile.
	srv.ts.Close()
	if _, err := h.f.Once(ctx); err == nil || !strings.Contains(err.Error(), "fetching the policy bundle") {
		t.Fatalf("Once with the service down: %v", err)
	}
	if ready, detail := h.f.Status(); !ready || strings.Contains(detail, "EXPIRED") || h.gauge(t, "warden_policy_bundle_expired") != 0 {
		t.Fatalf("before expiry: %v %q", ready, detail)
	}
	h.setClock(now.Add(3 * time.Hour))
	ready, detail := h.f.Status()
	if !ready || !h.f.Expired() || !strings.Contains(detail, "serial 2") || !strings.Contains(detail, "EXPIRED") || !strings.Contains(detail, "fetching the policy bundle") {
		t.Fatalf("after expiry: %v %q", ready, detail)
	}
	if h.gauge(t, "warden_policy_bundle_expired") != 1 || h.gauge(t, "warden_policy_bundle_loaded") != 1 {
		t.Fatal("warden_policy_bundle_expired is not 1 after expiry")
	}
	if h.f.Current().Serial != 2 {
		t.Fatal("the last good bundle was dropped at expiry")
	}

	// Restarts with the service down.
	dead := "https://127.0.0.1:1"
	for _, c := range []struct {
		name        string
		cache       string
		clock       time.Time
		wantReady   bool
		wantSerial  uint64
		wantExpired bool
	}{
		{"cached bundle", cache, now, true, 2, false},
		{"cached bundle, expired", cache, now.Add(3 * time.Hour), true, 2, true},
		{"no cache", t.TempDir(), now, false, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFollowerHarness(t, followerSetup{url: dead, cache: c.cache, trust: trust})
			r.setClock(c.clock)
			if err := r.f.LoadCache(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := r.f.Once(ctx); err == nil {
				t.Fatal("a fetch from a closed port succeeded")
			}
			ready, detail := r.f.Status()
			if ready != c.wantReady || r.f.Expired() != c.wantExpired || strings.Contains(detail, "EXPIRED") != c.wantExpired {
				t.Fatalf("Status = %v %q, expired %v", ready, detail, r.f.Expired())
			}
			if c.wantSerial != 0 && (r.f.Current() == nil || r.f.Current().Serial != c.wantSerial || len(r.applied) != 1) {
				t.Fatalf("running %+v, applied %v", r.f.Current(), r.applied)
			}
			if c.wantSerial == 0 && (r.f.Current() != nil || !strings.Contains(detail, "none loaded")) {
				t.Fatalf("running %+v, %q", r.f.Current(), detail)
			}
		})
	}

	// A cache holding a bundle for another scope, or tampered, is not used.
	for _, c := range []struct {
		name, reason string
		raw          []byte
		target       Target
	}{
		{"another scope", "out_of_scope", cached, Target{Fleet: "ecs-prod", Namespace: "shop"}},
		{"tampered", "bad_signature", tamper(t, cached, func(e *Envelope) { e.Serial = 99 }), Target{}},
	} {
		t.Run("cache "+c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, CacheFile), c.raw, 0o600); err != nil {
				t.Fatal(err)
			}
			r := newFollowerHarness(t, followerSetup{url: dead, cache: dir, trust: trust, target: c.target})
			if err := r.f.LoadCache(ctx); err == nil || Reason(err) != c.reason {
				t.Fatalf("LoadCache = %v, want %s", err, c.reason)
			}
			if ready, _ := r.f.Status(); ready || len(r.applied) != 0 {
				t.Fatal("a refused cached bundle made the Warden ready")
			}
		})
	}

	for _, bad := range []string{"http://x", "not a url", ""} {
		if _, err := NewFollower(FollowerOptions{URL: bad, Trust: trust, Apply: func(context.Context, *Verified) error { return nil }}); err == nil {
			t.Errorf("NewFollower accepted URL %q", bad)
		}
	}
}

// TestFollowerKeyRotation: a rotation with overlap. Bundles are signed
// with the old and the new key while Wardens are moved to trust both; the
// old key is then dropped from the signers, and later from the Wardens'
// trust, after which a bundle signed by it alone is refused.
func TestFollowerKeyRotation(t *testing.T) {
	ctx := context.Background()
	oldKey, oldPub := testKey(11, "sec-2026-11")
	newKey, newPub := testKey(12, "sec-2026-12")
	both := Trust{"sec-2026-11": oldPub, "sec-2026-12": newPub}
	srv := newTestService(t, both)
	all := Scope{Fleets: []string{"*"}}

	steps := []struct {
		name    string
		signers []Signer
		// trust is each Warden's in turn: one not yet moved (old only),
		// one moved (both), one done (new only).
		want [3]string // "ok" or a refusal reason
	}{
		{"signed by the old key", []Signer{oldKey}, [3]string{"ok", "ok", "unsigned"}},
		{"overlap: signed by both", []Signer{oldKey, newKey}, [3]string{"ok", "ok", "ok"}},
		{"signed by the new key", []Signer{newKey}, [3]string{"unsigned", "ok", "ok"}},
		{"the old key again (stolen after retirement)", []Signer{oldKey}, [3]string{"ok", "ok", "unsigned"}},
	}
	trusts := [3]Trust{{"sec-2026-11": oldPub}, both, {"sec-2026-12": newPub}}
	var ws [3]*followerHarness
	for i := range ws {
		ws[i] = newFollowerHarness(t, followerSetup{url: srv.ts.URL, client: srv.ts.Client(), trust: trusts[i]})
	}
	for i, st := range steps {
		serial := uint64(i + 1)
		if code := srv.put(t, fresh(t, serial, all, st.signers...)); code != http.StatusCreated {
			t.Fatalf("%s: PUT = %d", st.name, code)
		}
		for j, w := range ws {
			before := w.f.Current()
			_, err := w.f.Once(ctx)
			got := "ok"
			if err != nil {
				got = Reason(err)
			}
			if got != st.want[j] {
				t.Errorf("%s: Warden trusting %v: %s (%v), want %s", st.name, trusts[j].ids(), got, err, st.want[j])
			}
			if got != "ok" && w.f.Current() != before {
				t.Errorf("%s: a refused bundle replaced the running one", st.name)
			}
		}
	}
	// Signed with both keys, the bundle names both; Keys lists those trusted.
	v, err := Verify(fresh(t, 9, all, oldKey, newKey), Policy{Trust: both, AnyScope: true, Now: time.Now()})
	if err != nil || len(v.Keys) != 2 {
		t.Fatalf("Verify by both keys: %v %v", v, err)
	}
	// A signature under a trusted id that does not verify refuses the
	// bundle even when another trusted signature does.
	rogue, _ := testKey(13, "sec-2026-11")
	if _, err := Verify(fresh(t, 10, all, rogue, newKey), Policy{Trust: both, AnyScope: true, Now: time.Now()}); !errors.Is(err, ErrBadSig) {
		t.Fatalf("a bad signature beside a good one: %v", err)
	}
}

// TestFollowerStore: a Warden reads a store (a directory here; S3 in
// TestS3Store) directly: the newest unexpired bundle for its scope, never
// one that does not verify (counted as refused once).
func TestFollowerStore(t *testing.T) {
	ctx := context.Background()
	s, pub := testKey(5, "k")
	trust := Trust{"k": pub}
	dir := t.TempDir()
	store := DirStore{Dir: dir}
	h := newFollowerHarness(t, followerSetup{store: store, trust: trust, cache: t.TempDir()})
	if _, err := h.f.Once(ctx); err == nil || !strings.Contains(err.Error(), "no unexpired bundle") {
		t.Fatalf("empty store: %v", err)
	}
	for serial, scope := range map[uint64]Scope{1: {Fleets: []string{"*"}}, 2: {Namespaces: []string{"canary-*"}}} {
		if err := store.Create(ctx, FileName(serial), fresh(t, serial, scope, s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Create(ctx, FileName(1), fresh(t, 1, Scope{Fleets: []string{"*"}}, s)); !errors.Is(err, ErrExists) {
		t.Fatalf("Create of an existing serial: %v", err)
	}
	if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 1 {
		t.Fatalf("Once = %v %v; running %+v (want 1: 2 is the canary's)", changed, err, h.f.Current())
	}
	if changed, err := h.f.Once(ctx); changed || err != nil {
		t.Fatalf("unchanged store: Once = %v %v", changed, err)
	}
	forged := tamper(t, fresh(t, 3, Scope{Fleets: []string{"*"}}, s), func(e *Envelope) { e.Policy = "apps: []\n" })
	if err := os.WriteFile(filepath.Join(dir, FileName(3)), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if changed, err := h.f.Once(ctx); changed || err != nil || h.f.Current().Serial != 1 {
			t.Fatalf("a forged object: Once = %v %v, running %d", changed, err, h.f.Current().Serial)
		}
	}
	if got := testutil.ToFloat64(h.f.metrics.refused.WithLabelValues("bad_signature")); got != 1 {
		t.Errorf("refused bad_signature = %v, want 1", got)
	}
	if err := store.Create(ctx, FileName(4), fresh(t, 4, Scope{Fleets: []string{"eks-*"}}, s)); err != nil {
		t.Fatal(err)
	}
	if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 4 {
		t.Fatalf("serial 4: Once = %v %v", changed, err)
	}
	if _, err := NewFollower(FollowerOptions{URL: "https://x", Store: store, Trust: trust, Apply: func(context.Context, *Verified) error { return nil }}); err == nil {
		t.Error("NewFollower accepted a URL and a store")
	}
}

func TestStoreNames(t *testing.T) {
	for name, want := range map[string]bool{
		FileName(1): true, FileName(^uint64(0)): true, "bundle-1.json": false, "bundle-0000000000000000000x.json": false,
		"bundle-00000000000000000001.json.tmp": false, "../" + FileName(1): false, "": false,
	} {
		if got := isBundleName(name); got != want {
			t.Errorf("isBundleName(%q) = %v", name, got)
		}
	}
	for _, c := range []struct{ url, bucket, prefix, err string }{
		{"s3://b/p", "b", "p/", ""},
		{"s3://b/a/b/", "b", "a/b/", ""},
		{"s3://b", "b", "", ""},
		{"s3:///p", "", "", "want s3://"},
		{"https://b/p", "", "", "want s3://"},
	} {
		b, p, err := ParseS3URL(c.url)
		if b != c.bucket || p != c.prefix || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseS3URL(%q) = %q %q %v", c.url, b, p, err)
		}
	}
	for ep, ok := range map[string]bool{"": true, "https://s3.example": true, "http://127.0.0.1:9000": true, "http://[::1]:9000": true,
		"http://minio:9000": false, "ftp://x": false, "x": false} {
		if err := CheckS3Endpoint(ep); (err == nil) != ok {
			t.Errorf("CheckS3Endpoint(%q) = %v", ep, err)
		}
	}
}

// TestFollowerNoRollbackAcrossRestart: the serial floor survives a restart
// in the cached last good bundle. A Warden that ran serial 5 restarts while
// its source (a store someone rolled back) serves only serial 3, validly
// signed: it runs 5 from the cache and refuses 3 as older_serial; a Warden
// without that cache would have taken 3.
func TestFollowerNoRollbackAcrossRestart(t *testing.T) {
	ctx := context.Background()
	s, pub := testKey(21, "k")
	trust := Trust{"k": pub}
	all := Scope{Fleets: []string{"*"}}
	cache := t.TempDir()

	first := newTestService(t, trust)
	first.put(t, fresh(t, 5, all, s))
	h := newFollowerHarness(t, followerSetup{url: first.ts.URL, client: first.ts.Client(), cache: cache, trust: trust})
	if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 5 {
		t.Fatalf("first Warden: Once = %v, %v", changed, err)
	}

	rolledBack := newTestService(t, trust)
	rolledBack.put(t, fresh(t, 3, all, s))
	for _, c := range []struct {
		name       string
		cache      string
		wantSerial uint64
		wantErr    string
	}{
		{"restarted with its cache", cache, 5, "older"},
		{"a new Warden, no cache", t.TempDir(), 3, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newFollowerHarness(t, followerSetup{url: rolledBack.ts.URL, client: rolledBack.ts.Client(), cache: c.cache, trust: trust})
			if err := r.f.LoadCache(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := r.f.Once(ctx)
			if (c.wantErr == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), c.wantErr) || Reason(err) != "older_serial")) {
				t.Fatalf("Once = %v, want %q", err, c.wantErr)
			}
			if cur := r.f.Current(); cur == nil || cur.Serial != c.wantSerial {
				t.Fatalf("running %+v, want serial %d", cur, c.wantSerial)
			}
			if c.wantErr != "" {
				if got := testutil.ToFloat64(r.f.metrics.refused.WithLabelValues("older_serial")); got != 1 {
					t.Errorf("older_serial refusals = %v, want 1", got)
				}
				if raw, err := os.ReadFile(filepath.Join(c.cache, CacheFile)); err != nil || !strings.Contains(ETagOf(raw), r.f.Current().ETag) {
					t.Errorf("the cache no longer holds serial 5: %v", err)
				}
			}
		})
	}
}

// TestOversizedBundle: a bundle over MaxBundleBytes is refused wherever it
// comes from, before it is parsed: the service's PUT (413, nothing stored),
// a service's answer to a Warden (not applied; a fetch error), and a store
// file (DirStore.Get; the service and an S3-reading Warden skip it).
func TestOversizedBundle(t *testing.T) {
	ctx := context.Background()
	s, pub := testKey(5, "k")
	trust := Trust{"k": pub}
	good := fresh(t, 1, Scope{Fleets: []string{"*"}}, s)
	huge := append(append([]byte{}, good...), bytes.Repeat([]byte(" "), MaxBundleBytes)...) // valid JSON, validly signed

	t.Run("publish", func(t *testing.T) {
		srv := newTestService(t, trust)
		if code := srv.put(t, huge); code != http.StatusRequestEntityTooLarge {
			t.Fatalf("PUT of %d bytes: %d, want 413", len(huge), code)
		}
		if resp, _ := srv.get(t, "fleet=f", ""); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("after the refused PUT the service answers %s, want 404", resp.Status)
		}
	})

	t.Run("a service's answer", func(t *testing.T) {
		var serve atomic.Pointer[[]byte]
		serve.Store(&huge)
		ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw := *serve.Load()
			w.Header().Set("ETag", ETagOf(raw))
			_, _ = w.Write(raw)
		}))
		t.Cleanup(ts.Close)
		h := newFollowerHarness(t, followerSetup{url: ts.URL, client: ts.Client(), cache: t.TempDir(), trust: trust})
		if _, err := h.f.Once(ctx); !errors.Is(err, ErrMalformed) || h.f.Current() != nil {
			t.Fatalf("Once on a %d-byte answer: %v (current %v), want a malformed refusal and nothing applied", len(huge), err, h.f.Current())
		}
		if ready, detail := h.f.Status(); ready || !strings.Contains(detail, "over") {
			t.Fatalf("Status = %v %q", ready, detail)
		}
		serve.Store(&good)
		if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 1 {
			t.Fatalf("the same bundle at its size: changed %v, %v", changed, err)
		}
	})

	t.Run("a store file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName(1)), huge, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := (DirStore{Dir: dir}).Get(ctx, FileName(1)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("DirStore.Get of a %d-byte file: %v, want malformed", len(huge), err)
		}
		h := newFollowerHarness(t, followerSetup{store: DirStore{Dir: dir}, trust: trust})
		if _, err := h.f.Once(ctx); err == nil || h.f.Current() != nil {
			t.Fatalf("a Warden reading the store: %v, current %v; want nothing applied", err, h.f.Current())
		}
	})
}
