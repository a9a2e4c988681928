package bedrock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/aws/smithy-go/eventstream"
)

// MaxFrameSize bounds a single event-stream frame Warden will read.
const MaxFrameSize = 16 << 20

// MaxFrameHeaders bounds the headers of one frame. Real frames carry three to
// five; the bound keeps the duplicate check linear in practice.
const MaxFrameHeaders = 64

const (
	preludeLen   = 12 // total length, headers length, prelude CRC
	minFrameSize = preludeLen + 4
	// maxHeaderValueLen is the SDK encoder's limit; longer values decode but
	// cannot be re-encoded, so a frame carrying one is not forwarded.
	maxHeaderValueLen = 1<<15 - 1
	// Timestamps outside this many milliseconds of the epoch overflow the
	// SDK's nanosecond round trip and would re-encode differently.
	maxTimestampMillis = 9223372036854
)

// Well-known event-stream header names and values.
const (
	HeaderMessageType   = ":message-type"
	HeaderEventType     = ":event-type"
	HeaderExceptionType = ":exception-type"
	HeaderErrorCode     = ":error-code"
	HeaderErrorMessage  = ":error-message"
	HeaderContentType   = ":content-type"

	MessageTypeEvent     = "event"
	MessageTypeException = "exception"
	MessageTypeError     = "error"
)

// Frame is one event-stream message: its raw bytes (forwarded unchanged) and
// its decoded form.
type Frame struct {
	Raw     []byte
	Message eventstream.Message
}

// MessageType, EventType and ExceptionType read the well-known headers.
func (f *Frame) MessageType() string   { return f.header(HeaderMessageType) }
func (f *Frame) EventType() string     { return f.header(HeaderEventType) }
func (f *Frame) ExceptionType() string { return f.header(HeaderExceptionType) }

// ErrorCode reads :error-code, which :message-type=error frames carry
// instead of :exception-type.
func (f *Frame) ErrorCode() string { return f.header(HeaderErrorCode) }

// header returns a string header's value, "" when absent or not a string.
func (f *Frame) header(name string) string {
	if v, ok := f.Message.Headers.Get(name).(eventstream.StringValue); ok {
		return string(v)
	}
	return ""
}

// FrameReader reads whole frames from an event stream, validating both CRCs
// and the size bound; it never returns a partial frame.
//
// Beyond the CRCs it rejects frames the SDK decoder would read ambiguously:
// duplicate header names (the decoder keeps the last, other SDKs may keep the
// first), empty names, unknown value types, header bytes left over after the
// last header, string/bytes values longer than the encoder allows and
// timestamps that do not survive a round trip. So every frame it returns
// re-encodes to exactly its Raw bytes, and what Warden inspected is what the
// client will decode.
//
// It decodes the header block itself instead of calling the SDK's
// eventstream.Decoder: that decoder costs about 38 allocations and 2.5µs per
// frame, this one none (BenchmarkFrameReader), and Warden decodes every frame
// of every stream. FuzzFrameReader checks that each frame accepted here
// decodes identically with eventstream.NewDecoder and re-encodes with
// eventstream.NewEncoder to the same bytes.
type FrameReader struct {
	r       io.Reader
	buf     []byte               // raw frame, reused across calls
	headers []eventstream.Header // decoded headers, reused across calls
	frame   Frame
	n       int   // frames read, for error messages
	off     int64 // stream offset of the current frame
	err     error // sticky: after a bad frame the stream is out of sync
}

// NewFrameReader reads frames from r. It does not buffer beyond the frame it
// is reading, so a relay sees each frame as soon as it is complete.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: r, buf: make([]byte, 0, 1024)}
}

// Next returns the next frame, io.EOF at a clean end, io.ErrUnexpectedEOF or a
// descriptive error otherwise. The returned Frame, its Raw slice, its
// payload (a sub-slice of Raw) and its header slice are valid until the next
// call; use Message.Clone to keep a message.
func (fr *FrameReader) Next() (*Frame, error) {
	if fr.err != nil {
		return nil, fr.err
	}
	f, err := fr.next()
	if err != nil {
		fr.err = err
		return nil, err
	}
	return f, nil
}

