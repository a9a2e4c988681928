package detect

import "strings"

// Number-shaped PII: IPv4, SSN, card, routing and phone numbers. Each *At
// function looks at the number starting at s[i] (a digit, '+' or '(' at a
// word start) and returns the end of the value, or 0.

func ipv4At(s string, i int) int {
	p := i
	for octet := 0; octet < 4; octet++ {
		if octet > 0 {
			if p >= len(s) || s[p] != '.' {
				return 0
			}
			p++
		}
		e := digitsAt(s, p)
		if e == p || e-p > 3 {
			return 0
		}
		p = e
	}
	ok := numRightOK(s, p)
	if !ok && p+1 < len(s) && s[p] == '/' { // CIDR: 10.0.0.0/8
		e := digitsAt(s, p+1)
		ok = (e-p-1 == 1 || e-p-1 == 2 && (s[p+1] < '3' || s[p+1] == '3' && s[p+2] <= '2')) && numRightOK(s, e)
	}
	if !ok {
		return 0
	}
	if !ipv4Octets(s[i:p]) {
		return 0
	}
	// "version 1.2.3.4", "firmware 2.0.0.1": four-part version numbers.
	before, _ := window(s, i, p, 24, 0)
	if w := lastWord(before); w != "" && versionWords.contains(w, true) {
		return 0
	}
	return p
}

// ipv4Octets reports whether the four dot-separated groups of one to three
// digits in a are octets as net/netip reads them: 255 or less, without a
// leading zero. TestIPv4Octets holds it to netip.ParseAddr.
func ipv4Octets(a string) bool {
	for len(a) > 0 {
		e := 0
		v := 0
		for e < len(a) && a[e] != '.' {
			v = v*10 + int(a[e]-'0')
			e++
		}
		if v > 255 || e > 1 && a[0] == '0' {
			return false
		}
		a = a[min(e+1, len(a)):]
	}
	return true
}

var versionWords = newFoldWords("version", "ver", "v", "firmware", "build", "release", "revision", "rev", "patch", "update", "driver", "bios")

// lastWord returns the last word of s when only spaces, ':' or '#' follow it.
func lastWord(s string) string {
	e := len(s)
	for e > 0 && (s[e-1] == ' ' || s[e-1] == ':' || s[e-1] == '#') {
		e--
	}
	b := e
	for b > 0 && isAlpha(s[b-1]) {
		b--
	}
	return s[b:e]
}

var ssnContext = newFoldWords("ssn", "ssns", "social security", "social sec", "social", "itin", "ss#")

func ssnAt(s string, i int, lbl piiKind) int {
	e1 := digitsAt(s, i)
	switch e1 - i {
	case 3:
		p, w1 := sepEnd(s, e1)
		if p == e1 {
			return 0
		}
		e2 := digitsAt(s, p)
		if e2-p != 2 {
			return 0
		}
		q, w2 := sepEnd(s, e2)
		if q == e2 {
			return 0
		}
		e3 := digitsAt(s, q)
		if e3-q != 4 || !numRightOK(s, e3) {
			return 0
		}
		if !validSSN(s[i:e1], s[p:e2], s[q:e3]) {
			return 0
		}
		// "2023   118  45  6789": a wide gap between numbers of a table
		// row is not an SSN unless the row says so.
		if (w1 || w2) && lbl&kSSN == 0 && inNumberRow(s, i, e3) {
			before, _ := window(s, i, e3, 60, 0)
			if !contextIn(ssnContext, before) {
				return 0
			}
		}
		return e3
	case 9:
		if !numRightOK(s, e1) || !validSSN(s[i:i+3], s[i+3:i+5], s[i+5:i+9]) {
			return 0
		}
		if lbl&kSSN != 0 {
			return e1
		}
		before, _ := window(s, i, e1, 60, 0)
		if !contextIn(ssnContext, before) {
			return 0
		}
		return e1
	}
	return 0
}

// sepEnd returns the end of a separator between digit groups at s[p], or p
// when there is none: up to three spaces or tabs, or one of - . _ / with up
// to three spaces or tabs on either side ("123-45", "4111.1111", "123 - 45",
// "4111  1111"). wide reports a gap of whitespace alone wider than one space,
// as table columns are.
func sepEnd(s string, p int) (end int, wide bool) {
	q := p
	for q < len(s) && q-p < 3 && (s[q] == ' ' || s[q] == '\t') {
		q++
	}
	sp := q - p
	if q < len(s) && (s[q] == '-' || s[q] == '.' || s[q] == '_' || s[q] == '/') {
		q++
		r := q
		for q < len(s) && q-r < 3 && (s[q] == ' ' || s[q] == '\t') {
			q++
		}
		return q, false
	}
	return q, sp > 1 || sp == 1 && s[p] == '\t'
}

