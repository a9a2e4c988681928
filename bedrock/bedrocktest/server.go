package bedrocktest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// Config configures a Server.
type Config struct {
	Region string // default "us-east-1"
	// Service is the endpoint emulated: "" or "bedrock-runtime" (every
	// runtime operation, and /openai/v1's chat completions and responses),
	// or "bedrock-mantle" (chat completions and responses under /v1 and
	// /openai/v1, Anthropic's Messages API under /anthropic/v1; signatures
	// for the service bedrock-mantle).
	Service string

	Credentials map[string]string // access key id -> secret; any other key gets 403 UnrecognizedClientException. Required.
	MaxSkew     time.Duration     // default 5m
	// Profiles maps application-inference-profile ARNs (or any other
	// indirect id) to a foundation model id, to pick the response family.
	Profiles map[string]string
	// Reply overrides the completion text (op is the operation name, model
	// the model id as sent, prompt the text extracted from the request).
	Reply func(op, model, prompt string) string
	// Deltas overrides how a streamed completion is cut into events (one
	// text delta or chunk per piece; by default at most 4 pieces, cut
	// after spaces), so a test can split a value across events at a
	// boundary of its choosing. The pieces should join to text.
	Deltas func(op, text string) []string
	// EventDelay is slept between the events of every stream (a model's
	// time per token); an injected fault's EventDelay takes precedence.
	EventDelay time.Duration
	// EventSent, if set, is called as each stream event is about to be
	// written (after EventDelay), with its index in the stream and its
	// event type ("contentBlockDelta", "chunk", …): the moment the model
	// emits it, from which benchmarks time the relay.
	EventSent func(i int, eventType string)
	Logf      func(format string, args ...any)
	// MaxBodyBytes caps request bodies (default 25,000,000 + 1 MiB).
	MaxBodyBytes int64

	// Agent runtime fixtures (see agent.go). A nil map accepts any id; a
	// non-nil one answers ResourceNotFoundException for ids it lacks.
	Agents         map[string]Agent     // agent id ->
	KnowledgeBases map[string][]Passage // knowledge base id -> its passages (nil entry: DefaultPassages)
	Flows          map[string][]string  // flow id -> its alias ids (TSTALIASID always exists)
}

// Call is one request as the emulator received it.
type Call struct {
	Op, ModelID   string // ModelID percent-decoded; "" when the operation has none in its path
	Method        string
	EscapedPath   string // the path as sent on the wire
	Proto         string // "HTTP/1.1" or "HTTP/2.0"
	AccessKeyID   string
	SignedHeaders []string
	SignatureOK   bool   // true only if SigV4 verified with a configured credential
	AuthError     string // why not
	Status        int    // 0 when the connection was reset before a status was sent
	Header        http.Header
	Body          []byte
	// IDs holds an agent-runtime call's identifiers by their name in the
	// API (agentId, agentAliasId, sessionId, knowledgeBaseId,
	// flowIdentifier, flowAliasIdentifier, sessionIdentifier,
	// invocationStepId, resourceArn, memoryId), percent-decoded.
	IDs map[string]string
}

// Fault is an injected failure; see Server.Inject.
type Fault struct {
	Op        string // "" = any operation
	Times     int    // requests affected; 0 means 1
	Status    int    // error response, e.g. 429, 500, 503
	ErrorType string // default from Status (429 ThrottlingException, 500 InternalServerException, 503 ServiceUnavailableException, ...)
	Message   string
	Delay     time.Duration // before the response starts
	// EventDelay is slept between stream events.
	EventDelay time.Duration
	// MidStreamException is a lowerCamel exception type sent after the
	// first event, e.g. "modelStreamErrorException"; the stream then ends.
	MidStreamException string
	// ResetAfterEvents > 0 kills the connection after that many stream
	// events; -1 kills it before any response byte (unary operations treat
	// any non-zero value as -1).
	ResetAfterEvents int
	// Gate: after the FIRST stream event is written and flushed, wait for
	// Gate to close before writing the rest.
	Gate <-chan struct{}
}

