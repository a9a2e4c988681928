package detect

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text-shaped PII: emails, URLs, IBANs, National Insurance numbers, AWS keys,
// MAC and IPv6 addresses.

func (p *PII) detectEmails(s string, dst []Finding) []Finding {
	for off := 0; off < len(s); {
		j := strings.IndexByte(s[off:], '@')
		if j < 0 {
			break
		}
		at := off + j
		off = at + 1
		if start, end := emailAround(s, at); end > 0 {
			dst = p.emit(dst, Email, start, end)
			off = end
		}
	}
	return dst
}

// detectEmailsAt is detectEmails with the positions of every '@' of s, in
// order, given.
func (p *PII) detectEmailsAt(s string, dst []Finding, ats []int32) []Finding {
	off := 0
	for _, a := range ats {
		at := int(a)
		if at < off {
			continue
		}
		off = at + 1
		if start, end := emailAround(s, at); end > 0 {
			dst = p.emit(dst, Email, start, end)
			off = end
		}
	}
	return dst
}

// emailAround returns the address around the '@' at s[at]: a local part of
// letters, digits and . _ % + - ' (and letters of any script), a domain of at
// least two labels whose last one is two or more letters.
func emailAround(s string, at int) (int, int) {
	l := at
	for l > 0 && at-l <= 64 {
		c := s[l-1]
		if c < utf8.RuneSelf {
			if class[c]&(cWord|cLocal) == 0 && c != '\'' {
				break
			}
			l--
			continue
		}
		r, n := utf8.DecodeLastRuneInString(s[:l])
		if !isWordRune(r) {
			break
		}
		l -= n
	}
	// An apostrophe joins a name's parts ("o'neil@…"); one before the
	// address quotes it ('bob@…').
	for l < at && (s[l] == '.' || s[l] == '-' || s[l] == '+' || s[l] == '\'') {
		l++
	}
	if l == at {
		return 0, 0
	}
	r := at + 1
	dd := len(s) // the second dot of the domain's first "..", if any
	for r < len(s) && r-at <= 255 {
		c := s[r]
		if c < utf8.RuneSelf {
			if !isAlnum(c) && c != '-' && c != '.' {
				break
			}
			if c == '.' && s[r-1] == '.' && dd == len(s) {
				dd = r
			}
			r++
			continue
		}
		ru, n := utf8.DecodeRuneInString(s[r:])
		if !isWordRune(ru) {
			break
		}
		r += n
	}
	for r > at+1 && (s[r-1] == '.' || s[r-1] == '-') {
		r--
	}
	dom := s[at+1 : r]
	dot := strings.LastIndexByte(dom, '.')
	if dot <= 0 || dd < r || dom[0] == '-' || dom[0] == '.' { // dd < r: dom holds ".."
		return 0, 0
	}
	tld := dom[dot+1:]
	if len(tld) < 2 {
		return 0, 0
	}
	if !hasPrefixFoldASCII(tld, "xn--") || len(tld) < 5 { // else an IDN's ASCII form ("xn--p1ai")
		for _, c := range tld {
			if c < utf8.RuneSelf && !isAlpha(byte(c)) || c >= utf8.RuneSelf && !unicode.IsLetter(c) {
				return 0, 0
			}
		}
	}
	if wordRuneAt(s, r) {
		return 0, 0
	}
	return l, r
}

