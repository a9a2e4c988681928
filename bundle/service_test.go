package bundle

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestServiceETagAndLongPoll(t *testing.T) {
	s, pub := testKey(5, "k")
	dir := t.TempDir()
	svc, err := NewService(dir, Trust{"k": pub}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b1 := sign(t, Envelope{Serial: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, s)
	v1, err := Verify(b1, Policy{Trust: Trust{"k": pub}, AnyScope: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Add(v1); err != nil {
		t.Fatal(err)
	}
	if err := svc.Add(v1); !errors.Is(err, ErrOlder) {
		t.Fatalf("the same serial stored twice: %v", err)
	}
	ts := httptest.NewTLSServer(svc)
	defer ts.Close()
	get := func(etag, wait string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+PathBundle+"?fleet=f&namespace=n&wait="+wait, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("", "")
	if resp.StatusCode != 200 || body != string(b1) || resp.Header.Get("ETag") != v1.ETag {
		t.Fatalf("GET = %d %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	if resp, _ = get(v1.ETag, "0s"); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged = %d, want 304", resp.StatusCode)
	}
	// A long-poll returns as soon as a newer bundle is published.
	b2 := sign(t, Envelope{Serial: 2, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, s)
	done := make(chan string)
	go func() {
		resp, body := get(v1.ETag, "60s")
		done <- resp.Status + " " + body
	}()
	time.Sleep(20 * time.Millisecond) // let the poll start waiting (either order passes)
	if err := WriteFileAtomic(filepath.Join(dir, FileName(2)), b2, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := svc.scan(); err != nil {
		t.Fatal(err)
	}
	if got := <-done; !strings.HasPrefix(got, "200 OK ") || !strings.HasSuffix(got, string(b2)) {
		t.Fatalf("long-poll answered %.40q", got)
	}
	// A file that does not verify is not served.
	junk := []byte(strings.Replace(string(sign(t, Envelope{Serial: 3}, s)), `"sig": "`, `"sig": "AAAA`, 1))
	_ = os.WriteFile(filepath.Join(dir, FileName(3)), junk, 0o644)
	_ = svc.scan()
	if _, body := get("", ""); body != string(b2) {
		t.Fatal("a bundle that does not verify was served")
	}
	// Publishing needs a trusted signature.
	other, _ := testKey(6, "k")
	req, _ := http.NewRequest(http.MethodPut, ts.URL+PathPublish, strings.NewReader(string(sign(t, Envelope{Serial: 9, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, other))))
	resp, err = ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT of a bundle by an untrusted key = %d", resp.StatusCode)
	}
}

// TestFollowerExpiry: a running bundle that expires while the service is
// unreachable stays, and Status says so.
func TestFollowerExpiry(t *testing.T) {
	s, pub := testKey(8, "k")
	cache := t.TempDir()
	raw := sign(t, Envelope{Serial: 4}, s) // t0 … t0+1h
	if err := WriteFileAtomic(filepath.Join(cache, CacheFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	clock := t0.Add(2 * time.Hour)
	var applied []uint64
	f, err := NewFollower(FollowerOptions{URL: "https://127.0.0.1:1", Trust: Trust{"k": pub}, CacheDir: cache, Retry: time.Millisecond,
		Now: func() time.Time { return clock },
		Apply: func(_ context.Context, v *Verified) error { applied = append(applied, v.Serial); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if ready, _ := f.Status(); ready {
		t.Fatal("ready before anything was loaded")
	}
	if err := f.LoadCache(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Once(context.Background()); err == nil {
		t.Fatal("a fetch from a closed port succeeded")
	}
	ready, detail := f.Status()
	if !ready || !f.Expired() || !strings.Contains(detail, "EXPIRED") || !strings.Contains(detail, "serial 4") || len(applied) != 1 {
		t.Fatalf("Status = %v %q, applied %v", ready, detail, applied)
	}
	for _, bad := range []string{"http://x", "not a url", ""} {
		if _, err := NewFollower(FollowerOptions{URL: bad, Trust: Trust{"k": pub}, Apply: func(context.Context, *Verified) error { return nil }}); err == nil {
			t.Errorf("NewFollower accepted URL %q", bad)
		}
	}
}