// inNumberRow reports whether the number at [i,e) is in a table of numbers:
// another number beside it, separated by whitespace only, or a line just
// above or below that holds nothing but numbers separated by whitespace
// ("123\t45\t6789\n124\t46\t6790").
func inNumberRow(s string, i, e int) bool {
	b := i
	for b > 0 && (s[b-1] == ' ' || s[b-1] == '\t') {
		b--
	}
	if b < i && b > 0 && isDigit(s[b-1]) {
		return true
	}
	r := e
	for r < len(s) && (s[r] == ' ' || s[r] == '\t') {
		r++
	}
	if r < len(s) && isDigit(s[r]) && (r == 0 || !isDigit(s[r-1])) {
		return true
	}
	// The lines around: [ls, le) is the number's line.
	ls := strings.LastIndexByte(s[:i], '\n') + 1
	le := len(s)
	if k := strings.IndexByte(s[e:], '\n'); k >= 0 {
		le = e + k
	}
	if ls > 0 {
		ps := strings.LastIndexByte(s[:ls-1], '\n') + 1
		if numberRowLine(s[ps : ls-1]) {
			return true
		}
	}
	if le < len(s) {
		ne := len(s)
		if k := strings.IndexByte(s[le+1:], '\n'); k >= 0 {
			ne = le + 1 + k
		}
		if numberRowLine(s[le+1 : ne]) {
			return true
		}
	}
	return false
}

// numberRowLine reports whether line holds two or more numbers and nothing
// but whitespace between them.
func numberRowLine(line string) bool {
	runs := 0
	for k := 0; k < len(line); k++ {
		switch c := line[k]; {
		case isDigit(c):
			if k == 0 || !isDigit(line[k-1]) {
				runs++
			}
		case c == ' ' || c == '\t' || c == '\r':
		default:
			return false
		}
	}
	return runs >= 2
}

