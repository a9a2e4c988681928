package guard

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

// This file runs the apps' output guards (applies_to: output) over the
// model's answers: unary response bodies are buffered, scanned and then
// passed, masked or refused; event streams are scanned as their events
// arrive, their text held back by content until no value a detector
// reports can still be unfinished in it (see Stream).
//
// A guard's bedrock: detector (ApplyGuardrail, source OUTPUT) runs on unary
// answers only; in a stream it is not applied (no call per event): apps
// that stream attach the guardrail with apps[].bedrock_guardrail instead,
// which Bedrock applies to streamed answers.

// MaxAnswerBytes bounds the unary answer body the output guards scan (the
// caller buffers at most this much). A bigger body cannot be scanned: it
// counts as unscannable content, so a guard with unscannable: block refuses
// it and one with unscannable: allow lets it through unscanned (findings
// record UNSCANNABLE).
const MaxAnswerBytes = 10 << 20

// outputWindow is how many bytes of already released, normalised text each
// stream lane keeps as left context for the next scan. Every fixed-format
// type is far shorter (an IBAN with separators is at most 42 characters, a
// card number 23, an AWS secret key 40) and so are ordinary emails and URLs;
// the window also gives detectors the character before a value, so word
// boundaries hold across events. A value longer than the window split over
// three or more events can be missed.
const outputWindow = 128

// outputScan collects what the output guards found in one answer.
type outputScan struct {
	guards   []*compiled
	dryRun   bool
	findings []Finding
	types    [][]string // per guard: the finding types it blocks on
	unscan   []string   // per guard: why it blocks unscannable content, or ""
	errs     []string   // per guard: why its bedrock: call failed and on_error blocks, or ""
	buf      []detect.Finding
}

func newOutputScan(gs []*compiled, dryRun bool) *outputScan {
	return &outputScan{guards: gs, dryRun: dryRun, types: make([][]string, len(gs)), unscan: make([]string, len(gs)), errs: make([]string, len(gs))}
}

func (o *outputScan) add(f Finding) {
	f.Phase = PhaseOutput
	o.findings = addFinding(o.findings, f)
}

// unscannable notes content the guards cannot read (paths name it).
func (o *outputScan) unscannable(paths []string) {
	more := ""
	if len(paths) > maxListedPaths {
		more = fmt.Sprintf(" and %d more", len(paths)-maxListedPaths)
	}
	listed := paths[:min(len(paths), maxListedPaths)]
	for gi, g := range o.guards {
		act := Allow
		if g.blockUnscannable {
			act = o.blockAction()
			if o.unscan[gi] == "" {
				o.unscan[gi] = fmt.Sprintf("the response holds content Warden cannot scan (%s%s) and the guard blocks unscannable content",
					strings.Join(listed, ", "), more)
			}
		}
		o.add(Finding{Guard: g.name, Type: "UNSCANNABLE", Count: len(paths), Action: act})
	}
}

func (o *outputScan) blockAction() string {
	if o.dryRun {
		return Record
	}
	return Block
}

// scan runs every output guard over text and calls fn for each finding with
// the guard's index and its action (block, mask or record; a block is
// reported as block even in dry-run: the caller decides). It returns the
// normalised text the offsets refer to.
func (o *outputScan) scan(text string, fn func(gi int, f detect.Finding, act string)) string {
	norm := text
	for gi, g := range o.guards {
		found := scanText(g, o.buf[:0], text, &norm)
		o.buf = found
		for _, f := range found {
			fn(gi, f, g.actions[f.Detector])
		}
	}
	return norm
}

// blockType remembers that guard gi blocks on typ.
func (o *outputScan) blockType(gi int, typ string) {
	if !slices.Contains(o.types[gi], typ) {
		o.types[gi] = append(o.types[gi], typ)
	}
}