// urlAt finds scheme://... (scheme of 2 to 16 letters) or www.host... at s[i].
func urlAt(s string, i int) int {
	var host int
	if hasPrefixFoldASCII(s[i:], "www.") {
		host = i + 4
		if host >= len(s) || !isAlnum(s[host]) {
			return 0
		}
	} else {
		j := i
		for j < len(s) && j-i <= 16 && (isAlnum(s[j]) || s[j] == '+' || s[j] == '.' || s[j] == '-') {
			j++
		}
		if j-i < 2 || !strings.HasPrefix(s[j:], "://") {
			return 0
		}
		host = j + 3
		if host >= len(s) || !(isAlnum(s[host]) || s[host] == '[' || s[host] >= utf8.RuneSelf) {
			return 0
		}
	}
	e := host
	for e < len(s) {
		c := s[e]
		if c <= ' ' || c == '"' || c == '<' || c == '>' || c == '`' || c == '\'' || c == '\\' || c == '{' || c == '}' || c == '|' || c == '^' || c == 0x7f {
			break
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[e:])
			if unicode.IsSpace(r) || r == utf8.RuneError || unicode.In(r, unicode.Pi, unicode.Pf, unicode.Ps, unicode.Pe) {
				break
			}
			e += n
			continue
		}
		e++
	}
	// Trailing punctuation belongs to the sentence; a closing bracket only
	// belongs to the URL when it has an opening one.
	for e > host {
		c := s[e-1]
		if strings.IndexByte(".,;:!?*", c) >= 0 {
			e--
			continue
		}
		if c == ')' && strings.Count(s[i:e], "(") < strings.Count(s[i:e], ")") ||
			c == ']' && strings.Count(s[i:e], "[") < strings.Count(s[i:e], "]") {
			e--
			continue
		}
		break
	}
	if e <= host {
		return 0
	}
	if host == i+4 && !strings.Contains(s[host:e], ".") { // www.example, no TLD
		return 0
	}
	return e
}

// ibanLength is the IBAN length per country (ISO 13616 registry).
var ibanLength = map[string]uint8{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
	"JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
	"MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
	"NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
	"SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// ibanAt finds an IBAN at s[i]: country code, two check digits and the
// country's BBAN length of letters and digits, optionally in groups separated
// by single spaces, whose mod-97 remainder is 1.
func ibanAt(s string, i int) int {
	if i+4 > len(s) || !isAlpha(s[i]) || !isAlpha(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return 0
	}
	cc := [2]byte{s[i] &^ 0x20, s[i+1] &^ 0x20}
	want := int(ibanLength[string(cc[:])])
	if want == 0 {
		return 0
	}
	var buf [34]byte
	n := 0
	p := i
	var sep byte // the separator between groups: the first one's, ' ' or '-'
	for p < len(s) && n < want {
		c := s[p]
		if isAlnum(c) {
			buf[n] = c
			if isAlpha(c) {
				buf[n] = c &^ 0x20
			}
			n++
			p++
			continue
		}
		if (c == ' ' || c == '-') && (sep == 0 || c == sep) && p+1 < len(s) && isAlnum(s[p+1]) && n >= 4 {
			sep = c
			p++
			continue
		}
		break
	}
	if n != want || wordRuneAt(s, p) {
		return 0
	}
	if ck := int(buf[2]-'0')*10 + int(buf[3]-'0'); ck < 2 || ck > 98 {
		return 0
	}
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A') + 10) % 97
		}
	}
	for k := 4; k < n; k++ {
		add(buf[k])
	}
	for k := 0; k < 4; k++ {
		add(buf[k])
	}
	if rem != 1 {
		return 0
	}
	return p
}

var ninoContext = newFoldWords("national insurance", "nino", "ni number", "ni no", "nin")

// ninoAt finds a UK National Insurance number: two prefix letters HMRC
// allocates, six digits (optionally in pairs separated by spaces) and a
// suffix A-D; without the suffix only with a context word before it.
func ninoAt(s string, i int) int {
	if i+8 > len(s) || !isAlpha(s[i]) || !isAlpha(s[i+1]) {
		return 0
	}
	a, b := s[i]&^0x20, s[i+1]&^0x20
	if strings.IndexByte("DFIQUV", a) >= 0 || strings.IndexByte("DFIOQUV", b) >= 0 {
		return 0
	}
	switch uint16(a)<<8 | uint16(b) {
	case 'B'<<8 | 'G', 'G'<<8 | 'B', 'K'<<8 | 'N', 'N'<<8 | 'K', 'N'<<8 | 'T', 'T'<<8 | 'N', 'Z'<<8 | 'Z':
		return 0
	}
	p := i + 2
	spaced := p < len(s) && s[p] == ' '
	for pair := 0; pair < 3; pair++ {
		if spaced && p < len(s) && s[p] == ' ' {
			p++
		}
		if p+2 > len(s) || !isDigit(s[p]) || !isDigit(s[p+1]) {
			return 0
		}
		p += 2
	}
	q := p
	if spaced && q < len(s) && s[q] == ' ' {
		q++
	}
	if q < len(s) && strings.IndexByte("ABCDabcd", s[q]) >= 0 && !wordRuneAt(s, q+1) {
		return q + 1
	}
	if wordRuneAt(s, p) {
		return 0
	}
	before, _ := window(s, i, p, 60, 0)
	if contextIn(ninoContext, before) {
		return p
	}
	return 0
}

