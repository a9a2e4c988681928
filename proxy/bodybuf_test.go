package proxy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/config"
)

// feedChunks feeds body to a digestFeed the way readBody does: runs of
// the given sizes, read into a buffer that grows (a new array now and
// then, as bytes.Buffer.ReadFrom does), and returns the digest.
func feedChunks(body []byte, sizes []int) *promptDigest {
	f := newDigestFeed()
	buf := make([]byte, 0, 512)
	for off, i := 0, 0; off < len(body); i++ {
		n := min(len(body)-off, max(1, sizes[i%len(sizes)]))
		if len(buf)+n > cap(buf) {
			nb := make([]byte, len(buf), 2*cap(buf)+n)
			copy(nb, buf)
			buf = nb
		}
		buf = append(buf, body[off:off+n]...)
		f.add(buf[len(buf)-n:])
		off += n
	}
	f.finish(buf)
	<-f.done
	return f.d
}

// sameDigest says a digest fed in runs is newPromptDigest's: the sum and
// the kept states' offsets, and every state continues to the same sums.
func sameDigest(t testing.TB, body []byte, got *promptDigest) {
	t.Helper()
	want := newPromptDigest(body)
	if got.sum != want.sum {
		t.Fatalf("%d bytes: sum %x, want %x", len(body), got.sum, want.sum)
	}
	if len(got.states) != len(want.states) {
		t.Fatalf("%d bytes: %d states, want %d", len(body), len(got.states), len(want.states))
	}
	for i := range want.states {
		if got.states[i].off != want.states[i].off {
			t.Fatalf("%d bytes: state %d at %d, want %d", len(body), i, got.states[i].off, want.states[i].off)
		}
	}
	tail := []byte(`,"requestMetadata":{"warden_app":"a"}}`)
	for _, prefix := range []int{0, len(body) / 2, len(body) - hashTail, len(body) - 1} {
		if prefix < 0 {
			continue
		}
		b := append(append([]byte{}, body[:prefix]...), tail...)
		if got.sumOf(b, prefix) != sha256.Sum256(b) {
			t.Fatalf("%d bytes: continuation at %d is wrong", len(body), prefix)
		}
	}
}

// TestDigestFeedMatches: the digest taken while the body arrives is the
// one taken after it, for bodies around every boundary the digest keeps
// a state at and reads of every size.
func TestDigestFeedMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, hashTail, hashTail + 1, feedHoldBack - 1, feedHoldBack, feedHoldBack + 1, 4096,
		hashCheckpoint - hashTail - 1, hashCheckpoint - hashTail, hashCheckpoint + hashTail - 64, hashCheckpoint, hashCheckpoint + 1,
		hashCheckpoint + hashTail, hashCheckpoint + 191, hashCheckpoint + 192, 2*hashCheckpoint + 100, 800 << 10} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(rng.IntN(256))
		}
		for _, sizes := range [][]int{{1 << 30}, {1}, {511, 4096, 17}, {feedBatch}, {feedBatch - 1, feedBatch + 1}, {64 << 10}, {3, 100000}} {
			if n > 100000 && sizes[0] == 1 {
				continue
			}
			sameDigest(t, body, feedChunks(body, sizes))
		}
	}
}

func FuzzDigestFeed(f *testing.F) {
	f.Add(uint32(hashCheckpoint+hashTail), uint16(512), uint16(4096), int64(1))
	f.Add(uint32(200), uint16(1), uint16(7), int64(2))
	f.Add(uint32(3*hashCheckpoint), uint16(65535), uint16(1), int64(3))
	f.Fuzz(func(t *testing.T, n uint32, a, b uint16, seed int64) {
		n %= 4 * hashCheckpoint
		rng := rand.New(rand.NewPCG(uint64(seed), 9))
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(rng.IntN(256))
		}
		sameDigest(t, body, feedChunks(body, []int{int(a), int(b)}))
	})
}

// TestDigestFeedAbort: an aborted feed's goroutine has stopped reading the
// buffer when abort returns, however much it was given.
func TestDigestFeedAbort(t *testing.T) {
	for _, n := range []int{0, 10, feedBatch + 5, 300 << 10} {
		f := newDigestFeed()
		body := bytes.Repeat([]byte("a"), n)
		for off := 0; off < n; off += 1000 {
			f.add(body[off:min(n, off+1000)])
		}
		f.abort()
		select {
		case <-f.done:
		default:
			t.Fatalf("n=%d: the feed's goroutine still runs after abort", n)
		}
		for i := range body {
			body[i] = 'b' // -race reports any read the goroutine still makes
		}
	}
}