type queuedFault struct {
	Fault
	left int
}

// Server is a running emulator.
type Server struct {
	URL string

	cfg     Config
	handler http.Handler
	hs      *http.Server
	ts      *httptest.Server
	ln      net.Listener

	mu     sync.Mutex
	calls  []*Call
	faults []*queuedFault
	async  []*asyncJob
	agent  agentState
}

// NewServer starts an emulator on 127.0.0.1:0 speaking HTTP/1.1 and h2c
// (HTTP/2 with prior knowledge).
func NewServer(cfg Config) *Server {
	s := newServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("bedrocktest: listen: %v", err))
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s.ln = ln
	s.hs = &http.Server{Handler: s.handler, Protocols: &p, ReadHeaderTimeout: 30 * time.Second}
	s.URL = "http://" + ln.Addr().String()
	go s.hs.Serve(ln) //nolint:errcheck // ends with Close
	return s
}

// NewTLSServer starts an emulator with TLS (self-signed, httptest) speaking
// h2 and HTTP/1.1. Use Server.Client or TLSConfig-less clients with
// InsecureSkipVerify in tests.
func NewTLSServer(cfg Config) *Server {
	s := newServer(cfg)
	s.ts = httptest.NewUnstartedServer(s.handler)
	s.ts.EnableHTTP2 = true
	s.ts.StartTLS()
	s.URL = s.ts.URL
	return s
}

func newServer(cfg Config) *Server {
	if len(cfg.Credentials) == 0 {
		panic("bedrocktest: Config.Credentials is required")
	}
	switch cfg.Service {
	case "", ServiceRuntime, ServiceMantle:
	default:
		panic(fmt.Sprintf("bedrocktest: Config.Service %q is not bedrock-runtime or bedrock-mantle", cfg.Service))
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = sigv4.DefaultMaxSkew
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 25_000_000 + 1<<20
	}
	s := &Server{cfg: cfg}
	s.handler = http.HandlerFunc(s.serve)
	return s
}

// Client returns an *http.Client for the TLS server (trusting its
// certificate), or http.DefaultClient for the plain one.
func (s *Server) Client() *http.Client {
	if s.ts != nil {
		return s.ts.Client()
	}
	return http.DefaultClient
}

// Handler returns the emulator as an http.Handler (to mount it elsewhere).
func (s *Server) Handler() http.Handler { return s.handler }

// Region returns the configured region.
func (s *Server) Region() string { return s.cfg.Region }

// Close stops the server. Streams blocked on a Gate must be released first.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
	if s.hs != nil {
		_ = s.hs.Close()
	}
}

// Calls returns a copy of every request received, in arrival order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = *c
		out[i].Header = c.Header.Clone()
		out[i].Body = append([]byte(nil), c.Body...)
		out[i].SignedHeaders = append([]string(nil), c.SignedHeaders...)
		if c.IDs != nil {
			out[i].IDs = make(map[string]string, len(c.IDs))
			for k, v := range c.IDs {
				out[i].IDs[k] = v
			}
		}
	}
	return out
}

// Reset clears recorded calls, queued faults and async invocations.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls, s.faults, s.async = nil, nil, nil
	s.agent = agentState{}
}

// Inject queues a fault for the next matching request(s). Faults apply only
// to authenticated requests, in the order they were injected.
func (s *Server) Inject(f Fault) {
	n := f.Times
	if n <= 0 {
		n = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &queuedFault{Fault: f, left: n})
}

