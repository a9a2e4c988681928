package detect

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
)

// Finding types of the injection heuristic.
const (
	PromptInjection = "PROMPT_INJECTION" // instruction override, system-prompt extraction
	Jailbreak       = "JAILBREAK"        // role-play jailbreak markers (DAN, developer mode, "no restrictions")
	EncodedPayload  = "ENCODED_PAYLOAD"  // a base64 blob that decodes to an injection or jailbreak phrase
)

// Injection is a HEURISTIC prompt-injection and jailbreak detector: a fixed
// set of phrase patterns (instruction overrides such as "ignore all previous
// instructions", "disregard the system prompt"; system-prompt extraction such
// as "reveal your system prompt"; jailbreak markers such as "you are DAN",
// "developer mode enabled", "pretend you have no restrictions") matched word
// by word, case-insensitively, after normalisation, plus base64 blobs (20
// characters or more) whose decoded text matches one of the patterns.
//
// It catches the common, copy-pasted attacks and nothing cleverer: paraphrases,
// other languages and attacks spread over several messages pass. It is not
// a classifier; Bedrock Guardrails' prompt-attack filter is (see the Bedrock
// Guardrails backend). Its false-positive rate on benign prompts is measured
// by the corpus test.
type Injection struct {
	wm     wordMatcher
	spans  sync.Pool  // *[]wordSpan
	filter wordFilter // the words wm and its blob hook look at on their own
}

// Pattern syntax: words separated by spaces; a word is alternatives separated
// by '|'; "[...]{m,n}" repeats a word m to n times; a trailing '?' makes it
// optional; "=WORD" matches case-sensitively. A leading '^' marks the
// pattern's anchor (a required word; the first when none is marked): the
// scan looks for a match only near one of its anchor's words, so a pattern
// whose first word is common in prose ("you", "do", "what") is anchored on
// a rarer word. Which word is the anchor changes the cost, not the matches.
const (
	injQual    = "previous|prior|above|earlier|preceding|former|original|initial|system|existing|developer|safety|all|any|your|every|foregoing|old"
	injNouns   = "instructions|instruction|prompts|prompt|rules|directions|guidelines|directives|commands|guardrails|restrictions|constraints|policies|programming|messages|message|context|orders"
	injFill    = "[all|any|the|every|each|of|my|your|these|those|our|and|that|you|were|was|given|have|been|received]{0,4}"
	injSecret  = "system|initial|hidden|original|secret|developer|internal|full|entire|exact|complete|verbatim|first|confidential"
	injSecretN = "prompt|prompts|instructions|message|messages|rules|directives|guidelines|configuration|preprompt"
	injModeKw  = "developer|dev|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|=DAN|sudo|evil|chaos"
	injLimits  = "restrictions|restriction|limitations|limits|filters|filter|rules|guidelines|censorship|boundaries|guardrails|ethics|morals|confines|safeguards|policies"
)

