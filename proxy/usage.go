package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"sync"

	"github.com/warden-egress/warden/audit"

	"github.com/warden-egress/warden/bedrock"
)

// maxUsageCapture bounds how much of a plain (unguarded) unary answer
// Warden keeps to read its token counts from: Converse puts them in the
// body. Larger answers still pass whole; their record says no tokens
// unless headers did.
const maxUsageCapture = 4 << 20

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hexString(sum[:])
}

// hexString is hex.EncodeToString in one allocation instead of two.
func hexString(sum []byte) string {
	var out [2 * sha256.Size]byte
	return string(out[:hex.Encode(out[:], sum)])
}

func hexSum(h hash.Hash) string {
	var sum [sha256.Size]byte
	return hexString(h.Sum(sum[:0]))
}

// usageInBody says whether a unary answer of op states its tokens in the
// body, so a plain relay keeps a copy to read them from.
func usageInBody(op bedrock.Operation) bool {
	return op == bedrock.OpConverse || op == bedrock.OpInvokeModel || op.BodyModel()
}

// hashWriter passes writes to w and hashes what w accepted: the bytes the
// client was sent. With capture it also keeps up to maxUsageCapture of
// them (over says it stopped).
type hashWriter struct {
	w       io.Writer
	h       hash.Hash
	capture []byte
	keep    bool
	over    bool
	sum     [sha256.Size]byte
	also    *captured // audit.capture's copy, when the app is captured
	werr    error     // the first write error: the client's side failed
}

// hexSum is the hex digest of what passed so far.
func (hw *hashWriter) hexSum() string {
	return hexString(hw.h.Sum(hw.sum[:0]))
}

// hashWriters are pooled with their digest and capture buffer: every
// unary answer passes through one.
var hashWriters = sync.Pool{New: func() any { return &hashWriter{h: sha256.New()} }}

// maxPooledCapture keeps the pool from pinning rare large answers.
const maxPooledCapture = 64 << 10

// newHashWriter hashes what passes to w; with keep it also keeps a copy,
// sized for an answer of length bytes when that is known (-1 if not).
// Release it when done with its capture.
func newHashWriter(w io.Writer, keep bool, length int64) *hashWriter {
	hw := hashWriters.Get().(*hashWriter)
	hw.w, hw.keep, hw.over, hw.also, hw.werr = w, keep, false, nil, nil
	hw.h.Reset()
	hw.capture = hw.capture[:0]
	if keep && length > int64(cap(hw.capture)) && length <= maxUsageCapture {
		hw.capture = make([]byte, 0, length)
	}
	return hw
}

// release returns hw to the pool; neither it nor its capture may be used after.
func (hw *hashWriter) release() {
	hw.w, hw.also = nil, nil
	if cap(hw.capture) > maxPooledCapture {
		hw.capture = nil
	}
	hashWriters.Put(hw)
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	if err != nil && hw.werr == nil {
		hw.werr = err
	}
	hw.h.Write(p[:n])
	if hw.also != nil {
		hw.also.addResp(p[:n])
	}
	if hw.keep && !hw.over {
		if len(hw.capture)+n > maxUsageCapture {
			hw.over, hw.capture = true, hw.capture[:0]
		} else {
			hw.capture = append(hw.capture, p[:n]...)
		}
	}
	return n, err
}

// unaryUsage reads a unary answer's tokens: InvokeModel's headers when
// they say, else the body (which may be nil).
func unaryUsage(c *call, h http.Header, body []byte) (bedrock.Usage, bool) {
	if u, ok := bedrock.UsageFromHeaders(h); ok {
		return u, true
	}
	if body == nil || !usageInBody(c.route.Op) {
		return bedrock.Usage{}, false
	}
	if c.route.Op.BodyModel() {
		// The compat APIs answer JSON, or server-sent events when streamed.
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] != '{' {
			return bedrock.UsageFromSSE(body)
		}
	}
	return bedrock.UsageFromResponse(c.route.Op, requestFamily(c), body)
}

// recordUsage puts the call's tokens and their cost in its record.
func (s *Server) recordUsage(c *call, u bedrock.Usage, ok bool) {
	if !ok {
		return
	}
	c.rec.Usage.Known = true
	c.rec.Usage.Input, c.rec.Usage.Output = u.Input, u.Output
	c.rec.Usage.CacheRead, c.rec.Usage.CacheWrite = u.CacheRead, u.CacheWrite
	c.rec.CostUSD, c.rec.CostKnown = callCost(s.priceTable(), c, u)
}

// priceTable is audit.prices of the config Warden started with (a restart
// key: a reload does not change prices).
func (s *Server) priceTable() *audit.Prices { return s.prices }

// callCost prices u on the call's model: its canonical id (a system
// profile falls back to its foundation model), else the foundation models
// an indirect id resolved to — when every one of them is priced and they
// agree, since Warden cannot tell which of a router's models answered.
func callCost(p *audit.Prices, c *call, u bedrock.Usage) (float64, bool) {
	if p == nil {
		return 0, false
	}
	if cost, ok := p.Cost(c.rec.ModelCanonical, u); ok {
		return cost, true
	}
	var cost float64
	for i, m := range c.rec.ModelResolved {
		ci, ok := p.Cost(m, u)
		if !ok || i > 0 && ci != cost {
			return 0, false
		}
		cost = ci
	}
	return cost, len(c.rec.ModelResolved) > 0
}

// streamAudit is what relayStream learns for the record as frames pass:
// the hash of the bytes the client was sent and the upstream's usage. It
// lives on relayStream's stack; per event it costs a SHA-256 update over
// the frame and a header lookup (plus, for InvokeModelWithResponseStream,
// a base64 decode of the chunk into a fixed buffer).
type streamAudit struct {
	h     hash.Hash
	usage bedrock.StreamUsage
}