// blocked returns "guard NAME: why; …" for every guard that blocks and the
// first one's rule, "" when none does.
func (o *outputScan) blocked() (msg, rule string) {
	var parts []string
	for gi, g := range o.guards {
		var why []string
		if len(o.types[gi]) > 0 {
			why = append(why, "the response holds "+strings.Join(o.types[gi], ", "))
		}
		if o.unscan[gi] != "" {
			why = append(why, o.unscan[gi])
		}
		if o.errs[gi] != "" {
			why = append(why, o.errs[gi])
		}
		if len(why) == 0 {
			continue
		}
		parts = append(parts, "guard "+g.name+": "+strings.Join(why, "; "))
		if rule == "" {
			rule = "guards." + g.name
		}
	}
	return strings.Join(parts, "; "), rule
}

// spanEdit replaces the text of ex.Texts[i] with text.
type spanEdit struct {
	i    int
	text string
}

// rewriteSpans returns body with each edited span's JSON string literal
// replaced by the encoding of its new text; spans inside a base64-carried
// body (Src > 0) rewrite that body, which is re-encoded in place.
func rewriteSpans(body []byte, ex bedrock.Extracted, edits []spanEdit) []byte {
	type edit struct {
		start, end int
		lit        []byte
	}
	at := func(e edit) (int, int, []byte) { return e.start, e.end, e.lit }
	var outer []edit
	inner := map[int][]edit{}
	for _, ed := range edits {
		sp := ex.Texts[ed.i]
		text := ed.text
		if sp.Base64 {
			text = base64.StdEncoding.EncodeToString([]byte(text))
		}
		e := edit{sp.Start, sp.End, bedrock.JSONString(text)}
		if sp.Src == 0 {
			outer = append(outer, e)
		} else {
			inner[sp.Src] = append(inner[sp.Src], e)
		}
	}
	for src, es := range inner {
		d := ex.Decoded[src-1]
		nb := bedrock.ApplyEdits(d.Bytes, es, at)
		outer = append(outer, edit{d.Start, d.End, bedrock.JSONString(base64.StdEncoding.EncodeToString(nb))})
	}
	return bedrock.ApplyEdits(body, outer, at)
}

// Answer is a unary answer as the output guards see it.
type Answer struct {
	// Op and Family are the call's operation and model family (as
	// bedrock.ExtractResponse takes them).
	Op     bedrock.Operation
	Family string
	// Body is the answer's body; Oversize says it is longer than
	// MaxAnswerBytes (Body then holds its first bytes and is not scanned).
	Body     []byte
	Oversize bool
	// ContentEncoding is the answer's Content-Encoding: one other than
	// identity cannot be scanned.
	ContentEncoding string
	// DryRun: a block is recorded, not enforced.
	DryRun bool
}

// CheckAnswer scans a unary answer (Converse, InvokeModel) with ag's output
// guards: what they found, the masked body, and whether they block. The
// guards with a bedrock: detector check the unmasked answer (ApplyGuardrail,
// source OUTPUT) through gr before the client sees any of it; ctx is the
// client's request, so a client that goes away cancels that call.
func (ag *Guards) CheckAnswer(ctx context.Context, a Answer, gr Guardrail) Outcome {
	if !ag.HasOutput() {
		return Outcome{DryRun: a.DryRun}
	}
	o := newOutputScan(ag.output, a.DryRun)
	var ex bedrock.Extracted
	switch enc := a.ContentEncoding; {
	case a.Oversize:
		o.unscannable([]string{fmt.Sprintf("a response body over the %d bytes Warden scans", MaxAnswerBytes)})
	case enc != "" && enc != "identity":
		o.unscannable([]string{"the body (Content-Encoding " + enc + ")"})
	default:
		var err error
		if ex, err = bedrock.ExtractResponse(a.Op, a.Family, a.Body); err != nil {
			ex = bedrock.Extracted{Unscannable: []string{"the body (not JSON)"}}
		}
		if len(ex.Unscannable) > 0 {
			o.unscannable(ex.Unscannable)
		}
	}
	var edits []spanEdit
	var toMask []detect.Finding
	for i, sp := range ex.Texts {
		toMask = toMask[:0]
		norm := o.scan(sp.Text, func(gi int, f detect.Finding, act string) {
			switch act {
			case Block:
				o.blockType(gi, f.Type)
				act = o.blockAction()
			case Mask:
				toMask = append(toMask, f)
			}
			o.add(Finding{Guard: o.guards[gi].name, Detector: f.Detector, Type: f.Type, Count: 1, Action: act})
		})
		if len(toMask) > 0 {
			edits = append(edits, spanEdit{i, detect.Mask(norm, toMask)})
		}
	}
	edits = append(edits, o.checkIDs(ex)...) // tool-use ids (ids.go)
	// bedrock: guards check the unmasked answer (source OUTPUT); streams
	// never get here (bedrock.go).
	applyOutputBedrock(ctx, gr, o, ex)
	out := o.outcome()
	if out.Blocked() && !a.DryRun {
		return out
	}
	if len(edits) > 0 {
		out.Body = rewriteSpans(a.Body, withIDs(ex), edits)
	}
	return out
}

