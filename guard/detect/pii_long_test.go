package detect

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var stressValues = []string{
	"4111 1111 1111 1111", "4111111111111111", "4111-1111-1111-1111", "4222222222222", "3782 822463 10005", "3056 930902 5904",
	"378282246310005", "5555.5555.5555.4444", "6011_1111_1111_1117",
	"123-45-6789", "123 45 6789", "SSN123-45-6789", "ssn_123456789", "ssn 123456789", "SSN:123/45/6789", "ssn-123-45-6789",
	"card_4111111111111111", "card4111111111111111", "cc4111111111111111", "visa.4111111111111111",
	"routing 021000021", "ABA021000021", "rtn:021000021", "021000021 routing",
	"DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432",
	"+44 20 7946 0958", "+1 (415) 555-2671", "(415) 555-2671", "415-555-2671", "415.555.2671", "1 415 555 2671",
	"020 7946 0958", "07700 900123", "01 23 45 67 89", "0044 20 7946 0958", "tel 4155552671", "phone: 4155552671",
	"tel4155552671", "(555) 123-4567", "call 555-123-4567", "+4915112345678", "+33 1 23 45 67 89",
	"10.0.0.1", "192.168.1.254/24", "no10.0.0.1", "fe80::1", "2001:db8::8a2e:370:7334", "::ffff:1.2.3.4",
	"1:2:3:4:5:6:1.2.3.4", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "1111:2222:3333:4444:5555:6666::", "a::1", "fe8::1",
	"1::", "abcd:ef01:2345:6789:abcd:ef01:2345:6789", "1234::5678",
	"00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "001a.2b3c.4d5e", "aa:bb:cc:dd:ee:ff", "ab1c.def0.1234", "1234.5678.9abc",
	"AB 12 34 56 C", "AB123456C", "ab 123456 c", "NI number AB123456", "nino AB 12 34 56",
	"AKIAIOSFODNN7EXAMPLE", "ASIA1234567890ABCDEF", "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	"secret wJalrXUtnFEMIK7MDENG123456789CYEXAMPLEKY",
	"a@b.io", "john.doe@example.com", "https://x.io/a", "http://example.com/path?q=1", "www.example.com", "WWW.EXAMPLE.COM",
	"ftp://files.example.org", "x://y", "see https://a.b/c.", "://", "www.", "WWW.",
}

var stressFill = []string{
	" ", "  ", "\t", "\n", "word ", "the ", "a", "Z", "_", "-", ".", "/", ":", "(", ")", "+", "|", ",", "é", "日", "\u00a0",
	"08:01:07", "12:30", "2024-01-02", "1000-2000-000", "12345", "1234567", "12345678", "123456789012", "1.2.3", "v1.2.3.4",
	"1,5", "$12.50", "0800", "ssn ", "phone ", "routing ", "tel ", "secret ", "12", "123", "4", "x", "é1", "ab", "AB",
	"dead.", "beef:", "ff", ":", "::", "0", "9",
}

func stressText(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		if r.IntN(6) == 0 {
			b.WriteString(stressValues[r.IntN(len(stressValues))])
		} else {
			b.WriteString(stressFill[r.IntN(len(stressFill))])
		}
	}
	return b.String()
}

// TestDetectLongTextsRandom holds Detect, the skipping word walk and the
// Scanner to the plain paths on texts up to a few KiB: values of every
// type (and labels glued to them) in filler of words, times, dates, short
// numbers and non-ASCII letters; single values at every offset around a
// block's or a chunk's end, at the end of the text or before more of it;
// long digit runs; more URL markers than a triggerScan keeps; and the same
// with bytes changed, dropped or added. It found the keys missed at the
// end of a text past the first chunk (TestDetectKeysWalkEndsAtTextEnd).
func TestDetectLongTextsRandom(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sc, ps := defaultScanner(t), newPlainScanner(t)
	r := rand.New(rand.NewPCG(12, 99))
	for it := range rounds(4000) {
		var s string
		switch it % 6 {
		case 4:
			var b strings.Builder
			for range 30 + r.IntN(30) {
				b.WriteString([]string{"https://x.io/a ", "www.a.io ", "WWW.B.IO ", "see http://q.r/s?t=1. ", "://"}[r.IntN(5)])
				b.WriteString(stressText(r, r.IntN(60)))
			}
			s = b.String()
		case 5:
			bs := []byte(stressText(r, r.IntN(2500)))
			alpha := " \t.-:/_()+0123456789abcdefABCDEFwW@xé"
			for range r.IntN(20) {
				if len(bs) == 0 {
					break
				}
				k := r.IntN(len(bs))
				switch r.IntN(3) {
				case 0:
					bs[k] = alpha[r.IntN(len(alpha))]
				case 1:
					bs = append(bs[:k], bs[k+1:]...)
				default:
					bs = append(bs[:k], append([]byte{alpha[r.IntN(len(alpha))]}, bs[k:]...)...)
				}
			}
			s = string(bs)
		case 0:
			s = stressText(r, r.IntN(3000))
		case 1:
			// one value at an offset around a block or chunk end, in filler
			v := stressValues[r.IntN(len(stressValues))]
			if r.IntN(4) == 0 { // a key whose word holds a trigger
				v = []string{"ASIA1234567890ABCDEF", "secret wJalrXUtnFEMIK7MDENG123456789CYEXAMPLEKY"}[r.IntN(2)]
			}
			end := 64 * (1 + r.IntN(40))
			if r.IntN(2) == 0 {
				end = 64 * trigChunk * (1 + r.IntN(2))
			}
			o := end - len(v) - 3 + r.IntN(len(v)+6)
			if o < 0 {
				o = 0
			}
			fill := stressText(r, o+200)
			s = fill[:o] + " " + v
			if r.IntN(2) == 0 {
				s += stressText(r, r.IntN(100))
			}
		case 2:
			// values after long digit runs / many URLs
			var b strings.Builder
			for range r.IntN(80) {
				switch r.IntN(4) {
				case 0:
					b.WriteString(strings.Repeat("1234567890", 1+r.IntN(5)))
				case 1:
					b.WriteString("https://x" + strconv.Itoa(r.IntN(100)) + ".io ")
				case 2:
					b.WriteString(stressValues[r.IntN(len(stressValues))])
				default:
					b.WriteString(stressFill[r.IntN(len(stressFill))])
				}
			}
			s = b.String()
		default:
			s = stressText(r, r.IntN(300))
		}
		got, want := p.Detect(s, nil), p.detectPlain(s, nil)
		sortFindings(got)
		sortFindings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%q: Detect found %v, plain %v", s, got, want)
		}
		if got, want := p.detectWords(s, nil), p.detectWordsPlain(s, nil); !slices.Equal(got, want) {
			t.Fatalf("%q: detectWords %v plain walk %v", s, got, want)
		}
		checkScanReference(t, sc, ps, s)
	}
}
