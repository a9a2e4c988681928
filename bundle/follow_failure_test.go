package bundle

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
)

// TestFollowerSourceFailures: a source that fails in each way a broken or
// hostile one can leaves the Warden on its last good bundle, ready, with
// /readyz (Status) naming the failure and the error fetch counted; a
// newer bundle reached only over plain http (a redirect) is not applied.
func TestFollowerSourceFailures(t *testing.T) {
	ctx := context.Background()
	s, pub := testKey(7, "k")
	trust := Trust{"k": pub}
	now := time.Now()
	b1 := sign(t, Envelope{Serial: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, s)
	b2 := sign(t, Envelope{Serial: 2, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, s)

	// A plain-http server holding a newer bundle: reached only by redirect.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(b2) }))
	t.Cleanup(plain.Close)

	var mode atomic.Value
	mode.Store("good")
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "good":
			_, _ = w.Write(b1)
		case "500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "redirect to http":
			http.Redirect(w, r, plain.URL+r.URL.RequestURI(), http.StatusFound)
		case "oversized mid-stream":
			// A valid start, then more than MaxBundleBytes in all.
			_, _ = w.Write(b2[:len(b2)/2])
			w.(http.Flusher).Flush()
			_, _ = w.Write(bytes.Repeat([]byte(" "), MaxBundleBytes))
		case "fixed ETag header, new content":
			w.Header().Set("ETag", ETagOf(b1))
			_, _ = w.Write(b2)
		}
	}))
	t.Cleanup(ts.Close)

	cache := t.TempDir()
	h := newFollowerHarness(t, followerSetup{url: ts.URL, client: ts.Client(), cache: cache, trust: trust})
	if changed, err := h.f.Once(ctx); !changed || err != nil {
		t.Fatalf("first bundle: Once = %v, %v", changed, err)
	}

	failures := []struct{ mode, wantErr string }{
		{"500", "500 Internal Server Error"},
		{"redirect to http", "refused, want https"},
		{"oversized mid-stream", "over 4194304 bytes"},
	}
	for i, fc := range failures {
		mode.Store(fc.mode)
		changed, err := h.f.Once(ctx)
		if changed || err == nil || !strings.Contains(err.Error(), fc.wantErr) {
			t.Fatalf("%s: Once = %v, %v; want an error containing %q", fc.mode, changed, err, fc.wantErr)
		}
		if cur := h.f.Current(); cur == nil || cur.Serial != 1 {
			t.Fatalf("%s: running %+v, want serial 1 kept", fc.mode, cur)
		}
		if ready, detail := h.f.Status(); !ready || !strings.Contains(detail, "serial 1") || !strings.Contains(detail, fc.wantErr) {
			t.Fatalf("%s: Status = %v %q; want ready on serial 1, naming %q", fc.mode, ready, detail, fc.wantErr)
		}
		if got := testutil.ToFloat64(h.f.metrics.fetches.WithLabelValues("error")); got != float64(i+1) {
			t.Fatalf("%s: error fetches = %v, want %d", fc.mode, got, i+1)
		}
	}

	// The ETag is the Warden's own hash of the bytes, not the server's
	// header: new content under an old ETag is still seen and applied.
	mode.Store("fixed ETag header, new content")
	if changed, err := h.f.Once(ctx); !changed || err != nil || h.f.Current().Serial != 2 {
		t.Fatalf("new content under a fixed ETag: Once = %v, %v, running %+v", changed, err, h.f.Current())
	}

	// A certificate for another name: a Warden started from the cache
	// (serial 2) and pointed at the same server by a name the certificate
	// does not hold keeps serial 2 and says why.
	other := newFollowerHarness(t, followerSetup{url: strings.Replace(ts.URL, "127.0.0.1", "localhost", 1),
		client: ts.Client(), cache: cache, trust: trust})
	if err := other.f.LoadCache(ctx); err != nil {
		t.Fatal(err)
	}
	mode.Store("good")
	if changed, err := other.f.Once(ctx); changed || err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("certificate for another name: Once = %v, %v", changed, err)
	}
	if ready, detail := other.f.Status(); !ready || !strings.Contains(detail, "serial 2") || !strings.Contains(detail, "certificate") {
		t.Fatalf("certificate for another name: Status = %v %q", ready, detail)
	}
}

