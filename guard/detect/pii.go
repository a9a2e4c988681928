package detect

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// PII entity types, named as Amazon Bedrock Guardrails names them.
const (
	Email                     = "EMAIL"
	Phone                     = "PHONE"
	USSocialSecurityNumber    = "US_SOCIAL_SECURITY_NUMBER"
	CreditDebitCardNumber     = "CREDIT_DEBIT_CARD_NUMBER"
	IBAN                      = "INTERNATIONAL_BANK_ACCOUNT_NUMBER"
	USBankRoutingNumber       = "US_BANK_ROUTING_NUMBER"
	IPAddress                 = "IP_ADDRESS"
	MACAddress                = "MAC_ADDRESS"
	URL                       = "URL"
	AWSAccessKey              = "AWS_ACCESS_KEY"
	AWSSecretKey              = "AWS_SECRET_KEY"
	UKNationalInsuranceNumber = "UK_NATIONAL_INSURANCE_NUMBER"
)

// PIITypes lists the built-in PII types, in a fixed order.
var piiTypes = [...]string{
	Email, Phone, USSocialSecurityNumber, CreditDebitCardNumber, IBAN, USBankRoutingNumber,
	IPAddress, MACAddress, URL, AWSAccessKey, AWSSecretKey, UKNationalInsuranceNumber,
}

// PIITypes returns the names of the built-in PII types.
func PIITypes() []string { return slices.Clone(piiTypes[:]) }

// idTypes are the built-in types that are numbers or keys: the ones worth
// looking for in identifiers (tool-use ids), which hold no prose.
var idTypes = [...]string{
	Phone, USSocialSecurityNumber, CreditDebitCardNumber, IBAN, USBankRoutingNumber,
	UKNationalInsuranceNumber, AWSAccessKey, AWSSecretKey,
}

// IDTypes returns the built-in types that are numbers or keys, in PIITypes
// order.
func IDTypes() []string { return slices.Clone(idTypes[:]) }

type piiKind uint16

const (
	kEmail piiKind = 1 << iota
	kPhone
	kSSN
	kCard
	kIBAN
	kRouting
	kIP
	kMAC
	kURL
	kAccessKey
	kSecretKey
	kNINO
)

