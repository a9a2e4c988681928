package bedrock

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// Member is one top-level member of a JSON object: its decoded key and the
// byte range of its raw value in the scanned body.
type Member struct {
	Key                  string
	ValueStart, ValueEnd int
}

// maxJSONDepth bounds nesting (encoding/json allows 10,000; Bedrock bodies
// need a handful).
const maxJSONDepth = 1000

var errJSONDepth = errors.New("nested too deeply")

// ErrNotUTF8 is ScanObject's error for a body that is not valid UTF-8.
var ErrNotUTF8 = errors.New("not valid UTF-8")

// ScanObject validates body as exactly one JSON object (RFC 8259, UTF-8;
// whitespace around it allowed) in a single pass and returns its top-level
// members in order and the offset of its closing brace. It accepts exactly
// what encoding/json.Valid accepts for an object, and only valid UTF-8
// (FuzzScanObject checks both), at a fraction of the cost: Warden runs it on
// every Converse body it rewrites. A body that is not valid UTF-8 gets
// ErrNotUTF8, whatever else is wrong with it.
func ScanObject(body []byte) (members []Member, closeAt int, err error) {
	return ScanObjectInto(make([]Member, 0, 8), body)
}

// ScanObjectInto is ScanObject appending the members to dst, so a caller
// can keep them on its stack.
//
// UTF-8 is validated in the same pass: outside strings JSON allows only
// ASCII, so the structural checks refuse any other byte, and inside strings
// the word-at-a-time skip stops at every byte >= 0x80, which must then start
// a valid UTF-8 sequence.
func ScanObjectInto(dst []Member, body []byte) (members []Member, closeAt int, err error) {
	s := jsonScanner{b: body}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		err = errors.New("not a JSON object")
	} else if dst, closeAt, err = s.object(dst, true); err == nil {
		s.ws()
		if s.i != len(s.b) {
			err = fmt.Errorf("data after the object at offset %d", s.i)
		}
	}
	if err != nil {
		// Cold path. Invalid UTF-8 anywhere fails the scan (outside strings
		// as a structural error); name it as such.
		if !utf8.Valid(body) {
			err = ErrNotUTF8
		}
		return dst[:0], 0, err
	}
	return dst, closeAt, nil
}

type jsonScanner struct {
	b     []byte
	i     int
	depth int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) errorf(what string) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("unexpected end of JSON (%s)", what)
	}
	return fmt.Errorf("invalid JSON at offset %d: %s", s.i, what)
}

func (s *jsonScanner) value() error {
	s.ws()
	if s.i >= len(s.b) {
		return s.errorf("value expected")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		_, _, err := s.object(nil, false)
		return err
	case c == '[':
		return s.array()
	case c == '"':
		_, err := s.str(false)
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return s.errorf("value expected")
}

// object scans an object starting at '{'; with record it appends its
// members (keys decoded) to members. It returns them and the offset of the
// closing brace.
func (s *jsonScanner) object(members []Member, record bool) ([]Member, int, error) {
	if s.depth++; s.depth > maxJSONDepth {
		return nil, 0, errJSONDepth
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.depth--
		s.i++
		return members, s.i - 1, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, 0, s.errorf("object key expected")
		}
		key, err := s.str(record)
		if err != nil {
			return nil, 0, err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, 0, s.errorf("':' expected")
		}
		s.i++
		s.ws()
		start := s.i
		if err := s.value(); err != nil {
			return nil, 0, err
		}
		if record {
			members = append(members, Member{Key: key, ValueStart: start, ValueEnd: s.i})
		}
		s.ws()
		if s.i >= len(s.b) {
			return nil, 0, s.errorf("',' or '}' expected")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.depth--
			s.i++
			return members, s.i - 1, nil
		default:
			return nil, 0, s.errorf("',' or '}' expected")
		}
	}
}