// TestFollowerLongPollAnsweredAtOnce: a source that answers a long-poll
// "unchanged" at once (a proxy or server ignoring wait) is paced by Retry;
// the follower does not spin against it.
func TestFollowerLongPollAnsweredAtOnce(t *testing.T) {
	s, pub := testKey(8, "k")
	now := time.Now()
	b1 := sign(t, Envelope{Serial: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, s)
	var requests atomic.Int64
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("If-None-Match") == ETagOf(b1) {
			w.WriteHeader(http.StatusNotModified) // at once, whatever wait says
			return
		}
		_, _ = w.Write(b1)
	}))
	t.Cleanup(ts.Close)
	f, err := NewFollower(FollowerOptions{URL: ts.URL, Client: ts.Client(), Trust: Trust{"k": pub},
		Target: Target{Fleet: "eks-prod", Namespace: "shop"}, Wait: 30 * time.Second, Retry: time.Hour,
		Logger: zaptest.NewLogger(t), Registry: prometheus.NewRegistry(),
		Apply: func(context.Context, *Verified) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for requests.Load() < 2 { // the bundle, then the first early 304
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a spinning follower makes hundreds of requests here
	if n := requests.Load(); n > 3 {
		t.Fatalf("%d requests against a source answering at once; want the pause of Retry after an early 304", n)
	}
}

// TestServiceOddQueries: a fleet or namespace in the query is a value, never
// a pattern: a glob, a path, a NUL, a newline, a very long value or a
// repeated parameter gets this scope's bundle only when the value itself is
// in scope, and never a server error. A second PUT of a published serial,
// with other content, is refused and the first stays.
func TestServiceOddQueries(t *testing.T) {
	s, pub := testKey(9, "k")
	srv := newTestService(t, Trust{"k": pub})
	now := time.Now()
	b1 := sign(t, Envelope{Serial: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour), Scope: Scope{Fleets: []string{"eks-*"}, Namespaces: []string{"shop"}}}, s)
	if code := srv.put(t, b1); code != http.StatusCreated {
		t.Fatalf("PUT = %d", code)
	}
	other := sign(t, Envelope{Serial: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour), Scope: Scope{Fleets: []string{"*"}}}, s)
	if code := srv.put(t, other); code != http.StatusConflict {
		t.Fatalf("PUT of serial 1 again with other content = %d, want 409", code)
	}
	for _, c := range []struct {
		query string
		want  int
	}{
		{"fleet=eks-prod&namespace=shop", http.StatusOK},
		{"fleet=eks-prod&namespace=shop&namespace=billing", http.StatusOK}, // the first value counts
		{"fleet=eks-prod&namespace=billing&namespace=shop", http.StatusNotFound},
		{"fleet=*&namespace=*", http.StatusNotFound},
		{"fleet=eks-*&namespace=sh%3Fp", http.StatusNotFound},
		{"fleet=eks-prod&namespace=%5B", http.StatusNotFound},
		{"fleet=eks-prod&namespace=shop%2F..%2Fbilling", http.StatusNotFound},
		{"fleet=eks-prod&namespace=shop%00", http.StatusNotFound},
		{"fleet=eks-prod&namespace=shop%0Abilling", http.StatusNotFound},
		{"fleet=eks-prod&namespace=" + strings.Repeat("s", 8000), http.StatusNotFound},
		{"fleet=eks-prod&namespace=shop;billing", http.StatusNotFound},
		{"fleet=eks-prod", http.StatusNotFound},
		{"fleet=eks-prod&namespace=shop&wait=-1s", http.StatusBadRequest},
	} {
		resp, body := srv.get(t, c.query, "")
		if resp.StatusCode != c.want {
			t.Errorf("GET ?%.80s = %d, want %d", c.query, resp.StatusCode, c.want)
		}
		if c.want == http.StatusOK && body != string(b1) {
			t.Errorf("GET ?%s: not the published bundle", c.query)
		}
	}
}