func kindOf(name string) (piiKind, bool) {
	for i, t := range piiTypes {
		if t == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// PIIConfig selects what a PII detector finds.
type PIIConfig struct {
	// Types are built-in type names (see PIITypes); empty means all of them.
	Types []string
	// Regexes are custom types: finding type name -> RE2 expression
	// (package regexp syntax). Each match becomes a finding of that type.
	Regexes map[string]string
}

// PII finds personal data and credentials with hand-written scanners (one
// pass over the text, plus an IndexByte pass for '@') and validates what has a
// checksum or a structure: card numbers (Luhn and issuer prefix), IBANs
// (country length and mod-97), ABA routing numbers, SSN area/group/serial,
// IP addresses (net/netip), National Insurance prefixes. Values that fail
// their check are never reported.
//
// Some types are ambiguous without context and are only reported when a
// context word appears near the value (within about 60 bytes before it, or
// a few after), case-insensitively:
//   - US_BANK_ROUTING_NUMBER: any nine digits pass the ABA checksum one time in
//     ten, so a routing number needs "routing", "ABA", "RTN", "ACH" or "transit";
//   - AWS_SECRET_KEY: 40 base64 characters (with upper, lower case and digits)
//     need "secret" before them (aws_secret_access_key, SecretAccessKey, ...);
//   - US_SOCIAL_SECURITY_NUMBER written as nine bare digits needs "SSN",
//     "social security" or "ITIN" (the 123-45-6789 and 123 45 6789 forms do not);
//   - PHONE written as ten bare digits needs "phone", "call", "tel", "mobile", ...
//     (formatted numbers, +country and (area) forms do not);
//   - UK_NATIONAL_INSURANCE_NUMBER without its final letter needs "national
//     insurance", "NINO" or "NI number".
type PII struct {
	kinds   piiKind
	regexes []namedRegexp
	// scans holds *triggerScan for Detect: their buffers (~4.6 KB) are
	// reused as they were left, not cleared for every text (trigBufs).
	scans sync.Pool
}

type namedRegexp struct {
	name string
	re   *regexp.Regexp
}

// NewPII returns a PII detector for cfg.
func NewPII(cfg PIIConfig) (*PII, error) {
	p := &PII{}
	if len(cfg.Types) == 0 {
		p.kinds = 1<<len(piiTypes) - 1
	}
	for _, t := range cfg.Types {
		k, ok := kindOf(t)
		if !ok {
			return nil, fmt.Errorf("pii: unknown type %q (known: %s)", t, strings.Join(piiTypes[:], ", "))
		}
		p.kinds |= k
	}
	names := make([]string, 0, len(cfg.Regexes))
	for name := range cfg.Regexes {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" {
			return nil, fmt.Errorf("pii: custom regex with an empty name")
		}
		re, err := regexp.Compile(cfg.Regexes[name])
		if err != nil {
			return nil, fmt.Errorf("pii: custom regex %q: %w", name, err)
		}
		p.regexes = append(p.regexes, namedRegexp{name, re})
	}
	return p, nil
}

// Name implements Detector.
func (p *PII) Name() string { return "pii" }

func (p *PII) emit(dst []Finding, typ string, start, end int) []Finding {
	return append(dst, Finding{Type: typ, Detector: "pii", Start: start, End: end})
}

// Detect implements Detector.
func (p *PII) Detect(s string, dst []Finding) []Finding {
	k := p.kinds
	const wordKinds = kPhone | kSSN | kCard | kIBAN | kRouting | kIP | kMAC | kNINO
	// Values with a fixed marker are found by searching for it (IndexByte
	// and Index are vectorised), the rest in one pass over word starts.
	// That pass classifies every 64-byte block of the text (triggerScan),
	// and the bitmaps also give the URL markers, the key runs and the
	// '@' the email search starts from.
	walk := k&wordKinds != 0 && hasAVX2()
	if k&kEmail != 0 && !walk {
		dst = p.detectEmails(s, dst)
	}
	index := func(off, k int) int {
		if j := indexLit(s[off:], markLits[k]); j >= 0 {
			return off + j
		}
		return -1
	}
	key20 := func() bool { return keyRunAtLeast(s, 20) }
	key40 := func() bool { return keyRunAtLeast(s, 40) }
	var ts *triggerScan
	if walk {
		ts = p.triggerScan(s)
		dst = p.walkWords(s, ts, dst)
		if k&kEmail != 0 && ts.atsOver {
			dst = p.detectEmails(s, dst)
		} else if k&kEmail != 0 {
			dst = p.detectEmailsAt(s, dst, ts.ats[:ts.nAts])
		}
		if !ts.marksOver {
			index = ts.marks.indexKind
		}
		key20 = func() bool { return ts.key20 }
		key40 = func() bool { return ts.key40 }
	} else if k&wordKinds != 0 {
		dst = p.walkWords(s, nil, dst)
	}
	if k&kURL != 0 {
		dst = p.detectURLs(s, dst, index)
	}
	// Keys are runs of 20 (access key ids) or 40 (secret keys) base64
	// characters: text without such a run is passed without four
	// substring searches.
	if k&(kAccessKey|kSecretKey) != 0 && key20() {
		if k&kAccessKey != 0 {
			dst = p.detectMarked(s, dst, "AKIA", AWSAccessKey, accessKeyAt)
			dst = p.detectMarked(s, dst, "ASIA", AWSAccessKey, accessKeyAt)
		}
		if k&kSecretKey != 0 && key40() {
			dst = p.detectSecrets(s, dst)
		}
	}
	for _, r := range p.regexes {
		for _, m := range r.re.FindAllStringIndex(s, -1) {
			if m[1] > m[0] {
				dst = p.emit(dst, r.name, m[0], m[1])
			}
		}
	}
	if ts != nil {
		ts.release()
		p.scans.Put(ts)
	}
	return dst
}

// detectWords walks word starts and runs the number- and code-shaped checks.
// Every value it reports holds a trigger (see isTrigger) a few bytes after
// its start, so it jumps over text with no trigger ahead to a byte the plain
// walk (wordStep from 0) would also stop at: a non-word byte, which the walk
// only passes over inside a value it found. FuzzDetectWordsSkip compares it
// with the plain walk.
func (p *PII) detectWords(s string, dst []Finding) []Finding {
	if !hasAVX2() {
		return p.walkWords(s, nil, dst)
	}
	ts := p.triggerScan(s)
	dst = p.walkWords(s, ts, dst)
	ts.release()
	p.scans.Put(ts)
	return dst
}

// triggerScan returns a triggerScan for s from p.scans, or a new one: its
// state zero, its buffers as the last text left them. Release it and put
// it back when done.
func (p *PII) triggerScan(s string) *triggerScan {
	ts, _ := p.scans.Get().(*triggerScan)
	if ts == nil {
		return newTriggerScan(s)
	}
	ts.trigState = trigState{s: s}
	return ts
}

// walkWords is detectWords with the triggers from ts, which it leaves with
// every block of s classified, or (ts nil) from nextTrigger: without AVX2
// the bitmaps cost more than nextTrigger's SWAR search on prose.
func (p *PII) walkWords(s string, ts *triggerScan, dst []Finding) []Finding {
	n := len(s)
	for i := 0; i < n; {
		var t, back int
		if ts != nil {
			t, back = ts.next(i)
		} else {
			t, back = nextTrigger(s, i)
		}
		if t == n {
			break
		}
		if q := syncBefore(s, i, t-back); q > i {
			i = q
		}
		for i < n && i <= t {
			if c := s[i]; class[c]&(cDigit|cUpper|cLower) == 0 && c != '+' && c != '(' {
				i++ // what wordStep does with a byte that starts nothing
				continue
			}
			dst, i = p.wordStep(s, i, dst)
		}
	}
	if ts != nil {
		// The walk may end inside a value or word that runs to the end of
		// the text past the chunks classified so far: the key runs and
		// URL markers are gathered from every block.
		ts.finish()
	}
	return dst
}

// nextTrigger returns the first position t at or after i that may lie in a
// number- or code-shaped value near its start, and how far before t such a
// value may start; or len(s). See isTrigger.
func nextTrigger(s string, i int) (t, back int) {
	n := len(s)
	for i+8 <= n {
		m := inRange(load64(s, i), '-', ':') // - . / 0-9 :
		next := i + 8
		for m != 0 {
			t := i + firstByte(m)
			m &= m - 1
			back, after := isTrigger(s, t)
			if back >= 0 {
				return t, back
			}
			if after >= next {
				next = after
				break
			}
			m &^= 1<<(8*(after-i)) - 1 // the rest of a digit run
		}
		i = next
	}
	for i < n {
		if c := s[i]; c >= '-' && c <= ':' {
			back, after := isTrigger(s, i)
			if back >= 0 {
				return i, back
			}
			i = after
			continue
		}
		i++
	}
	return n, 0
}

// isTrigger reports whether s[t] (one of - . / 0-9 :) may lie in a value
// that starts at most back bytes before it (back < 0: no value); if not,
// after is where to look on (past a digit run). The values the word walk
// reports and their first triggers:
//   - numbers (IPv4, SSN, card, routing, phone): their first digit starts a
//     run of digits and group separators (see clusterDigits) holding nine
//     digits or more, or four or more and three dots followed by a digit
//     (IPv4); the value
//     starts there or at a '(' before it; or the digit follows '+' (an
//     international phone number);
//   - a label or country code glued to digits ("SSN123", "card_4111",
//     "DE89...", "AB123456C"): a digit after a label, or two digits after
//     two letters that start a word, directly or, as the digits of a
//     National Insurance number, after a space ("AB 12 34 56 C");
//   - IPv6 and MAC addresses: a ':' after a hex digit that starts a run
//     with "::" or five colons (colonAddress), or the first '-' or '.' of a
//     MAC address (the next separators in their places), up to four hex
//     digits after the address's start.
//
// A value that starts in an earlier word than the one holding t-back meets
// an earlier trigger: its letters make a glued or two-letter trigger, and
// its separators a MAC or IPv6 one.
func isTrigger(s string, t int) (back, after int) {
	switch c := s[t]; c {
	case '/':
		return -1, t + 1
	case ':':
		if t > 0 && isHex(s[t-1]) && colonAddress(s, t) {
			return 4, t + 1
		}
		return -1, t + 1
	case '-', '.':
		if macSep(s, t) {
			return 4, t + 1
		}
		return -1, t + 1
	}
	if t > 0 {
		switch p := s[t-1]; {
		case p == '+':
			return 1, t + 1
		case isAlpha(p) || p == '_':
			if b := gluedBefore(s, t); b >= 0 {
				return t - b, t + 1
			}
		case p == ' ' && t >= 3 && isAlpha(s[t-2]) && isAlpha(s[t-3]) && !alnumBefore(s, t-3) && ninoDigits(s, t):
			return 3, t + 1 // "AB 12 34 56 C"
		}
	}
	// A digit run and the runs after it in the same cluster are passed
	// together (theirs are suffixes of this one), up to a separator that
	// may start a MAC address.
	d, dots, resume := 0, 0, -1
	p := t
scan:
	for ; p < len(s); p++ {
		switch clusterClass[s[p]] {
		case ccDigit:
			if d++; d == 13 {
				break scan
			}
		case ccDot:
			if p+1 < len(s) && isDigit(s[p+1]) {
				dots++
			}
			fallthrough
		case ccDash:
			if resume < 0 && macSep(s, p) {
				resume = p
			}
		case ccStop:
			break scan
		}
	}
	if d >= 9 || d >= 4 && dots >= 3 {
		if (t == 0 || plainBefore(s[t-1])) && !numberMayStart(s, t, digitsAt(s, t)-t, d) {
			// Only this run is passed: the cluster's next runs start
			// words of their own.
			return -1, digitsAt(s, t)
		}
		return 1, t + 1
	}
	if resume >= 0 {
		return -1, resume
	}
	return -1, p
}

// plainBefore reports whether c, the byte before a digit, makes the digit
// a word start at which the word walk looks only at the number: c starts
// nothing itself (no '(' or '+' of a phone number) and is no word byte (the
// walk would start from the word's start).
func plainBefore(c byte) bool {
	return c < utf8.RuneSelf && class[c]&cWord == 0 && c != '(' && c != '+'
}

// numberMayStart reports whether a value may start at the word start t, a
// run of run digits in a cluster holding d digits (counted up to 13): what
// digitToken and hexToken need there. An IPv4 address or an SSN starts
// with at most three digits, a phone number with three, or one, or a
// trunk 0, or is ten or eleven digits; an SSN or routing number of nine;
// a card number is 13 or more digits; an IPv6 or MAC address starting
// with four digits has ':' or '.' after them. A run of 4 to 8 digits, or
// 12, in a cluster of fewer than 13 is none of them ("1000-2000-000").
func numberMayStart(s string, t, run, d int) bool {
	return run <= 3 || run >= 9 || d >= 13 || s[t] == '0' ||
		run == 4 && t+4 < len(s) && (s[t+4] == '.' || s[t+4] == ':')
}

// macSep reports whether the '-' or '.' at t may be the first separator of
// a MAC address: after a hex digit, with the next separators in their
// places ("ab-cd-ef-...", "abcd.ef01.2345").
func macSep(s string, t int) bool {
	if t == 0 || !isHex(s[t-1]) {
		return false
	}
	if s[t] == '-' {
		return t+6 < len(s) && s[t+3] == '-' && s[t+6] == '-'
	}
	return t+5 < len(s) && s[t+5] == '.'
}

// colonAddress reports whether the run of hex digits, colons and dots from
// the colon at t may hold an IPv6 address (which has "::" or six colons or
// more) or a MAC address (five colons); times ("08:01:07") hold neither.
func colonAddress(s string, t int) bool {
	colons := 0
	for p := t; p < len(s) && p-t < 46; p++ {
		switch c := s[p]; {
		case c == ':':
			if colons++; colons >= 5 || s[p-1] == ':' {
				return true
			}
		case c != '.' && !isHex(c):
			return false
		}
	}
	return false
}

// gluedBefore returns where the letters (and '_') before the digit at t
// start when they make a word start that a value may begin with: a country
// code or National Insurance prefix (two letters) or a label ("SSN123",
// "ssn_1"); or -1.
func gluedBefore(s string, t int) int {
	j := t
	if s[j-1] == '_' {
		j--
	}
	b := j
	for b > 0 && j-b <= maxLabel && isAlpha(s[b-1]) {
		b--
	}
	if b == j || j-b > maxLabel || alnumBefore(s, b) {
		return -1
	}
	if j-b == 2 && j == t && t+1 < len(s) && isDigit(s[t+1]) || labelKind(s[b:j]) != 0 {
		return b
	}
	return -1
}

// ninoDigits reports whether the digits of a National Insurance number
// written in pairs start at t: two digits, then two pairs of two digits,
// each after an optional space (see ninoAt).
func ninoDigits(s string, t int) bool {
	p := t
	for pair := 0; pair < 3; pair++ {
		if pair > 0 && p < len(s) && s[p] == ' ' {
			p++
		}
		if p+2 > len(s) || !isDigit(s[p]) || !isDigit(s[p+1]) {
			return false
		}
		p += 2
	}
	return true
}

// alnumBefore reports whether an ASCII letter or digit precedes s[i]: then
// the word walk never starts a word at i.
func alnumBefore(s string, i int) bool { return i > 0 && isAlnum(s[i-1]) }

// syncBefore returns the last non-word byte in [lo, hi], or lo.
func syncBefore(s string, lo, hi int) int {
	for q := hi; q > lo; q-- {
		if class[s[q]]&cWord == 0 {
			return q
		}
	}
	return lo
}

// wordStep is one step of the walk over word starts from s[i]: it runs the
// checks that may start there and returns dst and where the walk goes on.
func (p *PII) wordStep(s string, i int, dst []Finding) ([]Finding, int) {
	k := p.kinds
	n := len(s)
	c := s[i]
	cl := class[c]
	if cl&(cDigit|cUpper|cLower) == 0 {
		if (c == '+' || c == '(') && k&kPhone != 0 && i+1 < n && isDigit(s[i+1]) && !wordRuneBefore(s, i) {
			if end := phoneAt(s, i, 0); end > 0 {
				return p.emit(dst, Phone, i, end), end
			}
		}
		return dst, i + 1
	}
	// i starts a word unless a non-ASCII letter precedes it (ASCII word
	// runs are skipped whole).
	if i > 0 && s[i-1] >= utf8.RuneSelf && wordRuneBefore(s, i) {
		return dst, skipWord(s, i)
	}
	next, we := i+1, skipWord(s, i) // we: the end of the word
	if cl&cDigit != 0 {
		dst, next = p.digitToken(s, i, dst, 0)
	} else {
		if i+3 < n && isAlpha(s[i+1]) && (isDigit(s[i+2]) || s[i+2] == ' ' && isDigit(s[i+3])) {
			dst, next = p.letterToken(s, i, dst)
		}
		// A label with digits glued to it: "SSN123-45-6789",
		// "card4111111111111111", "ssn_123456789". A value ends the
		// word (a number glued to letters on its right is none), so a
		// word ending in a letter, as prose does, is passed at once.
		if next == i+1 && isDigit(s[we-1]) {
			j := i + 1
			for j < we && isAlpha(s[j]) {
				j++
			}
			if j < we && j-i <= maxLabel {
				if d, lbl := gluedLabel(s, i, j); lbl != 0 {
					dst, next = p.digitToken(s, d, dst, lbl)
				}
			}
		}
	}
	if k&(kIP|kMAC) != 0 && cl&(cDigit|cHexLetter) != 0 && hexSepSoon(s, i) {
		var end int
		dst, end = p.hexToken(s, i, dst)
		next = max(next, end)
	}
	return dst, max(next, we)
}

// hexSepSoon reports whether the hex run at i (at most 4 digits) ends in ':',
// '-' or '.', as IPv6 and MAC addresses do.
func hexSepSoon(s string, i int) bool {
	for j := i; j < len(s) && j <= i+4; j++ {
		c := s[j]
		if c == ':' || c == '-' || c == '.' {
			return j > i
		}
		if !isHex(c) {
			return false
		}
	}
	return false
}

// detectMarked reports values that start with marker, checked by at.
func (p *PII) detectMarked(s string, dst []Finding, marker, typ string, at func(string, int) int) []Finding {
	for off := 0; ; {
		j := strings.Index(s[off:], marker)
		if j < 0 {
			return dst
		}
		i := off + j
		off = i + 1
		if wordRuneBefore(s, i) {
			continue
		}
		if end := at(s, i); end > 0 {
			dst = p.emit(dst, typ, i, end)
			off = end
		}
	}
}

// detectURLs finds "://" and "www." and checks the URL around them. index
// returns the first position at or after off of the marker markLits[k], or
// -1.
func (p *PII) detectURLs(s string, dst []Finding, index func(off, k int) int) []Finding {
	last := 0
	for off := 0; ; {
		at := index(off, 0) // "://"
		if at < 0 {
			break
		}
		off = at + 3
		b := at
		for b > last && at-b < 16 && (isAlnum(s[b-1]) || s[b-1] == '+' || s[b-1] == '.' || s[b-1] == '-') {
			b--
		}
		for b < at && !isAlpha(s[b]) {
			b++
		}
		if b == at || wordRuneBefore(s, b) {
			continue
		}
		if end := urlAt(s, b); end > 0 {
			dst = p.emit(dst, URL, b, end)
			off, last = end, end
		}
	}
	for k := 1; k <= 2; k++ { // "www.", "WWW."
		for off := 0; ; {
			i := index(off, k)
			if i < 0 {
				break
			}
			off = i + 4
			if i > 0 && (wordRuneBefore(s, i) || s[i-1] == '/' || s[i-1] == '.' || s[i-1] == '@') {
				continue // inside a URL or address already
			}
			if end := urlAt(s, i); end > 0 {
				dst = p.emit(dst, URL, i, end)
				off = end
			}
		}
	}
	return dst
}

// detectSecrets looks for 40-character keys only after the word "secret".
func (p *PII) detectSecrets(s string, dst []Finding) []Finding {
	from := 0
	// Search for "cret": 'c' is rarer in text than 's' or 'e'.
	for _, m := range [...]string{"cret", "CRET"} {
		for off := 0; ; {
			j := strings.Index(s[off:], m)
			if j < 0 {
				break
			}
			k := off + j + len(m)
			off = k
			if k < 6 || lower(s[k-6]) != 's' || lower(s[k-5]) != 'e' {
				continue
			}
			lim := min(len(s), k+100)
			for i := max(k, from); i < lim; i++ {
				if class[s[i]]&cWord == 0 || wordRuneBefore(s, i) {
					continue
				}
				if end := secretKeyAt(s, i); end > 0 {
					dst = p.emit(dst, AWSSecretKey, i, end)
					from = end
					break
				}
			}
		}
	}
	return dst
}

// skipWord returns the end of the ASCII word run starting at i.
func skipWord(s string, i int) int {
	for i < len(s) && class[s[i]]&cWord != 0 {
		i++
	}
	return i
}

// digitToken runs the number-shaped checks on a word that starts with a digit
// at i, or on the digits glued to a label (lbl, see gluedLabel). It returns
// dst and where scanning may resume.
func (p *PII) digitToken(s string, i int, dst []Finding, lbl piiKind) ([]Finding, int) {
	k := p.kinds
	next := i + 1
	if lbl == 0 && !numLeftOK(s, i) {
		return dst, next
	}
	found := func(typ string, end int) {
		dst = p.emit(dst, typ, i, end)
		next = max(next, end)
	}
	// The shape of the first digit run decides which checks can match at
	// all (each condition below is one its check needs); most numbers in
	// text are tried by one or two of them.
	e := digitsAt(s, i)
	run := e - i
	var c byte // the byte after the run
	if e < len(s) {
		c = s[e]
	}
	if k&kIP != 0 && run <= 3 && c == '.' {
		if end := ipv4At(s, i); end > 0 {
			found(IPAddress, end)
			return dst, next
		}
	}
	// Every other number value is nine digits or more (an SSN or routing
	// number; phone and card numbers have ten or more) with nothing but
	// group separators between them: dates, times, prices, quantities and
	// most ids stop here.
	if clusterDigits(s, i) < 9 {
		return dst, next
	}
	grouped := false // a separator and another digit group follow
	if run <= 19 {
		if q, _ := sepEnd(s, e); q > e && q < len(s) && isDigit(s[q]) {
			grouped = true
		}
	}
	if k&kSSN != 0 && (run == 3 && grouped || run == 9) {
		if end := ssnAt(s, i, lbl); end > 0 {
			found(USSocialSecurityNumber, end)
			return dst, next
		}
	}
	if k&kCard != 0 && cardMayStart(s, i) && (run >= 13 && run <= 19 || grouped && groupDigits(s, e, run) >= 13) {
		if end := cardAt(s, i); end > 0 {
			found(CreditDebitCardNumber, end)
			return dst, next
		}
	}
	if k&kRouting != 0 && run == 9 {
		if end := routingAt(s, i, lbl); end > 0 {
			found(USBankRoutingNumber, end)
			return dst, next
		}
	}
	// A phone number from a digit: ten or eleven bare digits, or groups
	// that start with a trunk or international 0, a NANP area code of
	// three digits, or a 1 before one.
	phoneGrouped := (c == ' ' || c == '-' || c == '.') && e+1 < len(s) && (isDigit(s[e+1]) || s[e+1] == '(') &&
		(s[i] == '0' || run == 3 || run == 1 && s[i] == '1')
	if k&kPhone != 0 && (phoneGrouped || run == 10 || run == 11) && phoneMayStart(s, i) {
		if end := phoneAt(s, i, lbl); end > 0 {
			found(Phone, end)
		}
	}
	return dst, next
}

// clusterDigits counts the digits from s[i] on up to the first byte that is
// neither a digit nor a byte number checks allow between digit groups
// (whitespace, - . _ / and parentheses), stopping at 9.
func clusterDigits(s string, i int) int {
	d := 0
	for ; i < len(s); i++ {
		c := s[i]
		if isDigit(c) {
			if d++; d == 9 {
				break
			}
		} else if !groupSep[c] {
			break
		}
	}
	return d
}

var groupSep = func() (t [256]bool) {
	for _, c := range " \t-._/()" {
		t[c] = true
	}
	return t
}()

// clusterClass sorts bytes for isTrigger's scan of a digit cluster.
const (
	ccStop  = iota // ends the cluster
	ccDigit        // 0-9
	ccDot          // '.'
	ccDash         // '-'
	ccSep          // another group separator
)

var clusterClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case isDigit(byte(c)):
			t[c] = ccDigit
		case c == '.':
			t[c] = ccDot
		case c == '-':
			t[c] = ccDash
		case groupSep[c]:
			t[c] = ccSep
		}
	}
	return t
}()