func (s *jsonScanner) array() error {
	if s.depth++; s.depth > maxJSONDepth {
		return errJSONDepth
	}
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.depth--
		s.i++
		return nil
	}
	for {
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.errorf("',' or ']' expected")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.depth--
			s.i++
			return nil
		default:
			return s.errorf("',' or ']' expected")
		}
	}
}

// str scans a string starting at '"'. With decode it returns its value.
func (s *jsonScanner) str(decode bool) (string, error) {
	start := s.i
	s.i++
	escaped := false
	for {
		s.skipPlain()
		if s.i >= len(s.b) {
			return "", s.errorf("unterminated string")
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !decode {
				return "", nil
			}
			if !escaped {
				return internKey(s.b[start+1 : s.i-1]), nil
			}
			var v string
			if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
				return "", err
			}
			return v, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return "", s.errorf("unterminated escape")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return "", s.errorf("bad \\u escape")
				}
				s.i += 6
			default:
				return "", s.errorf("bad escape")
			}
		case c < 0x20:
			return "", s.errorf("control character in string")
		case c >= utf8.RuneSelf:
			// Whole runs of multi-byte characters are checked here rather
			// than one trip through skipPlain each.
			for s.i < len(s.b) && s.b[s.i] >= utf8.RuneSelf {
				r, n := utf8.DecodeRune(s.b[s.i:])
				if r == utf8.RuneError && n == 1 {
					return "", ErrNotUTF8
				}
				s.i += n
			}
		default:
			s.i++ // a false alarm of skipPlain's
		}
	}
}

// internKey returns the top-level keys of Converse bodies without
// allocating; other keys are copied.
func internKey(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case "messages":
		return "messages"
	case "system":
		return "system"
	case "inferenceConfig":
		return "inferenceConfig"
	case "toolConfig":
		return "toolConfig"
	case "guardrailConfig":
		return "guardrailConfig"
	case "additionalModelRequestFields":
		return "additionalModelRequestFields"
	case "additionalModelResponseFieldPaths":
		return "additionalModelResponseFieldPaths"
	case "promptVariables":
		return "promptVariables"
	case "requestMetadata":
		return "requestMetadata"
	case "performanceConfig":
		return "performanceConfig"
	}
	return string(b)
}

// skipPlain advances over string bytes that need no attention (not '"',
// not '\\', not a control character, not >= 0x80) 32 and then 8 at a time,
// stopping exactly at the first byte that does: prompts are long strings,
// and this loop is most of a body scan.
func (s *jsonScanner) skipPlain() {
	b, i := s.b, s.i
	for i+32 <= len(b) {
		w := b[i : i+32]
		if attention(binary.LittleEndian.Uint64(w[0:8]))|attention(binary.LittleEndian.Uint64(w[8:16]))|
			attention(binary.LittleEndian.Uint64(w[16:24]))|attention(binary.LittleEndian.Uint64(w[24:32])) != 0 {
			break
		}
		i += 32
	}
	for i+8 <= len(b) {
		if a := attention(binary.LittleEndian.Uint64(b[i : i+8])); a != 0 {
			s.i = i + bits.TrailingZeros64(a)/8
			return
		}
		i += 8
	}
	s.i = i
}

// attention flags (high bit of the byte) the bytes of the little-endian
// word x that are '"', '\\', below 0x20 or at least 0x80. A subtraction's
// borrow can also flag a byte above a flagged one, never below: the lowest
// flag is always exact, and no byte needing attention goes unflagged.
func attention(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	bs := x ^ (lo * '\\')
	return ((x - lo*0x20) | (q - lo) | (bs - lo) | x) & hi
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (s *jsonScanner) lit(want string) error {
	if len(s.b)-s.i < len(want) || string(s.b[s.i:s.i+len(want)]) != want {
		return s.errorf("invalid literal")
	}
	s.i += len(want)
	return nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return s.errorf("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.errorf("invalid number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.errorf("invalid number")
		}
	}
	return nil
}