// outcome is what o found so far: the findings and, when a guard blocks,
// why.
func (o *outputScan) outcome() Outcome {
	msg, rule := o.blocked()
	return Outcome{Findings: o.findings, Message: msg, Rule: rule, DryRun: o.dryRun}
}

// Stream scans a stream's events and holds back text by content. Text is
// kept per lane (the JSON path of the text in the event: "delta.text",
// "delta.toolUse.input", "bytes/delta.text", …), so a content block's
// deltas read as one text.
//
// Hold-back: each text event is queued; after it arrives, every lane's
// unreleased text is scanned behind a window of its released text, and the
// text is decided up to the point from which a value an enabled detector
// reports may still be unfinished (detect.Holder: the trailing run that may
// start a number, an email, a key, a word-list phrase), but never holding
// more than the guard's bound (the longest value its detectors can match,
// max_hold_bytes for unbounded custom expressions and the injection
// heuristic). Decided text is masked or stops the stream (block) before any
// of a value leaves; queued events leave in order, whole, as soon as all of
// their text is decided. An event without text (contentBlockStop,
// messageStop, metadata, a chunk without text) ends the content block: the
// held text is decided as final and released before it, and it passes at
// once. Exception frames from the upstream are scanned like text.
//
// Text in a lane holding a JSON fragment (a toolUse input, Anthropic's
// partial_json) is scanned decoded; an escape split across events ("\u00" |
// "34") is decoded across the boundary.
type Stream struct {
	op     bedrock.Operation
	family string
	o      *outputScan
	ext    bedrock.EventExtractor
	lanes  []*lane // the open content blocks' (few: looked up by path in order)
	// laneIndex finds a lane by path when there are more than a few
	laneIndex map[string]*lane
	queue     []*heldEvent
	// released lanes, events and spans, reused (hold.go)
	spareLanes  []*lane
	spareEvents []*heldEvent
	hits        []hit // decide's
	bound       int   // the longest text held for a value that may be unfinished
	holdAll     bool  // a guard's custom expression can match whitespace: hold up to bound
	// recordOnly: every output guard only records (no block, mask or
	// ApplyGuardrail), so no event can change: each is sent as it arrives
	// and its text is still held back for the scan, which decides values
	// whole, as for the other actions.
	recordOnly bool
	out        []byte
	lastText   int64 // EventTextBytes
}

// hit is a finding of decide's scan: the guard's index and its action.
type hit struct {
	gi  int
	f   detect.Finding
	act string
}

// absMask is a decided mask in a lane's absolute offsets.
type absMask struct {
	start, end  int
	typ         string
	placeholder bool // false: the rest of a value whose placeholder an earlier text carries
}

// seenFinding is a finding already counted (absolute lane offsets), so the
// next scan, which sees it again through the tail, does not count it twice.
type seenFinding struct {
	gi         int
	typ        string
	start, end int
	masked     bool // its placeholder has been placed
}

type heldEvent struct {
	raw   []byte
	ex    bedrock.Extracted
	spans []*heldSpan
	// sse is set for a server-sent event: raw is the event as sent, name
	// its event field ("" when it had none), payload its data.
	sse     bool
	name    string
	payload []byte
	sent    bool // already sent unchanged (Stream.recordOnly)
	// The memory of the spans, reused with the event (hold.go): one text
	// (the usual event) in the event itself, more in more.
	one     heldSpan
	oneSpan [1]*heldSpan
	oneText [1]bedrock.TextSpan
	more    []heldSpan
}