func (fr *FrameReader) next() (*Frame, error) {
	buf := fr.buf[:preludeLen]
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, err
		}
		return nil, fr.errorf("reading prelude: %w", err)
	}
	total := binary.BigEndian.Uint32(buf[0:4])
	hlen := binary.BigEndian.Uint32(buf[4:8])
	// Check lengths and the prelude CRC before allocating for the body, so
	// a corrupt or hostile length cannot make Warden allocate 16 MiB.
	if total < minFrameSize || total > MaxFrameSize {
		return nil, fr.errorf("frame length %d outside [%d, %d]", total, minFrameSize, MaxFrameSize)
	}
	if hlen > total-minFrameSize {
		return nil, fr.errorf("headers length %d exceeds frame length %d", hlen, total)
	}
	if got, want := crc32.ChecksumIEEE(buf[0:8]), binary.BigEndian.Uint32(buf[8:12]); got != want {
		return nil, fr.errorf("prelude CRC mismatch (computed %08x, frame says %08x)", got, want)
	}
	if cap(fr.buf) < int(total) {
		fr.buf = make([]byte, total, min(max(int(total), 2*cap(fr.buf)), MaxFrameSize))
		copy(fr.buf, buf)
	}
	buf = fr.buf[:total]
	if _, err := io.ReadFull(fr.r, buf[preludeLen:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, fr.errorf("reading frame body: %w", err)
	}
	msg, err := fr.decodeFrame(buf, hlen)
	if err != nil {
		return nil, fr.errorf("%w", err)
	}
	fr.frame = Frame{Raw: buf, Message: msg}
	fr.n++
	fr.off += int64(total)
	return &fr.frame, nil
}

func (fr *FrameReader) errorf(format string, args ...any) error {
	return fmt.Errorf("event stream frame %d at offset %d: %w", fr.n, fr.off, fmt.Errorf(format, args...))
}

// decodeFrame builds the Message from a frame whose lengths and prelude CRC
// have been checked. It validates the message CRC and the header block as
// checkHeaders describes, and decodes exactly as the SDK's decoder does
// (FuzzFrameReader checks the two agree), without its per-header
// allocations: well-known names and values are interned, the payload
// aliases raw and the header slice is reused.
func (fr *FrameReader) decodeFrame(raw []byte, hlen uint32) (eventstream.Message, error) {
	end := len(raw) - 4
	if got, want := crc32.ChecksumIEEE(raw[:end]), binary.BigEndian.Uint32(raw[end:]); got != want {
		return eventstream.Message{}, fmt.Errorf("message CRC mismatch (computed %08x, frame says %08x)", got, want)
	}
	hs := fr.headers[:0]
	h := raw[preludeLen : preludeLen+hlen]
	for len(h) > 0 {
		if len(hs) == MaxFrameHeaders {
			return eventstream.Message{}, fmt.Errorf("more than %d headers", MaxFrameHeaders)
		}
		nl := int(h[0])
		if nl == 0 {
			return eventstream.Message{}, errors.New("header with an empty name")
		}
		if len(h) < 1+nl+1 {
			return eventstream.Message{}, errors.New("truncated header name")
		}
		nameB := h[1 : 1+nl]
		for i := range hs {
			if hs[i].Name == string(nameB) {
				return eventstream.Message{}, fmt.Errorf("duplicate header %q", nameB)
			}
		}
		typ := h[1+nl]
		h = h[2+nl:]
		var vlen int
		switch typ {
		case 0, 1:
		case 2:
			vlen = 1
		case 3:
			vlen = 2
		case 4:
			vlen = 4
		case 5, 8:
			vlen = 8
		case 9:
			vlen = 16
		case 6, 7:
			if len(h) < 2 {
				return eventstream.Message{}, fmt.Errorf("header %q: truncated value length", nameB)
			}
			l := int(binary.BigEndian.Uint16(h))
			if l > maxHeaderValueLen {
				return eventstream.Message{}, fmt.Errorf("header %q: value of %d bytes exceeds %d", nameB, l, maxHeaderValueLen)
			}
			vlen = 2 + l
		default:
			return eventstream.Message{}, fmt.Errorf("header %q: unknown value type %d", nameB, typ)
		}
		if len(h) < vlen {
			return eventstream.Message{}, fmt.Errorf("header %q: truncated value", nameB)
		}
		v := h[:vlen]
		h = h[vlen:]
		var val eventstream.Value
		switch typ {
		case 0:
			val = eventstream.BoolValue(true)
		case 1:
			val = eventstream.BoolValue(false)
		case 2:
			val = eventstream.Int8Value(int8(v[0]))
		case 3:
			val = eventstream.Int16Value(int16(binary.BigEndian.Uint16(v)))
		case 4:
			val = eventstream.Int32Value(int32(binary.BigEndian.Uint32(v)))
		case 5:
			val = eventstream.Int64Value(int64(binary.BigEndian.Uint64(v)))
		case 6:
			val = eventstream.BytesValue(bytes.Clone(v[2:]))
		case 7:
			val = internValue(v[2:])
		case 8:
			ms := int64(binary.BigEndian.Uint64(v))
			if ms > maxTimestampMillis || ms < -maxTimestampMillis {
				return eventstream.Message{}, fmt.Errorf("header %q: timestamp %d ms out of range", nameB, ms)
			}
			val = eventstream.TimestampValue(time.Unix(ms/1e3, ms%1e3*int64(time.Millisecond)).UTC())
		case 9:
			val = eventstream.UUIDValue(v)
		}
		hs = append(hs, eventstream.Header{Name: internName(nameB), Value: val})
	}
	fr.headers = hs
	msg := eventstream.Message{Headers: hs}
	if p := raw[preludeLen+hlen : end]; len(p) > 0 {
		msg.Payload = p
	}
	return msg, nil
}

