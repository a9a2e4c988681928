package sigv4

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	f.Add("AWS4-HMAC-SHA256 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31,SignedHeaders=host,Credential=A/20150830/r/s/aws4_request")
	f.Add("Bearer ABSKabc")
	f.Add("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;, Signature=")
	f.Fuzz(func(t *testing.T, v string) {
		a, err := ParseAuthorization(v)
		if err != nil {
			return
		}
		// Re-serialise and parse again: the result must be identical.
		s := Algorithm + " Credential=" + a.AccessKeyID + "/" + a.Scope() + ", SignedHeaders=" + strings.Join(a.SignedHeaders, ";") + ", Signature=" + a.Signature
		b, err := ParseAuthorization(s)
		if err != nil {
			t.Fatalf("round trip of %q failed: %v", v, err)
		}
		if b.AccessKeyID != a.AccessKeyID || b.Scope() != a.Scope() || strings.Join(b.SignedHeaders, ";") != strings.Join(a.SignedHeaders, ";") || b.Signature != a.Signature {
			t.Fatalf("round trip differs: %+v vs %+v", a, b)
		}
		if len(a.Signature) != 64 || len(a.Date) != 8 || len(a.SignedHeaders) == 0 {
			t.Fatalf("accepted invalid %+v", a)
		}
	})
}

type fuzzSeed struct {
	raw  []byte
	opts Options
	// sensitive byte offsets: a change there changes the meaning of the
	// signed request (request method and target, signed header values,
	// Authorization, body).
	sensitive []int
}

func fuzzSeeds(f *testing.F) []fuzzSeed {
	t2015 := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	files, _ := filepath.Glob("testdata/v4-2015/*-normalized.signed.txt")
	more, _ := filepath.Glob("testdata/v4-2015/[gp]*[^d].signed.txt")
	files = append(files, more...)
	var seeds []fuzzSeed
	for _, fn := range files {
		if strings.HasSuffix(fn, "-unnormalized.signed.txt") || strings.Contains(fn, "multiline") {
			continue
		}
		raw, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, fuzzSeed{raw: raw, opts: Options{Now: t2015, Service: "service", Region: "us-east-1"}, sensitive: sensitiveOffsets(raw)})
	}
	return seeds
}

func sensitiveOffsets(raw []byte) []int {
	var offs []int
	headEnd := bytes.Index(raw, []byte("\n\n"))
	// body
	for i := headEnd + 2; i < len(raw); i++ {
		offs = append(offs, i)
	}
	lines := bytes.SplitAfter(raw[:headEnd+1], []byte("\n"))
	pos := 0
	signed := map[string]bool{"authorization": true}
	for _, l := range lines {
		if bytes.HasPrefix(bytes.ToLower(l), []byte("authorization:")) {
			_, after, _ := strings.Cut(string(l), "SignedHeaders=")
			names, _, _ := strings.Cut(after, ",")
			for _, n := range strings.Split(names, ";") {
				signed[n] = true
			}
		}
	}
	for i, l := range lines {
		start, end := 0, len(l)-1 // exclude '\n'
		if i == 0 {
			end = bytes.LastIndexByte(l, ' ') // method and target only
		} else {
			c := bytes.IndexByte(l, ':')
			if c < 0 || !signed[strings.ToLower(string(l[:c]))] {
				pos += len(l)
				continue
			}
			start = c + 1
		}
		for j := start; j < end; j++ {
			if l[j] != ' ' && l[j] != '\t' {
				offs = append(offs, pos+j)
			}
		}
		pos += len(l)
	}
	return offs
}

// FuzzVerify mutates one meaningful byte of a valid signed request and checks
// that Verify never panics and never accepts the result.
func FuzzVerify(f *testing.F) {
	seeds := fuzzSeeds(f)
	if len(seeds) < 10 {
		f.Fatalf("only %d seeds", len(seeds))
	}
	for i := range seeds {
		f.Add(uint8(i), uint16(0), byte('x'))
		f.Add(uint8(i), uint16(len(seeds[i].sensitive)/2), byte('0'))
		f.Add(uint8(i), uint16(len(seeds[i].sensitive)-1), byte('%'))
	}
	f.Fuzz(func(t *testing.T, idx uint8, pos uint16, b byte) {
		s := seeds[int(idx)%len(seeds)]
		off := s.sensitive[int(pos)%len(s.sensitive)]
		if s.raw[off] == b || b == ' ' || b == '\t' || b == '\r' || b == '\n' {
			return
		}
		firstLine := s.raw[:bytes.IndexByte(s.raw, '\n')]
		if off < len(firstLine) && (b == '/' || b == '.' || bytes.Contains(firstLine, []byte("/.")) || bytes.Contains(firstLine, []byte("//"))) {
			// Path normalisation makes such paths equivalent ("/./" and
			// "///", a segment that ".." removes): the same request.
			return
		}
		raw := append([]byte{}, s.raw...)
		raw[off] = b
		// A percent escape whose hex digit only changes case in the query
		// decodes to the same byte: that is the same request.
		if q := bytes.IndexByte(raw[:bytes.IndexByte(raw, '\n')], '?'); q >= 0 && off > q && isHexDigit(b) && isHexDigit(s.raw[off]) &&
			strings.EqualFold(string(b), string(s.raw[off])) && (raw[off-1] == '%' || (off >= 2 && raw[off-2] == '%')) {
			return
		}
		r, body, err := parseRaw(raw)
		if err != nil {
			return
		}
		if _, err := Verify(r, body, exampleLookup, s.opts); err == nil {
			t.Fatalf("mutated request accepted (offset %d %q -> %q):\n%s", off, s.raw[off], b, raw)
		}
	})
}

// FuzzVerifyRaw feeds arbitrary requests: no panics, and nothing is accepted
// without a valid signature (a random input never carries one).
func FuzzVerifyRaw(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.raw)
	}
	f.Add([]byte("GET / HTTP/1.1\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000\nX-Amz-Date:20150830T123600Z\nX-Amz-Content-Sha256:UNSIGNED-PAYLOAD\n\n"))
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, body, err := parseRaw(raw)
		if err != nil {
			return
		}
		res, err := Verify(r, body, exampleLookup, Options{Now: now, AllowUnsignedPayload: true})
		if err == nil && res.AccessKeyID != exampleAKID {
			t.Fatalf("accepted with %+v", res)
		}
		_, _ = Verify(r, body, func(string) (string, bool) { return "", true }, Options{MaxSkew: -1})
	})
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
