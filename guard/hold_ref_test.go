package guard

// This file is the stream hold-back as it was before its memory was reused
// per token (main at a176bb2, guard/output.go and guard/ids.go), kept
// verbatim but for its names (ref…) as the reference that
// TestStreamHoldMatchesReference and FuzzStreamHoldReference hold the
// current Stream to: the same bytes out per frame, the same errors and
// findings.

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

type refStream struct {
	op      bedrock.Operation
	family  string
	o       *outputScan
	lanes   map[string]*refLane
	queue   []*refHeldEvent
	bound   int  // the longest text held for a value that may be unfinished
	holdAll bool // a guard's custom expression can match whitespace: hold up to bound
	// recordOnly: every output guard only records (no block, mask or
	// ApplyGuardrail), so no event can change: each is sent as it arrives
	// and its text is still held back for the scan, which decides values
	// whole, as for the other actions.
	recordOnly bool
	out        []byte
}

type refLane struct {
	tail     string // the last decided normalised text, up to the window
	pos      int    // absolute offset (in the refLane's normalised text) of the end of the decided text
	pending  string // normalised text not yet decided
	seen     []seenFinding
	masks    []absMask    // decided masks, absolute offsets
	fragment bool         // the text is a JSON fragment (decoded before scanning)
	carry    string       // a fragment's incomplete escape at the end of the last span
	carrySp  *refHeldSpan // the span that ended with carry
	window   int
}

type refHeldEvent struct {
	raw   []byte
	ex    bedrock.Extracted
	spans []*refHeldSpan
	// sse is set for a server-sent event: raw is the event as sent, name
	// its event field ("" when it had none), payload its data.
	sse     bool
	name    string
	payload []byte
	sent    bool // already sent unchanged (refStream.recordOnly)
}

// refHeldSpan is one text of a held event: its refLane and its range in the
// refLane's normalised text.
type refHeldSpan struct {
	refLane    *refLane
	norm       string
	start, end int
	// fragment spans: rawAt[i] is the offset in the span's raw text of
	// norm[i] (len(norm)+1 entries); nil when norm is the text itself.
	rawAt []int
}

func newRefStream(op bedrock.Operation, family string, gs []*compiled, dryRun bool) *refStream {
	sg := &refStream{op: op, family: family, o: newOutputScan(gs, dryRun), lanes: map[string]*refLane{}, recordOnly: len(gs) > 0}
	for _, g := range gs {
		sg.bound = max(sg.bound, g.holdBound)
		sg.holdAll = sg.holdAll || g.holdAll
		sg.recordOnly = sg.recordOnly && g.recordsOnly()
	}
	return sg
}

// sendNow sends the events just queued when no guard can change them
// (recordOnly); emit skips them later.
func (sg *refStream) sendNow() {
	if !sg.recordOnly {
		return
	}
	for _, h := range sg.queue {
		if !h.sent {
			sg.out = append(sg.out, h.raw...)
			h.sent = true
		}
	}
}

// Outcome is what the guards found in the stream so far (its Body is nil:
// the events carry their own edits).
func (sg *refStream) Outcome() Outcome { return sg.o.outcome() }