// internName and internValue return constants for the headers every frame
// carries, so decoding them allocates nothing.
func internName(b []byte) string {
	switch string(b) {
	case HeaderMessageType:
		return HeaderMessageType
	case HeaderEventType:
		return HeaderEventType
	case HeaderContentType:
		return HeaderContentType
	case HeaderExceptionType:
		return HeaderExceptionType
	}
	return string(b)
}

func internValue(b []byte) eventstream.Value {
	switch string(b) {
	case MessageTypeEvent:
		return eventstream.StringValue(MessageTypeEvent)
	case MessageTypeException:
		return eventstream.StringValue(MessageTypeException)
	case ContentTypeJSON:
		return eventstream.StringValue(ContentTypeJSON)
	case "chunk":
		return eventstream.StringValue("chunk")
	case "messageStart":
		return eventstream.StringValue("messageStart")
	case "contentBlockStart":
		return eventstream.StringValue("contentBlockStart")
	case "contentBlockDelta":
		return eventstream.StringValue("contentBlockDelta")
	case "contentBlockStop":
		return eventstream.StringValue("contentBlockStop")
	case "messageStop":
		return eventstream.StringValue("messageStop")
	case "metadata":
		return eventstream.StringValue("metadata")
	}
	return eventstream.StringValue(string(b))
}

// EncodeEvent builds an event frame (:message-type=event, :event-type,
// :content-type=application/json) with the SDK's encoder. It panics only if
// eventType is longer than 32767 bytes, which is a programming error.
func EncodeEvent(eventType string, payload []byte) []byte {
	return mustEncode(eventstream.Message{
		Headers: eventstream.Headers{
			{Name: HeaderMessageType, Value: eventstream.StringValue(MessageTypeEvent)},
			{Name: HeaderEventType, Value: eventstream.StringValue(eventType)},
			{Name: HeaderContentType, Value: eventstream.StringValue(ContentTypeJSON)},
		},
		Payload: payload,
	})
}

// EncodeException builds an exception frame the SDKs decode into a typed error:
// :exception-type is the lowerCamel type, the payload is {"message":…}. The SDKs
// type only the exceptions a stream declares (throttling, validation,
// internalServer, serviceUnavailable, modelStreamError, modelTimeout); any
// other type reaches the caller as a generic error. It panics only if e.Type is
// longer than 32767 bytes (ParseError never produces one).
func EncodeException(e *APIError) []byte {
	return mustEncode(eventstream.Message{
		Headers: eventstream.Headers{
			{Name: HeaderMessageType, Value: eventstream.StringValue(MessageTypeException)},
			{Name: HeaderExceptionType, Value: eventstream.StringValue(e.ExceptionType())},
			{Name: HeaderContentType, Value: eventstream.StringValue(ContentTypeJSON)},
		},
		Payload: e.Body(),
	})
}

// EncodeMessage encodes any message with the SDK's encoder, for tests and for
// frames that are neither events nor exceptions.
func EncodeMessage(m eventstream.Message) ([]byte, error) {
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
		return nil, fmt.Errorf("encoding event stream message: %w", err)
	}
	return b.Bytes(), nil
}

func mustEncode(m eventstream.Message) []byte {
	b, err := EncodeMessage(m)
	if err != nil {
		panic("bedrock: " + err.Error())
	}
	return b
}