// groupDigits counts the digits of the groups that follow a first run of
// run digits ending at e, as cardAt joins them, stopping at 13.
func groupDigits(s string, e, run int) int {
	for run < 13 {
		q, _ := sepEnd(s, e)
		if q == e || q >= len(s) || !isDigit(s[q]) {
			break
		}
		e = digitsAt(s, q)
		run += e - q
	}
	return run
}

// letterToken runs the checks for values that start with a letter.
func (p *PII) letterToken(s string, i int, dst []Finding) ([]Finding, int) {
	k := p.kinds
	next := i + 1
	if k&kIBAN != 0 {
		if end := ibanAt(s, i); end > 0 {
			return p.emit(dst, IBAN, i, end), end
		}
	}
	if k&kNINO != 0 {
		if end := ninoAt(s, i); end > 0 {
			return p.emit(dst, UKNationalInsuranceNumber, i, end), end
		}
	}
	return dst, next
}

// hexToken checks for IPv6 and MAC addresses starting at i.
// It returns dst and the end of what it found (0 for nothing).
func (p *PII) hexToken(s string, i int, dst []Finding) ([]Finding, int) {
	if i >= 2 && (s[i-1] == ':' || s[i-1] == '-' || s[i-1] == '.') && isHex(s[i-2]) && !labelBefore(s, i-1) {
		return dst, 0 // inside a longer hex token
	}
	if p.kinds&kMAC != 0 {
		if end := macAt(s, i); end > 0 {
			return p.emit(dst, MACAddress, i, end), end
		}
	}
	if p.kinds&kIP != 0 {
		if end := ipv6At(s, i); end > 0 {
			return p.emit(dst, IPAddress, i, end), end
		}
	}
	return dst, 0
}