func (s *Server) takeFault(op string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.faults {
		if q.Op != "" && q.Op != op {
			continue
		}
		q.left--
		if q.left <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		f := q.Fault
		return &f
	}
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// route is a parsed request path.
type route struct {
	op      string
	modelID string // decoded
	pathID  string // guardrail id / invocation ARN, decoded
	version string
	ids     map[string]string // agent runtime: the path and query identifiers
	query   url.Values        // agent runtime: the query
}

// Operation names.
const (
	OpInvokeModel                   = "InvokeModel"
	OpInvokeModelWithResponseStream = "InvokeModelWithResponseStream"
	OpConverse                      = "Converse"
	OpConverseStream                = "ConverseStream"
	OpCountTokens                   = "CountTokens"
	OpInvokeModelWithBidiStream     = "InvokeModelWithBidirectionalStream"
	OpApplyGuardrail                = "ApplyGuardrail"
	OpInvokeGuardrailChecks         = "InvokeGuardrailChecks"
	OpStartAsyncInvoke              = "StartAsyncInvoke"
	OpGetAsyncInvoke                = "GetAsyncInvoke"
	OpListAsyncInvokes              = "ListAsyncInvokes"
)

var modelOps = map[string]string{
	"invoke":                           OpInvokeModel,
	"invoke-with-response-stream":      OpInvokeModelWithResponseStream,
	"converse":                         OpConverse,
	"converse-stream":                  OpConverseStream,
	"count-tokens":                     OpCountTokens,
	"invoke-with-bidirectional-stream": OpInvokeModelWithBidiStream,
}

// wirePath returns the request path exactly as the client sent it.
func wirePath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// parseRoute maps method and escaped path to an operation. Labels are split
// on the escaped path, then percent-decoded, so "%2F" inside a model ARN
// stays inside the label; a model id sent with raw '/' (hand-written clients)
// is the join of the segments between "model" and the action.
func parseRoute(method, escaped string) (route, bool) {
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	dec := func(s string) (string, bool) {
		v, err := url.PathUnescape(s)
		return v, err == nil && v != ""
	}
	switch {
	case len(segs) >= 3 && segs[0] == "model":
		op, ok := modelOps[segs[len(segs)-1]]
		if !ok || method != http.MethodPost {
			return route{}, false
		}
		id, ok := dec(strings.Join(segs[1:len(segs)-1], "/"))
		if !ok {
			return route{}, false
		}
		return route{op: op, modelID: id}, true
	case len(segs) == 5 && segs[0] == "guardrail" && segs[2] == "version" && segs[4] == "apply" && method == http.MethodPost:
		id, ok1 := dec(segs[1])
		v, ok2 := dec(segs[3])
		if !ok1 || !ok2 {
			return route{}, false
		}
		return route{op: OpApplyGuardrail, pathID: id, version: v}, true
	case len(segs) == 2 && segs[0] == "guardrail-checks" && segs[1] == "invoke" && method == http.MethodPost:
		return route{op: OpInvokeGuardrailChecks}, true
	case len(segs) == 1 && segs[0] == "async-invoke":
		switch method {
		case http.MethodPost:
			return route{op: OpStartAsyncInvoke}, true
		case http.MethodGet:
			return route{op: OpListAsyncInvokes}, true
		}
	case len(segs) >= 2 && segs[0] == "async-invoke" && method == http.MethodGet:
		id, ok := dec(strings.Join(segs[1:], "/"))
		if !ok {
			return route{}, false
		}
		return route{op: OpGetAsyncInvoke, pathID: id}, true
	}
	return route{}, false
}

func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	w.Header().Set("X-Amzn-Requestid", newUUID())
	escaped := wirePath(r)
	rt, known := s.route(r.Method, escaped)
	if !known && s.cfg.Service != ServiceMantle {
		rt, known = parseAgentRoute(r.Method, escaped, r.URL.RawQuery)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	call := &Call{
		Op: rt.op, ModelID: rt.modelID, Method: r.Method, EscapedPath: escaped, Proto: r.Proto,
		Header: r.Header.Clone(), Body: body,
	}
	if isCompatOp(rt.op) {
		call.ModelID = compatModel(body)
	}
	if rt.ids != nil {
		call.IDs = rt.ids
		call.ModelID = agentModel(rt.op, body)
	}
	if rt.op == OpStartAsyncInvoke {
		var in struct {
			ModelID string `json:"modelId"`
		}
		if json.Unmarshal(body, &in) == nil {
			call.ModelID = in.ModelID
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		call.Status = w.status
		s.mu.Unlock()
		s.logf("bedrocktest: %s %s %s -> %d (op=%s model=%q auth=%v %s)", r.Proto, r.Method, escaped, w.status, rt.op, rt.modelID, call.SignatureOK, call.AuthError)
	}()
	if err != nil {
		writeError(w, http.StatusBadRequest, "ValidationException", "Could not read the request body.")
		return
	}

	// Authentication comes first, as on AWS.
	auth := authenticate(r, body, s.cfg.Credentials, s.cfg.MaxSkew, s.signingName(), s.cfg.Region)
	if auth.err != nil {
		s.mu.Lock()
		call.AuthError = auth.err.Error()
		if a := auth.claimed; a != nil {
			call.AccessKeyID, call.SignedHeaders = a.AccessKeyID, a.SignedHeaders
		}
		s.mu.Unlock()
		writeError(w, auth.apiErr.Status, auth.apiErr.Code, auth.apiErr.Message)
		return
	}
	res := auth.res
	s.mu.Lock()
	call.SignatureOK, call.AccessKeyID, call.SignedHeaders = true, res.AccessKeyID, res.SignedHeaders
	s.mu.Unlock()

	if int64(len(body)) > s.cfg.MaxBodyBytes {
		writeError(w, http.StatusBadRequest, "ValidationException", "Input is too long for requested model.")
		return
	}
	if !known {
		writeError(w, http.StatusNotFound, "UnknownOperationException", "")
		return
	}

	f := s.takeFault(rt.op)
	if f != nil {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.ResetAfterEvents < 0 || (f.ResetAfterEvents > 0 && !isStreamOp(rt.op) && !isCompatOp(rt.op)) {
			abort(w, r)
		}
		if f.Status != 0 {
			typ := f.ErrorType
			if typ == "" {
				typ = errorTypeForStatus(f.Status)
			}
			msg := f.Message
			if msg == "" {
				msg = defaultMessage(typ)
			}
			if isCompatOp(rt.op) {
				writeCompatError(w, rt.op, f.Status, msg)
				return
			}
			writeError(w, f.Status, typ, msg)
			return
		}
	}
	if isCompatOp(rt.op) {
		s.dispatchCompat(w, r, rt, body, f)
		return
	}
	s.dispatch(w, r, rt, body, f)
}

func isStreamOp(op string) bool {
	return op == OpConverseStream || op == OpInvokeModelWithResponseStream || isAgentStreamOp(op)
}

// abort kills the connection without a (further) response.
func abort(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST rather than FIN
			}
			conn.Close()
			panic(http.ErrAbortHandler)
		}
	}
	panic(http.ErrAbortHandler)
}

