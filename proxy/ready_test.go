package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warden-egress/warden/config"
)

// /readyz fails until a good policy is loaded, then passes.
func TestReadyzNeedsPolicy(t *testing.T) {
	s := &Server{registry: prometheus.NewRegistry()}
	h := s.AdminHandler()
	get := func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code
	}
	if code := get(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without a policy = %d, want 503", code)
	}
	cfg, err := config.ParseConfig([]byte("version: 1\nidentity: {static: {app: a}}\napps:\n  - name: a\n    allow_weak_identity: true\n    match: {tags: {app: a}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := newSnapshot(cfg, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	s.snap.Store(snap)
	if code := get(); code != http.StatusOK {
		t.Errorf("/readyz with a policy = %d, want 200", code)
	}
}
