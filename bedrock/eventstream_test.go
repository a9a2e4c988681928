package bedrock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/smithy-go/eventstream"
)

func readAll(t *testing.T, r io.Reader) ([]eventstream.Message, [][]byte, error) {
	t.Helper()
	fr := NewFrameReader(r)
	var msgs []eventstream.Message
	var raws [][]byte
	for {
		f, err := fr.Next()
		if err != nil {
			if err == io.EOF {
				return msgs, raws, nil
			}
			return msgs, raws, err
		}
		msgs = append(msgs, f.Message.Clone())
		raws = append(raws, bytes.Clone(f.Raw))
	}
}

func TestFrameRoundTrip(t *testing.T) {
	ev := EncodeEvent("contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"hi"}}`))
	ex := EncodeException(Throttling("slow down"))
	empty := EncodeEvent("messageStop", nil)
	typed, err := EncodeMessage(eventstream.Message{Headers: eventstream.Headers{
		{Name: "b", Value: eventstream.BoolValue(true)},
		{Name: "f", Value: eventstream.BoolValue(false)},
		{Name: "i8", Value: eventstream.Int8Value(-3)},
		{Name: "i16", Value: eventstream.Int16Value(300)},
		{Name: "i32", Value: eventstream.Int32Value(-70000)},
		{Name: "i64", Value: eventstream.Int64Value(1 << 40)},
		{Name: "bytes", Value: eventstream.BytesValue{0, 1, 2}},
		{Name: "ts", Value: eventstream.TimestampValue(time.UnixMilli(1700000000123).UTC())},
		{Name: "uuid", Value: eventstream.UUIDValue{1, 2, 3}},
	}, Payload: bytes.Repeat([]byte("x"), 3000)})
	if err != nil {
		t.Fatal(err)
	}
	stream := bytes.Join([][]byte{ev, ex, empty, typed}, nil)
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(stream),
		"one byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"half":     iotest.HalfReader(bytes.NewReader(stream)),
	} {
		msgs, raws, err := readAll(t, r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(msgs) != 4 {
			t.Fatalf("%s: %d frames", name, len(msgs))
		}
		for i, want := range [][]byte{ev, ex, empty, typed} {
			if !bytes.Equal(raws[i], want) {
				t.Errorf("%s: frame %d Raw differs", name, i)
			}
			sdk, err := eventstream.NewDecoder().Decode(bytes.NewReader(want), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(sdk.Headers) != len(msgs[i].Headers) || !bytes.Equal(sdk.Payload, msgs[i].Payload) {
				t.Errorf("%s: frame %d differs from the SDK decoder's", name, i)
			}
			for j, h := range sdk.Headers {
				if got := msgs[i].Headers[j]; got.Name != h.Name || got.Value.String() != h.Value.String() {
					t.Errorf("%s: frame %d header %d: %s=%s, SDK %s=%s", name, i, j, got.Name, got.Value, h.Name, h.Value)
				}
			}
			again, err := EncodeMessage(msgs[i])
			if err != nil || !bytes.Equal(again, want) {
				t.Errorf("%s: frame %d does not re-encode identically (%v)", name, i, err)
			}
		}
	}

	fr := NewFrameReader(bytes.NewReader(stream))
	f, _ := fr.Next()
	if f.MessageType() != "event" || f.EventType() != "contentBlockDelta" || f.ExceptionType() != "" {
		t.Errorf("event headers: %q %q %q", f.MessageType(), f.EventType(), f.ExceptionType())
	}
	f, _ = fr.Next()
	if f.MessageType() != "exception" || f.ExceptionType() != "throttlingException" || string(f.Message.Payload) != `{"message":"slow down"}` {
		t.Errorf("exception: %q %q %s", f.MessageType(), f.ExceptionType(), f.Message.Payload)
	}
	if ct := f.header(HeaderContentType); ct != ContentTypeJSON {
		t.Errorf("content type %q", ct)
	}
}

// frame builds a frame by hand with correct CRCs, for cases the encoder refuses.
func frame(headers, payload []byte) []byte {
	total := 16 + len(headers) + len(payload)
	b := binary.BigEndian.AppendUint32(nil, uint32(total))
	b = binary.BigEndian.AppendUint32(b, uint32(len(headers)))
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	b = append(append(b, headers...), payload...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func strHeader(name, value string) []byte {
	b := append([]byte{byte(len(name))}, name...)
	b = append(b, 7)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

func TestFrameReaderRejects(t *testing.T) {
	good := EncodeEvent("chunk", []byte(`{"bytes":"e30="}`))
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	withLen := func(total, hlen uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, total)
		b = binary.BigEndian.AppendUint32(b, hlen)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	}
	tsHeader := func(ms uint64) []byte { return binary.BigEndian.AppendUint64([]byte{2, 't', 's', 8}, ms) }
	tests := []struct {
		name  string
		in    []byte
		isEOF bool // io.ErrUnexpectedEOF expected
	}{
		{"prelude CRC", flip(9), false},
		{"length flipped", flip(3), false},
		{"message CRC", flip(len(good) - 1), false},
		{"payload flipped", flip(len(good) - 6), false},
		{"header flipped", flip(14), false},
		{"truncated prelude", good[:7], true},
		{"truncated body", good[:len(good)-1], true},
		{"truncated after prelude", good[:12], true},
		{"too small", withLen(15, 0), false},
		{"oversize", withLen(MaxFrameSize+1, 0), false},
		{"huge", withLen(0xffffffff, 0), false},
		{"headers too long", withLen(100, 85), false},
		{"duplicate header", frame(append(strHeader(":message-type", "event"), strHeader(":message-type", "exception")...), nil), false},
		{"empty header name", frame([]byte{0, 0}, nil), false},
		{"unknown header type", frame([]byte{1, 'a', 10}, nil), false},
		{"leftover header byte", frame(append(strHeader("a", "b"), 3), nil), false},
		{"truncated header value", frame([]byte{1, 'a', 7, 0, 9, 'x'}, nil), false},
		{"overlong string value", frame(append([]byte{1, 'a', 7, 0x80, 0}, make([]byte, 0x8000)...), nil), false},
		{"timestamp overflow", frame(tsHeader(1<<62), nil), false},
		{"negative timestamp overflow", frame(tsHeader(uint64(1<<63)), nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(tt.in))
			f, err := fr.Next()
			if err == nil {
				t.Fatalf("accepted frame %+v", f.Message)
			}
			if err == io.EOF {
				t.Fatal("io.EOF for a bad frame")
			}
			if tt.isEOF != errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v", err)
			}
			if _, err2 := fr.Next(); err2 == nil || err2 == io.EOF {
				t.Errorf("error not sticky: %v", err2)
			}
		})
	}

	if _, err := NewFrameReader(bytes.NewReader(nil)).Next(); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
	if _, err := NewFrameReader(iotest.ErrReader(errors.New("boom"))).Next(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("reader error: %v", err)
	}
	// A good timestamp at the edge still round-trips.
	edge := frame(tsHeader(uint64(maxTimestampMillis)), nil)
	_, raws, err := readAll(t, bytes.NewReader(edge))
	if err != nil || len(raws) != 1 {
		t.Fatalf("edge timestamp: %v", err)
	}
}

func TestFrameReaderMaxSize(t *testing.T) {
	payload := make([]byte, MaxFrameSize-200)
	big := EncodeEvent("chunk", payload)
	if len(big) > MaxFrameSize {
		t.Fatal("test frame too big")
	}
	_, raws, err := readAll(t, bytes.NewReader(big))
	if err != nil || len(raws) != 1 || len(raws[0]) != len(big) {
		t.Fatalf("max-size frame: %v", err)
	}
}

func BenchmarkFrameReader(b *testing.B) {
	var stream []byte
	for range 64 {
		stream = append(stream, EncodeEvent("contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"Hello, world. "}}`))...)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	r := bytes.NewReader(stream)
	for b.Loop() {
		r.Reset(stream)
		fr := NewFrameReader(r)
		for {
			if _, err := fr.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
