package bedrock

import (
	"io"

	"github.com/aws/smithy-go/eventstream"
)

// MaxFrameSize bounds a single event-stream frame Warden will read.
const MaxFrameSize = 16 << 20

// Frame is one event-stream message: its raw bytes (forwarded unchanged) and
// its decoded form.
type Frame struct {
	Raw     []byte
	Message eventstream.Message
}

// MessageType, EventType and ExceptionType read the well-known headers.
func (f *Frame) MessageType() string   { panic("TODO") }
func (f *Frame) EventType() string     { panic("TODO") }
func (f *Frame) ExceptionType() string { panic("TODO") }

// FrameReader reads whole frames from an event stream, validating both CRCs
// and the size bound; it never returns a partial frame.
type FrameReader struct { /* … */
}

func NewFrameReader(r io.Reader) *FrameReader { panic("TODO") }

// Next returns the next frame, io.EOF at a clean end, io.ErrUnexpectedEOF or a
// descriptive error otherwise. The returned Raw slice is valid until the next call.
func (fr *FrameReader) Next() (*Frame, error) { panic("TODO") }

// EncodeEvent builds an event frame (:message-type=event, :event-type,
// :content-type=application/json) with the SDK's encoder.
func EncodeEvent(eventType string, payload []byte) []byte { panic("TODO") }

// EncodeException builds an exception frame the SDKs decode into a typed error.
func EncodeException(e *APIError) []byte { panic("TODO") }