// accessKeyAt finds an AWS access key id: AKIA (long-term) or ASIA
// (temporary) and 16 upper-case letters or digits.
func accessKeyAt(s string, i int) int {
	if i+20 > len(s) || !(strings.HasPrefix(s[i:], "AKIA") || strings.HasPrefix(s[i:], "ASIA")) {
		return 0
	}
	for p := i + 4; p < i+20; p++ {
		if !isUpper(s[p]) && !isDigit(s[p]) {
			return 0
		}
	}
	if wordRuneAt(s, i+20) {
		return 0
	}
	return i + 20
}

var secretContext = newFoldWords("secret")

// secretKeyAt finds an AWS secret access key: exactly 40 characters of the
// base64 alphabet with upper and lower case letters and digits, and "secret"
// (aws_secret_access_key, SecretAccessKey, "secret key") within 100 bytes
// before it. Without the context a 40-character token is as likely to be a
// hash, an id or a random string.
func secretKeyAt(s string, i int) int {
	if i > 0 && (s[i-1] == '/' || s[i-1] == '+') {
		return 0
	}
	var up, lo, dg bool
	p := i
	for p < len(s) && p-i <= 40 {
		c := s[p]
		cl := class[c]
		switch {
		case cl&cUpper != 0:
			up = true
		case cl&cLower != 0:
			lo = true
		case cl&cDigit != 0:
			dg = true
		case c == '+' || c == '/':
		default:
			goto end
		}
		p++
	}
end:
	if p-i != 40 || !up || !lo || !dg || (p < len(s) && (s[p] == '=' || s[p] == '_' || s[p] == '-')) || wordRuneAt(s, p) {
		return 0
	}
	before, _ := window(s, i, p, 100, 0)
	if !secretContext.contains(before, false) {
		return 0
	}
	return p
}

// macAt finds a MAC address: six hex pairs separated by ':' or '-' (one
// kind), or three groups of four separated by '.'.
func macAt(s string, i int) int {
	if i+14 > len(s) {
		return 0
	}
	var end int
	var sep byte
	switch {
	case s[i+2] == ':' || s[i+2] == '-':
		if i+17 > len(s) {
			return 0
		}
		sep = s[i+2]
		for g := 0; g < 6; g++ {
			p := i + 3*g
			if !isHex(s[p]) || !isHex(s[p+1]) || (g < 5 && s[p+2] != sep) {
				return 0
			}
		}
		end = i + 17
	case s[i+4] == '.':
		sep = '.'
		for g := 0; g < 3; g++ {
			p := i + 5*g
			if !isHex(s[p]) || !isHex(s[p+1]) || !isHex(s[p+2]) || !isHex(s[p+3]) || (g < 2 && s[p+4] != '.') {
				return 0
			}
		}
		end = i + 14
	default:
		return 0
	}
	if wordRuneAt(s, end) || end+1 < len(s) && s[end] == sep && isHex(s[end+1]) {
		return 0
	}
	return end
}

// ipv6At finds an IPv6 address (validated by net/netip) of hex groups and
// colons, with at least two colons and one decimal digit, at s[i].
func ipv6At(s string, i int) int {
	p := i
	for p < len(s) && isHex(s[p]) && p-i < 4 {
		p++
	}
	if p >= len(s) || s[p] != ':' {
		return 0
	}
	colons, digit := 0, false
	p = i
	for p < len(s) && p-i < 46 {
		c := s[p]
		if c == ':' {
			colons++
		} else if isDigit(c) {
			digit = true
		} else if c != '.' && !isHex(c) {
			break
		}
		p++
	}
	if wordRuneAt(s, p) {
		return 0
	}
	for p > i && s[p-1] == '.' {
		p--
	}
	if p > i+1 && s[p-1] == ':' && s[p-2] != ':' {
		p--
		colons--
	}
	if colons < 2 || !digit {
		return 0
	}
	a, err := netip.ParseAddr(s[i:p])
	if err != nil || !a.Is6() {
		return 0
	}
	return p
}
