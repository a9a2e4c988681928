package detect

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// spans returns "TYPE:value" for every finding of d in text.
func spans(d Detector, text string) []string {
	var out []string
	for _, f := range d.Detect(text, nil) {
		out = append(out, f.Type+":"+text[f.Start:f.End])
	}
	return out
}

type piiCase struct {
	text string
	want []string // "TYPE:value"; nil: nothing of typ
}

func runPII(t *testing.T, typ string, cases []piiCase) {
	t.Helper()
	p, err := NewPII(PIIConfig{Types: []string{typ}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		got := spans(p, c.text)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q\n got  %q\n want %q", typ, c.text, got, c.want)
		}
	}
}

func TestEmail(t *testing.T) {
	runPII(t, Email, []piiCase{
		{"write to john.doe@example.com today", []string{"EMAIL:john.doe@example.com"}},
		{"<Jane.O-Neil+tag@mail.example.co.uk>", []string{"EMAIL:Jane.O-Neil+tag@mail.example.co.uk"}},
		{`{"email":"a_b99@x.io"}`, []string{"EMAIL:a_b99@x.io"}},
		{"end of sentence: ops@example.org.", []string{"EMAIL:ops@example.org"}},
		{"mailto:x@y.de,z@w.fr", []string{"EMAIL:x@y.de", "EMAIL:z@w.fr"}},
		{"müller@beispiel.de", []string{"EMAIL:müller@beispiel.de"}},
		{"mary-jane.o'neil@example.com", []string{"EMAIL:mary-jane.o'neil@example.com"}}, // not just neil@…
		{"say 'bob@example.com' twice", []string{"EMAIL:bob@example.com"}},               // quoted
		{"@Override", nil},
		{"npm i @types/node@20.1.0", nil},
		{"user@localhost", nil},
		{"a@b.c", nil},
		{"x@-bad.com", nil},
		{"x@a..com", nil},
	})
}

func TestPhone(t *testing.T) {
	runPII(t, Phone, []piiCase{
		{"call (415) 555-2671 now", []string{"PHONE:(415) 555-2671"}},
		{"415-555-2671", []string{"PHONE:415-555-2671"}},
		{"415.555.2671", []string{"PHONE:415.555.2671"}},
		{"415 555 2671", []string{"PHONE:415 555 2671"}},
		{"+1 415 555 2671", []string{"PHONE:+1 415 555 2671"}},
		{"1 (800) 555-0199", []string{"PHONE:1 (800) 555-0199"}},
		{"+44 20 7946 0958", []string{"PHONE:+44 20 7946 0958"}},
		{"+49 30 12345678.", []string{"PHONE:+49 30 12345678"}},
		{"+33 1 23 45 67 89", []string{"PHONE:+33 1 23 45 67 89"}},
		{"0044 20 7946 0958", []string{"PHONE:0044 20 7946 0958"}},
		{"00 44 20 7946 0958", []string{"PHONE:00 44 20 7946 0958"}},
		{"00 00 00 00 00", nil}, // no country code starts with 0
		{"07700 900123", []string{"PHONE:07700 900123"}},
		{"mobile: 4155552671", []string{"PHONE:4155552671"}},
		{"order 4155552671", nil},                                                                   // bare digits need context
		{"2024-01-15", nil},                                                                         // date
		{"123-45-6789", nil},                                                                        // SSN shape
		{"4111 1111 1111 1111", nil},                                                                // card shape
		{"155-123-4567", nil},                                                                       // NANP area codes do not start with 1
		{"(415) 555-2671 (212) 555-0198", []string{"PHONE:(415) 555-2671", "PHONE:(212) 555-0198"}}, // a list: each counts
		{"415 555 2671 212 555 0198", []string{"PHONE:415 555 2671", "PHONE:212 555 0198"}},
		{"415-555-2671 1-212-555-0198", []string{"PHONE:415-555-2671", "PHONE:1-212-555-0198"}},
		{"200 300 4000 5000", nil},                                  // a run of digit groups is no list of numbers
		{"ref 123-456-7891", nil},                                   // nor exchanges, without a phone word
		{"ref 555 123 4567", nil},                                   // nor spaced groups
		{"ref 555-123-4567", []string{"PHONE:555-123-4567"}},        // but the placeholder area code, dashed
		{"555.123.4567", []string{"PHONE:555.123.4567"}},            // or dotted
		{"555-123.4567", nil},                                       // one way
		{"(555) 123-4567", []string{"PHONE:(555) 123-4567"}},        // placeholder numbers in parentheses
		{"phone: 555-123-4567", []string{"PHONE:555-123-4567"}},     // or after a phone word
		{"Call me on 123 456 7890", []string{"PHONE:123 456 7890"}}, // any digits then
		{"order (555) 123-45678", nil},                              // not the shape
		{"415-555-2671-99", nil},                                    // longer number
		{"v1.2.3 and 10.0.0.1", nil},                                // versions, addresses
		{"Population 8,336,817 in 2022", nil},                       // counts
		{"+0 123 456 789", nil},                                     // no country code 0
		{"01-02-2024", nil},                                         // date with leading 0
		{"01 23 45 67 89", []string{"PHONE:01 23 45 67 89"}},
		{"01 02 03 04 05 06", nil}, // a sequence: its tail is no national number
		{"toolu 01 02 03 04 05 06", nil},
	})
}