// Next takes one frame and returns the bytes to send now (valid until the
// next call), or the error to end the stream with and its rule.
func (sg *refStream) Next(f *bedrock.Frame) ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	var ex bedrock.Extracted
	switch f.MessageType() {
	case bedrock.MessageTypeEvent:
		var err error
		ex, err = bedrock.ExtractStreamEvent(sg.op, sg.family, f.EventType(), f.Message.Payload)
		if err != nil {
			ex = bedrock.Extracted{Unscannable: []string{f.EventType() + " event (not JSON)"}}
		}
	case bedrock.MessageTypeException, bedrock.MessageTypeError:
		return sg.exception(f)
	}
	if len(ex.IDs) > 0 { // tool-use ids (ids.go): block, or mask and go on with the masked event
		var e *bedrock.APIError
		var rule string
		if f, ex, e, rule = sg.checkIDs(f, ex); e != nil {
			return nil, e, rule
		}
	}
	if len(ex.Unscannable) > 0 {
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.o.unscannable(ex.Unscannable)
		if msg, rule := sg.o.blocked(); msg != "" && !sg.o.dryRun {
			return nil, bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
		}
	}
	if len(ex.Texts) == 0 {
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, f.Raw...)
		return sg.out, nil, ""
	}
	h := &refHeldEvent{raw: bytes.Clone(f.Raw), ex: ex, spans: make([]*refHeldSpan, len(ex.Texts))}
	for i, sp := range ex.Texts {
		h.spans[i] = sg.addSpan(sp)
	}
	sg.queue = append(sg.queue, h)
	if e, rule := sg.decide(false); e != nil {
		return nil, e, rule
	}
	sg.sendNow()
	if e, rule := sg.emit(); e != nil {
		return nil, e, rule
	}
	return sg.out, nil, ""
}

// NextSSE is Next for one server-sent event of the OpenAI-compatible or
// Anthropic Messages APIs: raw is the event as the upstream sent it (its
// lines and the blank line ending it), name its event field ("" for none)
// and data its data (lines joined). Events whose data is not JSON
// ("[DONE]", a comment or keep-alive without data) carry no text and pass.
// A masked event is re-sent as "event:" (when named) and one "data:" line.
func (sg *refStream) NextSSE(raw []byte, name string, data []byte) ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, raw...)
		return sg.out, nil, ""
	}
	ex, err := bedrock.ExtractStreamEvent(sg.op, sg.family, name, trimmed)
	if err != nil {
		ex = bedrock.Extracted{Unscannable: []string{name + " event (not JSON)"}}
	}
	if len(ex.Unscannable) > 0 {
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.o.unscannable(ex.Unscannable)
		if msg, rule := sg.o.blocked(); msg != "" && !sg.o.dryRun {
			return nil, bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
		}
	}
	if len(ex.Texts) == 0 {
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, raw...)
		return sg.out, nil, ""
	}
	h := &refHeldEvent{raw: bytes.Clone(raw), ex: ex, spans: make([]*refHeldSpan, len(ex.Texts)),
		sse: true, name: name, payload: bytes.Clone(trimmed)}
	for i, sp := range ex.Texts {
		h.spans[i] = sg.addSpan(sp)
	}
	sg.queue = append(sg.queue, h)
	if e, rule := sg.decide(false); e != nil {
		return nil, e, rule
	}
	sg.sendNow()
	if e, rule := sg.emit(); e != nil {
		return nil, e, rule
	}
	return sg.out, nil, ""
}

// End releases the held text at the end of the stream.
func (sg *refStream) End() ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	if e, rule := sg.flush(); e != nil {
		return nil, e, rule
	}
	return sg.out, nil, ""
}

// flush decides all held text as final, releases it and ends every refLane
// (the content block is over: the next text starts a new one).
func (sg *refStream) flush() (*bedrock.APIError, string) {
	if e, rule := sg.decide(true); e != nil {
		return e, rule
	}
	if e, rule := sg.emit(); e != nil {
		return e, rule
	}
	clear(sg.lanes)
	return nil, ""
}

