package detect

import (
	"fmt"
	"testing"
)

// TestPIIShapes holds each type to values written the ways people and
// generators write them (E.164 run together, a country code in
// parentheses, the placeholder area code 555, IBANs in dashed groups,
// addresses after a label and a colon), each in the contexts a prompt or a
// log line puts it: it must be found in every one.
func TestPIIShapes(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]string{
		Email: {"john.doe+tag@sub.example.co.uk", "JOHN_DOE@EXAMPLE.COM", "o'reilly@example.com", "first-last@example-domain.org",
			"a@b.io", "x_y.z@domain.travel", "user%tag@example.com", "1234567@example.com", "name@domain.xn--p1ai"},
		Phone: {"+1 (555) 123-4567", "(555)123-4567", "+44 20 7946 0958", "+44 (0)20 7946 0958", "020 7946 0958", "+49 30 1234567",
			"+33 1 23 45 67 89", "+91 98765 43210", "+61 2 9876 5432", "1-800-555-0199", "+1-555-123-4567", "+15551234567",
			"+8613812345678", "+4915112345678", "+442079460958", "+123456789012345", "(+44) 20 7946 0958", "(+1) 212 555 0123",
			"07911 123456", "212-555-0123", "212.555.0123", "212 555 0123", "+1.555.123.4567", "+353 1 234 5678",
			"+81 3-1234-5678", "+7 495 123-45-67", "+55 11 91234-5678", "555-123-4567", "555.123.4567", "001 212 555 0123"},
		USSocialSecurityNumber: {"123-45-6789", "123 45 6789", "SSN: 123456789", "SSN#123-45-6789", "078-05-1120"},
		CreditDebitCardNumber: {"4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "3782 822463 10005",
			"378282246310005", "6011 1111 1111 1117", "2223 0031 2200 3222", "3056 9309 0259 04", "3530 1113 3330 0000",
			"5555 5555 5555 4444", "5105105105105100", "4012888888881881"},
		IBAN: {"GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "FR14 2004 1010 0505 0001 3M02 606",
			"NL91ABNA0417164300", "CH93 0076 2011 6238 5295 7", "IT60 X054 2811 1010 0000 0123 456", "DE89-3704-0044-0532-0130-00",
			"GB82-WEST-1234-5698-7654-32"},
		USBankRoutingNumber: {"ABA 021000021", "routing number: 011000015", "RTN 026009593"},
		IPAddress: {"192.168.0.1", "10.0.0.255", "2001:db8::1", "fe80::1ff:fe23:4567:890a", "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
			"2001:DB8:0:0:8:800:200C:417A"},
		MACAddress:                {"00:1A:2B:3C:4D:5E", "00-1A-2B-3C-4D-5E", "00:1a:2b:3c:4d:5e"},
		AWSAccessKey:              {"AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"},
		UKNationalInsuranceNumber: {"AB 12 34 56 C", "AB123456D", "JG 10 37 33 A"},
	}
	contexts := []string{"%s", "My value is %s.", "(%s)", "value:%s,next", "\"%s\"", "Please use %s for this", "id=%s;",
		"[%s]", "<%s>", "field: %s\n", "x\t%s\ty", "'%s'", "%s!", "{\"v\":\"%s\"}", "key=%s&a=1", "*%s*", "`%s`"}
	for typ, values := range shapes {
		for _, v := range values {
			for _, c := range contexts {
				text := Normalize(fmt.Sprintf(c, v))
				found := false
				for _, f := range p.Detect(text, nil) {
					found = found || f.Type == typ
				}
				if !found {
					t.Errorf("%s not found in %q", typ, text)
				}
			}
		}
	}
	// An IPv4-mapped IPv6 address, as servers log a client: its IPv4
	// address ("value:::ffff:…" is no shape anyone writes).
	for _, c := range contexts[:3] {
		text := fmt.Sprintf(c, "::ffff:192.0.2.1")
		if got := p.Detect(text, nil); len(got) != 1 || text[got[0].Start:got[0].End] != "192.0.2.1" {
			t.Errorf("%q: found %v, want the IPv4 address", text, got)
		}
	}
	for _, text := range []string{
		"+1234567890123456", // 16 digits: longer than E.164
		"ref 123-456-7891",  // an id, not a phone number
		"face:00:1A:2B:3C:4D:5E",
		"QQ123456C", // a prefix HMRC does not allocate
	} {
		if got := p.Detect(Normalize(text), nil); len(got) != 0 {
			t.Errorf("%q: found %v, want nothing", text, got)
		}
	}
}