// heldSpan is one text of a held event: its lane and its range in the
// lane's normalised text.
type heldSpan struct {
	lane       *lane
	norm       string
	start, end int
	// fragment spans: rawAt[i] is the offset in the span's raw text of
	// norm[i] (len(norm)+1 entries); nil when norm is the text itself.
	rawAt []int
	atBuf []int // rawAt's memory, kept when the span is reused
}

// DefaultMaxHoldBytes is max_hold_bytes' default: how much streamed text a
// guard holds back for a value it cannot bound (custom expressions, the
// injection heuristic, URLs).
const DefaultMaxHoldBytes = 512

// NewStream returns the scanner of one streamed answer (ConverseStream,
// InvokeModelWithResponseStream) with ag's output guards; dryRun records
// blocks instead of stopping the stream. Without output guards nothing is
// found and nothing is held (the caller relays such a stream without a
// Stream).
func (ag *Guards) NewStream(op bedrock.Operation, family string, dryRun bool) *Stream {
	var gs []*compiled
	if ag != nil {
		gs = ag.output
	}
	return newStream(op, family, gs, dryRun)
}

func newStream(op bedrock.Operation, family string, gs []*compiled, dryRun bool) *Stream {
	sg := &Stream{op: op, family: family, o: newOutputScan(gs, dryRun), recordOnly: len(gs) > 0}
	for _, g := range gs {
		sg.bound = max(sg.bound, g.holdBound)
		sg.holdAll = sg.holdAll || g.holdAll
		sg.recordOnly = sg.recordOnly && g.recordsOnly()
	}
	return sg
}

// recordsOnly reports whether g can only record what it finds: no action
// blocks or masks, unscannable content is not blocked, and no Bedrock
// guardrail (which may intervene) runs.
func (g *compiled) recordsOnly() bool {
	if g.blockUnscannable || g.bedrock != nil {
		return false
	}
	for _, a := range g.actions {
		if a != Record {
			return false
		}
	}
	return true
}

// sendNow sends the events just queued when no guard can change them
// (recordOnly); emit skips them later.
func (sg *Stream) sendNow() {
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
func (sg *Stream) Outcome() Outcome { return sg.o.outcome() }

// Next takes one frame and returns the bytes to send now (valid until the
// next call), or the error to end the stream with and its rule.
func (sg *Stream) Next(f *bedrock.Frame) ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	sg.lastText = 0
	switch f.MessageType() {
	case bedrock.MessageTypeEvent:
	case bedrock.MessageTypeException, bedrock.MessageTypeError:
		return sg.exception(f)
	default:
		// Neither text nor an error: it ends the content block and passes.
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, f.Raw...)
		return sg.out, nil, ""
	}
	h := sg.newEvent()
	if err := sg.extract(h, f.EventType(), f.Message.Payload); err != nil {
		unscannableEvent(&h.ex, f.EventType())
	}
	sg.lastText = h.ex.TextBytes()
	if len(h.ex.IDs) > 0 { // tool-use ids (ids.go): block, or mask and go on with the masked event
		var e *bedrock.APIError
		var rule string
		if f, h.ex, e, rule = sg.checkIDs(f, h.ex); e != nil {
			return nil, e, rule
		}
	}
	ex := &h.ex
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
		sg.releaseEvent(h)
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, f.Raw...)
		return sg.out, nil, ""
	}
	h.raw = append(h.raw[:0], f.Raw...)
	for _, sp := range ex.Texts {
		h.spans = append(h.spans, sg.addSpan(h.span(len(h.spans), len(ex.Texts)), sp))
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

// EventTextBytes is the length of the text the last event given to Next
// or NextSSE carried as it arrived (0 for an exception, an event that is
// not JSON or one without text): what a budgeted stream counts, read off
// the guard's extraction instead of extracting the event again.
func (sg *Stream) EventTextBytes() int64 { return sg.lastText }

// NextSSE is Next for one server-sent event of the OpenAI-compatible or
// Anthropic Messages APIs: raw is the event as the upstream sent it (its
// lines and the blank line ending it), name its event field ("" for none)
// and data its data (lines joined). Events whose data is not JSON
// ("[DONE]", a comment or keep-alive without data) carry no text and pass.
// A masked event is re-sent as "event:" (when named) and one "data:" line.
func (sg *Stream) NextSSE(raw []byte, name string, data []byte) ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	sg.lastText = 0
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, raw...)
		return sg.out, nil, ""
	}
	h := sg.newEvent()
	if err := sg.extract(h, name, trimmed); err != nil {
		unscannableEvent(&h.ex, name)
	}
	sg.lastText = h.ex.TextBytes()
	ex := &h.ex
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
		sg.releaseEvent(h)
		if e, rule := sg.flush(); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, raw...)
		return sg.out, nil, ""
	}
	h.raw, h.sse, h.name, h.payload = append(h.raw[:0], raw...), true, name, append(h.payload[:0], trimmed...)
	for _, sp := range ex.Texts {
		h.spans = append(h.spans, sg.addSpan(h.span(len(h.spans), len(ex.Texts)), sp))
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
func (sg *Stream) End() ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	if e, rule := sg.flush(); e != nil {
		return nil, e, rule
	}
	return sg.out, nil, ""
}