// addSpan appends a span's text to its refLane's pending text.
func (sg *refStream) addSpan(sp bedrock.TextSpan) *refHeldSpan {
	l := sg.lanes[sp.Path]
	if l == nil {
		l = &refLane{fragment: isFragment(sp.Path), window: max(outputWindow, sg.bound)}
		sg.lanes[sp.Path] = l
	}
	hs := &refHeldSpan{refLane: l}
	if l.fragment {
		raw := l.carry + sp.Text
		dec, at, rest := decodeFragment(raw)
		// Offsets into this span's raw text: the carried escape started in
		// the previous span, so its rune maps to this span's start.
		for i := range at {
			at[i] = max(0, at[i]-len(l.carry))
		}
		if n := detect.Normalize(dec); n == dec {
			hs.norm, hs.rawAt = dec, at
		} else {
			hs.norm = n // offsets no longer map: a mask replaces the whole span
		}
		if l.carrySp != nil && len(l.carry) > 0 {
			// the previous span is decided only with the rune its escape began
			_, n := utf8.DecodeRuneInString(hs.norm)
			l.carrySp.end = l.pos + len(l.pending) + n
		}
		l.carry, l.carrySp = rest, nil
		if rest != "" {
			l.carrySp = hs
		}
	} else {
		hs.norm = detect.Normalize(sp.Text)
	}
	hs.start = l.pos + len(l.pending)
	hs.end = hs.start + len(hs.norm)
	l.pending += hs.norm
	return hs
}

// decide scans every refLane's pending text and decides it up to its hold
// point (all of it when final), recording masks or returning the error
// that stops the stream.
func (sg *refStream) decide(final bool) (*bedrock.APIError, string) {
	blocked := false
	for _, l := range sg.lanes {
		if l.pending == "" && (!final || l.carry == "") {
			continue
		}
		window := l.tail + l.pending
		hs := len(l.tail)
		base := l.pos - hs
		safe := len(window)
		type hit struct {
			gi  int
			f   detect.Finding
			act string
		}
		var hits []hit
		sg.o.scan(window, func(gi int, f detect.Finding, act string) {
			if f.End > hs {
				hits = append(hits, hit{gi, f, act})
			}
		})
		if !final {
			for _, g := range sg.o.guards {
				h := 0
				if !g.holdAll {
					h = g.scanner.Hold(window)
				}
				safe = min(safe, h)
			}
			// A finding that reaches past the hold point may still grow:
			// decide it whole later.
			for changed := true; changed; {
				changed = false
				for _, h := range hits {
					if h.f.Start < safe && h.f.End > safe {
						safe, changed = h.f.Start, true
					}
				}
			}
			safe = max(safe, hs)
			if len(window)-safe > sg.bound {
				safe = len(window) - sg.bound
				for safe < len(window) && !utf8.RuneStart(window[safe]) {
					safe++
				}
			}
		}
		for _, h := range hits {
			f, gi, act := h.f, h.gi, h.act
			if f.Start >= safe {
				continue // not decided yet
			}
			as, ae := base+f.Start, base+f.End
			dup := -1
			for k, s := range l.seen {
				if s.gi == gi && s.typ == f.Type && s.start < ae && as < s.end {
					dup = k
					break
				}
			}
			rec := act
			switch act {
			case Block:
				sg.o.blockType(gi, f.Type)
				if !sg.o.dryRun {
					blocked = true
				}
				rec = sg.o.blockAction()
			case Mask:
				ms, me := max(as, l.pos), min(ae, base+safe)
				placeholder := dup < 0 || !l.seen[dup].masked
				if me > ms {
					l.masks = append(l.masks, absMask{ms, me, f.Type, placeholder})
				}
			}
			if dup < 0 {
				sg.o.add(Finding{Guard: sg.o.guards[gi].name, Detector: f.Detector, Type: f.Type, Count: 1, Action: rec})
				l.seen = append(l.seen, seenFinding{gi, f.Type, as, ae, act == Mask})
			} else {
				if act == Mask {
					l.seen[dup].masked = true
				}
				l.seen[dup].end = max(l.seen[dup].end, ae)
			}
		}
		// Slide: the decided text joins the tail (whole runes, unmasked)
		// as the next scan's left context.
		n := safe - hs
		t := l.tail + l.pending[:n]
		if len(t) > l.window {
			cut := len(t) - l.window
			for cut < len(t) && !utf8.RuneStart(t[cut]) {
				cut++
			}
			t = t[cut:]
		}
		l.tail, l.pending, l.pos = t, l.pending[n:], l.pos+n
		l.seen = slices.DeleteFunc(l.seen, func(s seenFinding) bool { return s.end <= l.pos-len(l.tail) })
		if final {
			l.carrySp = nil
		}
	}
	if blocked {
		msg, rule := sg.o.blocked()
		return bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
	}
	return nil, ""
}