// labelBefore reports whether the hex letters that end at s[:j] (before a
// ':', '-' or '.') end a word that is not all hex digits: a label glued to
// an address ("mac:00:1A:2B:3C:4D:5E", "value:2001:db8::1", a snake_case
// key "device_id:…"), not a group of a longer hex token ("00:1A",
// "face:b00c").
func labelBefore(s string, j int) bool {
	b := j
	for b > 0 && j-b <= maxLabel && isHex(s[b-1]) {
		b--
	}
	if b == 0 || !isAlpha(s[b-1]) {
		return false
	}
	for b > 0 && j-b <= maxLabel && isAlpha(s[b-1]) {
		b--
	}
	lim := maxLabel
	// A snake_case key ("device_id", "src_mac"): the words before the
	// last one, joined to it by '_'.
	for b > 0 && s[b-1] == '_' && j-b <= maxKeyLabel {
		lim = maxKeyLabel
		b--
		for b > 0 && j-b <= maxKeyLabel && isAlnum(s[b-1]) {
			b--
		}
	}
	return j-b <= lim && !alnumBefore(s, b) && !wordRuneBefore(s, b)
}

// maxKeyLabel bounds a snake_case label (labelBefore).
const maxKeyLabel = 32

// numLeftOK reports whether a number may start at i: it must not continue a
// word or another number ("v1.2", "12-34", "1,5").
func numLeftOK(s string, i int) bool {
	if i == 0 {
		return true
	}
	c := s[i-1]
	if class[c]&cWord != 0 {
		return false
	}
	if c == ':' && mappedIPv4Before(s, i) {
		return ipv4At(s, i) > 0 // only the IPv4 address such a form embeds
	}
	if (c == '-' || c == '.' || c == '/' || c == ':') && i >= 2 && isAlnum(s[i-2]) {
		// After a word and ':' ("SSN:123-45-6789", "tel:555-..."), or a
		// label word and '-', '.' or '/' ("ssn-123-45-6789", "card.4111...").
		// Not after a number or another word ("v1.2", "INV-2024-0917").
		w := letterWordBefore(s, i-1)
		return w != "" && (c == ':' || labelKind(w) != 0)
	}
	return !wordRuneBefore(s, i)
}

