package guard

import (
	"slices"
	"unsafe"

	"github.com/warden-egress/warden/bedrock"
)

// This file keeps the memory of a Stream's hold-back from one token to the
// next. A streamed answer arrives a few bytes per event, and the guard used
// to allocate per event what it holds (the event, its spans, the
// extraction, the lane's text concatenated twice per scan): ten allocations
// and ~800 B per token, and the garbage collection they cause was most of
// the CPU a token cost (issue 19). Now a lane's text lives in one byte
// buffer that slides, and events and spans are reused once released.

// lane is the text of one content block (one JSON path) of a stream.
type lane struct {
	path string
	// buf[off:] is the lane's text as the next scan reads it: first the
	// tail (the last decided normalised text, up to window bytes: nTail
	// bytes), then the pending text (normalised text not yet decided).
	// Decided text leaving the window advances off; the live bytes move to
	// the front only when an append would grow buf.
	buf      []byte
	off      int
	nTail    int
	pos      int // absolute offset (in the lane's normalised text) of the end of the decided text
	seen     []seenFinding
	masks    []absMask // decided masks, absolute offsets
	fragment bool      // the text is a JSON fragment (decoded before scanning)
	carry    string    // a fragment's incomplete escape at the end of the last span
	carrySp  *heldSpan // the span that ended with carry
	window   int
}

// text is the lane's tail and pending text for scanning. It aliases buf: it
// is valid only until the lane's text is next appended to, and must not be
// kept (the detectors do not retain what they scan).
func (l *lane) text() string {
	if l.off == len(l.buf) {
		return ""
	}
	return unsafe.String(&l.buf[l.off], len(l.buf)-l.off)
}

// tail is the lane's decided text kept as left context (a copy).
func (l *lane) tail() string { return string(l.buf[l.off : l.off+l.nTail]) }

// pendingLen is how many bytes of the lane's text are not decided yet.
func (l *lane) pendingLen() int { return len(l.buf) - l.off - l.nTail }

// appendText appends normalised text to the lane's pending text.
func (l *lane) appendText(s string) {
	if l.off > 0 && len(l.buf)+len(s) > cap(l.buf) {
		n := copy(l.buf, l.buf[l.off:])
		l.buf, l.off = l.buf[:n], 0
	}
	l.buf = append(l.buf, s...)
}

// slide decides the lane's text up to safe (an offset in text()): the
// decided bytes join the tail, which keeps at most window bytes, cut on a
// rune boundary.
func (l *lane) slide(safe int) {
	n := safe - l.nTail
	if safe > l.window {
		cut := safe - l.window
		for cut < safe && !runeStart(l.buf[l.off+cut]) {
			cut++
		}
		l.off += cut
		safe -= cut
	}
	l.nTail, l.pos = safe, l.pos+n
}

func runeStart(b byte) bool { return b&0xC0 != 0x80 }

// reset empties l for reuse as the lane of path.
func (l *lane) reset(path string, fragment bool, window int) {
	clear(l.masks)
	*l = lane{path: path, buf: l.buf[:0], seen: l.seen[:0], masks: l.masks[:0], fragment: fragment, window: window}
}

// What a stream keeps for reuse is bounded, so that an answer that once
// held much (a long hold bound, a tool input without spaces held event by
// event) does not keep that memory for the rest of its life: 10,000 streams
// may be open at once (issue 19).
const (
	maxSpareEvents = 32      // released events kept (prose holds a few at once)
	maxSpareBytes  = 4 << 10 // nor one whose raw bytes took more
	maxSpareLanes  = 4       // ended lanes kept
	maxSpareBuf    = 8 << 10 // nor a lane buffer larger than this
	maxScanLanes   = 8       // lanes looked up by scanning; more get a map
)

