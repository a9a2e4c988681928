package guard

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/guard/detect"
)

// This file runs the apps' output guards (applies_to: output) over the
// model's answers: unary response bodies are buffered, scanned and then
// passed, masked or refused; event streams are scanned event by event with
// a carry-over window and at most one event held back (see Stream).
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
		var found []detect.Finding
		norm, found = g.scanner.ScanAppend(o.buf[:0], text)
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
		e := edit{sp.Start, sp.End, jsonString(text)}
		if sp.Src == 0 {
			outer = append(outer, e)
		} else {
			inner[sp.Src] = append(inner[sp.Src], e)
		}
	}
	for src, es := range inner {
		d := ex.Decoded[src-1]
		nb := applyEdits(d.Bytes, es, at)
		outer = append(outer, edit{d.Start, d.End, jsonString(base64.StdEncoding.EncodeToString(nb))})
	}
	return applyEdits(body, outer, at)
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

// Stream scans a stream's events. Text is kept per lane (the JSON path
// of the text in the event: "delta.text", "delta.toolUse.input",
// "bytes/delta.text", …), so a content block's deltas read as one text.
//
// Delay: the latest event carrying text is held; when the next event arrives
// the held one is scanned in the window tail + held + next-text-of-the-same-
// lane (tail: up to outputWindow bytes of the lane's released text), then
// released (masked if needed) or the stream is stopped. An event without
// text releases the held one first and then passes, so order never changes
// and no event waits for more than the one after it. A value split across
// two events is thus caught before either half leaves Warden; one spread
// over three or more events is caught when the window completes it, and
// only its unreleased part can be masked.
type Stream struct {
	op     bedrock.Operation
	family string
	o      *outputScan
	lanes  map[string]*lane
	held   *heldEvent
	out    []byte
}

type lane struct {
	tail string // the last released normalised text, up to outputWindow bytes
	pos  int    // absolute offset (in the lane's normalised text) where the next event's text starts
	seen []seenFinding
}

// seenFinding is a finding already counted (absolute lane offsets), so the
// next scan, which sees it again through the tail, does not count it twice.
type seenFinding struct {
	gi         int
	typ        string
	start, end int
	masked     bool // its placeholder has been written
}

type heldEvent struct {
	raw   []byte
	ex    bedrock.Extracted
	norms []string // per span: normalised text
}

// NewStream returns the scanner of one streamed answer (ConverseStream,
// InvokeModelWithResponseStream) with ag's output guards; dryRun records
// blocks instead of stopping the stream. Without output guards nothing is
// found (text events are still held back one event: the caller relays
// such a stream without a Stream).
func (ag *Guards) NewStream(op bedrock.Operation, family string, dryRun bool) *Stream {
	var gs []*compiled
	if ag != nil {
		gs = ag.output
	}
	return newStream(op, family, gs, dryRun)
}

func newStream(op bedrock.Operation, family string, gs []*compiled, dryRun bool) *Stream {
	return &Stream{op: op, family: family, o: newOutputScan(gs, dryRun), lanes: map[string]*lane{}}
}

// Outcome is what the guards found in the stream so far (its Body is nil:
// the events carry their own edits).
func (sg *Stream) Outcome() Outcome { return sg.o.outcome() }

// Next takes one frame and returns the bytes to send now (valid until the
// next call), or the error to end the stream with and its rule.
func (sg *Stream) Next(f *bedrock.Frame) ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	var ex bedrock.Extracted
	if f.MessageType() == bedrock.MessageTypeEvent {
		var err error
		ex, err = bedrock.ExtractStreamEvent(sg.op, sg.family, f.EventType(), f.Message.Payload)
		if err != nil {
			ex = bedrock.Extracted{Unscannable: []string{f.EventType() + " event (not JSON)"}}
		}
	}
	if len(ex.IDs) > 0 { // tool-use ids (ids.go): block, or mask and go on with the masked event
		var e *bedrock.APIError
		var rule string
		if f, ex, e, rule = sg.checkIDs(f, ex); e != nil {
			return nil, e, rule
		}
	}
	if len(ex.Unscannable) > 0 {
		if e, rule := sg.release(nil); e != nil {
			return nil, e, rule
		}
		sg.o.unscannable(ex.Unscannable)
		if msg, rule := sg.o.blocked(); msg != "" && !sg.o.dryRun {
			return nil, bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
		}
	}
	if len(ex.Texts) == 0 {
		if e, rule := sg.release(nil); e != nil {
			return nil, e, rule
		}
		sg.out = append(sg.out, f.Raw...)
		return sg.out, nil, ""
	}
	h := &heldEvent{raw: bytes.Clone(f.Raw), ex: ex, norms: make([]string, len(ex.Texts))}
	for i, sp := range ex.Texts {
		h.norms[i] = detect.Normalize(sp.Text)
	}
	if e, rule := sg.release(h); e != nil {
		return nil, e, rule
	}
	sg.held = h
	return sg.out, nil, ""
}