// flush decides all held text as final, releases it and ends every lane
// (the content block is over: the next text starts a new one).
func (sg *Stream) flush() (*bedrock.APIError, string) {
	if e, rule := sg.decide(true); e != nil {
		return e, rule
	}
	if e, rule := sg.emit(); e != nil {
		return e, rule
	}
	sg.endLanes()
	return nil, ""
}

// isFragment reports whether a lane's text is a fragment of JSON.
func isFragment(path string) bool {
	return strings.HasSuffix(path, "toolUse.input") || strings.HasSuffix(path, "partial_json")
}

// addSpan appends a span's text to its lane's pending text.
func (sg *Stream) addSpan(hs *heldSpan, sp bedrock.TextSpan) *heldSpan {
	l := sg.lane(sp.Path)
	hs.lane = l
	if l.fragment {
		raw := l.carry + sp.Text
		dec, at, rest := decodeFragmentInto(raw, hs.atBuf)
		hs.atBuf = at
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
		if len(l.carrySps) > 0 && (hs.norm != "" || rest == "") {
			// the spans the escape was cut across are decided only with
			// the rune it began (while this span decodes nothing, the
			// escape goes on: it joins them)
			_, n := utf8.DecodeRuneInString(hs.norm)
			for _, c := range l.carrySps {
				c.end = l.pos + l.pendingLen() + n
			}
			clear(l.carrySps)
			l.carrySps = l.carrySps[:0]
		}
		l.carry = rest
		if rest != "" {
			l.carrySps = append(l.carrySps, hs)
		}
	} else {
		hs.norm = detect.Normalize(sp.Text)
	}
	hs.start = l.pos + l.pendingLen()
	hs.end = hs.start + len(hs.norm)
	l.appendText(hs.norm)
	return hs
}