func TestSSN(t *testing.T) {
	runPII(t, USSocialSecurityNumber, []piiCase{
		{"SSN 123-45-6789", []string{"US_SOCIAL_SECURITY_NUMBER:123-45-6789"}},
		{"ssn: 123 45 6789", []string{"US_SOCIAL_SECURITY_NUMBER:123 45 6789"}},
		{"Social Security No. 078051120", []string{"US_SOCIAL_SECURITY_NUMBER:078051120"}},
		{"id 123-45-6789.", []string{"US_SOCIAL_SECURITY_NUMBER:123-45-6789"}},
		{"000-12-3456", nil},     // area 000
		{"666-12-3456", nil},     // area 666
		{"912-12-3456", nil},     // area 9xx
		{"123-00-4567", nil},     // group 00
		{"123-45-0000", nil},     // serial 0000
		{"order 123456789", nil}, // bare digits need context
		{"my social is 123456789", []string{"US_SOCIAL_SECURITY_NUMBER:123456789"}}, // "social" is that context
		{"123-45-67890", nil},      // too long
		{"1123-45-6789", nil},      // too long
		{"123-45-6789-1", nil},     // part of a longer code
		{"ISBN 123-45-6789x", nil}, // joined to a letter
		// Issue 13: labels glued to the value and other separators.
		{"SSN:123-45-6789", []string{"US_SOCIAL_SECURITY_NUMBER:123-45-6789"}},
		{"SSN123-45-6789", []string{"US_SOCIAL_SECURITY_NUMBER:123-45-6789"}},
		{"ssn-123-45-6789", []string{"US_SOCIAL_SECURITY_NUMBER:123-45-6789"}},
		{"ssn_123456789", []string{"US_SOCIAL_SECURITY_NUMBER:123456789"}},
		{"SSN123456789", []string{"US_SOCIAL_SECURITY_NUMBER:123456789"}},
		{"SSN:123456789", []string{"US_SOCIAL_SECURITY_NUMBER:123456789"}},
		{"123/45/6789", []string{"US_SOCIAL_SECURITY_NUMBER:123/45/6789"}},
		{"123_45_6789", []string{"US_SOCIAL_SECURITY_NUMBER:123_45_6789"}},
		{"123 - 45 - 6789", []string{"US_SOCIAL_SECURITY_NUMBER:123 - 45 - 6789"}},
		{"123  45  6789", []string{"US_SOCIAL_SECURITY_NUMBER:123  45  6789"}},
		{"123-45 6789", []string{"US_SOCIAL_SECURITY_NUMBER:123-45 6789"}},
		{"123.45.6789", []string{"US_SOCIAL_SECURITY_NUMBER:123.45.6789"}},
		{"2023  118  45  6789", nil},                                                     // a table row
		{"ssn 2023  118  45  6789", []string{"US_SOCIAL_SECURITY_NUMBER:118  45  6789"}}, // unless it says so
		{"INV-123-45-6789", nil},              // part of a longer code
		{"1.123.45.6789", nil},                // a version
		{"ref123456789", nil},                 // no SSN label
		{"14:123-45-6789", nil},               // after a number and ':'
		{"::ffff:123-45-6789", nil},           // inside an address
		{"123\t45\t6789\n124\t46\t6790", nil}, // rows of a table
		{"id\tqty\tprice\n123\t45\t6789\n", []string{"US_SOCIAL_SECURITY_NUMBER:123\t45\t6789"}}, // the line above is no number row
		{"SSN\n123\t45\t6789\n124\t46\t6790", []string{"US_SOCIAL_SECURITY_NUMBER:123\t45\t6789", "US_SOCIAL_SECURITY_NUMBER:124\t46\t6790"}},
	})
}