// mappedIPv4Before reports whether s[:i] ends in "::ffff:" on its own (an
// IPv4-mapped IPv6 address, as servers log a client's IPv4 address: the
// IPv4 address after it is reported).
func mappedIPv4Before(s string, i int) bool {
	return i >= 7 && hasPrefixFoldASCII(s[i-7:i], "::ffff:") && (i == 7 || !isHex(s[i-8]) && s[i-8] != ':' && !wordRuneBefore(s, i-7))
}

// letterWordBefore returns the ASCII letters that end at s[:j] when they make
// a whole word (nothing word-like before them), or "".
func letterWordBefore(s string, j int) string {
	b := j
	for b > 0 && j-b < 16 && isAlpha(s[b-1]) {
		b--
	}
	if b == j || wordRuneBefore(s, b) || b > 0 && strings.IndexByte(":.-/@", s[b-1]) >= 0 {
		return "" // not a word of its own ("::ffff:", "host:")
	}
	return s[b:j]
}

// kLabel marks a number introduced by a generic label ("no", "number"): it
// may start glued to it, but the label is no context for any type.
const kLabel piiKind = 1 << 15

// labels are words that introduce a value, and the types they are context
// for. A number may be glued to one ("SSN123-45-6789") or follow it after
// '-', '.', '/' or '_' ("ssn-123-45-6789"), which after other words means the
// digits belong to a longer token (an invoice or part number).
var labels = map[string]piiKind{
	"ssn": kSSN, "ssns": kSSN, "ss": kSSN, "ssnum": kSSN, "ssno": kSSN, "socsec": kSSN, "itin": kSSN,
	"card": kCard, "cardno": kCard, "cardnum": kCard, "cardnumber": kCard, "cc": kCard, "ccn": kCard, "ccnum": kCard,
	"pan": kCard, "visa": kCard, "mc": kCard, "amex": kCard, "mastercard": kCard, "debit": kCard, "credit": kCard,
	"tel": kPhone, "phone": kPhone, "ph": kPhone, "mob": kPhone, "mobile": kPhone, "cell": kPhone, "fax": kPhone,
	"sms": kPhone, "whatsapp": kPhone,
	"aba": kRouting, "rtn": kRouting, "routing": kRouting,
	"no": kLabel, "nr": kLabel, "num": kLabel, "number": kLabel, "acct": kLabel, "account": kLabel,
}

