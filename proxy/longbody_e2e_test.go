package proxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
)

// forwardedText is the first message's text of a forwarded Converse body.
func forwardedText(t *testing.T, body []byte) (string, map[string]string) {
	t.Helper()
	var in struct {
		Messages []struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"messages"`
		RequestMetadata map[string]string `json:"requestMetadata"`
	}
	if err := json.Unmarshal(body, &in); err != nil || len(in.Messages) == 0 || len(in.Messages[0].Content) == 0 {
		t.Fatalf("forwarded body does not parse (%v): %.200q", err, body)
	}
	return in.Messages[0].Content[0].Text, in.RequestMetadata
}

// TestLongBodiesConcurrent: long prompts of many sizes (around the sizes
// where the body is hashed as it arrives, read from the pooled buffer and
// stamped in place, and past the largest pooled buffer), each with text of
// its own, from several clients at once, Converse and ConverseStream, with
// and without caller metadata. A buffer reused while the transport still
// read it would change a body after it was signed: the emulator verifies
// every SigV4 signature against the bytes it got, and each forwarded text
// must be its call's. Run with -race in CI.
func TestLongBodiesConcurrent(t *testing.T) {
	e := startEnv(t)
	sizes := []int{60 << 10, 64<<10 + 1, 100 << 10, 300 << 10, 900 << 10, 1100 << 10}
	const workers = 4
	texts := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers*len(sizes))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		// A client each: smithy-go's event stream decoder is not safe
		// for concurrent streams of one client.
		c := e.client(t, nil)
		go func(w int) {
			defer wg.Done()
			for i, n := range sizes {
				tag := fmt.Sprintf("[w%d-c%d]", w, i)
				text := tag + strings.Repeat(fmt.Sprintf("Section %d of the review for worker %d. ", i, w), n/48) + tag
				mu.Lock()
				texts[text] = true
				mu.Unlock()
				var meta map[string]string
				if (w+i)%2 == 0 {
					meta = map[string]string{"team": "search", "warden_app": "forged"}
				}
				ctx := context.Background()
				if (w+i)%3 == 0 {
					out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(haiku), Messages: userMsg(text), RequestMetadata: meta})
					if err == nil {
						for range out.GetStream().Events() {
						}
						err = out.GetStream().Err()
					}
					if err != nil {
						errs <- fmt.Errorf("%s ConverseStream %d bytes: %w", tag, n, err)
					}
					continue
				}
				if _, err := c.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(haiku), Messages: userMsg(text), RequestMetadata: meta}); err != nil {
					errs <- fmt.Errorf("%s Converse %d bytes: %w", tag, n, err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs := e.audit.wait(t, workers*len(sizes))
	calls := e.emu.Calls()
	if len(calls) != workers*len(sizes) {
		t.Fatalf("emulator saw %d calls, want %d", len(calls), workers*len(sizes))
	}
	for _, call := range calls {
		if !call.SignatureOK {
			t.Errorf("a %d-byte body's signature does not verify: %s", len(call.Body), call.AuthError)
		}
		text, meta := forwardedText(t, call.Body)
		if !texts[text] {
			t.Errorf("a forwarded %d-byte body holds a text no client sent", len(call.Body))
		}
		delete(texts, text)
		if meta["warden_app"] != "chatbot-prod" || meta["warden_request_id"] == "" {
			t.Errorf("forwarded metadata %v", meta)
		}
	}
	for _, r := range recs {
		if r.Status != 200 || r.PromptSHA256 == "" {
			t.Errorf("record: status %d, prompt hash %q", r.Status, r.PromptSHA256)
		}
	}
}

// postConverse posts body to Warden's Converse as a client without an SDK
// would, and returns the status and error type.
func postConverse(t *testing.T, e *env, body []byte, chunked bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.endpoint+"/model/"+haiku+"/converse", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if chunked {
		req.ContentLength = -1
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType")
}

// converseOf is a Converse body of exactly n bytes.
func converseOf(t *testing.T, n int) []byte {
	t.Helper()
	head, tail := `{"messages":[{"role":"user","content":[{"text":"`, `"}]}]}`
	if n < len(head)+len(tail) {
		t.Fatalf("%d bytes is too short", n)
	}
	return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
}

// TestLongBodyLimits: long bodies at the size limit pass whole and hashed
// as sent; one byte over is refused and nothing is forwarded, declared or
// chunked; a body that fails the stamp's validation after most of it was
// hashed is refused with its prompt hash recorded.
func TestLongBodyLimits(t *testing.T) {
	const limit = 200_000
	e := startEnv(t, withPolicy(basePolicy+fmt.Sprintf("limits: {max_body_bytes: %d}\n", limit)))
	for _, tc := range []struct {
		name     string
		body     []byte
		chunked  bool
		status   int
		errType  string
		forwards bool
	}{
		{"at the limit", converseOf(t, limit), false, 200, "", true},
		{"at the limit, chunked", converseOf(t, limit), true, 200, "", true},
		{"one over", converseOf(t, limit+1), false, 400, "ValidationException", false},
		{"one over, chunked", converseOf(t, limit+1), true, 400, "ValidationException", false},
		{"far over, chunked", converseOf(t, 3*limit), true, 400, "ValidationException", false},
		{"invalid at the end", append(converseOf(t, limit-1), 'x'), false, 400, "ValidationException", false},
		{"not UTF-8 at the end", notUTF8(converseOf(t, limit)), false, 400, "ValidationException", false},
		{"repeated key at the end", repeatKey(converseOf(t, limit-14)), false, 400, "ValidationException", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.emu.Calls())
			nrec := len(e.audit.wait(t, 0))
			status, typ := postConverse(t, e, tc.body, tc.chunked)
			if status != tc.status || typ != tc.errType {
				t.Fatalf("status %d %q, want %d %q", status, typ, tc.status, tc.errType)
			}
			calls := e.emu.Calls()[before:]
			if forwarded := len(calls) > 0; forwarded != tc.forwards {
				t.Fatalf("forwarded %v", forwarded)
			}
			if tc.forwards && (!calls[0].SignatureOK || len(calls[0].Body) <= len(tc.body)) {
				t.Fatalf("forwarded %d bytes, signature ok %v (%s)", len(calls[0].Body), calls[0].SignatureOK, calls[0].AuthError)
			}
			rec := e.audit.wait(t, nrec+1)[nrec]
			sum := sha256.Sum256(tc.body)
			switch {
			case len(tc.body) <= limit && rec.PromptSHA256 != hex.EncodeToString(sum[:]):
				t.Errorf("prompt_sha256 %q, want the body's", rec.PromptSHA256)
			case len(tc.body) > limit && rec.PromptSHA256 != "":
				t.Errorf("a refused oversize body has prompt_sha256 %q", rec.PromptSHA256)
			}
		})
	}
}

// notUTF8 puts a byte that is not UTF-8 in b's text, just before its end.
func notUTF8(b []byte) []byte {
	b[len(b)-len(`"}]}]}`)-1] = 0xff
	return b
}

// repeatKey adds a top-level key that repeats "messages" in another case
// as b's last member.
func repeatKey(b []byte) []byte {
	return append(b[:len(b)-1], `,"Messages":1}`...)
}

// TestLongBodyClientStops: a client that declares a long body and stops
// sending part way (closing its connection) gets nothing forwarded, and
// the call is recorded; the next long call goes through whole.
func TestLongBodyClientStops(t *testing.T) {
	e := startEnv(t)
	body := converseOf(t, 500_000)
	for _, sent := range []int{0, 1000, 100_000, 499_999} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.endpoint, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		nrec := len(e.audit.wait(t, 0))
		fmt.Fprintf(conn, "POST /model/%s/converse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", haiku, len(body))
		_, _ = conn.Write(body[:sent])
		_ = conn.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, conn) // Warden answers or closes
		conn.Close()
		rec := e.audit.wait(t, nrec+1)[nrec]
		if rec.Status == 200 || rec.PromptSHA256 != "" {
			t.Errorf("sent %d of %d: recorded status %d, prompt hash %q", sent, len(body), rec.Status, rec.PromptSHA256)
		}
	}
	if n := len(e.emu.Calls()); n != 0 {
		t.Fatalf("upstream saw %d calls of cut bodies", n)
	}
	if status, typ := postConverse(t, e, body, false); status != 200 {
		t.Fatalf("a whole body after the cut ones: %d %s", status, typ)
	}
}
