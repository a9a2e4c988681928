package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

func TestRecordJSON(t *testing.T) {
	var buf bytes.Buffer
	w := NewZapWriter(zapcore.AddSync(&buf))
	w.Write(&Record{
		Time: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC), RequestID: "r1", UpstreamRequestID: "u1",
		Client: "127.0.0.1:5000", Protocol: "HTTP/2.0", IdentitySource: "static", Tags: map[string]string{"app": "a"},
		App: "a-prod", Operation: "Converse", Model: "m", ModelCanonical: "m", PolicyHash: "0123456789ab", Decision: "allow", Rule: "apps[0]",
		Reason: "allowed", Status: 200, BytesIn: 10, BytesOut: 20, Latency: 1500 * time.Microsecond,
	})
	w.Write(&Record{RequestID: "r2", Decision: "deny", Status: 403, ErrorType: "AccessDeniedException"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per record:\n%s", len(lines), buf.Bytes())
	}
	var got map[string]any
	if err := json.Unmarshal(lines[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"v": 1.0, "time": "2026-11-22T04:00:00Z", "request_id": "r1", "upstream_request_id": "u1", "client": "127.0.0.1:5000",
		"protocol": "HTTP/2.0", "identity_source": "static", "tags": map[string]any{"app": "a"}, "app": "a-prod",
		"operation": "Converse", "model": "m", "model_canonical": "m", "policy_hash": "0123456789ab", "decision": "allow", "rule": "apps[0]",
		"reason": "allowed", "status": 200.0, "bytes_in": 10.0, "bytes_out": 20.0, "latency_ms": 1.5,
	}
	for k, v := range want {
		gv, _ := json.Marshal(got[k])
		wv, _ := json.Marshal(v)
		if !bytes.Equal(gv, wv) {
			t.Errorf("%s = %s, want %s", k, gv, wv)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %q", k)
		}
	}
	if err := json.Unmarshal(lines[1], &got); err != nil || got["error_type"] != "AccessDeniedException" {
		t.Errorf("second record: %s", lines[1])
	}
}

func TestFileWriterMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := OpenFileWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(&Record{RequestID: "x"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

// A buffered writer delivers every record by Close, and on its own within
// the flush interval.
func TestBufferedWriterFlushes(t *testing.T) {
	var mu syncBuffer
	w := NewBufferedZapWriter(zapcore.AddSync(&mu))
	for i := 0; i < 100; i++ {
		w.Write(&Record{RequestID: "r"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for mu.lines() < 100 && time.Now().Before(deadline) {
		time.Sleep(FlushInterval / 4)
	}
	if n := mu.lines(); n != 100 {
		t.Fatalf("%d records flushed by the timer, want 100", n)
	}
	w.Write(&Record{RequestID: "last"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := mu.lines(); n != 101 {
		t.Fatalf("%d records after Close, want 101", n)
	}
}

type syncBuffer struct {
	m sync.Mutex
	b bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.m.Lock()
	defer s.m.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) lines() int {
	s.m.Lock()
	defer s.m.Unlock()
	return bytes.Count(s.b.Bytes(), []byte("\n"))
}