// decide scans every lane's pending text and decides it up to its hold
// point (all of it when final), recording masks or returning the error
// that stops the stream.
func (sg *Stream) decide(final bool) (*bedrock.APIError, string) {
	blocked := false
	for _, l := range sg.lanes {
		if l.pendingLen() == 0 && (!final || l.carry == "") {
			continue
		}
		window := l.text() // tail, then pending; valid until the lane is appended to
		hs := l.nTail
		base := l.pos - hs
		safe := len(window)
		hits := sg.hits[:0]
		norm := sg.o.scan(window, func(gi int, f detect.Finding, act string) {
			hits = append(hits, hit{gi, f, act})
		})
		if len(hits) > 0 {
			widenHits(hits, window, norm)
			hits = slices.DeleteFunc(hits, func(h hit) bool { return h.f.End <= hs })
		}
		sg.hits = hits
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
			placed := false // a mask with the placeholder was recorded
			switch act {
			case Block:
				sg.o.blockType(gi, f.Type)
				if !sg.o.dryRun {
					blocked = true
				}
				rec = sg.o.blockAction()
			case Mask:
				// A value that starts in the decided tail may have
				// nothing undecided to mask yet (me <= ms): its
				// placeholder goes with its first mask.
				ms, me := max(as, l.pos), min(ae, base+safe)
				placeholder := dup < 0 || !l.seen[dup].masked
				if me > ms {
					l.masks = append(l.masks, absMask{ms, me, f.Type, placeholder})
					placed = true
				}
			}
			if dup < 0 {
				sg.o.add(Finding{Guard: sg.o.guards[gi].name, Detector: f.Detector, Type: f.Type, Count: 1, Action: rec})
				l.seen = append(l.seen, seenFinding{gi, f.Type, as, ae, placed})
			} else {
				if placed {
					l.seen[dup].masked = true
				}
				l.seen[dup].end = max(l.seen[dup].end, ae)
			}
		}
		// Slide: the decided text joins the tail (whole runes, unmasked)
		// as the next scan's left context.
		l.slide(safe)
		l.seen = slices.DeleteFunc(l.seen, func(s seenFinding) bool { return s.end <= l.pos-l.nTail })
		if final {
			clear(l.carrySps)
			l.carrySps = l.carrySps[:0]
		}
	}
	if blocked {
		msg, rule := sg.o.blocked()
		return bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
	}
	return nil, ""
}

// widenHits maps the findings of a scan of window back to window when the
// scan's normalisation of it (norm: outputScan.scan's, which is window
// unless a masking guard found something) differs from it. Each token's
// text is normalised on its own, so window (their concatenation) is
// normalised again where a token boundary cut what composes ("e" then
// U+0301 is "é", Hangul jamo a syllable): the offsets are then into that
// shorter text, and a mask placed by them would leave the end of a value
// out. Normalising normalised pieces only composes and reorders near their
// edges, so an offset moves by at most the difference in length: each
// finding is widened by it on both sides, to whole runes (a few bytes
// masked too many, never one of the value sent). A block or record guard's
// offsets are left as they are: they can only be early, which holds text
// back longer.
func widenHits(hits []hit, window, norm string) {
	if norm == window {
		return
	}
	d := len(window) - len(norm)
	if d < 0 {
		d = -d
	}
	for i := range hits {
		f := &hits[i].f
		s, e := max(0, f.Start-d), min(len(window), f.End+d)
		for s > 0 && !utf8.RuneStart(window[s]) {
			s--
		}
		for e < len(window) && !utf8.RuneStart(window[e]) {
			e++
		}
		f.Start, f.End = s, e
	}
}

