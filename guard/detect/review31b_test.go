package detect

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestReview31bSnakeCaseLabel: a MAC or IPv6 address glued by a colon to
// a snake_case key ("device_id:00:1A:…", "src_mac:…"), the commonest way
// logs and key:value dumps name one, is found as it is after a one-word
// label ("mac:…", 2b4f31a); the fast walk and the reference agree; a run
// of hex words joined by '_' before the address is still no label.
func TestReview31bSnakeCaseLabel(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ text, want string }{
		{"device_id:00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"},
		{"src_mac:00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"},
		{"log wifi_mac:00:1a:2b:3c:4d:5e ok", "00:1a:2b:3c:4d:5e"},
		{"peer_id:2001:db8::1", "2001:db8::1"},
		{"ctx.node_7_id:fe80::1ff:fe23:4567:890a,", "fe80::1ff:fe23:4567:890a"},
		{"mac:00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"},
		{"face_b00c:00:1A:2B:3C:4D:5E", ""},
		{"abc_def:00:1A:2B:3C:4D:5E", ""},
		{"face:00:1A:2B:3C:4D:5E", ""},
	} {
		checkFoundAndReference(t, p, c.text, c.want)
	}
}

// checkFoundAndReference asserts that Detect finds want in text (nothing
// when want is "") and the same findings as the reference walk.
func checkFoundAndReference(t *testing.T, p *PII, text, want string) {
	t.Helper()
	got := p.Detect(text, nil)
	var vals []string
	for _, f := range got {
		vals = append(vals, text[f.Start:f.End])
	}
	if want == "" && len(got) != 0 || want != "" && !slices.Contains(vals, want) {
		t.Errorf("%q: found %q, want %q", text, vals, want)
	}
	ref := p.detectPlain(text, nil)
	sortFindings(got)
	sortFindings(ref)
	if !slices.Equal(got, ref) {
		t.Errorf("%q: found %v, the reference %v", text, got, ref)
	}
}

// TestReview31bParenCountryCode: "(+44) 20 7946 0958" is a phone number
// (2b4f31a), but a parenthesised "+N" that no country code is, a delta
// before a row of numbers ("scores: 12 (+3) 45 67 89 10"), is not: codes
// are 1 and 7, or two or three digits from 2-6, 8 or 9 (or a North
// American +1 with its area code run on, "(+1868)").
func TestReview31bParenCountryCode(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ text, want string }{
		{"(+44) 20 7946 0958", "+44) 20 7946 0958"},
		{"call (+1) 212 555 0123", "+1) 212 555 0123"},
		{"(+7) 495 123-45-67", "+7) 495 123-45-67"},
		{"(+353) 1 234 5678", "+353) 1 234 5678"},
		{"(+33) 1 23 45 67 89", "+33) 1 23 45 67 89"},
		{"(+1868) 123 4567", "+1868) 123 4567"},
		{"scores: 12 (+3) 45 67 89 10", ""},
		{"sum (+3) 1 2 3 4 5 6 7 8 9", ""},
		{"Revenue (+5) 1234 2345", ""},
		{"(+12) 345 678 901", ""},
		{"(+0) 12 345 6789", ""},
		{"(+76) 1234 5678", ""},
	} {
		checkFoundAndReference(t, p, c.text, c.want)
	}
}

// review31bValues are values of every type, the shapes of this session
// among them, that TestReview31bEdges puts across block edges.
var review31bValues = []string{"+8613812345678", "(+44) 20 7946 0958", "555-123-4567", "555.123.4567", "DE89-3704-0044-0532-0130-00",
	"mac:00:1A:2B:3C:4D:5E", "device_id:00:1A:2B:3C:4D:5E", "value:2001:db8::1", "user@domain.xn--p1ai", "::ffff:192.0.2.1",
	"4111 1111 1111 1111", "123-45-6789", "AB 12 34 56 C", "AKIAIOSFODNN7EXAMPLE", "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	"00:1a:2b:3c:4d:5e", "routing 021000021", "10.0.0.1", "fe80::1", "a@b.io", "http://x.io/a", "www.example.com", "(415) 555-2671"}

// review31bFill are the pieces TestReview31bEdges fills texts with: what
// the candidate kernels look at (digits, ':', '+', '-', '.', '_', '/',
// '@', "www.", letters, spaces, a rune).
var review31bFill = []string{"1", "12", "123", ":", "::", "+", "++", " ", "  ", "a", "ab", "AB", "-", ".", "..", "_", "/", "@", "w",
	"ww", "www.", "0", "00", "9 9", "1:2", "a1", "+1", "(", ")", "\t", "\n", "é", "x"}

// TestReview31bEdges holds Detect to the reference walk on texts of every
// length from 0 to 300 bytes and around 2, 4, 6 and 8 KB (chunks of 32
// blocks, the candidate kernels' groups of four and eight blocks, the
// scalar walk of a chunk's last blocks), with a value across a 64-byte
// edge, and on texts of a few hostile units repeated (runs of digits,
// colons, plus signs): on whichever kernels the CPU runs (TestAVX2Path and
// TestPureGoPath rerun it on the others).
func TestReview31bEdges(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(s string) {
		t.Helper()
		got, want := p.Detect(s, nil), p.detectPlain(s, nil)
		sortFindings(got)
		sortFindings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%d bytes %q: found %v, the reference %v", len(s), s, got, want)
		}
	}
	r := rand.New(rand.NewPCG(31, 2))
	var lens []int
	for n := 0; n <= 300; n++ {
		lens = append(lens, n)
	}
	for _, c := range []int{2048, 2048 + 256, 4096, 6144, 8192} {
		for d := -70; d <= 70; d += 1 + 2*b2i(raceEnabled) {
			lens = append(lens, c+d)
		}
	}
	for _, n := range lens {
		for range 4 {
			var b strings.Builder
			for b.Len() < n {
				b.WriteString(review31bFill[r.IntN(len(review31bFill))])
			}
			s := b.String()[:n]
			check(s)
			v := review31bValues[r.IntN(len(review31bValues))]
			if len(v) > n {
				continue
			}
			at := r.IntN(n - len(v) + 1)
			if n > 64 {
				e := 64 * (1 + r.IntN((n-1)/64))
				at = max(0, min(n-len(v), e-r.IntN(len(v)+1)))
			}
			check(s[:at] + v + s[at+len(v):])
		}
	}
	units := []string{"1", ":", "+", " ", "1 ", "12:", ":1", "+1", "1-", "1.", "a", "A", "::", "ff", "555-", "(", ")", "(+", "-", "_"}
	for range rounds(2000) {
		us := make([]string, 1+r.IntN(4))
		for i := range us {
			us[i] = units[r.IntN(len(units))]
		}
		var b strings.Builder
		for n := r.IntN(5000); b.Len() < n; {
			b.WriteString(us[r.IntN(len(us))])
		}
		check(b.String())
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