func TestCard(t *testing.T) {
	runPII(t, CreditDebitCardNumber, []piiCase{
		{"4111111111111111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111111111111111"}},
		{"card 4111 1111 1111 1111 exp 12/26", []string{"CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"}},
		{"5500-0000-0000-0004", []string{"CREDIT_DEBIT_CARD_NUMBER:5500-0000-0000-0004"}},
		{"Amex 3782 822463 10005", []string{"CREDIT_DEBIT_CARD_NUMBER:3782 822463 10005"}},
		{"6011111111111117", []string{"CREDIT_DEBIT_CARD_NUMBER:6011111111111117"}},
		{"JCB 3530111333300000", []string{"CREDIT_DEBIT_CARD_NUMBER:3530111333300000"}},
		{"Diners 30569309025904", []string{"CREDIT_DEBIT_CARD_NUMBER:30569309025904"}},
		{"mc 2223003122003222", []string{"CREDIT_DEBIT_CARD_NUMBER:2223003122003222"}},
		{"4111 1111 1111 1111 1234", []string{"CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"}},
		{"4111111111111112", nil},     // Luhn fails
		{"4111 1111 1111 1121", nil},  // Luhn fails
		{"5500-0000-0000-0005", nil},  // Luhn fails
		{"1234567812345670", nil},     // Luhn passes, no issuer starts with 1
		{"9780262033848", nil},        // ISBN-13
		{"356938035643809", nil},      // IMEI (Luhn-valid, 15 digits, 35 prefix)
		{"x4111111111111111", nil},    // inside a word
		{"41111111111111111111", nil}, // 20 digits
		{"4111-1111 1111-1111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111-1111 1111-1111"}}, // mixed separators
		// Issue 13: labels glued to the value and other separators.
		{"card:4111111111111111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111111111111111"}},
		{"card4111111111111111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111111111111111"}},
		{"CC#4111111111111111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111111111111111"}},
		{"cc-4111-1111-1111-1111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111-1111-1111-1111"}},
		{"4111.1111.1111.1111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111.1111.1111.1111"}},
		{"4111_1111_1111_1111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111_1111_1111_1111"}},
		{"4111/1111/1111/1111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111/1111/1111/1111"}},
		{"4111 - 1111 - 1111 - 1111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111 - 1111 - 1111 - 1111"}},
		{"card 4111  1111  1111  1111.", []string{"CREDIT_DEBIT_CARD_NUMBER:4111  1111  1111  1111"}},
		{"4111\t1111\t1111\t1111", []string{"CREDIT_DEBIT_CARD_NUMBER:4111\t1111\t1111\t1111"}},
		{"4111 11 11 1111 1111 please", []string{"CREDIT_DEBIT_CARD_NUMBER:4111 11 11 1111 1111"}},
		{"4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", []string{"CREDIT_DEBIT_CARD_NUMBER:4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"}},
		{"4111111111111111 12/26", []string{"CREDIT_DEBIT_CARD_NUMBER:4111111111111111"}},
		{"2023  4111  1111  1111  1111  88", nil}, // a table row of numbers
		// Two cards a wide gap apart: the gap is not inside either (the
		// first was taken for a table column and sent as it was).
		{"4111 1111 1111 1111  5500 0000 0000 0004", []string{"CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111", "CREDIT_DEBIT_CARD_NUMBER:5500 0000 0000 0004"}},
		{"4111 1111 1111 1111\t\t2024", []string{"CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"}},
		{"4111  1111  1111  1111  4111", nil},                        // its own gaps are wide, a number beside: a table
		{"1 2 3 4 5 6 7 8 9 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", nil}, // small groups inside a longer run
		{"INV-4111-1111-1111-1111", nil},                             // part of an invoice number
		{"v4111.1111.1111.1111", nil},                                // joined to a word
		{"AT39 2636 8431 2748 2629", nil},                            // IBAN-shaped (failed its own check)
		{"timestamp 1717243200123", nil},                             // 13 digits starting with 1
		{"4111\t1111\t1111\t1111\n2023\t118\t45\t99", nil},           // a row of a table of numbers
		{"4111\t1111\t1111\t1111\nexp 12/26", []string{"CREDIT_DEBIT_CARD_NUMBER:4111\t1111\t1111\t1111"}},
	})
}

