package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/bedrock/bedrocktest"
)

// The corpus pins what a client sees and what the audit record says for a
// fixed set of calls, so restructuring (issue 12) can be checked to change
// neither. Each line of testdata/corpus/cases.jsonl is one call, run
// through a fresh Warden (policy testdata/corpus/policies/<policy>.yaml) in
// front of a fresh emulator; its answer, the calls the emulator received
// and the audit records go to testdata/corpus/<name>.golden.
//
//	go test ./proxy -run TestCorpus -update   # rewrite the golden files, then review the diff
//
// Normalisation, the only bytes not compared as produced (everything else is):
//   - response headers Date, X-Amzn-Requestid, X-Warden-Request-Id and
//     X-Amzn-Bedrock-Invocation-Latency: value replaced by <volatile>;
//   - in bodies, frame payloads and audit strings: UUIDs -> <uuid>, the
//     emulator's random Anthropic message ids (msg_bdrk_ + 24 hex) ->
//     msg_bdrk_<id>, async invocation ids (async-invoke/ or %2F + 12
//     hex) -> async-invoke/<id>, RFC 3339 timestamps -> <time>;
//   - when an answer held a timestamp (async invocations), its
//     Content-Length and its record's bytes_out -> <time-dependent>;
//   - event streams are written as decoded frames (headers and payload,
//     a chunk's base64 "bytes" written decoded on the next line in its
//     place), not as raw bytes whose CRCs cover the random ids;
//   - audit records: time -> 2000-01-01T00:00:00Z, request_id and
//     upstream_request_id -> <request-id>, client -> 127.0.0.1:<port>,
//     upstream (the emulator's loopback address) -> 127.0.0.1:<port>,
//     each non-zero latency -> 1ms (zero stays zero), response_sha256 ->
//     <sha256 of the answer as received> after checking it is the SHA-256
//     of the bytes the client read (any other value is kept and shows).

// corpusCase is one line of cases.jsonl.
type corpusCase struct {
	Name   string `json:"name"`
	Policy string `json:"policy"` // file in policies/, without .yaml
	corpusRequest
	// Then are further calls to the same Warden, in order; "${ARN}" in a
	// path stands for the invocationArn the previous answer named,
	// path-escaped.
	Then []corpusRequest `json:"then"`
	// H2C sends every call over HTTP/2 with prior knowledge (default
	// HTTP/1.1).
	H2C bool `json:"h2c"`
	// Reply and Deltas set the emulator's completion text and how a stream
	// cuts it (empty: the emulator's defaults).
	Reply  string             `json:"reply"`
	Deltas []string           `json:"deltas"`
	Fault  *bedrocktest.Fault `json:"fault"` // injected before the call
}

// corpusRequest is one call as the client sends it.
type corpusRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"` // as sent on the wire
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

const corpusDir = "testdata/corpus"

// updatingGolden reports -update, which the internal tests' flag defines.
func updatingGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []corpusCase
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var c corpusCase
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("cases.jsonl:%d: %v", line, err)
		}
		if c.Name == "" || seen[c.Name] || c.Policy == "" || c.Method == "" || c.Path == "" {
			t.Fatalf("cases.jsonl:%d: case %q needs a unique name, a policy, a method and a path", line, c.Name)
		}
		for j, r := range c.Then {
			if r.Method == "" || r.Path == "" {
				t.Fatalf("cases.jsonl:%d: case %s: then[%d] needs a method and a path", line, c.Name, j)
			}
		}
		seen[c.Name] = true
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	var names []string
	for _, c := range cases {
		names = append(names, c.Name+".golden")
		t.Run(c.Name, func(t *testing.T) {
			got := runCorpusCase(t, c)
			golden := filepath.Join(corpusDir, c.Name+".golden")
			if updatingGolden() {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("case %s differs from %s (if the change is intended, run with -update and review the diff):\n--- got\n%s\n--- want\n%s", c.Name, golden, got, want)
			}
		})
	}
	// A golden file without a case is a case someone dropped.
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.Contains(names, filepath.Base(f)) {
			if updatingGolden() {
				_ = os.Remove(f)
				continue
			}
			t.Errorf("%s has no case in cases.jsonl", f)
		}
	}
}

