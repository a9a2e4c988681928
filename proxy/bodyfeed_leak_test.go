package proxy

import (
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/warden-egress/warden/config"
)

// hostileBody is a request body that sends n bytes of a Converse prompt,
// then fails, panics or keeps going past what it declared.
type hostileBody struct {
	r    io.Reader
	then string // "error", "panic", "more"
}

func (h *hostileBody) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF {
		switch h.then {
		case "error":
			return n, io.ErrUnexpectedEOF
		case "panic":
			panic("client body exploded")
		case "more":
			h.r = strings.NewReader(strings.Repeat("x", 64<<10))
			return n, nil
		}
	}
	return n, err
}

// feedGoroutines counts the digest feeds' goroutines.
func feedGoroutines() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*digestFeed).run")
}

// TestDigestFeedNoLeak: a long declared body that the client cuts part
// way, whose reading panics, or that runs past the size limit leaves no
// digest feed running once the handler returned, and the next long call
// is hashed and forwarded as usual.
func TestDigestFeedNoLeak(t *testing.T) {
	cfg, err := config.ParseConfig([]byte(`
version: 1
upstream: {region: us-east-1, url: "http://127.0.0.1:1", insecure: true}
identity: {static: {app: a}}
limits: {max_body_bytes: 300000}
apps: [{name: a, allow_weak_identity: true, match: {tags: {app: a}}, allow: {models: ["anthropic.*"], operations: [Converse]}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(t.Context(), Options{Config: cfg, Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""), Audit: discardAudit{}})
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	prompt := `{"messages":[{"role":"user","content":[{"text":"` + strings.Repeat("p", 200<<10) + `"}]}]}`
	for _, tc := range []struct {
		name string
		sent int
		then string
		cl   int64
	}{
		{"client stops", 100 << 10, "error", int64(len(prompt))},
		{"client stops at once", 0, "error", int64(len(prompt))},
		{"read panics", 150 << 10, "panic", int64(len(prompt))},
		{"past the limit", len(prompt), "more", 200 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://w/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
				&hostileBody{r: strings.NewReader(prompt[:tc.sent]), then: tc.then})
			r.ContentLength = tc.cl
			r.RemoteAddr = "127.0.0.1:5555"
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			func() {
				defer func() { _ = recover() }()
				s.Handler().ServeHTTP(w, r)
			}()
			if tc.then != "panic" && w.Code == 200 {
				t.Fatalf("a %s body was answered 200", tc.name)
			}
			noFeeds(t, base+1) // this subtest's goroutine
		})
	}
	noFeeds(t, base) // a feed found late is a leak all the same
}

// noFeeds fails t unless every digest feed's goroutine ends, and the
// goroutines are back to base, within a few seconds (a leaked one never
// does). A stack dump does not always show a goroutine blocked for good,
// so the count is checked as well.
func noFeeds(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, all := feedGoroutines(), runtime.NumGoroutine()
		if n == 0 && all <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d digest feeds still run after the handler returned; %d goroutines, %d before", n, all, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