// End releases the held event at the end of the stream.
func (sg *Stream) End() ([]byte, *bedrock.APIError, string) {
	sg.out = sg.out[:0]
	if e, rule := sg.release(nil); e != nil {
		return nil, e, rule
	}
	return sg.out, nil, ""
}

// release scans the held event with next's text as look-ahead and appends
// it (masked if a guard masks) to sg.out, or returns the error that stops
// the stream.
func (sg *Stream) release(next *heldEvent) (*bedrock.APIError, string) {
	h := sg.held
	if h == nil {
		return nil, ""
	}
	sg.held = nil
	var edits []spanEdit
	blocked := false
	for i, sp := range h.ex.Texts {
		l := sg.lanes[sp.Path]
		if l == nil {
			l = &lane{}
			sg.lanes[sp.Path] = l
		}
		var ahead string
		if next != nil {
			for j, nsp := range next.ex.Texts {
				if nsp.Path == sp.Path {
					ahead += next.norms[j]
				}
			}
		}
		held := h.norms[i]
		hs, he := len(l.tail), len(l.tail)+len(held)
		base := l.pos - len(l.tail)
		window := l.tail + held + ahead
		var masks []heldMask
		sg.o.scan(window, func(gi int, f detect.Finding, act string) {
			if f.End <= hs || f.Start >= he {
				return // released already, or the next event's own
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
				placeholder := f.Start >= hs || dup < 0 || !l.seen[dup].masked
				masks = append(masks, heldMask{max(f.Start, hs) - hs, min(f.End, he) - hs, f.Type, placeholder})
			}
			if dup < 0 {
				sg.o.add(Finding{Guard: sg.o.guards[gi].name, Detector: f.Detector, Type: f.Type, Count: 1, Action: rec})
				l.seen = append(l.seen, seenFinding{gi, f.Type, as, ae, act == Mask})
			} else if act == Mask {
				l.seen[dup].masked = true
			}
		})
		if len(masks) > 0 {
			edits = append(edits, spanEdit{i, maskHeld(held, masks)})
		}
		// Slide the window: keep the last outputWindow bytes (whole runes)
		// of the released text, unmasked, as the next scan's left context.
		t := l.tail + held
		if len(t) > outputWindow {
			cut := len(t) - outputWindow
			for cut < len(t) && !utf8.RuneStart(t[cut]) {
				cut++
			}
			t = t[cut:]
		}
		l.tail = t
		l.pos += len(held)
		l.seen = slices.DeleteFunc(l.seen, func(s seenFinding) bool { return s.end <= l.pos-len(l.tail) })
	}
	if blocked {
		msg, rule := sg.o.blocked()
		return bedrock.ModelStreamError("warden: %s; the stream was stopped", msg), rule
	}
	if len(edits) == 0 {
		sg.out = append(sg.out, h.raw...)
		return nil, ""
	}
	b, err := reencodeEvent(h, edits)
	if err != nil {
		return bedrock.InternalServer("warden: re-encoding a masked event failed"), "guards"
	}
	sg.out = append(sg.out, b...)
	return nil, ""
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
	f, err := bedrock.NewFrameReader(bytes.NewReader(h.raw)).Next()
	if err != nil {
		return nil, err
	}
	m := f.Message
	m.Payload = rewriteSpans(m.Payload, h.ex, edits)
	return bedrock.EncodeMessage(m)
}
