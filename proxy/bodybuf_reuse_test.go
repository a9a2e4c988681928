package proxy

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// TestGetBodyAfterBufferReused: a request's GetBody called after its
// buffer went back to the pool and another call took it (every reader
// closed, the handler done) fails closed; it never opens a reader over the
// other call's bytes, which would send them upstream under this call's
// signature. The pool is free to drop a buffer (it does at random under
// -race): the scenario is repeated until the buffer comes back.
func TestGetBodyAfterBufferReused(t *testing.T) {
	for try := 0; try < 200; try++ {
		buf := getBodyBuf()
		buf.Write(bytes.Repeat([]byte{'a'}, 100<<10))
		c := &call{buf: buf}
		req, err := http.NewRequest(http.MethodPost, "https://bedrock-runtime.us-east-1.amazonaws.com/", nil)
		if err != nil {
			t.Fatal(err)
		}
		setBody(req, c, buf.Bytes(), true)
		if !c.sharedFwd {
			t.Fatal("a 100 KiB body is not read from the call's buffer")
		}
		req.Body.Close() // the transport is done with it
		buf.release()    // and so is the handler: the buffer is pooled
		next := getBodyBuf()
		if next != buf {
			next.release()
			continue
		}
		next.Write(bytes.Repeat([]byte{'b'}, 100<<10)) // another call's body
		rc, err := req.GetBody()
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Fatalf("GetBody after the buffer was reused opened a reader: %d bytes, %q…", len(b), b[:min(len(b), 16)])
		}
		if got := next.refs.Load(); got != 1 {
			t.Fatalf("the next call's buffer holds %d references after a stale GetBody, want 1", got)
		}
		next.release()
		return
	}
	t.Fatal("the pool never handed the buffer back in 200 tries")
}