// TestBodyBufRefs: the buffer goes back to the pool only when the
// handler and every reader let go; a reader over a released buffer
// cannot be opened, and a closed reader reads nothing.
func TestBodyBufRefs(t *testing.T) {
	buf := getBodyBuf()
	buf.WriteString("hello world")
	body := buf.Bytes()
	r1, err := newSharedBody(buf, buf.gen.Load(), body)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := newSharedBody(buf, buf.gen.Load(), body) // a GetBody copy
	if err != nil {
		t.Fatal(err)
	}
	buf.release() // the handler is done
	if got := buf.refs.Load(); got != 2 {
		t.Fatalf("refs %d, want 2", got)
	}
	if b, err := io.ReadAll(r1); err != nil || string(b) != "hello world" {
		t.Fatalf("read %q, %v", b, err)
	}
	r1.Close()
	r1.Close() // twice: released once
	if got := buf.refs.Load(); got != 1 {
		t.Fatalf("refs %d after a double close, want 1", got)
	}
	if _, err := r1.Read(make([]byte, 4)); !errors.Is(err, errBodyReleased) {
		t.Fatalf("a closed reader read: %v", err)
	}
	r2.Close()
	if got := buf.refs.Load(); got != 0 {
		t.Fatalf("refs %d, want 0", got)
	}
	if _, err := newSharedBody(buf, buf.gen.Load(), body); !errors.Is(err, errBodyReleased) {
		t.Fatalf("a reader over a released buffer: %v", err)
	}
}

// TestSharedBodyConcurrentClose: Close racing Read (the HTTP/2 transport
// resets a stream it is still writing) never lets a Read copy out of a
// buffer that went back to the pool and was written again (run with -race).
func TestSharedBodyConcurrentClose(t *testing.T) {
	for i := 0; i < 200; i++ {
		buf := getBodyBuf()
		buf.Write(bytes.Repeat([]byte{'x'}, 64<<10))
		body := buf.Bytes()
		sb, _ := newSharedBody(buf, buf.gen.Load(), body)
		buf.release()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 1000)
			for {
				n, err := sb.Read(p)
				if bytes.IndexFunc(p[:n], func(r rune) bool { return r != 'x' }) >= 0 {
					t.Error("read bytes another call wrote")
				}
				if err != nil {
					return
				}
			}
		}()
		sb.Close()
		// The buffer is back in the pool: reuse it as the next call would.
		nb := getBodyBuf()
		nb.Write(bytes.Repeat([]byte{'y'}, 64<<10))
		wg.Wait()
		nb.release()
	}
}

// TestStampInPlaceMatchesCopy: a stamp written into the body's own array
// is byte for byte the copying stamp's, sharing the same prefix, for
// members added, replaced and shortened, with and without room.
func TestStampInPlaceMatchesCopy(t *testing.T) {
	st := stamp{App: "app", IdentitySource: "static", RequestID: "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}
	long := string(bytes.Repeat([]byte("z"), 70<<10))
	for _, body := range []string{
		`{"messages":[{"role":"user","content":[{"text":"` + long + `"}]}]}`,
		`{"messages":[{"role":"user","content":[{"text":"` + long + `"}]}]}  ` + "\n",
		`{"messages":[],"requestMetadata":{"team":"search"},"x":"` + long + `"}`,
		`{"x":"` + long + `","requestMetadata":{"team":"search","warden_app":"forged"}}`,
		`{"x":"` + long + `","requestMetadata":{"a":"` + string(bytes.Repeat([]byte("q"), 250)) + `"}}`,
		`{"x":"` + long + `","requestMetadata":null}`,
		`{"x":"` + long + `","requestMetadata":{"team":"search"},"y":"` + long[:5000] + `"}`,
		`{}`,
		`{"x":"` + long + `"`,
		`{"x":"` + long + `"}x`,
		`{"x":"` + long + `","X":1}`,
	} {
		for _, room := range []int{0, 64, 512, 8192} {
			want, wantPrefix, wantErr := stampConverseBodyAt([]byte(body), st, false)
			b := make([]byte, len(body), len(body)+room)
			copy(b, body)
			got, prefix, err := stampConverseBodyAt(b, st, true)
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("len %d room %d: error %v, want %v", len(body), room, err, wantErr)
			}
			if err != nil {
				if string(b) != body {
					t.Fatalf("len %d: a refused stamp changed the body", len(body))
				}
				continue
			}
			if !bytes.Equal(got, want) || prefix != wantPrefix {
				t.Fatalf("len %d room %d: in place differs from the copy (prefix %d, want %d)", len(body), room, prefix, wantPrefix)
			}
		}
	}
}