func (a *streamAudit) init(c *call) {
	a.h = sha256.New()
	a.usage.Op, a.usage.Family = c.route.Op, requestFamily(c)
}

// done writes what the stream showed into the record.
func (a *streamAudit) done(s *Server, c *call) {
	c.rec.ResponseSHA256 = hexSum(a.h)
	u, ok := a.usage.Usage()
	if c.agent != nil {
		s.recordAgentUsage(c, u, ok, a.usage.Models())
		return
	}
	s.recordUsage(c, u, ok)
}

// recordAgentUsage puts what an agent stream's traces reported in its
// record: the foundation models they named join the record's models, and
// the summed tokens are its usage (unknown when no trace stated a count:
// traces come only when the caller enabled them). The cost is known only
// when the traces named exactly one model and it is priced: Warden cannot
// tell which of several models spent which tokens.
func (s *Server) recordAgentUsage(c *call, u bedrock.Usage, ok bool, models []string) {
	if c.rec.Agent != nil {
		for _, m := range models {
			if !contains(c.rec.Agent.Models, m) {
				c.rec.Agent.Models = append(c.rec.Agent.Models, m)
			}
		}
	}
	if !ok {
		return
	}
	c.rec.Usage.Known = true
	c.rec.Usage.Input, c.rec.Usage.Output = u.Input, u.Output
	if p := s.priceTable(); p != nil && len(models) == 1 {
		if id, err := bedrock.ParseModelID(models[0]); err == nil {
			if c.rec.CostUSD, c.rec.CostKnown = p.Cost(id.Canonical, u); !c.rec.CostKnown && id.Foundation != "" {
				c.rec.CostUSD, c.rec.CostKnown = p.Cost(id.Foundation, u)
			}
		}
	}
}

// sseUsageScanner reads the usage of a server-sent event stream as its
// bytes pass (an io.Writer for io.TeeReader), keeping only the current
// line: a stream of any length has its usage read. A data line longer than
// maxUsageCapture is passed over (a Responses response.completed event
// repeats the whole answer; over that bound its usage is not read, and the
// record says unknown unless another event stated counts).
type sseUsageScanner struct {
	usage bedrock.SSEUsage
	line  []byte
	skip  bool // the current line outgrew the bound
	// With text (countText), the events' text is counted as they pass,
	// extracted as an output guard extracts it (guard.Stream.NextSSE):
	// name and data are the current event's (data lines joined by '\n'),
	// over the bytes of its lines past the bounds (maxUsageCapture a line,
	// maxSSEEvent the data), counted whole instead.
	text   bool
	op     bedrock.Operation
	family string
	name   string
	data   []byte
	lines  int // data lines of the event
	over   int64
	ex     bedrock.EventExtractor
	exOut  bedrock.Extracted
	nText  int64
}

// countText makes s count the text of the events of op's stream.
func (s *sseUsageScanner) countText(op bedrock.Operation, family string) {
	s.text, s.op, s.family = true, op, family
}

func (s *sseUsageScanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if !s.skip {
			if len(s.line)+len(part) > maxUsageCapture {
				s.over += int64(len(s.line))
				s.skip, s.line = true, s.line[:0]
			} else {
				s.line = append(s.line, part...)
			}
		}
		if s.skip {
			s.over += int64(len(part))
		}
		if i < 0 {
			break
		}
		s.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (s *sseUsageScanner) endLine() {
	if !s.skip {
		line := bytes.TrimRight(s.line, "\r")
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			s.usage.Observe(data)
		}
		if s.text {
			s.eventLine(line)
		}
	}
	s.line, s.skip = s.line[:0], false
}

// eventLine gathers the event a line belongs to (as readSSEEvent does)
// and counts its text at the blank line that ends it.
func (s *sseUsageScanner) eventLine(line []byte) {
	if len(line) == 0 {
		s.endEvent(false)
		return
	}
	field, value, _ := bytes.Cut(line, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	switch string(field) {
	case "event":
		s.name = string(value)
	case "data":
		if s.lines > 0 {
			s.data = append(s.data, '\n')
		}
		s.lines++
		if len(s.data)+len(value) > maxSSEEvent { // the guarded relay's bound
			s.over += int64(len(s.data) + len(value))
			s.data = s.data[:0]
			return
		}
		s.data = append(s.data, value...)
	}
}

// endEvent counts the text of the event gathered: what extraction finds
// in it, or all of its bytes when a line of it outgrew the bound or (cut,
// the stream's last event cut short) it is not whole JSON.
func (s *sseUsageScanner) endEvent(cut bool) {
	switch data := bytes.TrimSpace(s.data); {
	case s.over > 0:
		s.nText += s.over + int64(len(data))
	case len(data) > 0 && data[0] == '{':
		if s.ex.Extract(&s.exOut, s.op, s.family, s.name, data) == nil {
			s.nText += s.exOut.TextBytes()
		} else if cut {
			s.nText += int64(len(data))
		}
	}
	s.name, s.data, s.lines, s.over = "", s.data[:0], 0, 0
}

// textBytes is the text of the events that passed (countText), an event
// cut short by the stream's end counted by its bytes; called once, at the
// end.
func (s *sseUsageScanner) textBytes() int64 {
	if !s.text {
		return 0
	}
	s.text = false
	if len(s.line) > 0 && !s.skip {
		s.eventLine(bytes.TrimRight(s.line, "\r"))
	}
	s.endEvent(true)
	return s.nText
}

// Usage is what the events read so far stated (a last line without its
// newline included), and whether any stated an input or output count.
func (s *sseUsageScanner) Usage() (bedrock.Usage, bool) {
	if len(s.line) > 0 {
		s.endLine()
	}
	return s.usage.Usage()
}