// emit appends the queued events whose text is all decided, in order,
// masked where a guard masks.
func (sg *refStream) emit() (*bedrock.APIError, string) {
	k := 0
	for ; k < len(sg.queue); k++ {
		h := sg.queue[k]
		ready := true
		for _, sp := range h.spans {
			if sp.end > sp.refLane.pos || sp.refLane.carrySp == sp {
				ready = false
				break
			}
		}
		if !ready {
			break
		}
		if h.sent {
			continue
		}
		var edits []spanEdit
		for i, sp := range h.spans {
			if txt, ok := sp.masked(h.ex.Texts[i].Text); ok {
				edits = append(edits, spanEdit{i, txt})
			}
		}
		if len(edits) == 0 {
			sg.out = append(sg.out, h.raw...)
			continue
		}
		b, err := refReencodeEvent(h, edits)
		if err != nil {
			sg.queue = sg.queue[k+1:]
			return bedrock.InternalServer("warden: re-encoding a masked event failed"), "guards"
		}
		sg.out = append(sg.out, b...)
	}
	sg.queue = sg.queue[k:]
	// Masks wholly before every queued span of their refLane are done.
	for _, l := range sg.lanes {
		low := l.pos
		for _, h := range sg.queue {
			for _, sp := range h.spans {
				if sp.refLane == l {
					low = min(low, sp.start)
				}
			}
		}
		l.masks = slices.DeleteFunc(l.masks, func(m absMask) bool { return m.end <= low })
	}
	return nil, ""
}

// masked returns the span's text with its refLane's masks applied, and
// whether any applies. raw is the span's text as the event carries it.
func (sp *refHeldSpan) masked(raw string) (string, bool) {
	var ms []heldMask
	for _, m := range sp.refLane.masks {
		s, e := max(m.start, sp.start), min(m.end, sp.end)
		if e <= s {
			continue
		}
		// The placeholder goes where the value starts (not in a span that
		// only ends with the escape its first rune began with).
		owns := m.start >= sp.start && m.start < sp.start+len(sp.norm)
		ms = append(ms, heldMask{s - sp.start, e - sp.start, m.typ, m.placeholder && owns})
	}
	if len(ms) == 0 {
		return "", false
	}
	if !sp.refLane.fragment {
		return maskHeld(sp.norm, ms), true
	}
	if sp.rawAt == nil {
		// Decoded text that normalisation changed: offsets do not map back
		// to the fragment, so the whole span becomes the placeholder.
		return "{" + ms[0].typ + "}", true
	}
	// Offsets past the decoded text are the rune an escape left at the
	// end of raw begins (decoded with the next span): masked, the escape
	// goes too.
	at := func(o int) int {
		if o >= len(sp.rawAt) {
			return len(raw)
		}
		return sp.rawAt[o]
	}
	for i := range ms {
		ms[i].start, ms[i].end = at(ms[i].start), at(ms[i].end)
	}
	return maskHeld(raw, ms), true
}