// validSSN applies the SSA's rules: area not 000, 666 or 9xx; group not 00;
// serial not 0000.
func validSSN(area, group, serial string) bool {
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

// cardMayStart is false where cardAt finds nothing, without walking
// the groups: a first group of one or two digits is a card only as the
// whole run of small groups, which a number before i rules out. Each start
// in a run of "1 1 1 …" would otherwise walk up to 20 groups
// (TestNumberEarlyExits holds it to cardAt; digitToken asks it first).
func cardMayStart(s string, i int) bool {
	e := digitsAt(s, i)
	return e-i >= 3 || e == i || !numberBefore(s, i)
}

// cardAt finds 13 to 19 digits, contiguous or in groups separated by spaces,
// dashes, dots, underscores or slashes (mixed, see sepEnd), that pass the
// Luhn check and start with a known issuer prefix. Groups are 3 digits or
// more, and when more groups follow the number ("4111 1111 1111 1111 12/26")
// the longest valid prefix of groups wins. Groups of 1
// or 2 digits ("4 1 1 1 ...", "41 11 11 ...") count only when the whole run,
// and nothing more, is the number.
func cardAt(s string, i int) int {
	const maxGroups = 20
	var ends [maxGroups]int // end of each group
	var total [maxGroups]int
	var wideTo [maxGroups]bool // a wide gap before group g
	ng := 0
	p := i
	wide, more := false, false
	for {
		e := digitsAt(s, p)
		if e == p {
			break
		}
		prev := 0
		if ng > 0 {
			prev = total[ng-1]
		}
		if prev+e-p > 19 || ng == maxGroups {
			more = true
			break
		}
		ends[ng], total[ng], wideTo[ng] = e, prev+e-p, wide
		ng++
		q, w := sepEnd(s, e)
		if q == e || q >= len(s) || !isDigit(s[q]) {
			break
		}
		wide = wide || w
		p = q
	}
	if ng == 0 || ibanShapedBefore(s, i) {
		return 0
	}
	if ng == 1 && !numRightOK(s, ends[0]) {
		return 0
	}
	// A number whose own groups are apart by table-wide gaps, in a table
	// of numbers, is columns, not a card. Only its own gaps count: two
	// cards two spaces apart are two cards (the first was missed).
	table := wide && inNumberRow(s, i, ends[ng-1])
	full, small := ng, false
	if ng > 1 {
		// Grouped: groups of 3 or more digits ("4111 1111 11111111" is what
		// a zero-width joiner between two groups leaves).
		start := i
		for g := 0; g < ng; g++ {
			if ends[g]-start < 3 {
				small = true
				ng = g
				break
			}
			start, _ = sepEnd(s, ends[g])
		}
	}
	if small && !more && total[full-1] >= 13 && numRightOK(s, ends[full-1]) && !numberBefore(s, i) && !(table && wideTo[full-1]) {
		if validCard(s[i:ends[full-1]], total[full-1]) {
			return ends[full-1]
		}
	}
	for g := ng - 1; g >= 0; g-- {
		if total[g] < 13 {
			break
		}
		if total[g] > 19 || table && wideTo[g] {
			continue
		}
		if !numRightOK(s, ends[g]) {
			if q, _ := sepEnd(s, ends[g]); q == ends[g] {
				continue
			}
		}
		if validCard(s[i:ends[g]], total[g]) {
			return ends[g]
		}
	}
	return 0
}

// numberBefore reports whether a number ends just before i, separated by
// whitespace or a group separator.
func numberBefore(s string, i int) bool {
	b := i
	for b > 0 && i-b < 4 && (s[b-1] == ' ' || s[b-1] == '\t' || s[b-1] == '-' || s[b-1] == '.' || s[b-1] == '/' || s[b-1] == '_') {
		b--
	}
	return b < i && b > 0 && isDigit(s[b-1])
}

// validCard checks the Luhn digit and the issuer prefix of the n digits in v
// (which may hold separators).
// ibanShapedBefore reports whether the digits at i continue a group sequence
// that starts like an IBAN ("AT39 2636 8431 ..."): such digits are a bank
// account (whose own check failed, or it would have been reported), not a card.
func ibanShapedBefore(s string, i int) bool {
	if i < 5 || (s[i-1] != ' ' && s[i-1] != '-') {
		return false
	}
	g := s[i-5 : i-1]
	return isAlpha(g[0]) && isAlpha(g[1]) && isDigit(g[2]) && isDigit(g[3]) && !wordRuneBefore(s, i-5)
}

func validCard(v string, n int) bool {
	var d [19]byte
	k := 0
	for j := 0; j < len(v) && k < n; j++ {
		if isDigit(v[j]) {
			d[k] = v[j] - '0'
			k++
		}
	}
	sum := 0
	for j := 0; j < n; j++ {
		x := int(d[n-1-j])
		if j%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	if sum%10 != 0 {
		return false
	}
	p2 := int(d[0])*10 + int(d[1])
	p3 := p2*10 + int(d[2])
	p4 := p3*10 + int(d[3])
	switch {
	case d[0] == 4: // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65, p2 == 62: // Discover, UnionPay
		return n >= 16
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p3 >= 300 && p3 <= 305, p4 == 3095, p2 == 36, p2 == 38, p2 == 39: // Diners Club
		return n >= 14
	case p4 >= 2200 && p4 <= 2204: // Mir
		return n >= 16
	case p2 == 50, p2 >= 56 && p2 <= 58, p2 == 63, p2 == 67, p2 == 60: // Maestro, RuPay
		return n >= 13
	}
	return false
}

var routingContext = newFoldWords("routing", "aba", "rtn", "ach", "transit", "abartn")

// routingAt finds nine digits that pass the ABA checksum, start with a
// Federal Reserve prefix and have a routing context word nearby.
func routingAt(s string, i int, lbl piiKind) int {
	e := digitsAt(s, i)
	if e-i != 9 || !numRightOK(s, e) {
		return 0
	}
	d := s[i:e]
	pfx := int(d[0]-'0')*10 + int(d[1]-'0')
	if !(pfx <= 12 || pfx >= 21 && pfx <= 32 || pfx >= 61 && pfx <= 72 || pfx == 80) {
		return 0
	}
	sum := 0
	for j := 0; j < 9; j += 3 {
		sum += 3*int(d[j]-'0') + 7*int(d[j+1]-'0') + int(d[j+2]-'0')
	}
	if sum%10 != 0 {
		return 0
	}
	if lbl&kRouting != 0 {
		return e
	}
	before, after := window(s, i, e, 60, 30)
	if !contextIn(routingContext, before) && !contextIn(routingContext, after) {
		return 0
	}
	return e
}

var phoneContext = newFoldWords("phone", "call", "tel", "telephone", "mobile", "cell", "fax", "sms", "text", "whatsapp", "dial", "contact", "reach", "ring")

type phoneGroup struct {
	start, end int  // the digits
	close      int  // end including a closing parenthesis
	paren      bool // written as (123)
	sep        byte // separator before the group: 0 for the first, ' ', '-', '.', or ')' for none after a parenthesis
}

// phoneAt recognises, at s[i]:
//   - +CC ...: '+' and 8 to 15 digits in groups (E.164), or the same after 00;
//   - North American numbers: [1 ](NPA) NXX-XXXX, NPA-NXX-XXXX, NPA.NXX.XXXX,
//     NPA NXX XXXX (area code and exchange starting 2-9);
//   - national numbers with a trunk 0 in 2 to 5 groups of 10 or 11 digits
//     ("020 7946 0958", "07700 900123", "01 23 45 67 89");
//   - ten bare NANP digits, only with a phone context word before them.
//
// phoneRightOK is numRightOK that also accepts an extension ("x89").
func phoneRightOK(s string, e int) bool {
	return numRightOK(s, e) || e+1 < len(s) && (s[e] == 'x' || s[e] == 'X') && isDigit(s[e+1])
}

// nanpShape reports whether three groups are written as a North American
// number: 3, 3 and 4 digits, only the first in parentheses.
func nanpShape(g []phoneGroup) bool {
	return g[0].end-g[0].start == 3 && g[1].end-g[1].start == 3 && g[2].end-g[2].start == 4 &&
		!g[1].paren && !g[2].paren && g[2].sep != ')'
}

// nextNANP reports whether the groups after a North American number start
// another one after a space: a list of numbers ("(415) 555-2671 (212)
// 555-0198") is read as one run of groups, whose first number counts as
// a number on its own; any other group after it (a longer number, or a
// sequence of digit groups) does not let it count.
func nextNANP(s string, g []phoneGroup) bool {
	if g[0].sep != ' ' {
		return false
	}
	k := 0
	if len(g) >= 4 && g[0].end-g[0].start == 1 && s[g[0].start] == '1' && !g[0].paren {
		k = 1 // "1 (212) 555-0198"
	}
	return len(g)-k >= 3 && nanpShape(g[k:k+3])
}

// phoneMayStart is false where phoneAt finds nothing, read off the
// first group without gathering up to eight: a number that starts with a
// bare group of digits is international only after "00", North American
// only from a group of three or a "1" before one, national only from a
// trunk 0 with no number before it, and bare only as 10 or 11 digits. Each
// start in a run of "1 1 1 …" or "0 0 0 …" would otherwise gather eight
// groups (TestNumberEarlyExits holds it to phoneAt; digitToken asks it first).
func phoneMayStart(s string, i int) bool {
	if s[i] == '+' || s[i] == '(' {
		return true
	}
	e := digitsAt(s, i)
	switch n := e - i; {
	case n == 0, n == 3, n == 10, n == 11, n >= 2 && s[i] == '0' && s[i+1] == '0':
		return true
	case n == 1 && s[i] == '1':
		// "1 (415) …", "1-415-…": a group of three (or a parenthesis)
		// after one separator.
		if e+1 < len(s) && (s[e] == ' ' || s[e] == '-' || s[e] == '.') {
			if s[e+1] == '(' {
				return true
			}
			return digitsAt(s, e+1)-(e+1) == 3
		}
		return false
	}
	return s[i] == '0' && !numberBefore(s, i)
}

func phoneAt(s string, i int, lbl piiKind) int {
	var g [8]phoneGroup
	ng := 0
	p := i
	plus := s[p] == '+'
	if plus {
		p++
	}
	var sep byte
	for ng < len(g) && p < len(s) {
		paren := s[p] == '('
		q := p
		if paren {
			q++
		}
		e := digitsAt(s, q)
		// A group holds at most 12 digits, but a number written whole
		// after '+' may hold 15 (E.164: "+8613812345678").
		if e == q || e-q > 12 && !(plus && ng == 0 && e-q <= 15) {
			break
		}
		cl := e
		if paren {
			if e >= len(s) || s[e] != ')' {
				break
			}
			cl = e + 1
		} else if plus && ng == 0 && i > 0 && s[i-1] == '(' && e < len(s) && s[e] == ')' && countryCodeShape(s[q:e]) {
			// "(+44) 20 7946 0958": the country code in parentheses
			// (the finding starts at the '+'; a "(+3)" no country code
			// is, is a delta: "scores: 12 (+3) 45 67 89 10").
			paren, cl = true, e+1
		}
		g[ng] = phoneGroup{start: q, end: e, close: cl, paren: paren, sep: sep}
		ng++
		// A separator, then another group?
		p = cl
		if paren && p < len(s) && isDigit(s[p]) {
			sep = ')'
			continue
		}
		if p+1 < len(s) && (s[p] == ' ' || s[p] == '-' || s[p] == '.') && (isDigit(s[p+1]) || s[p+1] == '(') {
			sep = s[p]
			p++
			continue
		}
		break
	}
	if ng == 0 {
		return 0
	}
	digits := 0
	for k := 0; k < ng; k++ {
		digits += g[k].end - g[k].start
	}
	first := s[g[0].start]

	// International: +CC or 00CC.
	if plus || (g[0].end-g[0].start >= 2 && s[g[0].start:g[0].start+2] == "00" && ng > 1 && !g[0].paren) {
		drop := 0
		if !plus {
			drop = 2
			first = s[g[0].start+2] // the country code's first digit
			if g[0].end-g[0].start == 2 {
				first = s[g[1].start] // "00 44 …": in the next group
			}
		}
		if first == '0' {
			return 0
		}
		n := -drop
		best := 0
		for k := 0; k < ng; k++ {
			n += g[k].end - g[k].start
			if n > 15 {
				break
			}
			if n >= 8 && (k < ng-1 || phoneRightOK(s, g[k].close)) {
				best = g[k].close
			}
		}
		return best
	}

	// North American.
	k := 0
	if ng >= 4 && g[0].end-g[0].start == 1 && first == '1' && !g[0].paren {
		k = 1
	}
	if (ng-k == 3 || ng-k > 3 && nextNANP(s, g[k+3:ng])) && nanpShape(g[k:k+3]) && phoneRightOK(s, g[k+2].close) {
		// Real area codes and exchanges start 2-9; the numbers people
		// write as examples and placeholders ("(555) 123-4567") often do
		// not, yet are phone numbers to whoever reads them: such a number
		// counts when its area code is in parentheses or a phone word
		// comes before it.
		if s[g[k].start] >= '2' && s[g[k+1].start] >= '2' || g[k].paren || lbl&kPhone != 0 {
			return g[k+2].close
		}
		// So does the placeholder area code 555 written 3-3-4 with
		// dashes or with dots ("555-123-4567"); other such runs with
		// an exchange from 0 or 1 are often ids ("RMA 123-456-7891").
		if sep := g[k+1].sep; (sep == '-' || sep == '.') && g[k+2].sep == sep && s[g[k].start:g[k].end] == "555" {
			return g[k+2].close
		}
		if before, _ := window(s, i, g[k+2].close, 40, 0); contextIn(phoneContext, before) {
			return g[k+2].close
		}
	}

	// National with a trunk 0, not the tail of a longer run of groups
	// ("01 02 03 04 05 06" is a sequence, not 02 03 04 05 06).
	if first == '0' && ng >= 2 && ng <= 5 && (digits == 10 || digits == 11) && s[g[0].start+1] != '0' && phoneRightOK(s, g[ng-1].close) &&
		!numberBefore(s, i) {
		ok := true
		for k := 0; k < ng; k++ {
			n := g[k].end - g[k].start
			if n < 2 || (k > 0 && (g[k].paren || g[k].sep == '.')) {
				ok = false
				break
			}
		}
		if ok && g[0].end-g[0].start <= 5 {
			return g[ng-1].close
		}
	}

	// Bare digits with context.
	if ng == 1 && !g[0].paren && phoneRightOK(s, g[0].end) {
		d := s[g[0].start:g[0].end]
		if len(d) == 11 && d[0] == '1' {
			d = d[1:]
		}
		if len(d) == 10 && d[0] >= '2' && d[3] >= '2' {
			before, _ := window(s, i, g[0].end, 40, 0)
			if lbl&kPhone != 0 || contextIn(phoneContext, before) {
				return g[0].end
			}
		}
	}
	return 0
}

// countryCodeShape reports whether the digits cc may be a country code
// written alone in parentheses: 1 or 7, two or three digits that start with
// none of 0, 1 and 7 (every +1… and +7… number is North American or
// Russian), or +1 with a North American area code run on ("(+1868)").
func countryCodeShape(cc string) bool {
	switch len(cc) {
	case 1:
		return cc == "1" || cc == "7"
	case 2, 3:
		return cc[0] != '0' && cc[0] != '1' && cc[0] != '7'
	case 4:
		return cc[0] == '1'
	}
	return false
}

// contextIn is f.contains(s, true) that passes at once over text without
// an ASCII letter, eight bytes at a time: the context words start with
// one, and on number-dense text (tables, logs) the 60 bytes before a
// number often hold none.
func contextIn(f *foldWords, s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if inRange(load64(s, i)|lsb*0x20, 'a', 'z') != 0 {
			return f.contains(s, true)
		}
	}
	for ; i < len(s); i++ {
		if isAlpha(s[i]) {
			return f.contains(s, true)
		}
	}
	return false
}
