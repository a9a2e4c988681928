package guard

import (
	"strings"
	"testing"

	"github.com/warden-egress/warden/bedrock"
)

// TestReview31bStreamShapes: the value shapes the PII detector learnt this
// session ("(+44) 20 7946 0958", "+8613812345678", "555-123-4567", dashed
// IBANs, addresses glued to a label, "::ffff:" IPv4, punycode email
// domains), streamed in a sentence cut into two or three tokens at every
// pair of places, under a masking guard: no digit of a value (no '@' of
// the email) is ever sent, whatever the cut ("(+44" | ") 20 7946 0958",
// "+86138" | "12345678", "DE89-3704-" | …).
func TestReview31bStreamShapes(t *testing.T) {
	stop := bedrock.EncodeEvent("contentBlockStop", []byte(`{"contentBlockIndex":0}`))
	for _, v := range []struct{ value, secret string }{
		{"(+44) 20 7946 0958", "0123456789"},
		{"+8613812345678", "0123456789"},
		{"555-123-4567", "0123456789"},
		{"DE89-3704-0044-0532-0130-00", "0123456789"},
		{"mac:00:1A:2B:3C:4D:5E", "0123456789"},
		{"device_id:00:1A:2B:3C:4D:5E", "0123456789"},
		{"value:2001:db8::1", "0123456789"},
		{"::ffff:192.0.2.1", "0123456789"},
		{"user@domain.xn--p1ai", "@"},
	} {
		for _, c := range []string{"My value is %s.", "call (%s) now", "%s"} {
			text := strings.Replace(c, "%s", v.value, 1)
			for a := 1; a < len(text); a++ {
				for b := a; b < len(text); b++ {
					cuts := []string{text[:a], text[a:b], text[b:]}
					if b == a {
						cuts = []string{text[:a], text[a:]}
					}
					var frames [][]byte
					for _, p := range cuts {
						frames = append(frames, deltaFrame(t, p))
					}
					released, err := feed(t, testStreamGuard(t, "mask"), append(frames, stop)...)
					if err != nil {
						t.Fatal(err)
					}
					var out strings.Builder
					for _, rel := range released {
						for _, s := range rel {
							if !strings.HasPrefix(s, "<") {
								out.WriteString(s)
							}
						}
					}
					if strings.ContainsAny(out.String(), v.secret) {
						t.Fatalf("%q cut as %q sent as %q", text, cuts, out.String())
					}
				}
			}
		}
	}
}
