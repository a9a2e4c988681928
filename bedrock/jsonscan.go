package bedrock

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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

// ScanObject validates body as exactly one JSON object (RFC 8259, UTF-8;
// whitespace around it allowed) in a single pass and returns its top-level
// members in order and the offset of its closing brace. It accepts exactly
// what encoding/json.Valid accepts for an object (FuzzScanObject checks
// that), at a fraction of the cost: Warden runs it on every Converse body it
// rewrites.
func ScanObject(body []byte) (members []Member, closeAt int, err error) {
	if !utf8.Valid(body) {
		return nil, 0, errors.New("not valid UTF-8")
	}
	s := jsonScanner{b: body}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, 0, errors.New("not a JSON object")
	}
	members = make([]Member, 0, 8)
	if closeAt, err = s.object(&members); err != nil {
		return nil, 0, err
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, 0, fmt.Errorf("data after the object at offset %d", s.i)
	}
	return members, closeAt, nil
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
		_, err := s.object(nil)
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

// object scans an object starting at '{'; with members non-nil it records
// them (keys decoded). It returns the offset of the closing brace.
func (s *jsonScanner) object(members *[]Member) (int, error) {
	if s.depth++; s.depth > maxJSONDepth {
		return 0, errJSONDepth
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.depth--
		s.i++
		return s.i - 1, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return 0, s.errorf("object key expected")
		}
		key, err := s.str(members != nil)
		if err != nil {
			return 0, err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return 0, s.errorf("':' expected")
		}
		s.i++
		s.ws()
		start := s.i
		if err := s.value(); err != nil {
			return 0, err
		}
		if members != nil {
			*members = append(*members, Member{Key: key, ValueStart: start, ValueEnd: s.i})
		}
		s.ws()
		if s.i >= len(s.b) {
			return 0, s.errorf("',' or '}' expected")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.depth--
			s.i++
			return s.i - 1, nil
		default:
			return 0, s.errorf("',' or '}' expected")
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
	for s.i < len(s.b) {
		s.skipPlain()
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !decode {
				return "", nil
			}
			if !escaped {
				return string(s.b[start+1 : s.i-1]), nil
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
		default:
			s.i++
		}
	}
	return "", s.errorf("unterminated string")
}

// skipPlain advances over string bytes that need no attention (not '"',
// not '\\', not a control character) eight at a time: prompts are long
// strings, and this loop is most of a body scan.
func (s *jsonScanner) skipPlain() {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for s.i+8 <= len(s.b) {
		x := binary.LittleEndian.Uint64(s.b[s.i:])
		q := x ^ (lo * '"')
		bs := x ^ (lo * '\\')
		if (x-lo*0x20)&^x&hi|(q-lo)&^q&hi|(bs-lo)&^bs&hi != 0 {
			return // a byte in this word needs the careful path (maybe a false alarm)
		}
		s.i += 8
	}
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