// runCorpusCase makes the call and returns its golden text.
func runCorpusCase(t *testing.T, c corpusCase) []byte {
	policy, err := os.ReadFile(filepath.Join(corpusDir, "policies", c.Policy+".yaml"))
	if err != nil {
		t.Fatalf("case %s: %v", c.Name, err)
	}
	cfg := bedrocktest.Config{
		Region:      "us-east-1",
		Credentials: map[string]string{wardenKey: wardenSecret},
		Profiles:    map[string]string{appProfile: haiku},
	}
	if c.Reply != "" {
		cfg.Reply = func(_, _, _ string) string { return c.Reply }
	}
	if c.Deltas != nil {
		cfg.Deltas = func(_, _ string) []string { return c.Deltas }
	}
	emu := bedrocktest.NewServer(cfg)
	t.Cleanup(emu.Close)
	if c.Fault != nil {
		emu.Inject(*c.Fault)
	}
	e := &env{emu: emu, cp: newControlPlane(t), audit: newRecorder()}
	p := strings.ReplaceAll(string(policy), "${UPSTREAM}", emu.URL)
	p = strings.ReplaceAll(p, "${CONTROL_PLANE}", e.cp.URL)
	e.start(t, p, "", nil)

	// A fresh transport per case: no connection outlives its Warden.
	tr := &http.Transport{}
	if c.H2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	defer tr.CloseIdleConnections()
	var out bytes.Buffer
	var bodies [][]byte
	arn := ""
	for i, r := range append([]corpusRequest{c.corpusRequest}, c.Then...) {
		if i > 0 {
			// The previous call's record first, so records keep the calls' order.
			e.audit.wait(t, i)
			fmt.Fprintf(&out, "## then %s %s\n", r.Method, r.Path)
		}
		path := strings.ReplaceAll(r.Path, "${ARN}", url.PathEscape(arn))
		req, err := http.NewRequest(r.Method, e.endpoint+path, strings.NewReader(r.Body))
		if err != nil {
			t.Fatalf("case %s: %v", c.Name, err)
		}
		// NewRequest parses the path; keep it byte for byte as the case has it.
		req.URL.Opaque = "//" + req.URL.Host + path
		for k, v := range r.Headers {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			fmt.Fprintf(&out, "## response\nerror %v\n", err)
			continue
		}
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		writeCorpusResponse(t, &out, resp, body, rerr)
		bodies = append(bodies, body)
		var started struct {
			InvocationArn string `json:"invocationArn"`
		}
		if json.Unmarshal(body, &started) == nil && started.InvocationArn != "" {
			arn = started.InvocationArn
		}
	}

	// Shutdown waits for the handlers, so every record is written.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("case %s: shutdown: %v", c.Name, err)
	}

	out.WriteString("## upstream\n")
	for _, call := range emu.Calls() {
		// Not call.Status: when the emulator resets a connection, whether
		// it noted its status first is a race of its own.
		fmt.Fprintf(&out, "%s %s %s signature_ok=%v\n", call.Method, normaliseText(call.EscapedPath), call.Op, call.SignatureOK)
		if len(call.Body) > 0 {
			fmt.Fprintf(&out, "%s\n", normaliseText(string(call.Body)))
		}
	}
	out.WriteString("## audit\n")
	checkResponseHash(t, e, bodies)
	e.audit.mu.Lock()
	recs := slices.Clone(e.audit.recs)
	e.audit.mu.Unlock()
	for i, r := range recs {
		rec := normaliseRecord(r)
		if i < len(bodies) && timestamp.Match(bodies[i]) {
			rec = bytesOut.ReplaceAll(rec, []byte(`"bytes_out":"<time-dependent>"`))
		}
		out.Write(rec)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// checkResponseHash holds the records' response_sha256 to the bytes the
// client read, so normalising it hides nothing.
func checkResponseHash(t *testing.T, e *env, bodies [][]byte) {
	t.Helper()
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	for i := range e.audit.recs {
		r := &e.audit.recs[i]
		// Records are in the calls' order: each call waits for the
		// previous one's record.
		if i < len(bodies) {
			sum := sha256.Sum256(bodies[i])
			if r.ResponseSHA256 == hex.EncodeToString(sum[:]) {
				r.ResponseSHA256 = "<sha256 of the answer as received>"
			}
		}
	}
}

// volatileHeaders change on every call; their values are not compared.
var volatileHeaders = []string{"Date", "X-Amzn-Requestid", "X-Warden-Request-Id", "X-Amzn-Bedrock-Invocation-Latency"}

func writeCorpusResponse(t *testing.T, out *bytes.Buffer, resp *http.Response, body []byte, readErr error) {
	t.Helper()
	fmt.Fprintf(out, "## response\nstatus %d\n", resp.StatusCode)
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range resp.Header[k] {
			if slices.Contains(volatileHeaders, k) {
				v = "<volatile>"
			}
			if k == "Content-Length" && timestamp.Match(body) {
				v = "<time-dependent>"
			}
			fmt.Fprintf(out, "%s: %s\n", k, v)
		}
	}
	if readErr != nil {
		fmt.Fprintf(out, "body read error: %v\n", readErr)
	}
	if resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
		fmt.Fprintf(out, "body: %s\n", normaliseText(string(body)))
		return
	}
	fr := bedrock.NewFrameReader(bytes.NewReader(body))
	for i := 0; ; i++ {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintf(out, "frame %d: %v\n", i, err)
			break
		}
		var hs []string
		for _, h := range f.Message.Headers {
			hs = append(hs, h.Name+"="+h.Value.String())
		}
		payload := string(f.Message.Payload)
		var chunk struct {
			Bytes []byte `json:"bytes"`
		}
		decoded := json.Unmarshal(f.Message.Payload, &chunk) == nil && chunk.Bytes != nil
		if decoded {
			payload = chunkBytes.ReplaceAllLiteralString(payload, `"bytes":"<base64 of bytes below>"`)
		}
		fmt.Fprintf(out, "frame %d: %s\n  payload: %s\n", i, strings.Join(hs, " "), normaliseText(payload))
		if decoded {
			fmt.Fprintf(out, "  bytes: %s\n", normaliseText(string(chunk.Bytes)))
		}
	}
}