// lane returns the lane of path, opening it (with a released lane's memory
// when there is one).
func (sg *Stream) lane(path string) *lane {
	if sg.laneIndex != nil {
		if l := sg.laneIndex[path]; l != nil {
			return l
		}
	} else {
		for _, l := range sg.lanes {
			if l.path == path {
				return l
			}
		}
	}
	var l *lane
	if n := len(sg.spareLanes); n > 0 {
		l, sg.spareLanes = sg.spareLanes[n-1], sg.spareLanes[:n-1]
	} else {
		l = new(lane)
	}
	l.reset(path, isFragment(path), max(outputWindow, sg.bound))
	sg.lanes = append(sg.lanes, l)
	switch {
	case sg.laneIndex != nil:
		sg.laneIndex[path] = l
	case len(sg.lanes) > maxScanLanes:
		// an event with text at many paths (array elements): index them
		sg.laneIndex = make(map[string]*lane, 2*len(sg.lanes))
		for _, l := range sg.lanes {
			sg.laneIndex[l.path] = l
		}
	}
	return l
}

// endLanes closes every lane (the content block is over: the next text
// starts a new one). Their memory is reused unless a queued event still
// refers to them (only after an error that ends the stream).
func (sg *Stream) endLanes() {
	if len(sg.queue) == 0 {
		for _, l := range sg.lanes {
			if len(sg.spareLanes) == maxSpareLanes {
				break
			}
			if cap(l.buf) > maxSpareBuf {
				l.buf = nil
			}
			sg.spareLanes = append(sg.spareLanes, l)
		}
	}
	clear(sg.lanes)
	sg.lanes, sg.laneIndex = sg.lanes[:0], nil
}

// newEvent returns an empty held event (a released one when there is one).
func (sg *Stream) newEvent() *heldEvent {
	if n := len(sg.spareEvents); n > 0 {
		h := sg.spareEvents[n-1]
		sg.spareEvents = sg.spareEvents[:n-1]
		return h
	}
	h := new(heldEvent)
	h.spans, h.ex.Texts = h.oneSpan[:0], h.oneText[:0]
	return h
}

// span returns the memory of the i-th of the event's n spans, emptied
// (pointers to it stay valid until the event is released).
func (h *heldEvent) span(i, n int) *heldSpan {
	sp := &h.one
	if n > 1 {
		if i == 0 {
			h.more = slices.Grow(h.more[:0], n)[:n]
		}
		sp = &h.more[i]
	}
	*sp = heldSpan{atBuf: sp.atBuf[:0]}
	return sp
}

// releaseEvent keeps h's memory (its raw bytes, extraction and spans) for
// the next event.
func (sg *Stream) releaseEvent(h *heldEvent) {
	if len(sg.spareEvents) == maxSpareEvents || cap(h.raw) > maxSpareBytes || cap(h.payload) > maxSpareBytes {
		return
	}
	for _, d := range h.ex.Decoded {
		if cap(d.Bytes) > maxSpareBytes {
			return
		}
	}
	clear(h.spans)
	h.raw, h.spans, h.payload = h.raw[:0], h.spans[:0], h.payload[:0]
	h.sse, h.name, h.sent = false, "", false
	sg.spareEvents = append(sg.spareEvents, h)
}

// extract reads one event's payload into h.ex (reusing its memory).
func (sg *Stream) extract(h *heldEvent, eventType string, payload []byte) error {
	return sg.ext.Extract(&h.ex, sg.op, sg.family, eventType, payload)
}

// unscannableEvent sets h.ex to an event that is not JSON.
func unscannableEvent(ex *bedrock.Extracted, eventType string) {
	ex.Texts, ex.IDs, ex.Decoded = ex.Texts[:0], ex.IDs[:0], ex.Decoded[:0]
	ex.Unscannable = append(ex.Unscannable[:0], eventType+" event (not JSON)")
}

// dequeue releases the first k queued events (sent) for reuse; the rest of
// the queue moves to its front, so appending to it does not grow it.
func (sg *Stream) dequeue(k int) {
	for _, h := range sg.queue[:k] {
		sg.releaseEvent(h)
	}
	rest := copy(sg.queue, sg.queue[k:])
	clear(sg.queue[rest:])
	sg.queue = sg.queue[:rest]
}