func FuzzStampInPlace(f *testing.F) {
	f.Add([]byte(`{"messages":[],"requestMetadata":{"team":"search"}}`), uint16(100))
	f.Add([]byte(`{"a":1}`), uint16(0))
	f.Add([]byte(`{"requestMetadata":{"warden_x":"1","b":"2"},"z":[1,2,3]}  `), uint16(300))
	f.Fuzz(func(t *testing.T, body []byte, room uint16) {
		st := stamp{App: "a", IdentitySource: "static", RequestID: "r"}
		want, wantPrefix, wantErr := stampConverseBodyAt(bytes.Clone(body), st, false)
		b := make([]byte, len(body), len(body)+int(room))
		copy(b, body)
		got, prefix, err := stampConverseBodyAt(b, st, true)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("error %v, want %v", err, wantErr)
		}
		if err == nil && (!bytes.Equal(got, want) || prefix != wantPrefix) {
			t.Fatalf("in place %q (prefix %d), copy %q (prefix %d)", got, prefix, want, wantPrefix)
		}
		if err != nil && !bytes.Equal(b, body) {
			t.Fatal("a refused stamp changed the body")
		}
	})
}

// lateTransport answers at once and hands the request body to the test
// unread, as net/http may when the upstream answers before the body is
// written: the body is read after the handler returned.
type lateTransport struct {
	resp   []byte
	bodies chan *http.Request
}

func (lt lateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	lt.bodies <- r
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, ContentLength: int64(len(lt.resp)),
		Body: io.NopCloser(bytes.NewReader(lt.resp)), Request: r}, nil
}

// TestBodyReadAfterHandler: a forwarded body the transport reads only
// after the handler returned, while later calls take buffers from the
// pool, is still its own call's bytes, and its GetBody works until every
// reader is closed and fails closed after.
func TestBodyReadAfterHandler(t *testing.T) {
	for _, upstream := range []string{"http://127.0.0.1:1", "https://127.0.0.1:1"} {
		for _, n := range []int{3000, 200 << 10} {
			cfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "` + upstream + `", insecure: true}
identity: {static: {app: a}}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [Converse]}}]
`))
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(t.Context(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: discardAudit{}})
			if err != nil {
				t.Fatal(err)
			}
			lt := lateTransport{resp: []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}`),
				bodies: make(chan *http.Request, 16)}
			s.upstreamRT = lt
			h := s.Handler()
			const calls = 8
			var reqs []*http.Request
			for i := 0; i < calls; i++ {
				text := strings.Repeat(string(rune('a'+i)), n)
				r := httptest.NewRequest("POST", "http://w/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
					strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"`+text+`"}]}]}`))
				r.RemoteAddr = "127.0.0.1:5555"
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					t.Fatalf("call %d: %d %s", i, w.Code, w.Body)
				}
				reqs = append(reqs, <-lt.bodies)
			}
			for i, r := range reqs {
				again, err := r.GetBody()
				if err != nil {
					t.Fatalf("%s n=%d call %d: GetBody while the body is open: %v", upstream, n, i, err)
				}
				for _, rc := range []io.ReadCloser{r.Body, again} {
					b, err := io.ReadAll(rc)
					rc.Close()
					want := strings.Repeat(string(rune('a'+i)), n)
					if err != nil || !bytes.Contains(b, []byte(`"text":"`+want+`"`)) || !bytes.Contains(b, []byte(`"warden_app":"a"`)) {
						t.Fatalf("%s n=%d call %d: the body read after the handler is not the call's (%v): %.80q…", upstream, n, i, err, b)
					}
				}
				if _, err := r.GetBody(); err == nil && r.Body != nil {
					if _, shared := r.Body.(*sharedBody); shared {
						t.Fatalf("%s n=%d call %d: GetBody after every reader closed must fail closed", upstream, n, i)
					}
				}
			}
		}
	}
}
