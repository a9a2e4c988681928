package proxy

import (
	"encoding/json"
	"time"

	"github.com/warden-egress/warden/audit"
)

// Capturer takes capture lines: the raw payloads of the apps named in
// audit.capture, kept in their own chain and sinks, never in records.
type Capturer interface {
	WriteLine(id string, t time.Time, obj []byte)
}

// captured holds one call's payloads, each cut at max bytes.
type captured struct {
	max         int
	req, resp   []byte
	reqCut      bool
	respCut     bool
	app, op, md string
}

func (cp *captured) addResp(b []byte) {
	if room := cp.max - len(cp.resp); room < len(b) {
		b, cp.respCut = b[:max(room, 0)], true
	}
	cp.resp = append(cp.resp, b...)
}

// startCapture keeps the request as the app sent it, if app is captured.
func (s *Server) startCapture(c *call, app string) {
	if s.capture == nil || !s.captureApps[app] {
		return
	}
	cp := &captured{max: s.captureMax, app: app, op: string(c.route.Op), md: c.rec.Model}
	req := c.body
	if len(req) > cp.max {
		req, cp.reqCut = req[:cp.max], true
	}
	cp.req = append([]byte(nil), req...) // the body buffer is reused after the call
	c.capture = cp
}

// captureLine is a capture line as its sinks receive it (sealed into the
// capture chain like a record); []byte fields encode as base64.
type captureLine struct {
	V           int    `json:"v"`
	Kind        string `json:"kind"`
	RequestID   string `json:"request_id"`
	Time        string `json:"time"`
	App         string `json:"app"`
	Operation   string `json:"operation"`
	Model       string `json:"model"`
	Request     []byte `json:"request_b64"`
	Response    []byte `json:"response_b64"`
	RequestCut  bool   `json:"request_truncated,omitempty"`
	ResponseCut bool   `json:"response_truncated,omitempty"`
}

// finishCapture writes the capture line.
func (s *Server) finishCapture(c *call) {
	cp := c.capture
	if cp == nil {
		return
	}
	b, err := json.Marshal(captureLine{V: audit.SchemaVersion, Kind: "capture", RequestID: c.requestID,
		Time: c.start.UTC().Format(time.RFC3339Nano), App: cp.app, Operation: cp.op, Model: cp.md,
		Request: cp.req, Response: cp.resp, RequestCut: cp.reqCut, ResponseCut: cp.respCut})
	if err != nil { // plain data: cannot happen
		return
	}
	s.capture.WriteLine(c.requestID, c.start, b)
}