func TestIBAN(t *testing.T) {
	runPII(t, IBAN, []piiCase{
		{"DE89370400440532013000", []string{"INTERNATIONAL_BANK_ACCOUNT_NUMBER:DE89370400440532013000"}},
		{"IBAN: DE89 3704 0044 0532 0130 00.", []string{"INTERNATIONAL_BANK_ACCOUNT_NUMBER:DE89 3704 0044 0532 0130 00"}},
		{"GB82 WEST 1234 5698 7654 32", []string{"INTERNATIONAL_BANK_ACCOUNT_NUMBER:GB82 WEST 1234 5698 7654 32"}},
		{"gb82west12345698765432", []string{"INTERNATIONAL_BANK_ACCOUNT_NUMBER:gb82west12345698765432"}},
		{"FR1420041010050500013M02606", []string{"INTERNATIONAL_BANK_ACCOUNT_NUMBER:FR1420041010050500013M02606"}},
		{"NO9386011117947", []string{"INTERNATIONAL_BANK_ACCOUNT_NUMBER:NO9386011117947"}},
		{"DE89370400440532013001", nil},  // check fails
		{"DE88370400440532013000", nil},  // wrong check digits
		{"GB82WEST1234569876543", nil},   // one short
		{"GB82WEST123456987654321", nil}, // one long
		{"XX89370400440532013000", nil},  // no such country
		{"VAT DE123456789", nil},         // VAT number
	})
}

func TestRouting(t *testing.T) {
	runPII(t, USBankRoutingNumber, []piiCase{
		{"routing number 021000021", []string{"US_BANK_ROUTING_NUMBER:021000021"}},
		{"ABA: 011000015", []string{"US_BANK_ROUTING_NUMBER:011000015"}},
		{"RTN 122105155 acct 1234", []string{"US_BANK_ROUTING_NUMBER:122105155"}},
		{"021000021 (routing)", []string{"US_BANK_ROUTING_NUMBER:021000021"}},
		{"routing number 021000022", nil}, // ABA checksum fails
		{"routing number 991000021", nil}, // not a Federal Reserve prefix
		{"Chase, 021000021", nil},         // documented: no context word, not reported
		{"order 021000021", nil},
		{"routing 0210000210", nil}, // ten digits
		{"each 021000021", nil},     // "ach" only as a whole word
	})
}

func TestIPAddress(t *testing.T) {
	runPII(t, IPAddress, []piiCase{
		{"from 192.168.1.10:8080", []string{"IP_ADDRESS:192.168.1.10"}},
		{"10.0.0.0/8", []string{"IP_ADDRESS:10.0.0.0"}},
		{"2001:db8::8a2e:370:7334", []string{"IP_ADDRESS:2001:db8::8a2e:370:7334"}},
		{"[2001:db8::1]:443", []string{"IP_ADDRESS:2001:db8::1"}},
		{"fe80::1ff:fe23:4567:890a.", []string{"IP_ADDRESS:fe80::1ff:fe23:4567:890a"}},
		{"::ffff:192.0.2.1 x", []string{"IP_ADDRESS:192.0.2.1"}}, // an IPv4-mapped address: its IPv4 address
		{"::ffff:192.0.2 x", nil},                                // not one
		{"x::ffff:192.0.2.1", nil},                               // inside a longer token
		{"256.1.1.1", nil},
		{"1.2.3", nil},
		{"1.2.3.4.5", nil},
		{"v1.2.3.4", nil},
		{"version 1.2.3.4", nil},
		{"01.02.03.04", nil}, // leading zeros
		{"std::vector", nil},
		{"12:30:45", nil},
		{"abc::def", nil},
	})
}

func TestMAC(t *testing.T) {
	runPII(t, MACAddress, []piiCase{
		{"mac 00:1A:2B:3C:4D:5E", []string{"MAC_ADDRESS:00:1A:2B:3C:4D:5E"}},
		{"a4-83-e7-12-9f-0c.", []string{"MAC_ADDRESS:a4-83-e7-12-9f-0c"}},
		{"0019.e8a3.4f21", []string{"MAC_ADDRESS:0019.e8a3.4f21"}},
		{"00:1A:2B:3C:4D", nil},
		{"00:1A:2B:3C:4D:5E:6F", nil},
		{"00:1A-2B:3C:4D:5E", nil},
		{"zz:1A:2B:3C:4D:5E", nil},
	})
}

