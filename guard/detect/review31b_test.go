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
