package audit

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// NewStdoutSink returns a sink that writes each line and a newline to w,
// with one Write call per batch so lines from concurrent writers to the
// same stream (a container's stdout) never interleave mid-line.
func NewStdoutSink(w io.Writer) Sink {
	return &stdoutSink{w: w}
}

type stdoutSink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte // reused between batches
}

func (s *stdoutSink) Name() string { return "stdout" }

func (s *stdoutSink) Write(ctx context.Context, batch []Entry) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = appendLines(s.buf[:0], batch)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("audit sink stdout: write %d records: %w", len(batch), err)
	}
	return nil
}

func (s *stdoutSink) Close() error {
	if f, ok := s.w.(interface{ Sync() error }); ok {
		_ = f.Sync() // a terminal or pipe cannot sync; nothing is lost then
	}
	return nil
}

// appendLines appends each entry's line and a newline to buf.
func appendLines(buf []byte, batch []Entry) []byte {
	for _, e := range batch {
		buf = append(buf, e.Line...)
		buf = append(buf, '\n')
	}
	return buf
}