var injectionPatterns = []struct{ typ, pattern string }{
	// Instruction override.
	{PromptInjection, "ignore|disregard|forget|skip|override|bypass|drop|discard|abandon|neglect|ignoring|disregarding " + injFill + " [" + injQual + "]{1,3} " + injFill + " " + injNouns},
	{PromptInjection, "do|don't|dont not? ^follow|obey|listen [to]{0,1} " + injFill + " [" + injQual + "]{1,3} " + injNouns},
	{PromptInjection, "override|overrides|supersede|supersedes|replace|replaces " + injFill + " [" + injQual + "]{1,3} " + injNouns},
	// System-prompt extraction.
	{PromptInjection, "reveal|leak|dump|expose|disclose|recite|divulge|exfiltrate [to|me|us]{0,2} [your|the|its|all|of|any]{0,3} [" + injSecret + "]{1,3} " + injSecretN},
	{PromptInjection, "print|show|display|output|repeat|tell|share|give|write|send|paste|copy|list|spell [me|us|out|back|to]{0,2} [all|of|the]{0,2} your [" + injSecret + "]{0,3} ^" + injSecretN},
	{PromptInjection, "what|which is|are|were your [" + injSecret + "]{1,3} ^" + injSecretN},
	{PromptInjection, "repeat|print|output|echo|return|copy [back]{0,1} [the|all|of|everything]{0,3} words|text|everything|content|lines above|before|prior"},
	{PromptInjection, "print|output|repeat|reveal|show|display everything|all [that]{0,1} [is|was|was|you|were]{0,2} above|before"},
	// Jailbreak.
	{Jailbreak, "you|you're|youre|you've [are|now|in|a|an|entering|entered|become|been|acting|have]{0,3} ^[" + injModeKw + "]{1,2} mode|ai|model|assistant|version|persona"},
	{Jailbreak, "[" + injModeKw + "]{1,2} mode enabled|activated|engaged|unlocked|output|response"},
	{Jailbreak, "simulate|emulate|enable|activate|enter|unlock [the]{0,1} jailbreak|jailbroken|=DAN|god|unrestricted|unfiltered mode"},
	{Jailbreak, "simulate|emulate [the|a]{0,1} developer mode"},
	{Jailbreak, "chatgpt|gpt|claude|ai|assistant|model with ^developer|dev mode"},
	{Jailbreak, "you|you're|youre|act|be|become|called|named|pretend|roleplay|play|as [are|now|to|as|be|the|role|of]{0,3} ^=DAN"},
	{Jailbreak, "=DAN mode|prompt|jailbreak|persona|character"},
	{Jailbreak, "stands for do anything now"},
	{Jailbreak, "do ^anything now [dan]{0,1} mode|persona|character|prompt|jailbreak"},
	{Jailbreak, "pretend|imagine|act|behave|assume|suppose [as|if|that|you|are|is|an|a|ai|model|assistant]{0,5} have|has|with|without no|any " + injLimits},
	{Jailbreak, "freed|free|released|liberated|unbound from [all|the|any|your|its|of]{0,3} [typical|usual|normal|standard|ethical|moral|content|safety|openai|anthropic|ai]{0,2} ^" + injLimits},
	{Jailbreak, "without|no|ignoring|disregarding any? ethical|moral|content|safety [or|and|ethical|moral|content|safety]{0,3} ^" + injLimits},
	{Jailbreak, "bypass|circumvent|evade|disable|remove|turn|switch [off]{0,1} [your|the|all|any|of|its]{0,2} safety|content|ethical|moral|censorship ^filters|filter|guidelines|restrictions|guardrails|protocols|policies|safeguards"},
	{Jailbreak, "jailbreak|jailbreaking yourself"},
	{Jailbreak, "jailbreak|jailbroken|jailbreaking you|the|this ai|model|assistant|chatbot|bot|gpt|chatgpt|claude|llm"},
	{Jailbreak, "you|you're|youre|you've [are|have|been|become|now]{0,3} ^jailbroken|unchained"},
	{Jailbreak, "act|acting|pretend|roleplay|behave as|to|be an|a ^unrestricted|unfiltered|uncensored|amoral|unethical|evil ai|model|assistant|chatbot|bot|llm|version"},
}

// NewInjection returns the heuristic injection detector.
func NewInjection() *Injection {
	d := &Injection{}
	d.wm.punct = true
	for _, p := range injectionPatterns {
		ph, err := parsePattern(p.typ, p.pattern)
		if err != nil {
			panic(err) // the patterns are constants: a test covers them
		}
		d.wm.add(ph.typ, ph.slots, ph.anchor)
	}
	d.wm.anchor()
	d.addFilter(&d.filter)
	return d
}

func (d *Injection) addFilter(f *wordFilter) {
	f.add(&d.wm)
	f.hook = true
}

func parsePattern(typ, pat string) (phrase, error) {
	ph := phrase{typ: typ}
	for _, tok := range strings.Fields(pat) {
		sl := slot{min: 1, max: 1}
		if rest, ok := strings.CutPrefix(tok, "^"); ok && rest != "" {
			if ph.anchor != 0 || len(ph.slots) == 0 {
				return ph, fmt.Errorf("pattern %q: a second anchor, or one on the first word, at %q", pat, tok)
			}
			ph.anchor, tok = len(ph.slots), rest
		}
		if strings.HasPrefix(tok, "[") {
			end := strings.Index(tok, "]{")
			if end < 0 {
				return ph, fmt.Errorf("pattern %q: bad token %q", pat, tok)
			}
			if _, err := fmt.Sscanf(tok[end+1:], "{%d,%d}", &sl.min, &sl.max); err != nil || sl.max < 1 || sl.min > sl.max {
				return ph, fmt.Errorf("pattern %q: bad repeat in %q", pat, tok)
			}
			tok = tok[1:end]
		} else if strings.HasSuffix(tok, "?") && len(tok) > 1 {
			sl.min = 0
			tok = tok[:len(tok)-1]
		}
		for _, a := range strings.Split(tok, "|") {
			if a == "" {
				return ph, fmt.Errorf("pattern %q: empty alternative", pat)
			}
			al := newAlt(a)
			if !isPlainWord(al.text) {
				return ph, fmt.Errorf("pattern %q: %q is not a single word", pat, a)
			}
			sl.alts = append(sl.alts, al)
		}
		ph.slots = append(ph.slots, sl)
	}
	if len(ph.slots) == 0 || ph.slots[0].min == 0 {
		return ph, fmt.Errorf("pattern %q: must start with a required word", pat)
	}
	if ph.slots[ph.anchor].min == 0 {
		return ph, fmt.Errorf("pattern %q: the anchor must be a required word", pat)
	}
	return ph, nil
}