// labelKind returns the types the label word w is context for (kLabel for a
// generic one), or 0 when w is no label. w is compared without case.
func labelKind(w string) piiKind {
	if len(w) > maxLabel {
		return 0
	}
	var b [maxLabel]byte
	for i := 0; i < len(w); i++ {
		b[i] = lower(w[i])
	}
	return labels[string(b[:len(w)])]
}

// maxLabel is the length of the longest label.
const maxLabel = 10

// gluedLabel reports whether the letters s[i:j] are a label with digits
// glued to them, directly or after '_': it returns where the digits start and
// the label's kinds, or 0, 0.
func gluedLabel(s string, i, j int) (int, piiKind) {
	d := j
	if d < len(s) && s[d] == '_' {
		d++
	}
	if d >= len(s) || !isDigit(s[d]) {
		return 0, 0
	}
	return d, labelKind(s[i:j])
}

// numRightOK reports whether a number may end at e: the next byte is not a
// word byte, nor a joiner followed by a digit ("-7", ".5").
func numRightOK(s string, e int) bool {
	if e >= len(s) {
		return true
	}
	c := s[e]
	if class[c]&cWord != 0 {
		return false
	}
	if (c == '-' || c == '.' || c == '/') && e+1 < len(s) && isDigit(s[e+1]) {
		return false
	}
	return !wordRuneAt(s, e)
}

// digitsAt returns the end of the digit run starting at i.
func digitsAt(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}