func TestURL(t *testing.T) {
	runPII(t, URL, []piiCase{
		{"see https://example.com/a?b=c.", []string{"URL:https://example.com/a?b=c"}},
		{"(https://en.wikipedia.org/wiki/Foo_(bar))", []string{"URL:https://en.wikipedia.org/wiki/Foo_(bar)"}},
		{"(http://x.io/a)", []string{"URL:http://x.io/a"}},
		{"www.example.org/careers", []string{"URL:www.example.org/careers"}},
		{"s3://bucket/key", []string{"URL:s3://bucket/key"}},
		{`"https://a.b/c"`, []string{"URL:https://a.b/c"}},
		{"http://", nil},
		{"www.", nil},
		{"example.com", nil}, // bare domains are not reported
	})
}

func TestAWSKeys(t *testing.T) {
	runPII(t, AWSAccessKey, []piiCase{
		{"AKIAIOSFODNN7EXAMPLE", []string{"AWS_ACCESS_KEY:AKIAIOSFODNN7EXAMPLE"}},
		{"id=ASIAY34FZKBOKMUTVV7A;", []string{"AWS_ACCESS_KEY:ASIAY34FZKBOKMUTVV7A"}},
		{"AKIAIOSFODNN7EXAMPL", nil},
		{"AKIAIOSFODNN7EXAMPLEX", nil},
		{"AKIAiosfodnn7example", nil},
		{"ASIA PACIFIC", nil},
	})
	runPII(t, AWSSecretKey, []piiCase{
		{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", []string{"AWS_SECRET_KEY:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		{`"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"`, []string{"AWS_SECRET_KEY:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		{"key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", nil},        // no context
		{"secret 3f786850e387550fdab836ed7e6dc881de23001b", nil},     // hex, no upper case
		{"secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYX", nil},    // 41 chars
		{"secret abc/wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", nil}, // part of a path
	})
}

func TestNINO(t *testing.T) {
	runPII(t, UKNationalInsuranceNumber, []piiCase{
		{"NI AB123456C", []string{"UK_NATIONAL_INSURANCE_NUMBER:AB123456C"}},
		{"AB 12 34 56 C.", []string{"UK_NATIONAL_INSURANCE_NUMBER:AB 12 34 56 C"}},
		{"national insurance number JG103759", []string{"UK_NATIONAL_INSURANCE_NUMBER:JG103759"}},
		{"JG103759", nil},   // no suffix, no context
		{"QQ123456C", nil},  // Q not allowed first
		{"AO123456C", nil},  // O not allowed second
		{"GB123456A", nil},  // GB not allocated
		{"AB123456E", nil},  // suffix A-D only
		{"AB1234567C", nil}, // too many digits
	})
}

func TestCustomRegex(t *testing.T) {
	p, err := NewPII(PIIConfig{Types: []string{Email}, Regexes: map[string]string{"EMPLOYEE_ID": `\bEMP-\d{6}\b`}})
	if err != nil {
		t.Fatal(err)
	}
	got := spans(p, "EMP-123456 wrote to a@b.io")
	want := []string{"EMAIL:a@b.io", "EMPLOYEE_ID:EMP-123456"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q want %q", got, want)
	}
	if _, err := NewPII(PIIConfig{Regexes: map[string]string{"X": "("}}); err == nil {
		t.Error("bad regex accepted")
	}
	if _, err := NewPII(PIIConfig{Types: []string{"NOPE"}}); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("unknown type: %v", err)
	}
}

func TestPhoneExtensionAndCIDR(t *testing.T) {
	runPII(t, Phone, []piiCase{
		{"+1 (555) 123-4567x89", []string{"PHONE:+1 (555) 123-4567"}},
		{"415-555-2671 ext. 12", []string{"PHONE:415-555-2671"}},
		{"415-555-2671xyz", nil},
	})
	runPII(t, IPAddress, []piiCase{
		{"10.0.0.1/32", []string{"IP_ADDRESS:10.0.0.1"}},
		{"10.0.0.1/33", nil},
	})
}

// TestObfuscatedShapes runs the default scanner (normalisation first) over
// the ways a person or an attacker types a value with non-ASCII characters.
func TestObfuscatedShapes(t *testing.T) {
	p, err := NewPII(PIIConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sc := NewScanner(p)
	for _, c := range []struct{ text, want string }{
		{"\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11", "CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"}, // full-width
		{"4111\u00a01111\u00a01111\u00a01111", "CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"},                                                                  // NBSP
		{"4111\u202f1111\u20071111\u30001111", "CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"},                                                                  // narrow, figure, ideographic spaces
		{"4111 1111\u00a01111\u200d1111", "CREDIT_DEBIT_CARD_NUMBER:4111 1111 11111111"},                                                                        // ZWJ joins two groups
		{"4\u200b1\u200c1\u20601 1111 1111 1111", "CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"},                                                               // zero-width inside a group
		{"4111\u20131111\u20131111\u20131111", "CREDIT_DEBIT_CARD_NUMBER:4111-1111-1111-1111"},                                                                  // en dashes
		{"\u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661", "CREDIT_DEBIT_CARD_NUMBER:4111 1111 1111 1111"}, // Arabic-Indic
		{"SSN \u0967\u0968\u0969-\u096a\u096b-\u096c\u096d\u096e\u096f", "US_SOCIAL_SECURITY_NUMBER:123-45-6789"},                                               // Devanagari
		{"SSN\uff1a\uff11\uff12\uff13\uff0d\uff14\uff15\uff0d\uff16\uff17\uff18\uff19", "US_SOCIAL_SECURITY_NUMBER:123-45-6789"},                                // full-width colon and hyphen
		{"123\u221245\u22126789", "US_SOCIAL_SECURITY_NUMBER:123-45-6789"},                                                                                      // minus signs
		{"123\u00ad-45-67\u00ad89", "US_SOCIAL_SECURITY_NUMBER:123-45-6789"},                                                                                    // soft hyphens
		{"\U0001d7cf\U0001d7d0\U0001d7d1-45-6789", "US_SOCIAL_SECURITY_NUMBER:123-45-6789"},                                                                     // mathematical bold digits
		{"ssn\u00a0\u00a0123\u00a0\u00a045\u00a0\u00a06789", "US_SOCIAL_SECURITY_NUMBER:123  45  6789"},                                                         // doubled NBSP
	} {
		norm, found := sc.ScanAppend(nil, c.text)
		var got []string
		for _, f := range found {
			got = append(got, f.Type+":"+norm[f.Start:f.End])
		}
		if !slices.Equal(got, []string{c.want}) {
			t.Errorf("%q (normalised %q)\n got  %q\n want %q", c.text, norm, got, c.want)
		}
	}
}

// TestNumberEarlyExits holds cardMayStart and phoneMayStart, which let a
// start in a run of tiny digit groups ("1 1 1 …", 1 MB of which took 220 ms
// of CPU, 55 ms with them) skip the group walks, to the walks: where they
// say no, cardAt and phoneAt find nothing. Random texts of digit
// groups, separators, parentheses and plus signs, every start.
func TestNumberEarlyExits(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	pieces := []string{"1", "0", "00", "12", "415", "555", "2671", "4111", "0198", "7946", "1111", "20", "44", "021000021",
		"4111111111111111", " ", " ", "-", ".", "(", ")", "+", "\t", "  ", "/", "_", "a", "x", ",", "1 ", "0 ",
		"1 415 555 2671", "1-(212) 555-0198", "1.415.555.2671", "0 20 7946 0958", "00 44 20 7946 0958", "1 1 1 1 1 1 1 1"}
	skippedCard, skippedPhone := 0, 0
	for range rounds(20000) {
		s := joinRandom(r, pieces, 1+r.IntN(24))
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !isDigit(c) && c != '+' && c != '(' {
				continue
			}
			if isDigit(c) && !cardMayStart(s, i) {
				skippedCard++
				if end := cardAt(s, i); end != 0 {
					t.Fatalf("%q at %d: cardMayStart says no, cardAt finds %q", s, i, s[i:end])
				}
			}
			if !phoneMayStart(s, i) {
				skippedPhone++
				for _, lbl := range []piiKind{0, kPhone} {
					if end := phoneAt(s, i, lbl); end != 0 {
						t.Fatalf("%q at %d: phoneMayStart says no, phoneAt finds %q", s, i, s[i:end])
					}
				}
			}
		}
	}
	if skippedCard < rounds(2000) || skippedPhone < rounds(20000) {
		t.Errorf("the early exits fired %d and %d times: the texts exercise too little", skippedCard, skippedPhone)
	}
}