// exception scans an exception or error frame relayed from the upstream:
// its message is text the client reads. Everything held is decided as
// final and released first (the stream ends with the frame).
func (sg *refStream) exception(f *bedrock.Frame) ([]byte, *bedrock.APIError, string) {
	if e, rule := sg.flush(); e != nil {
		return nil, e, rule
	}
	var p map[string]any
	if json.Unmarshal(f.Message.Payload, &p) != nil {
		sg.out = append(sg.out, f.Raw...)
		return sg.out, nil, ""
	}
	key := "message"
	msg, ok := p[key].(string)
	if !ok {
		key = "Message"
		msg, ok = p[key].(string)
	}
	if !ok || msg == "" {
		sg.out = append(sg.out, f.Raw...)
		return sg.out, nil, ""
	}
	var masks []detect.Finding
	blocked := false
	norm := sg.o.scan(msg, func(gi int, fd detect.Finding, act string) {
		rec := act
		switch act {
		case Block:
			sg.o.blockType(gi, fd.Type)
			blocked = blocked || !sg.o.dryRun
			rec = sg.o.blockAction()
		case Mask:
			masks = append(masks, fd)
		}
		sg.o.add(Finding{Guard: sg.o.guards[gi].name, Detector: fd.Detector, Type: fd.Type, Count: 1, Action: rec})
	})
	if blocked {
		m, rule := sg.o.blocked()
		return nil, bedrock.ModelStreamError("warden: %s (in the upstream's %s); the stream was stopped", m, f.ExceptionType()), rule
	}
	if len(masks) == 0 {
		sg.out = append(sg.out, f.Raw...)
		return sg.out, nil, ""
	}
	p[key] = detect.Mask(norm, masks)
	payload, err := json.Marshal(p)
	if err != nil {
		return nil, bedrock.InternalServer("warden: re-encoding a masked exception failed"), "guards"
	}
	m := f.Message
	m.Payload = payload
	b, err := bedrock.EncodeMessage(m)
	if err != nil {
		return nil, bedrock.InternalServer("warden: re-encoding a masked exception failed"), "guards"
	}
	sg.out = append(sg.out, b...)
	return sg.out, nil, ""
}

// refReencodeEvent rebuilds a held frame with its spans' new texts: the
// payload's literals are replaced (for an InvokeModelWithResponseStream
// chunk, inside the base64 "bytes", which is re-encoded) and the frame
// re-encoded with its headers unchanged.
func refReencodeEvent(h *refHeldEvent, edits []spanEdit) ([]byte, error) {
	if h.sse {
		var b []byte
		if h.name != "" {
			b = append(append(append(b, "event: "...), h.name...), '\n')
		}
		// Raw line breaks in JSON are whitespace between tokens (strings
		// cannot hold them): one data line.
		p := bytes.Map(func(r rune) rune {
			if r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, rewriteSpans(h.payload, h.ex, edits))
		b = append(append(b, "data: "...), p...)
		return append(b, "\n\n"...), nil
	}
	f, err := bedrock.NewFrameReader(bytes.NewReader(h.raw)).Next()
	if err != nil {
		return nil, err
	}
	m := f.Message
	m.Payload = rewriteSpans(m.Payload, h.ex, edits)
	return bedrock.EncodeMessage(m)
}

// checkIDs scans the ids of one stream event (a contentBlockStart's
// toolUseId, an Anthropic content_block_start's id): it returns the frame to
// go on with and its extraction (f and ex themselves, or the event
// re-encoded with its ids masked and extracted again), or the error that
// stops the stream and its rule.
func (sg *refStream) checkIDs(f *bedrock.Frame, ex bedrock.Extracted) (*bedrock.Frame, bedrock.Extracted, *bedrock.APIError, string) {
	edits := sg.o.checkIDs(ex)
	if msg, rule := sg.o.blocked(); msg != "" && !sg.o.dryRun {
		return nil, ex, bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
	}
	if len(edits) == 0 {
		return f, ex, nil, ""
	}
	m := f.Message
	m.Payload = rewriteSpans(m.Payload, withIDs(ex), edits)
	raw, err := bedrock.EncodeMessage(m)
	if err == nil {
		var nf *bedrock.Frame
		if nf, err = bedrock.NewFrameReader(bytes.NewReader(raw)).Next(); err == nil {
			var nex bedrock.Extracted
			if nex, err = bedrock.ExtractStreamEvent(sg.op, sg.family, nf.EventType(), nf.Message.Payload); err == nil {
				return nf, nex, nil, ""
			}
		}
	}
	return nil, ex, bedrock.InternalServer("warden: re-encoding a masked event failed"), "guards"
}