// timestamp is an RFC 3339 time; its fraction has no fixed length, so a
// body holding one has a time-dependent length.
var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

var bytesOut = regexp.MustCompile(`"bytes_out":\d+`)

// chunkBytes is a chunk event's base64 payload, written decoded instead.
var chunkBytes = regexp.MustCompile(`"bytes":"[A-Za-z0-9+/=]*"`)

var volatileText = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uuid>"},
	{regexp.MustCompile(`msg_bdrk_[0-9a-f]{24}`), "msg_bdrk_<id>"},
	{regexp.MustCompile(`async-invoke(/|%2F)[0-9a-f]{12}\b`), "async-invoke${1}<id>"},
	{timestamp, "<time>"},
}

func normaliseText(s string) string {
	for _, v := range volatileText {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	return s
}

// normaliseRecord encodes r as the sinks do, volatile fields fixed.
func normaliseRecord(r audit.Record) []byte {
	r.Time = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	r.RequestID = "<request-id>"
	if r.UpstreamRequestID != "" {
		r.UpstreamRequestID = "<request-id>"
	}
	if i := strings.LastIndexByte(r.Client, ':'); i >= 0 {
		r.Client = r.Client[:i] + ":<port>"
	}
	if i := strings.LastIndexByte(r.Path.Upstream, ':'); i >= 0 {
		r.Path.Upstream = r.Path.Upstream[:i] + ":<port>"
	}
	for _, d := range []*time.Duration{&r.Latency, &r.UpstreamLatency, &r.UpstreamTotal} {
		if *d != 0 {
			*d = time.Millisecond
		}
	}
	r.Reason = normaliseText(r.Reason)
	return []byte(normaliseText(string(r.AppendJSON(nil))))
}
