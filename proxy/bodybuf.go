package proxy

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
)

// bodyBuf is a request body's read buffer, pooled between calls. refs
// counts who may still read it: the call's handler until the call ends,
// and every sharedBody the upstream transport was given over it (its Body
// and each GetBody copy) until that reader is closed. The buffer goes
// back to the pool only when the count reaches zero, so a transport that
// finishes writing a body after RoundTrip returned (net/http may) never
// reads bytes another call wrote; a reader the transport never closes
// keeps its buffer out of the pool (the garbage collector takes it).
//
// gen counts the calls the buffer has served: a reader is opened (a
// GetBody copy, which the transport may ask for at any time) only for the
// generation it was made for, so one asked for after the buffer went back
// to the pool and another call took it fails closed rather than reading
// that call's bytes (TestGetBodyAfterBufferReused).
type bodyBuf struct {
	bytes.Buffer
	refs atomic.Int32
	gen  atomic.Uint32
}

var bodyPool = sync.Pool{New: func() any { return new(bodyBuf) }}

// maxPooledBody keeps the pool from pinning rare huge bodies.
const maxPooledBody = 1 << 20

// longBody is the size from which a request body is a long prompt, which
// Warden handles in three ways a short one would not gain from:
//   - its prompt digest is taken while it is read (digestFeed, bodyhash.go),
//     not after: a goroutine hand-off per 32 KiB, against hashing up to a
//     millisecond after the last byte;
//   - a Converse body's validating scan for the stamp starts as soon as it
//     is read (prescan, metadata.go), beside identity, policy, guards and
//     caps (~0.15 ms for 800 KB here);
//   - it is forwarded from the call's pooled buffer itself (sharedBody)
//     whatever the upstream. A shorter body sent over HTTP/1.1 stays an
//     io.NopCloser(*bytes.Reader), which net/http writes with the headers
//     in one write; a sharedBody's headers are flushed first (one more
//     write), which costs nothing next to a body larger than the
//     transport's 64 KiB write buffer. Over TLS (Bedrock's HTTPS endpoints
//     speak HTTP/2, whose transport flushes the headers first anyway) every
//     body is shared.
const longBody = 64 << 10

// shareBody says whether a forwarded body of n bytes of the call's
// buffer is read from it through sharedBody readers (and so may be
// stamped in place): long bodies always, others when the call's upstream
// is HTTPS and Warden re-signs the call.
func (s *Server) shareBody(c *call, n int) bool {
	if n >= longBody {
		return true
	}
	if c.passthrough || c.agent != nil {
		return false
	}
	base, _, ok := s.upstreamFor(c.route.OnService())
	return ok && base.Scheme == "https"
}

func getBodyBuf() *bodyBuf {
	b := bodyPool.Get().(*bodyBuf)
	b.Reset()
	b.gen.Add(1) // before refs: an acquire that sees the new holder sees the new generation
	b.refs.Store(1)
	return b
}

// acquire adds a holder of generation gen, unless the buffer was already
// released or has since been taken by another call.
func (b *bodyBuf) acquire(gen uint32) bool {
	for {
		n := b.refs.Load()
		if n <= 0 {
			return false
		}
		if b.refs.CompareAndSwap(n, n+1) {
			break
		}
	}
	if b.gen.Load() != gen {
		// Another call's buffer: let go of it (the last holder pools it).
		b.release()
		return false
	}
	return true
}

// release drops a holder; the last one returns the buffer to the pool.
func (b *bodyBuf) release() {
	if b.refs.Add(-1) == 0 && b.Cap() <= maxPooledBody {
		bodyPool.Put(b)
	}
}

var errBodyReleased = errors.New("proxy: the request body's buffer was released")

// sharedBody reads a forwarded body out of its call's bodyBuf, holding a
// reference to it until closed. Read and Close may be called from
// different goroutines (the HTTP/2 transport closes a body it is still
// writing when a stream is reset): the mutex keeps a Read from copying out
// of a buffer a concurrent Close released.
type sharedBody struct {
	mu  sync.Mutex
	buf *bodyBuf // nil once closed
	r   bytes.Reader
}

// newSharedBody opens a reader of body (bytes of buf's array, in its
// generation gen) or says the buffer was already released.
func newSharedBody(buf *bodyBuf, gen uint32, body []byte) (*sharedBody, error) {
	if !buf.acquire(gen) {
		return nil, errBodyReleased
	}
	sb := &sharedBody{buf: buf}
	sb.r.Reset(body)
	return sb, nil
}

func (sb *sharedBody) Read(p []byte) (int, error) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.buf == nil {
		return 0, errBodyReleased
	}
	return sb.r.Read(p)
}

func (sb *sharedBody) Close() error {
	sb.mu.Lock()
	buf := sb.buf
	sb.buf = nil
	sb.r.Reset(nil)
	sb.mu.Unlock()
	if buf != nil {
		buf.release()
	}
	return nil
}
