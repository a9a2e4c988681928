package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testEntries makes n entries with distinct IDs, times from t0 a second
// apart, and lines of roughly size bytes.
func testEntries(n int, t0 time.Time, size int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		id := fmt.Sprintf("r%06d", i)
		line := fmt.Sprintf(`{"id":%q,"pad":"`, id)
		pad := max(size-len(line)-2, 0)
		line += strings.Repeat("x", pad) + `"}`
		out[i] = Entry{ID: id, Time: t0.Add(time.Duration(i) * time.Second), Line: []byte(line)}
	}
	return out
}

// countingWriter records each Write call.
type countingWriter struct {
	calls int
	buf   bytes.Buffer
	err   error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.err != nil {
		return 0, w.err
	}
	return w.buf.Write(p)
}

func TestStdoutSink(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		batches   [][]Entry
		wantCalls int
	}{
		{"one batch, one write", [][]Entry{testEntries(3, t0, 50)}, 1},
		{"two batches, two writes", [][]Entry{testEntries(2, t0, 50), testEntries(5, t0, 80)}, 2},
		{"empty batch writes nothing", [][]Entry{nil}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &countingWriter{}
			s := NewStdoutSink(w)
			var want bytes.Buffer
			for _, b := range tc.batches {
				if err := s.Write(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				for _, e := range b {
					want.Write(e.Line)
					want.WriteByte('\n')
				}
			}
			if w.calls != tc.wantCalls {
				t.Errorf("Write calls = %d, want %d", w.calls, tc.wantCalls)
			}
			if !bytes.Equal(w.buf.Bytes(), want.Bytes()) {
				t.Errorf("output:\n%s\nwant:\n%s", w.buf.Bytes(), want.Bytes())
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestStdoutSinkWriteError(t *testing.T) {
	w := &countingWriter{err: errors.New("broken pipe")}
	err := NewStdoutSink(w).Write(context.Background(), testEntries(2, time.Now(), 10))
	if err == nil || !strings.Contains(err.Error(), "broken pipe") || !strings.Contains(err.Error(), "2 records") {
		t.Fatalf("err = %v, want the writer's error and the record count", err)
	}
}