// Name implements Detector.
func (d *Injection) Name() string { return "injection" }

// Detect implements Detector.
func (d *Injection) Detect(s string, dst []Finding) []Finding {
	withWords(&d.spans, s, &d.filter, func(words []wordSpan) { dst = d.detect(s, words, dst, 0) })
	return dst
}

func (d *Injection) detectSpans(s string, words []wordSpan, dst []Finding) []Finding {
	return d.detect(s, words, dst, 0)
}

const (
	minBlob     = 20   // shortest base64 run decoded ("ignore all" is 16 bytes of base64)
	maxBlobScan = 8192 // bytes of a blob decoded at most
)

// detect matches the phrases and, through the word matcher's blob hook,
// base64 runs (standard or URL alphabet, padded or not) whose decoded text
// holds a phrase, one level of nesting deep.
func (d *Injection) detect(s string, words []wordSpan, dst []Finding, depth int) []Finding {
	last := 0 // end of the last base64 run examined
	hook := func(dst []Finding, ws, we int) ([]Finding, int) {
		if ws < last {
			return dst, 0
		}
		i := ws
		for i > last && class[s[i-1]]&cB64 != 0 {
			i--
		}
		// Most words the hook sees are in short runs ("follow-up", a
		// date): measure the run by table before b64Run's flags.
		k := i
		for k < len(s) && k-i < minBlob && class[s[k]]&cB64 != 0 {
			k++
		}
		if k-i < minBlob {
			last = k
			if k == i {
				last = we // no base64 character at i (a word of other letters)
			}
			return dst, 0
		}
		j, up, lo, dg := b64Run(s, i)
		last = j
		end := j
		for end < len(s) && end-j < 2 && s[end] == '=' {
			end++
		}
		if j-i < minBlob || !up || !lo || !(dg || j-i >= 32) || !d.encodedHit(s[i:j], depth) {
			return dst, 0
		}
		return append(dst, Finding{Type: EncodedPayload, Detector: "injection", Start: i, End: end}), end
	}
	return d.wm.scan(s, words, "injection", dst, hook)
}

// b64Run returns the end of the run of base64 characters (letters, digits,
// '+', '/', '-', '_') from i, and whether it holds an upper-case letter, a
// lower-case letter and a digit; eight bytes at a time while they last
// (TestB64Run holds it to the byte loop).
func b64Run(s string, i int) (j int, up, lo, dg bool) {
	var upm, lom, dgm uint64
	j = i
	for j+8 <= len(s) {
		x := load64(s, j)
		u, l, d := inRange(x, 'A', 'Z'), inRange(x, 'a', 'z'), inRange(x, '0', '9')
		in := u | l | d | eqByte(x, '+') | eqByte(x, '/') | eqByte(x, '-') | eqByte(x, '_')
		if stop := ^in & msb; stop != 0 {
			keep := uint64(1)<<(8*firstByte(stop)) - 1
			upm, lom, dgm = upm|u&keep, lom|l&keep, dgm|d&keep
			return j + firstByte(stop), upm != 0, lom != 0, dgm != 0
		}
		upm, lom, dgm = upm|u, lom|l, dgm|d
		j += 8
	}
	up, lo, dg = upm != 0, lom != 0, dgm != 0
	for ; j < len(s) && class[s[j]]&cB64 != 0; j++ {
		cl := class[s[j]]
		up = up || cl&cUpper != 0
		lo = lo || cl&cLower != 0
		dg = dg || cl&cDigit != 0
	}
	return j, up, lo, dg
}

func (d *Injection) encodedHit(blob string, depth int) bool {
	if len(blob) > maxBlobScan {
		blob = blob[:maxBlobScan]
	}
	if len(blob)%4 == 1 { // not decodable: drop a stray character
		blob = blob[:len(blob)-1]
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(blob, "-_") {
		enc = base64.RawURLEncoding
	}
	var stack [1024]byte
	buf := stack[:]
	if m := enc.DecodedLen(len(blob)); m > len(buf) {
		buf = make([]byte, m)
	}
	m, err := enc.Decode(buf, []byte(blob))
	if err != nil || m == 0 {
		return false
	}
	txt := buf[:m]
	printable := 0
	for _, c := range txt {
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\r' || c == '\t' || c >= 0x80 {
			printable++
		}
	}
	if printable*10 < m*9 {
		return false
	}
	t := Normalize(string(txt))
	words := appendWords(t, nil)
	if depth > 0 {
		return len(d.wm.scan(t, words, "injection", nil, nil)) > 0
	}
	return len(d.detect(t, words, nil, 1)) > 0
}