func errorTypeForStatus(status int) string {
	switch status {
	case 400:
		return "ValidationException"
	case 403:
		return "AccessDeniedException"
	case 404:
		return "ResourceNotFoundException"
	case 408:
		return "ModelTimeoutException"
	case 424:
		return "ModelErrorException"
	case 429:
		return "ThrottlingException"
	case 503:
		return "ServiceUnavailableException"
	default:
		return "InternalServerException"
	}
}

func defaultMessage(typ string) string {
	switch typ {
	case "ThrottlingException":
		return "Too many requests, please wait before trying again."
	case "ServiceUnavailableException":
		return "Bedrock is unable to process your request."
	case "InternalServerException":
		return "The server encountered an internal error while processing the request."
	case "ModelTimeoutException":
		return "The request took too long to process. Processing time exceeded the model timeout length."
	case "ModelStreamErrorException", "modelStreamErrorException":
		return "The model encountered an error while streaming the response."
	case "AccessDeniedException":
		return "You don't have access to the model with the specified model ID."
	}
	return "Injected fault."
}

// writeError writes a restJson error: X-Amzn-ErrorType and {"message"}.
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var b []byte
	if msg == "" {
		b = []byte(`{"message":null}`)
	} else {
		b, _ = json.Marshal(map[string]string{"message": msg})
	}
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, 500, "InternalServerException", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