// emit appends the queued events whose text is all decided, in order,
// masked where a guard masks.
func (sg *Stream) emit() (*bedrock.APIError, string) {
	k := 0
	for ; k < len(sg.queue); k++ {
		h := sg.queue[k]
		ready := true
		for _, sp := range h.spans {
			if sp.end > sp.lane.pos || slices.Contains(sp.lane.carrySps, sp) {
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
		b, err := reencodeEvent(h, edits)
		if err != nil {
			sg.dequeue(k + 1)
			return bedrock.InternalServer("warden: re-encoding a masked event failed"), "guards"
		}
		sg.out = append(sg.out, b...)
	}
	sg.dequeue(k)
	// Masks wholly before every queued span of their lane are done.
	for _, l := range sg.lanes {
		low := l.pos
		for _, h := range sg.queue {
			for _, sp := range h.spans {
				if sp.lane == l {
					low = min(low, sp.start)
				}
			}
		}
		l.masks = slices.DeleteFunc(l.masks, func(m absMask) bool { return m.end <= low })
	}
	return nil, ""
}

// masked returns the span's text with its lane's masks applied, and
// whether any applies. raw is the span's text as the event carries it.
func (sp *heldSpan) masked(raw string) (string, bool) {
	var ms []heldMask
	for _, m := range sp.lane.masks {
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
	if !sp.lane.fragment {
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

// decodeFragment decodes the JSON string escapes in a fragment of JSON
// text. It returns the decoded text, for each of its bytes (and its end)
// the offset in s it came from, and the incomplete escape s ends with ("",
// "\\", "\\u00", a lone high surrogate "\\ud83d", …), left undecoded.
func decodeFragment(s string) (dec string, at []int, rest string) {
	return decodeFragmentInto(s, nil)
}

// decodeFragmentInto is decodeFragment building at in buf's memory.
func decodeFragmentInto(s string, buf []int) (dec string, at []int, rest string) {
	at = slices.Grow(buf[:0], len(s)+1)
	if strings.IndexByte(s, '\\') < 0 {
		at = at[:len(s)+1]
		for i := range at {
			at[i] = i
		}
		return s, at, ""
	}
	var b strings.Builder
	put := func(from int, str string) {
		for range len(str) {
			at = append(at, from)
		}
		b.WriteString(str)
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if c != '\\' {
			put(i, s[i:i+1])
			i++
			continue
		}
		if i+1 >= len(s) {
			return b.String(), append(at, i), s[i:]
		}
		switch e := s[i+1]; e {
		case 'u':
			if i+6 > len(s) {
				return b.String(), append(at, i), s[i:]
			}
			r, ok := hex4(s[i+2 : i+6])
			if !ok {
				put(i, s[i:i+2])
				i += 2
				continue
			}
			n := 6
			if utf16.IsSurrogate(r) {
				if i+12 > len(s) && (i+6 == len(s) || s[i+6] == '\\') && strings.HasPrefix("\\u", s[i+6:min(len(s), i+8)]) {
					return b.String(), append(at, i), s[i:]
				}
				if i+12 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
					if r2, ok := hex4(s[i+8 : i+12]); ok {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							r, n = d, 12
						}
					}
				}
			}
			put(i, string(r))
			i += n
		default:
			d := simpleEscape(e)
			if d == "" {
				d = s[i : i+2]
			}
			put(i, d)
			i += 2
		}
	}
	return b.String(), append(at, len(s)), ""
}

// simpleEscape decodes the one-character JSON escape \e ("" if none).
func simpleEscape(e byte) string {
	switch e {
	case '"', '\\', '/':
		return string(e)
	case 'b':
		return "\b"
	case 'f':
		return "\f"
	case 'n':
		return "\n"
	case 'r':
		return "\r"
	case 't':
		return "\t"
	}
	return ""
}

func hex4(s string) (rune, bool) {
	var r rune
	for i := 0; i < 4; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// exception scans an exception or error frame relayed from the upstream:
// its message is text the client reads. Everything held is decided as
// final and released first (the stream ends with the frame).
func (sg *Stream) exception(f *bedrock.Frame) ([]byte, *bedrock.APIError, string) {
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

// heldMask is a masked range of a held text; placeholder is false for the
// rest of a value whose placeholder an earlier event already carried.
type heldMask struct {
	start, end  int
	typ         string
	placeholder bool
}

// maskHeld replaces each range of text with "{TYPE}" (or nothing), merging
// overlapping ranges into the first one's placeholder.
func maskHeld(text string, ms []heldMask) string {
	slices.SortFunc(ms, func(a, b heldMask) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return b.end - a.end
	})
	var b strings.Builder
	pos := 0
	for i := 0; i < len(ms); {
		m := ms[i]
		end := m.end
		i++
		for i < len(ms) && ms[i].start <= end {
			end = max(end, ms[i].end)
			i++
		}
		if end <= m.start {
			continue
		}
		start := max(m.start, pos)
		b.WriteString(text[pos:start])
		if m.placeholder {
			b.WriteString("{" + m.typ + "}")
		}
		pos = end
	}
	b.WriteString(text[pos:])
	return b.String()
}

// reencodeEvent rebuilds a held frame with its spans' new texts: the
// payload's literals are replaced (for an InvokeModelWithResponseStream
// chunk, inside the base64 "bytes", which is re-encoded) and the frame
// re-encoded with its headers unchanged.
func reencodeEvent(h *heldEvent, edits []spanEdit) ([]byte, error) {
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
