package detect

import (
	"slices"
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
		got := p.Detect(c.text, nil)
		var vals []string
		for _, f := range got {
			vals = append(vals, c.text[f.Start:f.End])
		}
		if c.want == "" && len(got) != 0 || c.want != "" && !slices.Contains(vals, c.want) {
			t.Errorf("%q: found %q, want %q", c.text, vals, c.want)
		}
		want := p.detectPlain(c.text, nil)
		sortFindings(got)
		sortFindings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q: found %v, the reference %v", c.text, got, want)
		}
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
		got := p.Detect(c.text, nil)
		var vals []string
		for _, f := range got {
			vals = append(vals, c.text[f.Start:f.End])
		}
		if c.want == "" && len(got) != 0 || c.want != "" && !slices.Contains(vals, c.want) {
			t.Errorf("%q: found %q, want %q", c.text, vals, c.want)
		}
		want := p.detectPlain(c.text, nil)
		sortFindings(got)
		sortFindings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q: found %v, the reference %v", c.text, got, want)
		}
	}
}
