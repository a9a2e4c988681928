package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard"
)

// maxSSEEvent bounds one server-sent event Warden holds to scan it.
const maxSSEEvent = 1 << 20

var errSSEEventTooLong = errors.New("a server-sent event longer than 1 MiB")

// sseEvent is one server-sent event: its bytes as sent (up to and with the
// blank line that ends it), its event field and its data lines joined.
type sseEvent struct {
	raw  []byte
	name string
	data []byte
}

// readSSEEvent reads the next event (io.EOF at a clean end; a final event
// without its blank line is still returned whole).
func readSSEEvent(br *bufio.Reader, ev *sseEvent) error {
	ev.raw, ev.name, ev.data = ev.raw[:0], "", ev.data[:0]
	dataLines := 0
	for {
		start := len(ev.raw)
		var err error
		for {
			var part []byte
			part, err = br.ReadSlice('\n')
			ev.raw = append(ev.raw, part...)
			if len(ev.raw) > maxSSEEvent {
				return errSSEEventTooLong
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		line := ev.raw[start:]
		l := bytes.TrimRight(line, "\r\n")
		if len(l) == 0 {
			if err != nil {
				if len(ev.raw) > 0 {
					return nil
				}
				return err
			}
			if len(ev.raw) > len(line) || dataLines > 0 {
				return nil // the blank line ends the event
			}
			continue // a stray blank line: not an event yet
		}
		field, value, _ := bytes.Cut(l, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			if dataLines > 0 {
				ev.data = append(ev.data, '\n')
			}
			ev.data = append(ev.data, value...)
			dataLines++
		}
		if err != nil {
			return nil // the stream ended after this line
		}
	}
}

// relayGuardedSSE relays a server-sent event stream (the OpenAI-compatible
// and Anthropic Messages APIs) through the output guards' hold-back
// (guard.Stream.NextSSE), event by event; a block ends the stream with the
// error event the caller's SDK raises. Usage is read from the events as
// they pass.
func (s *Server) relayGuardedSSE(w http.ResponseWriter, c *call, resp *http.Response, ag *guard.Guards, dryRun bool) {
	sg := ag.NewStream(c.route.Op, requestFamily(c), dryRun)
	countText := c.countsStreamText()
	defer func() {
		res := sg.Outcome()
		c.rec.Findings = append(c.rec.Findings, auditFindings(res.Findings)...)
		if res.Blocked() && dryRun {
			c.dryRunBlocked(res.Rule, "warden: "+res.Message)
		}
	}()
	ctx := resp.Request.Context()
	copyResponseHeader(w.Header(), resp.Header)
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	hw := newHashWriter(w, false, 0)
	hw.also = c.capture
	var usage bedrock.SSEUsage // what the upstream counted, whatever a guard does with the event
	defer func() {
		c.rec.ResponseSHA256 = hw.hexSum()
		u, ok := usage.Usage()
		s.recordUsage(c, u, ok)
		hw.release()
	}()
	write := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		n, err := hw.Write(b)
		c.rec.BytesOut += int64(n)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			c.rec.ErrorType = clientWriteError(ctx)
			return false
		}
		return true
	}
	stop := func(e *bedrock.APIError, rule string) {
		c.denied(rule, e.Message)
		c.rec.ErrorType = e.Type
		_ = write(e.SSEEvent(c.route.Op.ErrorShape()))
	}
	var ev sseEvent
	for {
		err := readSSEEvent(br, &ev)
		if err != nil {
			out, blockErr, rule := sg.End()
			if blockErr != nil {
				stop(blockErr, rule)
				return
			}
			if !write(out) {
				return
			}
			switch {
			case err == io.EOF: //nolint:errorlint // bare io.EOF only
			case ctx.Err() != nil:
				c.rec.Status, c.rec.ErrorType = 499, clientWriteError(ctx)
			default:
				e := bedrock.InternalServer("warden: the upstream event stream failed: %s", describeSSEErr(err))
				c.rec.ErrorType, c.rec.Status = e.Type, 500
				_ = write(e.SSEEvent(c.route.Op.ErrorShape()))
			}
			return
		}
		if ev.name == "error" {
			c.rec.ErrorType = "StreamError"
		}
		usage.Observe(ev.data)
		out, blockErr, rule := sg.NextSSE(ev.raw, ev.name, ev.data)
		if countText { // the guard has extracted the event's text
			c.streamText += sg.EventTextBytes()
		}
		if blockErr != nil {
			stop(blockErr, rule)
			return
		}
		if !write(out) {
			return
		}
	}
}

func describeSSEErr(err error) string {
	if errors.Is(err, errSSEEventTooLong) {
		return err.Error()
	}
	return describeStreamErr(err)
}
